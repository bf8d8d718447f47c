"""The pytest hooks of an arena run under pytest-xdist: a worker's and the controller's (their roles are
in ``distributed``), and the devices each worker sees (``--arena-worker-gpus``)."""

from __future__ import annotations


import pytest

from ..matches import gate_id
from ..item_stash import match_of
from . import Controller, Worker, arena_item
from .devices import CUDA_DEVICES, gpu_groups

def hooks_for(config: pytest.Config, session, log):
    """Under pytest-xdist, the hooks of a worker or of the controller (their roles taken); else None."""
    raw = config.getoption("arena_worker_gpus") or config.getini("arena_worker_gpus")
    if hasattr(config, "workerinput"):
        return WorkerHooks(session, config)  # its devices came from the controller (pytest_configure_node)
    gpus = gpu_groups(raw) if raw else []
    # xdist runs the session on workers (its DSession may not be registered yet: its configure is trylast too).
    if not config.getoption("collectonly") and config.getoption("dist", "no") != "no" and config.getoption("tx", None):
        return ControllerHooks(session, config, gpus)
    if gpus:
        log("--arena-worker-gpus applies to pytest-xdist workers (pytest -n N); this run has none")
    return None


class WorkerHooks:
    def __init__(self, session, config: pytest.Config):
        self._role = Worker(session.runner, int(config.workerinput["workercount"]), config.workerinput.get("arena_run"))
        session.runner.role = self._role

    @pytest.hookimpl(tryfirst=True)  # before the arena fixture prepares: the block's calls start with it
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        match = match_of(item)
        if match is not None:
            self._role.take_block(match)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        match = match_of(item) if call.when == "call" else None
        if match is not None:
            # An attribute, not a user property: JUnit XML stays as in a single-process run.
            report.arena_judgment = self._role.judgment_summary(match)
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.config.workeroutput["arena"] = self._role.output()


class ControllerHooks:
    def __init__(self, session, config: pytest.Config, gpus: list[str]):
        from xdist.workermanage import parse_tx_spec_config

        workers = len(parse_tx_spec_config(config))
        if gpus and workers > len(gpus):
            raise pytest.UsageError(f"--arena-worker-gpus: {workers} workers but devices for only {len(gpus)} "
                                    f"({' '.join(gpus)})")
        self._arena = session
        self._gpus = gpus
        self._match_ids = {m.id for m in session.matches}
        self._gates = {gate_id(g): g for g in session.gates}
        self._gate_results: dict[str, object] = {}
        self._selected = False
        self._role = Controller(session.runner, session.matches)
        session.runner.role = self._role
        session.check_credentials()  # its workers collect: the judge's key is checked before they start

    def _item(self, nodeid: str):
        return arena_item(nodeid, self._match_ids, self._gates)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs) -> None:
        """Each worker's devices go into its execnet spec's environment, set in the new process before
        xdist starts pytest there (before any conftest imports). A worker that replaces a crashed one
        is started from its predecessor's spec: it gets the same devices."""
        for spec, devices in zip(specs, self._gpus):
            if spec.env.get(CUDA_DEVICES, devices) != devices:
                raise pytest.UsageError(f"--arena-worker-gpus: worker {spec.id} already has "
                                        f"env:{CUDA_DEVICES}={spec.env[CUDA_DEVICES]} in its --tx spec")
            spec.env[CUDA_DEVICES] = devices

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["arena_run"] = self._role.run_id  # the workers count judge calls together (budget.py)
        devices = node.gateway.spec.env.get(CUDA_DEVICES) if self._gpus else None
        if devices is not None:  # the worker checks its environment holds them and says so
            node.workerinput["arena_gpus"] = devices

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        from ..xdist_scheduling import ArenaScheduling

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
        self._role.worker_ran()
        kind, key = item
        if kind == "match":
            summary = getattr(report, "arena_judgment", None)
            if summary is not None:
                self._role.receive_judgment(summary)
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
        output = getattr(node, "workeroutput", {}).get("arena")
        if output is not None:
            self._role.receive_worker_output(output)

    @pytest.hookimpl(trylast=True)  # the workers are down: nobody counts judge calls for this run any more
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from ..budget import run_ended

        run_ended(self._arena.runner)


def _failure(message: str):
    """The report of ``pytest.fail(message, pytrace=False)``, as the test would have made it."""
    try:
        pytest.fail(message, pytrace=False)
    except pytest.fail.Exception:
        return pytest.ExceptionInfo.from_current().getrepr(style="value")
