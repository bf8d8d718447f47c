"""Gates: one item per gate (``test_gate[elo-A]``), run after every battle."""

import pytest

from pytest_arena.fixtures import _arena_run  # noqa: F401 - the suite's own fixture, not shadowed by a conftest's


def test_gate(_arena_run, arena_gate, request):
    result = _arena_run.gate_result(arena_gate)
    if result is None:  # evaluated elsewhere: under pytest-xdist, by the controller over every worker's verdicts
        return
    record = request.node.user_properties.append  # not record_property: it warns under xunit2
    for name, value in result.properties():
        record((name, value))
    if not result.passed:
        pytest.fail(result.message, pytrace=False)
