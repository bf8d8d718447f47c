"""The bad input corpus (tests/bad_inputs/): every broken config, question file, template file or model
folder is refused at configure time with one ``ERROR:`` line that names the file and what is wrong,
with no traceback, and before any model loads.

One case is one folder ``tests/bad_inputs/<case-name>/`` holding a ``case.yaml``:

``about``        what the mistake is (one line; required)
``base``         options of the valid base config: ``questions`` (default 2), ``models`` (default tiny-a, tiny-b)
``set``          ``{dotted.key.path: value}`` set in the base config, in order (a value may be anything,
                 null included); the path's missing mappings are created
``delete``       dotted key paths removed from the base config
``config_text``  the whole cfg_arena.yaml as raw text instead of the base config
``files``        ``{relative path: text}`` written (UTF-8) into the project after the config
``model_folder`` ``{from: tiny-a, to: folder, remove: [glob, ...], write: {name: text}}``: a copy of a tiny
                 model with files removed or overwritten, to be named by ``set``
``unset_env``    environment variables removed for the run
``args``         extra command-line arguments
``config_path``  the --arena-config argument, relative to the project (default cfg_arena.yaml)
``file``         the file the error must name (its path or the path's end; default cfg_arena.yaml;
                 null for a command-line mistake that has no file)
``expect``       substrings the ERROR line must contain (the key or line, what was expected)
``known_bug``    why the case fails today: it runs as a strict xfail until the plugin is fixed

Every other file in the case folder is copied byte for byte into the project (after ``files``), so a
non-UTF-8 question file is simply a ``questions.jsonl`` in the folder. In ``set`` values, ``files``
and ``config_text``, ``{{tiny-a}}`` (any model name) stands for that tiny model's folder and
``{{judge_url}}`` for the loopback judge's base URL.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

CASES = Path(__file__).parent / "bad_inputs"
CASE_FILE = "case.yaml"
CASE_KEYS = {"about", "base", "set", "delete", "config_text", "files", "model_folder", "unset_env", "args",
             "config_path", "file", "expect", "known_bug"}
LOADING = re.compile(r"arena: (\S+): loading (local )?model")
PLACEHOLDER = re.compile(r"\{\{([\w.-]+)\}\}")


def _case_folders() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _read_case(folder: Path) -> dict:
    return yaml.safe_load((folder / CASE_FILE).read_text(encoding="utf-8"))


def _params():
    params = []
    for folder in _case_folders():
        bug = _read_case(folder).get("known_bug") if (folder / CASE_FILE).is_file() else None
        marks = [pytest.mark.xfail(reason=f"known bug: {bug}", strict=True)] if bug else []
        params.append(pytest.param(folder, id=folder.name, marks=marks))
    return params


def _substitute(value, names: dict[str, str]):
    """``{{name}}`` placeholders replaced, in strings nested anywhere in ``value``."""
    if isinstance(value, str):
        def one(match: re.Match) -> str:
            if match.group(1) not in names:
                raise KeyError(f"unknown placeholder {match.group(0)}")
            return names[match.group(1)]

        return PLACEHOLDER.sub(one, value)
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    return value


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _delete(config: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    del node[last]


def _build(project, case: dict, folder: Path) -> Path:
    """Write the case's project; return the --arena-config path."""
    root = project.root
    names = {name: str(path) for name, path in project.models.items()}
    names["judge_url"] = project.server.base_url
    base = case.get("base") or {}
    config = project.config(questions=base.get("questions", 2), models=tuple(base.get("models", ("tiny-a", "tiny-b"))))
    for dotted, value in (case.get("set") or {}).items():
        _set(config, dotted, _substitute(value, names))
    for dotted in case.get("delete") or ():
        _delete(config, dotted)
    config_path = root / "cfg_arena.yaml"
    if "config_text" in case:
        config_path.write_text(_substitute(case["config_text"], names), encoding="utf-8")
    else:
        project.write(config)
    spec = case.get("model_folder")
    if spec:
        target = root / spec["to"]
        shutil.copytree(project.models[spec["from"]], target)
        for pattern in spec.get("remove", ()):
            matched = list(target.glob(pattern))
            assert matched, f"{folder.name}: model_folder.remove {pattern!r} matches no file of the tiny model"
            for path in matched:
                path.unlink()
        for name, text in (spec.get("write") or {}).items():
            (target / name).write_text(text, encoding="utf-8")
    for relative, text in (case.get("files") or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_substitute(text, names), encoding="utf-8")
    for path in folder.iterdir():
        if path.name != CASE_FILE and path.is_file():
            shutil.copyfile(path, root / path.name)
    return root / case.get("config_path", "cfg_arena.yaml")


def _names_file(line: str, file: str) -> bool:
    """The error starts with the file's path (the path itself, or one ending in /file), then ': '."""
    return re.match(rf"ERROR: (\S*/)?{re.escape(file)}: ", line) is not None


@pytest.mark.parametrize("folder", _params())
def test_bad_input_is_a_one_line_usage_error(arena_project, monkeypatch, folder):
    case = _read_case(folder)
    for name in case.get("unset_env") or ():
        monkeypatch.delenv(name, raising=False)
    config_path = _build(arena_project, case, folder)

    result = arena_project.pytester.runpytest("--arena-config", str(config_path), *case.get("args", ()))

    out, err = result.stdout.str(), result.stderr.str()
    assert "Traceback" not in out + err, out + err
    assert LOADING.findall(out) == [], f"a model was loaded:\n{out}"
    assert not (arena_project.root / "answers").exists(), "answers were generated"
    assert result.ret == pytest.ExitCode.USAGE_ERROR, f"exit code {result.ret!r}\n{out}\n{err}"
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith("ERROR: "), line
    file = case.get("file", "cfg_arena.yaml")
    if file is not None:
        assert _names_file(line, file), f"the error does not start with the file {file!r}: {line}"
    for expected in case["expect"]:
        assert expected in line, f"{expected!r} not in: {line}"


def test_corpus_is_large_and_every_case_is_well_formed():
    folders = _case_folders()
    assert len(folders) >= 30
    for folder in folders:
        assert (folder / CASE_FILE).is_file(), f"{folder.name}: no {CASE_FILE}"
        case = _read_case(folder)
        assert isinstance(case, dict), folder.name
        assert set(case) <= CASE_KEYS, f"{folder.name}: unknown case keys {sorted(set(case) - CASE_KEYS)}"
        assert isinstance(case.get("about"), str) and case["about"].strip(), f"{folder.name}: no about"
        expect = case.get("expect")
        assert isinstance(expect, list) and expect and all(isinstance(e, str) and e for e in expect), \
            f"{folder.name}: expect must be a non-empty list of strings"
        assert not ("config_text" in case and ("set" in case or "delete" in case)), \
            f"{folder.name}: config_text replaces the base config; set and delete would be ignored"
        if "known_bug" in case:
            assert isinstance(case["known_bug"], str) and case["known_bug"].strip(), folder.name
