"""An arena run under pytest-xdist (``pytest -n N --arena-config ...``): the hooks of its workers and
of its controller. Registered by ``plugin.pytest_configure`` only in such a run.

What runs where:

- Every worker prepares the answers of the whole selection, and the workers share that work through
  the answer files' locks: each model is loaded once in the run, by whichever worker takes it first,
  so N workers on N GPUs generate N models at a time (``ArenaSession.prepare``).
- The battles are split in one block of consecutive matches per worker (``plan.blocks``). The
  controller's scheduler (``xdist_scheduling``) sends a whole block to one worker, which judges it:
  no judge call is made twice, and each worker has its block's calls in flight from the start.
- A battle item's report carries its judgment's summary to the controller; the workers' judge
  counters and model loads follow in ``workeroutput`` when they finish.
- Gate items run only after every other item has reported: the scheduler holds them back. The worker
  side of a gate does nothing; the controller evaluates the gate over all the verdicts and rewrites the gate's
  reports before the terminal, JUnit XML and the exit status see them. Only the controller rates,
  evaluates gates and writes the report.
- ``--arena-worker-gpus 0,1`` gives each worker its own ``CUDA_VISIBLE_DEVICES``, set in the worker
  before anything of the arena imports torch.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from .plugin import _param

DEVICE = re.compile(r"[A-Za-z0-9_-]+$")  # a CUDA index or a GPU/MIG UUID


def gpu_groups(value: str) -> list[str]:
    """``0,1`` -> one device per worker; ``0+1,2+3`` -> two each (tensor parallelism):
    the ``CUDA_VISIBLE_DEVICES`` value of each worker, in worker order."""
    groups = [group.strip() for group in value.split(",")]
    devices = [[d.strip() for d in group.split("+")] for group in groups]
    if not value.strip() or not all(DEVICE.match(d) for group in devices for d in group):
        raise pytest.UsageError(f"--arena-worker-gpus: expected CUDA devices per worker, e.g. 0,1 (one each) or "
                                f"0+1,2+3 (two each), got {value!r}")
    return [",".join(group) for group in devices]


def pin_devices(devices: str, log) -> None:
    """Show this worker only its devices; CUDA reads the variable once, when it initialises."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise pytest.UsageError("--arena-worker-gpus: CUDA was initialised in this worker before pytest-arena could "
                                "pin it (a conftest or plugin used torch.cuda at import time)")
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    log(f"this worker sees CUDA devices {devices} (CUDA_VISIBLE_DEVICES)")


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


def _match(item: pytest.Item):
    return _param(item, "arena_battle") or _param(item, "arena_scoring")


class WorkerHooks:
    def __init__(self, session, config: pytest.Config):
        self._arena = session
        session.work_in_blocks(int(config.workerinput["workercount"]))

    @pytest.hookimpl(tryfirst=True)  # before the arena fixture prepares: the block's calls start with it
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        match = _match(item)
        if match is not None:
            self._arena.take_block(match)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        match = _match(item) if call.when == "call" else None
        if match is not None:
            # An attribute, not a user property: JUnit XML stays as in a single-process run.
            report.arena_judgment = self._arena.judgment_summary(match)
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.config.workeroutput["arena"] = self._arena.worker_output()


class ControllerHooks:
    def __init__(self, session, config: pytest.Config, gpus: list[str]):
        from xdist.workermanage import parse_tx_spec_config

        workers = len(parse_tx_spec_config(config))
        if gpus and workers > len(gpus):
            raise pytest.UsageError(f"--arena-worker-gpus: {workers} workers but devices for only {len(gpus)} "
                                    f"({' '.join(gpus)})")
        self._arena = session
        self._free_gpus = list(gpus)
        self._match_ids = {m.id for m in session.matches}
        self._gates = {session.gate_id(g): g for g in session.gates}
        self._gate_results: dict[str, object] = {}
        self._selected = False
        session.receive_from_workers()

    def _item(self, nodeid: str):
        return arena_item(nodeid, self._match_ids, self._gates)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        if self._free_gpus:
            node.workerinput["arena_gpus"] = self._free_gpus.pop(0)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        from .xdist_scheduling import ArenaScheduling

        return ArenaScheduling(config, log, self._item)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if self._selected:  # every worker collects the same items (xdist checks)
            return
        self._selected = True
        found = [item for nodeid in ids if (item := self._item(nodeid)) is not None]
        by_id = {m.id: m for m in self._arena.matches}
        self._arena.select([by_id[key] for kind, key in found if kind == "match"],
                           [self._gates[key] for kind, key in found if kind == "gate"])

    @pytest.hookimpl(tryfirst=True)  # before the terminal, JUnit XML and the exit status read the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        item = self._item(report.nodeid)
        if item is None:
            return
        self._arena.worker_ran()
        kind, key = item
        if kind == "match":
            summary = getattr(report, "arena_judgment", None)
            if summary is not None:
                self._arena.receive_judgment(summary)
        elif report.when == "call" and report.passed:
            # The scheduler sends gates after every other item has reported: all verdicts are in.
            result = self._arena.gate_result(self._gates[key])
            self._gate_results[report.nodeid] = result
            report.user_properties = result.properties()
            if not result.passed:
                report.outcome = "failed"
                report.longrepr = _failure(result.message)
        elif report.when == "teardown" and report.nodeid in self._gate_results:
            report.user_properties = self._gate_results[report.nodeid].properties()  # JUnit XML reads these

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        gpus = node.workerinput.get("arena_gpus")
        if gpus is not None:  # for the worker that replaces it, if it crashed
            self._free_gpus.insert(0, gpus)
        output = getattr(node, "workeroutput", {}).get("arena")
        if output is not None:
            self._arena.receive_worker_output(output)


def _failure(message: str):
    """The report of ``pytest.fail(message, pytrace=False)``, as the test would have made it."""
    try:
        pytest.fail(message, pytrace=False)
    except pytest.fail.Exception:
        return pytest.ExceptionInfo.from_current().getrepr(style="value")
