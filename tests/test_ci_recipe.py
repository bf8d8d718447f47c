"""The CI recipes shipped in examples/ci/: every pytest command in them is one pytest (with this plugin
and pytest-html) accepts, the files they upload are the ones the commands write, docs/ci.md shows the
GitHub workflow as shipped, and the README's short CI section shows its pytest commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "<"}


def github_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_scripts(pipeline: dict) -> list[str]:
    return [line for job in pipeline.values() if isinstance(job, dict)
            for key in ("before_script", "script", "after_script") for line in job.get(key, [])]


def pytest_commands(scripts: list[str]) -> list[list[str]]:
    """The arguments of each `pytest ...` (or `python -m pytest ...`) command in the shell scripts."""
    commands = []
    for script in scripts:
        for line in script.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
            for i, token in enumerate(tokens):
                if token == "pytest" and (i == 0 or tokens[i - 1] in SHELL_OPERATORS | {"-m"}):
                    args = []
                    for arg in tokens[i + 1:]:
                        if arg in SHELL_OPERATORS:
                            break
                        args.append(arg)
                    commands.append(args)
    return commands


def rejected(args: list[str], cwd: Path) -> str | None:
    """pytest's own parser on the arguments, in an empty folder: its complaint (a usage error), or None.

    (Not with --help: that parses leniently. The run itself stops at once, as the config is not there.)"""
    result = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only"], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    return result.stderr.strip() if "usage:" in result.stderr else None


def option_value(args: list[str], option: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == option:
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


RECIPES = {
    "github": (GITHUB, github_scripts,
               lambda w: [p for job in w["jobs"].values() for step in job["steps"]
                          if "upload-artifact" in step.get("uses", "") for p in step["with"]["path"].split()]),
    "gitlab": (GITLAB, gitlab_scripts, lambda p: p[".arena"]["artifacts"]["paths"]),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_pytest_command_of_the_recipe_is_accepted_and_its_outputs_are_uploaded(recipe, tmp_path):
    path, scripts, uploaded = RECIPES[recipe]
    document = yaml.safe_load(path.read_text())
    commands = pytest_commands(scripts(document))
    assert len(commands) == 2  # the gate against main's baseline, and the run on main that refreshes it
    assert sum("--arena-baseline-update" in args for args in commands) == 1
    for args in commands:
        assert option_value(args, "--arena-config") == "arena/cfg_arena.yaml"
        assert rejected(args, tmp_path) is None, (args, rejected(args, tmp_path))
        artifacts = uploaded(document)
        for option in ("--junitxml", "--html"):
            assert option_value(args, option) in artifacts
        assert any(a.rstrip("/") == f"{option_value(args, '--arena-results')}/reports" for a in artifacts)


def test_the_option_check_has_teeth(tmp_path):
    assert "unrecognized arguments: --arena-confg" in rejected(["--arena-confg", "cfg.yaml"], tmp_path)
    found = pytest_commands(["git add x && python -m pytest -q --junitxml=j.xml || true"])
    assert found == [["-q", "--junitxml=j.xml"]]


def test_the_cache_is_keyed_by_the_config_and_saved_even_when_a_gate_fails():
    steps = yaml.safe_load(GITHUB.read_text())["jobs"]["arena"]["steps"]
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save"))
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore"))
    assert save["if"] == "always()" and save["with"]["key"] == restore["with"]["key"]
    assert "hashFiles('arena/cfg_arena.yaml')" in save["with"]["key"]
    gitlab_cache = yaml.safe_load(GITLAB.read_text())[".arena"]["cache"]
    assert gitlab_cache["key"]["files"] == ["arena/cfg_arena.yaml"] and gitlab_cache["when"] == "always"


def test_the_ci_page_shows_the_shipped_github_workflow():
    page = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    section = page[page.index("# Gate a fine-tune in CI"):]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert blocks and blocks[0] == GITHUB.read_text()


def test_the_readme_shows_the_shipped_workflows_pytest_commands_and_links_the_ci_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Gate a fine-tune in CI"):]
    section = section[:section.index("\n## ")]
    shown = pytest_commands(re.findall(r"```\n(.*?)```", section, flags=re.S))
    assert len(shown) == 2 and shown == pytest_commands(github_scripts(yaml.safe_load(GITHUB.read_text())))
    assert "(docs/ci.md)" in section
