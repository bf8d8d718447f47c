"""Gates: one item per gate (``test_gate[elo-A]``), run after every battle."""

import pytest


def test_gate(arena, arena_gate, record_property):
    result = arena.gate_result(arena_gate)
    record_property("gate", result.message)
    if result.value is not None:
        record_property("gate_value", round(result.value, 4))
        record_property("gate_threshold", result.threshold)
    if result.ci is not None:
        record_property("gate_ci", f"{result.ci[0]:.4f} .. {result.ci[1]:.4f}")
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
