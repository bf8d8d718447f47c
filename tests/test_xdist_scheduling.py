"""The xdist controller's scheduler for arena runs, driven step by step with stand-in workers: battles go
in one block per worker, and no gate runs before every battle has reported."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_arena.distributed import arena_item
from pytest_arena.matches import blocks

pytest.importorskip("xdist")  # a dev dependency: CI has it

from pytest_arena.xdist_scheduling import ArenaScheduling  # noqa: E402

BATTLES = [f"arena_tests/test_battles.py::test_battle[q00{q}-a--vs--{b}]" for q in (1, 2) for b in ("b", "c")]
GATES = ["arena_tests/test_gates.py::test_gate[elo-a]", "arena_tests/test_gates.py::test_gate[elo-b]"]
OTHER = "tests/test_mine.py::test_something"


class Worker:
    """What the scheduler sees of an xdist worker: the items sent to it, and whether it was told to stop.
    Like a real one, it runs an item only once it has the next one or was told to stop."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices) -> None:
        assert not self.shutting_down, "items sent after the shutdown are never run"
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True

    def runnable(self, done: set[int]) -> list[int]:
        pending = [i for i in self.sent if i not in done]
        return pending if self.shutting_down else pending[:-1]


def scheduler(collection: list[str], workers: int = 2):
    config = SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"] if name == "tx" else None,
                             getoption=lambda name: None, option=SimpleNamespace(loadscopereorder=True))
    match_ids = {nodeid.split("[")[1][:-1] for nodeid in BATTLES}
    sched = ArenaScheduling(config, None, lambda nodeid: arena_item(nodeid, match_ids, {"elo-a", "elo-b"}))
    nodes = [Worker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, collection)
    sched.schedule()
    return sched, nodes


def run_all(sched, nodes, collection) -> list[str]:
    """Let the workers run what they can, one item at a time, until nothing moves; the order of reports."""
    done: set[int] = set()
    reported = []
    while True:
        ready = [(node, i) for node in nodes for i in node.runnable(done)]
        if not ready:
            return reported
        node, index = ready[0]
        done.add(index)
        reported.append(collection[index])
        sched.mark_test_complete(node, index)


def test_each_worker_gets_one_block_and_gates_run_after_every_battle():
    collection = BATTLES + GATES
    sched, (gw0, gw1) = scheduler(collection)
    assert sorted(gw0.sent[:2] + gw1.sent[:2]) == [0, 1, 2, 3]
    assert {tuple(gw0.sent[:2]), tuple(gw1.sent[:2])} == {(0, 1), (2, 3)}  # consecutive: the workers' blocks
    # Nothing else to send: the first gate goes out at once (a worker needs its next item to run its
    # last battle), but nothing lets it run before the battles are all done.
    assert not sched.tests_finished and sched.has_pending
    reported = run_all(sched, [gw0, gw1], collection)
    assert reported[:4] != [] and set(reported[:4]) == set(BATTLES)
    assert reported[4:] == GATES
    assert sched.tests_finished


def test_gates_wait_for_a_slow_worker():
    collection = BATTLES + GATES
    sched, (gw0, gw1) = scheduler(collection)
    gate_node, other = (gw0, gw1) if 4 in gw0.sent else (gw1, gw0)
    # The gate's worker finishes its battles; the other worker has not reported its last battle yet.
    for index in gate_node.sent[:2]:
        sched.mark_test_complete(gate_node, index)
    sched.mark_test_complete(other, other.sent[0])
    assert gate_node.runnable({*gate_node.sent[:2]}) == []  # the gate waits
    assert not gate_node.shutting_down and 5 not in gate_node.sent
    sched.mark_test_complete(other, other.sent[1])
    assert gate_node.sent[-1] == 5 and gate_node.shutting_down  # now both gates can run


def test_other_items_keep_their_scope_and_gates_still_come_last():
    collection = [OTHER] + BATTLES + GATES
    sched, nodes = scheduler(collection)
    reported = run_all(sched, nodes, collection)
    assert sorted(reported) == sorted(collection)
    assert reported[-2:] == GATES


def test_a_gate_only_selection_runs_its_gates():
    sched, nodes = scheduler(GATES)
    assert sorted(run_all(sched, nodes, GATES)) == GATES
    assert sched.tests_finished


def test_blocks_are_consecutive_and_near_equal():
    ids = [f"m{i}" for i in range(7)]
    assert list(blocks(ids, 2).values()) == [0, 0, 0, 0, 1, 1, 1]
    assert list(blocks(ids, 3).values()) == [0, 0, 0, 1, 1, 2, 2]
    assert list(blocks(ids[:2], 4).values()) == [0, 2]  # more workers than matches: some get none
