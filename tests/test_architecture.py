"""The house rules, checked on the code itself (issue 23): no import cycle, the rooms' sizes, the pytest-facing
modules kept small, one place for each file name and default, and a README that names every module.

Imports are read with ``ast``: module-level, function-level and ``if TYPE_CHECKING:`` ones alike (a lazy
import, or one for type hints only, is still an arrow between two rooms).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_arena"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The project modules ``path`` imports (a ``from pkg import name`` counts pkg.name when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    known = {module_name(p) for p in MODULES}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("pytest_arena"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {m for m in found if m in known and m != module_name(path)}


def test_the_package_has_no_import_cycle():
    graph = {module_name(p): imports_of(p) for p in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_core_modules_do_not_import_pytest_and_the_pytest_facing_ones_stay_small():
    facing = [p for p in MODULES if re.search(r"^\s*(import pytest|from pytest|from _pytest)", p.read_text(), re.M)]
    allowed = {"plugin.py", "item_stash.py", "pytest_html_summary.py", "collection.py", "fixtures.py", "hooks.py",
               "answer_checks.py", "junit.py"}
    assert {p.name for p in facing} <= allowed, sorted(p.name for p in facing)
    lines = sum(len(p.read_text().splitlines()) for p in facing)
    assert lines <= 800, f"modules that import pytest hold {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines_and_no_class_over_250(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= 250, node.name


def test_every_name_derived_from_the_report_is_made_in_file_names():
    # The rules ``rating.csv`` -> ``rating.subset.csv`` / ``.html`` / ``.png`` / ``.flips.csv`` / ... live in one module.
    pattern = re.compile(r"""\.subset\{|\.stem\}\.(sets|turns|flips|verdicts|audit)|with_suffix\(["']\.(html|png)""")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in MODULES if p.name != "file_names.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_the_default_number_of_new_tokens_is_set_in_one_place():
    uses = [p.relative_to(PACKAGE).as_posix() for p in MODULES if "DEFAULT_MAX_NEW_TOKENS" in p.read_text()]
    assert uses == ["config/generation.py"]


def test_only_the_runner_writes_its_judgments():
    # A judgment made elsewhere (rating only, an xdist worker) reaches the runner through ArenaRunner.accept.
    writers = [p.relative_to(PACKAGE).as_posix() for p in MODULES if re.search(r"\.futures\[[^]]+\]\s*=", p.read_text())]
    assert writers == ["arena_runner.py"]


def test_the_readme_layout_names_every_module():
    # Each module by its file name (file names are unique in the package), each subpackage by its folder.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    names = {f"{p.parent.name}/" if p.name == "__init__.py" else p.name for p in MODULES if p.parent != PACKAGE
             or p.name != "__init__.py"}
    assert sorted(name for name in names if f"`{name}`" not in layout) == []
    assert len({p.name for p in MODULES if p.name != "__init__.py"}) == len([p for p in MODULES if p.name != "__init__.py"])
