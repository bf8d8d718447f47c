"""The run's settings as pytest's command line and ini file give them (``--arena-*`` options, ``arena_*``
keys), read into plain values for ``ArenaSession``, and the progress lines a run prints.

Plain Python over pytest's ``Config`` object (it is only asked questions), so the hook module stays
thin. A malformed value is an ``ArenaConfigError`` naming the option: the plugin turns it into the
one-line usage error, before anything loads.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from .errors import ArenaConfigError


def ini_base(config) -> Path:
    """Where an ini value's relative path starts: the ini file's folder, else the rootdir."""
    return config.inipath.parent if config.inipath else config.rootpath


def path_option(config, name: str) -> Path | None:
    """An option's path, else the ini value's (relative to the ini file), else None."""
    option = config.getoption(name)
    if option:
        return Path(option)
    ini = config.getini(name)
    return ini_base(config) / ini if ini else None


def session_arguments(config) -> dict:
    """``ArenaSession.from_file``'s keyword arguments from the options (each checked)."""
    baseline = path_option(config, "arena_baseline")
    update = config.getoption("arena_baseline_update")
    if update and baseline is None:
        raise ArenaConfigError("--arena-baseline-update needs --arena-baseline PATH", "", "the file to write")
    return dict(cache_dir=cache_dir(config), baseline_report=baseline, update_baseline=update,
                results_dir=path_option(config, "arena_results"), model_paths=model_paths(config),
                question_files=question_files(config), limit=limit(config), stop_when_decided=stop_when_decided(config),
                audit_file=config.getoption("arena_judge_audit"), batch=batch_mode(config))


def batch_mode(config) -> str | None:
    """``--arena-batch``'s mode. Submit and collect end a run as pending, which pytest-xdist's workers cannot
    do (the controller would take it for a crash): they run in one process; blocking mode runs under ``-n``."""
    mode = config.getoption("arena_batch")
    if mode in ("submit", "collect") and (config.getoption("numprocesses", None) or hasattr(config, "workerinput")):
        raise ArenaConfigError(f"--arena-batch={mode}", "", "runs in one process: drop -n for the submit and collect "
                               "runs (--arena-batch alone, which waits for the batch, works with -n)")
    return mode


def stop_when_decided(config) -> bool:
    """--arena-stop-when-decided, else the ini key (true/false; the config's rating_gen key is read there)."""
    if config.getoption("arena_stop_when_decided"):
        return True
    raw = str(config.getini("arena_stop_when_decided") or "").strip().lower()
    if raw in ("", "false", "no", "0", "off"):
        return False
    if raw in ("true", "yes", "1", "on"):
        return True
    raise ArenaConfigError(ini_file(config), "arena_stop_when_decided", f"expected true or false, got {raw!r}")


def ini_file(config) -> str:
    return str(config.inipath) if config.inipath else "the ini file"


def limit(config) -> int | None:
    raw = config.getoption("arena_limit") or config.getini("arena_limit")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ArenaConfigError("--arena-limit", "", f"expected a positive whole number of questions, got {raw!r}")
    return value


def model_paths(config) -> dict[str, str]:
    given = config.getoption("arena_model") or config.getini("arena_model")
    paths: dict[str, str] = {}
    for entry in given:
        name, sep, model_path = entry.partition("=")
        if not sep or not name.strip() or not model_path.strip():
            raise ArenaConfigError("--arena-model", "", f"expected NAME=PATH (e.g. sft=/ckpt/step-4000), got {entry!r}")
        paths[name.strip()] = model_path.strip()
    return paths


def question_files(config) -> list[Path]:
    files = [Path(f) for f in config.getoption("arena_questions")]
    if not files:
        files = [ini_base(config) / f for f in config.getini("arena_questions")]
    for file in files:
        if not file.is_file():
            raise ArenaConfigError("--arena-questions", "", f"question file not found: {file}")
    return files


def cache_dir(config) -> Path | None:
    """The arena's folder in pytest's cache (its memo and GGUF conversions); None with -p no:cacheprovider."""
    cache = getattr(config, "cache", None)
    return cache.mkdir("arena") if cache is not None else None


class ProgressLog:
    """Progress lines on the terminal, visible even while pytest captures output."""

    def __init__(self, config):
        self.config = config

    def __call__(self, message: str) -> None:
        worker = getattr(self.config, "workerinput", None)
        # An xdist worker's terminal goes nowhere, but its stderr reaches the controller's.
        reporter = None if worker else self.config.pluginmanager.get_plugin("terminalreporter")
        line = f"arena [{worker['workerid']}]: {message}" if worker else f"arena: {message}"
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            if reporter is None:
                print(line, file=sys.stderr, flush=True)
            else:
                reporter.write_line(line)
