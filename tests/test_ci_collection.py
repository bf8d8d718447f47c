"""CI habits around collection: what an arena call collects, when the judge's key is asked for, and
node ids and conftest hooks that are the same wherever the package is installed.

The arenas here answer from files (no model loads) and are judged by the loopback server.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest

import pytest_arena
from support.arena_project import fixed_answers_config

BATTLES = ["arena_tests/test_battles.py::test_battle[q001-good--vs--bad]",
           "arena_tests/test_battles.py::test_battle[q002-good--vs--bad]"]
GATE = "arena_tests/test_gates.py::test_gate[beats-good--vs--bad]"
OWN_TEST = "def test_mine():\n    assert True\n"


@pytest.fixture
def project(arena_project):
    """Two questions, two models answering from files, one gate: 3 arena items."""
    config = fixed_answers_config(arena_project, 2, {"good": 20, "bad": 2})
    config["gates"] = [{"model": "good", "beats": "bad"}]
    arena_project.write(config)
    arena_project.pytester.mkpydir("tests")
    (arena_project.root / "tests" / "test_mine.py").write_text(OWN_TEST)
    return arena_project


def has_lines(result, *patterns: str) -> None:
    """Each line somewhere in the output, in any order (an order plugin may be active)."""
    for pattern in patterns:
        result.stdout.fnmatch_lines([pattern.replace("[", "?").replace("]", "?")])


def ini(project, *lines: str) -> None:
    (project.root / "pytest.ini").write_text("\n".join(["[pytest]", *lines]) + "\n")


def test_paths_given_are_collected_with_the_arena_and_said_so(project):
    result = project.run("tests", "-v")
    result.assert_outcomes(passed=4)
    has_lines(result, "arena: the arena suite is collected besides tests (-m 'not arena' runs only those)",
              "tests/test_mine.py::test_mine PASSED*", f"{BATTLES[0]} PASSED*", f"{GATE} PASSED*")
    assert project.server.request_count == 2
    project.run("tests", "-m", "arena").assert_outcomes(passed=3, deselected=1)  # the arena alone


def test_addopts_paths_do_not_hide_the_arena(project):
    ini(project, "addopts = -ra tests")
    result = project.run()
    result.assert_outcomes(passed=4)
    assert project.server.request_count == 2


def test_no_paths_runs_the_arena_alone_not_testpaths(project):
    ini(project, "testpaths = tests")
    result = project.run("-v")
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*test_mine*")
    result.stdout.no_fnmatch_line("*collected besides*")


def test_not_arena_runs_only_your_own_tests_and_needs_no_key(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    ini(project, "arena_config = cfg_arena.yaml")
    result = project.pytester.runpytest("tests", "-m", "not arena")
    result.assert_outcomes(passed=1, deselected=3)
    assert result.ret == 0
    assert project.server.request_count == 0


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_with_the_ini_key_need_no_api_key(project, monkeypatch, flag):
    monkeypatch.delenv("OPENAI_API_KEY")
    ini(project, "arena_config = cfg_arena.yaml")
    result = project.pytester.runpytest_subprocess(flag)
    assert result.ret == 0, result.stderr.str()
    assert "OPENAI_API_KEY" not in result.stdout.str() + result.stderr.str()
    if flag == "--help":
        result.stdout.fnmatch_lines(["*--arena-config=PATH*"])


def test_arena_items_without_the_key_are_one_error_before_anything_is_paid(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    ini(project, "arena_config = cfg_arena.yaml")
    result = project.pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith("ERROR: ") and "reviews_gen.reviewer: the judge needs an API key" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert project.server.request_count == 0
    assert not (project.root / "reviews").exists()


# -- the same node ids and hooks in every install -------------------------------------------------------

HOOK_CONFTEST = """
import pytest_arena
from pathlib import Path

def pytest_sessionstart(session):
    Path("plugin_at.txt").write_text(pytest_arena.__file__)

def pytest_runtest_setup(item):
    with open("setup_seen.txt", "a") as handle:
        handle.write(item.nodeid + "\\n")
"""


def installed_in_project_venv(root: Path) -> Path:
    """The package as `pip install .` puts it into the project's own .venv (a copy, nothing installed)."""
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    source = Path(pytest_arena.__file__).parent
    for package in (source, source.parent / "arena_tests"):
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    return site


@pytest.mark.parametrize("install", ["checkout", "project-venv"])
def test_node_ids_classnames_and_conftest_hooks_are_the_same_in_every_install(project, monkeypatch, install):
    ini(project)  # the project's rootdir
    project.pytester.makeconftest(HOOK_CONFTEST)
    if install == "project-venv":
        site = installed_in_project_venv(project.root)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        result = project.pytester.runpytest_subprocess("--arena-config", "cfg_arena.yaml", "-v", "--junitxml=junit.xml")
        assert Path((project.root / "plugin_at.txt").read_text()).is_relative_to(site)
    else:
        result = project.run("-v", "--junitxml=junit.xml")
        assert not Path((project.root / "plugin_at.txt").read_text()).is_relative_to(project.root)
    result.assert_outcomes(passed=3)
    has_lines(result, f"{BATTLES[0]} PASSED*", f"{BATTLES[1]} PASSED*", f"{GATE} PASSED*")
    assert sorted((project.root / "setup_seen.txt").read_text().split()) == [*BATTLES, GATE]
    cases = ET.parse(project.root / "junit.xml").getroot().iter("testcase")
    assert sorted({case.get("classname") for case in cases}) == ["arena_tests.test_battles", "arena_tests.test_gates"]
