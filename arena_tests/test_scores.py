"""Single mode: one item per scored answer (``test_score[q017-A]``)."""

import pytest

from pytest_arena.fixtures import _arena_run  # noqa: F401 - the suite's own fixture, not shadowed by a conftest's


def test_score(_arena_run, arena_scoring, request):
    not_judged = _arena_run.not_judged(arena_scoring)  # --arena-stop-when-decided: every gate was decided first
    if not_judged:
        pytest.skip(not_judged)
    judgment = _arena_run.judgment(arena_scoring)
    record = request.node.user_properties.append  # not record_property: it warns under xunit2
    if judgment is None:
        return
    if judgment.score is not None:
        record(("score", judgment.score))
    if not judgment.ok:
        pytest.fail(f"{judgment.error}\njudge said: {judgment.excerpt() or '(nothing)'}", pytrace=False)
