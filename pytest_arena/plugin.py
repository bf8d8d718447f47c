"""pytest hooks for pytest-arena: options, collection, fixtures and reporting. Thin: it delegates.

pytest imports this module on every run of every project where the package is installed, so it
imports nothing heavy; without ``--arena-config`` (or ini ``arena_config``) it registers nothing
beyond its options. With a config, an ``ArenaHooks`` object holding the run's ``ArenaSession`` is
registered and does the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .collection import as_arena_items, collection_args, is_suite_module, make_module, unnamed_example
from .options import INI_KEYS, OPTIONS
from .power_report import print_power
from .run_options import ProgressLog, path_option, session_arguments
from .item_stash import FIRST_PROPERTIES, SESSION_KEY, match_of, param


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("arena", "LLM arena (pytest-arena)")
    for flag, settings in OPTIONS:
        group.addoption(flag, **settings)
    for name, help_text, settings in INI_KEYS:
        parser.addini(name, help_text, **settings)


def arena_config_path(config: pytest.Config) -> Path | None:
    return path_option(config, "arena_config")


@pytest.hookimpl(trylast=True)  # after the cacheprovider's configure: its folder holds our memo and conversions
def pytest_configure(config: pytest.Config) -> None:
    path = arena_config_path(config)
    if path is None or config.option.help or config.option.version:  # --help shows the options: no arena
        return
    config.addinivalue_line("markers", "arena_model(name): the battle or gate involves the model with this exact name")
    config.addinivalue_line("markers", "arena: an item of the arena suite (`-m 'not arena'` runs only your own tests)")
    from .errors import ArenaConfigError
    from .session import ArenaSession

    log = ProgressLog(config)
    try:
        if getattr(config, "workerinput", {}).get("arena_gpus") is not None:  # an xdist worker given devices
            from .distributed.devices import pin_devices

            pin_devices(config.workerinput["arena_gpus"], log)  # before anything of ours imports torch
        session = ArenaSession.from_file(path, log=log, **session_arguments(config))
        session.preflight()
        if print_power(session, config):  # --arena-power: what the gates can detect; nothing judged or loaded
            pytest.exit("--arena-power: nothing was judged", returncode=0)
        from .distributed.hooks import hooks_for

        distributed = hooks_for(config, session, log)  # under pytest-xdist: a worker's or the controller's
    except ArenaConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(ArenaHooks(session, log), "arena-session")
    if distributed is not None:
        config.pluginmanager.register(distributed, "arena-xdist")
    from . import junit, pytest_html_summary

    junit.register(config)  # JUnit XML valid under the family in force
    pytest_html_summary.register(config, session)  # the rating table in pytest-html's report
    from . import fixtures

    config.pluginmanager.register(fixtures, "arena-fixtures")  # `arena_answer` for the user's own checks


class ArenaHooks:
    def __init__(self, session, log):
        self._arena = session
        self.log = log
        self._ran: set[str] = set()  # node ids that reported
        self.written: list[str] = []  # what the report wrote, for the terminal summary

    # -- collection --------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session):
        # `pytest --arena-config cfg.yaml` alone runs the arena, not the project's own tests; paths
        # given (command line, addopts) are collected, and the arena suite with them.
        if not self._arena.role.collects:
            return None  # an xdist controller collects nothing: its workers do
        args, added = collection_args(session.config)
        if added and self._arena.role.whole_run_here:
            self.log(f"the arena suite is collected besides {' '.join(session.config.args)} "
                     "(-m 'not arena' runs only those)")
        session.perform_collect(args)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent):
        return make_module(module_path, parent) if is_suite_module(module_path) else None

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(self, collector, name, obj):
        collected = yield
        if collected is None or not is_suite_module(collector.path):
            return collected
        return as_arena_items(collected)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        from . import answer_checks
        from .matches import gate_id

        # One marker object per model, shared by its items (20,000 items would build 40,000 otherwise).
        marks = {name: pytest.mark.arena_model(name=name) for name in self._arena.participants}
        answer_checks.parametrize(metafunc, self._arena.plan, marks)  # a test taking `arena_answer`
        suite = pytest.mark.arena  # `-m 'not arena'` deselects every arena item
        for fixture, kind in (("arena_battle", "battle"), ("arena_scoring", "scoring")):
            if fixture in metafunc.fixturenames:
                matches = [m for m in self._arena.matches if _kind(m) == kind]
                if matches:
                    metafunc.parametrize(fixture, [pytest.param(m, id=m.id, marks=[suite, *(marks[n] for n in m.models)])
                                                   for m in matches])
        if "arena_gate" in metafunc.fixturenames and self._arena.gates:
            metafunc.parametrize(
                "arena_gate",
                [pytest.param(g, id=gate_id(g), marks=[suite, *(
                    marks.get(m) or pytest.mark.arena_model(name=m) for m in (g.model, g.beats) if m)])
                 for g in self._arena.gates],
            )

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config):
        # Only the suite modules this config has items for: no gates, no gate module.
        if unnamed_example(config, collection_path):
            return True  # the shipped examples run only when named on the command line
        if is_suite_module(collection_path):
            wanted = {"test_gates.py": bool(self._arena.gates),
                      "test_scores.py": self._arena.mode == "single",
                      "test_battles.py": self._arena.mode != "single"}
            if not wanted.get(collection_path.name, True):
                return True
        return None

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outside the reorderings of --ff, --nf and pytest-randomly
    def pytest_collection_modifyitems(self, items: list[pytest.Item]):
        result = yield
        from . import answer_checks

        # Gates read the ratings of every battle, so they run after all of them, whatever order was asked.
        items.sort(key=lambda item: param(item, "arena_gate") is not None)
        answer_checks.order_by_model(items, list(self._arena.participants))  # one model's answers at a time
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        matches = [m for item in session.items if (m := match_of(item)) is not None]
        gates = [g for item in session.items if (g := param(item, "arena_gate")) is not None]
        self._arena.select(matches, gates)
        if (matches or gates) and self._arena.role.whole_run_here:  # (an xdist controller checked at configure)
            from .errors import ArenaConfigError

            try:
                self._arena.check_credentials()  # before any answer is generated or judge call paid
            except ArenaConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        if session.config.option.collectonly:
            total, cached = self._arena.planned_calls()
            calls = f"{total} judge calls" if self._arena.config.review.enable else "no judging"
            cached_text = "cache unknown until answers exist" if cached is None else f"{cached} cached, {total - cached} to make"
            self.log(f"plan: {len(matches)} {self._arena.match_kind}, {len(gates)} gates; {calls} ({cached_text}); "
                     f"models needed: {', '.join(self._arena.needed_models()) or 'none'}")
            budget = self._arena.budget_line()
            if budget:
                self.log(budget)
            from .answer_checks import plan_line

            checks = plan_line(session.items)
            if checks:
                self.log(checks)

    # -- running -----------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        if self._prepares_here(session):
            from .batch_judging import PENDING_EXIT, BatchPending
            from .errors import ArenaConfigError

            try:
                self._arena.prepare_run()  # outside every item: no item's timeout (pytest-timeout) counts it
            except ArenaConfigError as exc:  # over the judge budget (budget.py): stopped before any call
                raise pytest.UsageError(str(exc)) from None
            except BatchPending as pending:  # --arena-batch=submit|collect: no item passes or fails on it
                pytest.exit(str(pending), returncode=PENDING_EXIT)
        return (yield)

    def _prepares_here(self, session: pytest.Session) -> bool:
        option = session.config.option
        if not self._arena.role.prepares or option.collectonly or getattr(option, "setupplan", False):
            return False
        if session.testsfailed and not option.continue_on_collection_errors:
            return False  # pytest stops on the collection errors
        selected_matches = self._arena.items_ran()[1]
        return bool(selected_matches or self._arena.gates)  # (no arena item selected: nothing to prepare)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A rerun (pytest-rerunfailures) runs the same item again: its properties start over, not pile up.
        if match_of(item) or param(item, "arena_gate"):
            item.user_properties[:] = item.stash.setdefault(FIRST_PROPERTIES, list(item.user_properties))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._ran.add(report.nodeid)

    # -- reporting ---------------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        self.written = []
        try:
            stopped = session.shouldfail or session.shouldstop  # -x/--maxfail, --sw: pytest's own words
            if exitstatus == pytest.ExitCode.INTERRUPTED and not stopped:
                self.log("interrupted: no report written (the answers and reviews done so far are kept)")
                return
            if not self._arena.prepared or not self._arena.role.reports:  # under xdist the controller reports
                return
            self.written = self._arena.write_outputs(stopped=str(stopped) if stopped else None)
            every_item_ran = self._arena.role.whole_run_here and all(i.nodeid in self._ran for i in session.items)
            if exitstatus == pytest.ExitCode.INTERRUPTED and session.testsfailed and every_item_ran:
                # --sw stops at a failure; at the last item (a gate) nothing was left to run: a failed run.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            if not self.written and self._arena.config.review.enable and exitstatus == pytest.ExitCode.OK:
                # Nothing judged is never a pass: a gate-free run must not go green on no evidence.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        finally:
            self._arena.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if hasattr(terminalreporter.config, "workerinput"):
            return
        if not self._arena.prepared:  # nothing ran: --collect-only, or no arena item selected
            return
        terminalreporter.section("arena")
        for line in self._arena.outputs().lines(self.written):
            terminalreporter.write_line(line)


def _kind(match) -> str:
    from .matches import Scoring

    return "scoring" if isinstance(match, Scoring) else "battle"
