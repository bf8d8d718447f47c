"""An arena run under pytest-xdist (``pytest -n N --arena-config ...``): each process's role (``Alone``,
``Worker``, ``Controller``: what it collects, prepares, judges and reports) here, and the hooks of the
workers and of the controller in ``distributed.hooks``, registered by ``plugin.pytest_configure``
(``hooks.hooks_for``) only in such a run. No other module knows which role it plays: they ask the
role's questions.

What runs where:

- Every worker prepares the answers of the whole selection, and the workers share that work through
  the answer files' locks: each model is loaded once in the run, by whichever worker takes it first,
  so N workers on N GPUs generate N models at a time (``ArenaRunner.prepare``).
- The battles are split in one block of consecutive matches per worker (``matches.blocks``). The
  controller's scheduler (``xdist_scheduling``) sends a whole block to one worker, which judges it:
  no judge call is made twice, and each worker has its block's calls in flight from the start.
- A battle item's report carries its judgment's summary to the controller; the workers' judge
  counters and model loads follow in ``workeroutput`` when they finish.
- Gate items run only after every other item has reported: the scheduler holds them back. The worker
  side of a gate does nothing; the controller evaluates the gate over all the verdicts and rewrites the gate's
  reports before the terminal, JUnit XML and the exit status see them. Only the controller rates,
  evaluates gates and writes the report.
- ``--arena-worker-gpus 0,1`` gives each worker its own ``CUDA_VISIBLE_DEVICES``, put in the worker's
  environment before its process starts pytest (so conftests see it too); a worker that replaces a
  crashed one gets its predecessor's devices.

This module is plain Python (``ArenaSession`` holds an ``Alone``); only ``hooks`` imports pytest.
"""

from __future__ import annotations

import uuid

from ..matches import blocks


def arena_item(nodeid: str, match_ids, gate_ids) -> tuple[str, str] | None:
    """What an item is, from its node ID alone (the controller collects nothing):
    ``("match", id)``, ``("gate", id)`` or None."""
    function, bracket, rest = nodeid.rpartition("::")[2].partition("[")
    if not bracket or not rest.endswith("]"):
        return None
    key = rest[:-1]
    if function in ("test_battle", "test_score") and key in match_ids:
        return "match", key
    if function == "test_gate" and key in gate_ids:
        return "gate", key
    return None


# -------------------------------------------------------------------------------------------------
# Roles: what one process does in the run


class Alone:
    """The only process of the run: it collects, prepares, judges, rates and reports."""

    workers = 1
    run_id = None  # the id the processes of one run share (the controller's, given to its workers)
    whole_run_here = True  # every item and every verdict is here: gates rate the whole plan
    collects = True
    prepares = True
    evaluates_gates = True
    reports = True

    def judges(self, match) -> bool:
        return True

    def take_block(self, match) -> None:
        """This process runs ``match``'s item (only a worker takes blocks)."""

    def selected(self, matches: list) -> None:
        """The run's selection, in plan order (only a worker splits it)."""

    def counters(self, judge):
        """Judge calls, cache hits, failures and tokens of this run (None when nothing was judged)."""
        return judge.counters if judge else None


class Worker(Alone):
    """One of ``workers`` xdist workers: it prepares the answers, judges only the blocks it takes,
    and leaves the ratings, gates and report to the controller."""

    whole_run_here = False
    evaluates_gates = False  # the controller evaluates each gate, over every worker's verdicts
    reports = False

    def __init__(self, runner, workers: int, run_id: str | None = None):
        self._runner = runner
        self.workers = workers
        self.run_id = run_id  # the judge budget's shared count (budget.SharedCallLimit) is kept under it
        self._block_of: dict[str, int] | None = None
        self._taken: set[int] = set()

    def selected(self, matches: list) -> None:
        if matches:
            self._block_of = blocks([m.id for m in matches], self.workers)

    def judges(self, match) -> bool:
        return self._block_of is None or self._block_of.get(match.id) in self._taken

    def take_block(self, match) -> None:
        """Judge ``match``'s whole block here (at once, if its answers exist)."""
        block = self._block_of.get(match.id) if self._block_of is not None else None
        if block is None or block in self._taken:
            return
        self._taken.add(block)
        self._runner.catch_up()

    def judgment_summary(self, match) -> dict | None:
        """The finished judgment of a match judged here, as plain data (None: not judged here, or reviews off)."""
        judgment = self._runner.finished(match)
        return judgment.summary() if judgment is not None else None

    def output(self) -> dict:
        """What the controller adds up when this worker finishes."""
        runner = self._runner
        return {"counters": runner.judge.counters.counts() if runner.judge else None,
                "models_loaded": list(runner.models_loaded),
                "served": {name: counters.counts() for name, counters in runner.served_counters.items()}}


class Controller(Alone):
    """The xdist controller: its workers collect, prepare and judge; it receives their verdicts and
    counters, then rates, evaluates the gates and reports."""

    whole_run_here = False
    collects = False
    prepares = False

    def __init__(self, runner, matches: list):
        self._runner = runner
        self._by_id = {m.id: m for m in matches}
        self._worker_counters = None
        self.run_id = uuid.uuid4().hex  # given to every worker (a replaced one too): one run, one judge budget

    def counters(self, judge):
        return self._worker_counters

    def worker_ran(self) -> None:
        """A worker ran an arena item: there is a run to report on, even when nothing was judged."""
        self._runner.prepared = True

    def receive_judgment(self, summary: dict) -> None:
        from ..judging.judgment import Judgment

        self._runner.accept(Judgment.from_summary(self._by_id[summary["id"]], summary), reported=True)

    def receive_worker_output(self, output: dict) -> None:
        if output.get("counters") is not None:
            from ..judging.match_judge import JudgeCounters

            self._worker_counters = self._worker_counters or JudgeCounters()
            self._worker_counters.add(**output["counters"])
        self._runner.models_loaded.extend(output.get("models_loaded", ()))
        served = self._runner.served_counters
        for name, counts in output.get("served", {}).items():
            # The worker that asked the server has the real figures; the others read its answers
            # from the file and would count them all as cached.
            known = served.get(name)
            if known is None or _work(counts) > _work(known.counts()):
                from ..generation.api_backend import ServedCounters

                served[name] = ServedCounters(**counts)


def _work(counts: dict[str, int]) -> int:
    return counts.get("requests", 0) + counts.get("answered", 0) + counts.get("failed", 0)
