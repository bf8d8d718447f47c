"""Where the arena suite sits in a run: what is collected with it, its node ids, and whose hooks apply.

The suite (``arena_tests/``) lives wherever the package was installed: in a checkout, in a
site-packages folder outside the project, or in a ``.venv`` inside it. pytest names nodes by their
path from the rootdir and applies a ``conftest.py``'s hooks to the files below its folder, so without
the two classes here the same item would be ``.venv/lib/python3.11/site-packages/arena_tests/...`` in
one install and ``test_gates.py::...`` in another, and a user's rootdir conftest hooks would fire for
it in one and not the other. Here it is always ``arena_tests/<module>::<test>``, and the rootdir's
conftests apply to it in every install, as they apply to the user's own tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ARENA_SUITE = Path(__file__).resolve().parent.parent / "arena_tests"
# Example modules of the user's own kind (answer checks): shipped with the suite, never part of it.
EXAMPLES = ARENA_SUITE / "examples"


def collection_args(config: pytest.Config) -> tuple[list[str], bool]:
    """What an arena run collects, and whether that is more than the paths it was given.

    Paths given on the command line (or in ``addopts``) are collected, and the arena suite with them,
    unless one of them already points into the suite. With no paths given (pytest would fall back
    to ``testpaths`` or the current folder), the arena suite alone: an arena call does not run the
    project's own tests unless it names them.
    """
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return [str(ARENA_SUITE)], False
    given = list(config.args)
    if any(_inside_suite(config, arg) for arg in given):
        return given, False
    return [*given, str(ARENA_SUITE)], True


def _inside_suite(config: pytest.Config, arg: str) -> bool:
    path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
    return (path == ARENA_SUITE or ARENA_SUITE in path.parents) and not is_example(path)


def is_suite_module(path: Path) -> bool:
    return path.parent == ARENA_SUITE and path.suffix == ".py"


def is_example(path: Path) -> bool:
    """The examples folder or a file in it."""
    return path == EXAMPLES or EXAMPLES in path.parents


def unnamed_example(config: pytest.Config, path: Path) -> bool:
    """An example the command line did not name: not collected, though the suite's folder holds it.

    (pytest drops a path given inside another one given, here the suite's folder, so the suite's
    collection meets a named example too: it is kept when it is, holds or lies in a path given.)"""
    if not is_example(path):
        return False
    for arg in config.args:
        given = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if is_example(given) and (given == path or path in given.parents or given in path.parents):
            return False
    return True


class _RootdirHooks:
    """Hooks as for a file in the rootdir: its conftests apply, those beside the installed package do not."""

    @property
    def ihook(self):
        return self.session.gethookproxy(self.config.rootpath)


class ArenaModule(_RootdirHooks, pytest.Module):
    """A module of the arena suite, named ``arena_tests/<file>`` wherever the package lives."""


class ArenaFunction(_RootdirHooks, pytest.Function):
    """An item of the arena suite (a battle, a scoring, a gate)."""

    @classmethod
    def of(cls, function: pytest.Function) -> "ArenaFunction":
        # The same item, only its class changed (it adds no state, and pytest's __init__ reads no hook):
        # re-making it (from_parent, as pytest-asyncio does) built every item twice, ~10% of what
        # --collect-only costs at 20,000 battles (bench/README.md, "Plugin overhead").
        function.__class__ = cls
        return function


def make_module(module_path: Path, parent: pytest.Collector) -> ArenaModule:
    return ArenaModule.from_parent(parent, path=module_path, nodeid=f"{ARENA_SUITE.name}/{module_path.name}")


def as_arena_items(collected):
    """``pytest_pycollect_makeitem``'s result for an arena module, its functions as ``ArenaFunction``."""
    if isinstance(collected, list):
        return [ArenaFunction.of(x) if type(x) is pytest.Function else x for x in collected]
    return ArenaFunction.of(collected) if type(collected) is pytest.Function else collected
