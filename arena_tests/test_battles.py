"""Battles: pytest-arena parametrizes ``test_battle`` with one item per battle (``q017-A--vs--B``)."""

import pytest


def test_battle(arena, arena_battle, record_property):
    judgment = arena.judgment(arena_battle)
    if judgment is None:  # reviews_gen.enable is false: the answers are the result
        return
    record_property("verdict", judgment.winner or "error")
    for i, result in enumerate(judgment.results, start=1):
        if len(judgment.results) > 1:
            record_property(f"verdict_{i}", result.winner or "error")
    record_property("template", judgment.template)
    record_property("cached", judgment.cached)
    if not judgment.ok:
        pytest.fail(f"{judgment.error}\njudge said: {judgment.excerpt() or '(nothing)'}", pytrace=False)
