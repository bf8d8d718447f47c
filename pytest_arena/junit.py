"""JUnit XML: where the arena items' properties (verdicts, gate numbers) go, by the family in force.

The items record them in ``user_properties``, which pytest's JUnit writer puts inside each
``<testcase>``. That is right for ``junit_family = xunit1`` (and ``legacy``), but under ``xunit2``,
pytest's default, a ``<testcase>`` may not hold ``<properties>`` (its schema, junit-10.xsd, allows
them only on the ``<testsuite>``): CI tools that validate the file reject it. So under xunit2 an arena
item's properties move to the suite's, named ``<test name>.<property>``, e.g.
``test_gate[elo-sft].gate_ci``; a rerun item's replace its earlier ones; the judge's biases are the suite's.
"""

from __future__ import annotations

import pytest

SUITE_PREFIX = "arena_tests/"


def junit_writer(config: pytest.Config):
    """pytest's JUnit XML writer of this run, or None (no ``--junitxml``, or an xdist worker)."""
    if not config.option.xmlpath or hasattr(config, "workerinput"):
        return None
    for plugin in config.pluginmanager.get_plugins():
        if callable(getattr(plugin, "add_global_property", None)) and hasattr(plugin, "family"):
            return plugin
    return None


class SuiteLevelProperties:
    """Registered after pytest's JUnit writer, so its report hook runs first and takes the properties."""

    def __init__(self, writer):
        self.writer = writer
        self._where: dict[str, int] = {}  # property name -> its index in the writer's global properties

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The writer reads user_properties from the teardown report only (xdist: the controller's copy).
        if report.when != "teardown" or not report.user_properties or not report.nodeid.startswith(SUITE_PREFIX):
            return
        test_name = report.nodeid.rpartition("::")[2]
        for name, value in report.user_properties:
            self._set(f"{test_name}.{name}", value)
        report.user_properties = []

    def _set(self, name: str, value) -> None:
        properties = self.writer.global_properties
        index = self._where.get(name)
        if index is None:
            self._where[name] = len(properties)
            self.writer.add_global_property(name, value)
        else:  # a rerun's value replaces the earlier attempt's
            self.writer.add_global_property(name, value)
            properties[index] = properties.pop()


class RunProperties:
    """The run's judge-bias figures (judge_bias.py) as suite properties, before pytest's writer writes."""
    def __init__(self, writer, arena):
        self.writer, self.arena = writer, arena

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        for name, value in self.arena.outputs().judge_bias().properties() if self.arena.prepared else ():
            self.writer.add_global_property(name, value)


def register(config: pytest.Config) -> None:
    writer = junit_writer(config)
    if writer is not None and writer.family == "xunit2":
        config.pluginmanager.register(SuiteLevelProperties(writer), "arena-junit")
    from .item_stash import SESSION_KEY
    if writer is not None and SESSION_KEY in config.stash:
        config.pluginmanager.register(RunProperties(writer, config.stash[SESSION_KEY]), "arena-junit-run")
