"""Gates: one item per gate (``test_gate[elo-A]``), run after every battle."""

import pytest


def test_gate(arena, arena_gate, record_property):
    if arena.role == "worker":  # under pytest-xdist the controller evaluates it, over every worker's verdicts
        return
    result = arena.gate_result(arena_gate)
    for name, value in result.properties():
        record_property(name, value)
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
