"""The arena suite: pytest-arena parametrizes these with the battles and gates of the config.

One item per battle (``test_battle[q017-A--vs--B]``) and one per gate (``test_gate[elo-A]``).
"""

import pytest


def test_battle(arena, arena_battle, record_property):
    judgment = arena.judgment(arena_battle)
    if judgment is None:  # reviews_gen.enable is false: the answers are the result
        return
    record_property("verdict", judgment.winner or "error")
    record_property("template", judgment.template)
    record_property("cached", judgment.cached)
    if not judgment.ok:
        pytest.fail(f"{judgment.error}\njudge said: {judgment.excerpt() or '(nothing)'}", pytrace=False)


def test_gate(arena, arena_gate, record_property):
    result = arena.gate_result(arena_gate)
    record_property("gate", result.message)
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
