"""Gates: one item per gate (``test_gate[elo-A]``), run after every battle."""

import pytest


def test_gate(arena, arena_gate, record_property):
    result = arena.gate_result(arena_gate)
    record_property("gate", result.message)
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
