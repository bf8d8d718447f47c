"""Shared fixtures: tiny real checkpoints, the loopback judge, and a builder for arena projects."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from support.arena_project import FAKE_KEY, OWN_MARKERS, ArenaProject
from support.judge_server import JudgeServer, prefer_longer
from support.tiny_models import build_tiny_model

# Inner pytest runs (pytester, subprocesses) keep pytest-randomly off like this run does (pyproject addopts);
# a test of the random-order habit opts in with `-p randomly` (a later -p unblocks it).
RANDOMLY_OFF = "-p no:randomly"
os.environ["PYTEST_ADDOPTS"] = " ".join(filter(None, [os.environ.get("PYTEST_ADDOPTS", ""), RANDOMLY_OFF]))
# Inner runs print as they do on CI, everywhere: with CI set, pytest prints a failure's whole message in the
# short test summary instead of a line cut to the terminal, so a test counting lines would pass on a laptop
# and fail in CI (stop 29). A test that counts what the arena prints uses `support.arena_project.body`.
os.environ.setdefault("CI", "true")


def forget_stale_submodules(package: str = "pytest_arena") -> None:
    """Drop the attributes our packages keep for submodules that pytester has since removed from sys.modules.

    The plugin package is imported by the outer run (its entry point), so it outlives each in-process run,
    while the submodules an inner run imported are removed when that run ends. The package keeps them as
    attributes, and `from . import x` takes the attribute without importing again: a later inner run would
    mix a stale module (holding an old `ArenaConfigError` class) with fresh ones, and an `except` stops
    matching. Forgetting them makes each inner run import one consistent set."""
    for name, module in list(sys.modules.items()):
        if name != package and not name.startswith(package + "."):
            continue
        for attr, value in list(vars(module).items()):
            submodule = f"{name}.{attr}"  # only the binding the import system made on the package
            if isinstance(value, types.ModuleType) and value.__name__ == submodule:
                if sys.modules.get(submodule) is not value:
                    delattr(module, attr)


@pytest.fixture
def pytester(pytester, monkeypatch):
    """pytest's pytester, whose inner runs keep pytest-randomly off too: pytester removes PYTEST_ADDOPTS
    when it starts, so it is set again here (in-process runs and subprocesses both read it)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", RANDOMLY_OFF)
    forget_stale_submodules()
    return pytester


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Three tiny random-weight checkpoints, built once per test session."""
    root = tmp_path_factory.mktemp("models")
    return {
        "tiny-a": build_tiny_model(root / "tiny-a", seed=1),
        "tiny-b": build_tiny_model(root / "tiny-b", seed=2, arch="qwen2"),
        "tiny-c": build_tiny_model(root / "tiny-c", seed=3, chat_template=False),
    }


@pytest.fixture
def judge_server():
    with JudgeServer(reply=prefer_longer(**OWN_MARKERS)) as server:
        yield server


@pytest.fixture
def arena_project(pytester, tiny_models, judge_server, monkeypatch) -> ArenaProject:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return ArenaProject(pytester, tiny_models, judge_server)
