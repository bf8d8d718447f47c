"""Battles: pytest-arena parametrizes ``test_battle`` with one item per battle (``q017-A--vs--B``)."""

import pytest

from pytest_arena.fixtures import _arena_run  # noqa: F401 - the suite's own fixture, not shadowed by a conftest's


def test_battle(_arena_run, arena_battle, request):
    not_judged = _arena_run.not_judged(arena_battle)  # --arena-stop-when-decided: every gate was decided first
    if not_judged:
        pytest.skip(not_judged)
    judgment = _arena_run.judgment(arena_battle)
    record = request.node.user_properties.append  # not record_property: it warns under xunit2
    if judgment is None:  # reviews_gen.enable is false: the answers are the result
        return
    record(("verdict", judgment.winner or "error"))
    for i, result in enumerate(judgment.results, start=1):
        if len(judgment.results) > 1:
            record((f"verdict_{i}", result.winner or "error"))
    record(("template", judgment.template))
    record(("cached", judgment.cached))
    if not judgment.ok:
        pytest.fail(f"{judgment.error}\njudge said: {judgment.excerpt() or '(nothing)'}", pytrace=False)
