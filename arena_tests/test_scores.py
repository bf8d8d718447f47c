"""Single mode: one item per scored answer (``test_score[q017-A]``)."""

import pytest


def test_score(arena, arena_scoring, record_property):
    judgment = arena.judgment(arena_scoring)
    if judgment is None:
        return
    if judgment.score is not None:
        record_property("score", judgment.score)
    if not judgment.ok:
        pytest.fail(f"{judgment.error}\njudge said: {judgment.excerpt() or '(nothing)'}", pytrace=False)
