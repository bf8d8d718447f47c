"""``Section``: a mapping read from the YAML with its key path, so every error can say where it is;
and the checks several sections share (bounds of numbers, seeds, devices, URLs, generation settings)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from ..errors import ArenaConfigError, UnsupportedSetting, excerpt, kind_of
from .generation import SEED_RANGE, check_context, check_generation_settings, finite, first_non_finite
from ..file_names import path_length_problem
from ..redact import url_secret_problem
from ..server_url import same_server_form, same_servers


class Section:
    """A mapping read from the YAML, with its key path, so every error can say where it is."""

    def __init__(self, file: Path, where: str, data: Any):
        self.file, self.where = file, where
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping, got {kind_of(data)}")
        self.data = data

    def fail(self, key: str, problem: str):
        where = ".".join(p for p in (self.where, key) if p)
        raise ArenaConfigError(self.file, where, problem)

    def check_keys(self, allowed: tuple[str, ...]):
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.fail(shown_key(key), f"unknown key; {hint}expected one of: {', '.join(allowed)}")

    def section(self, key: str) -> "Section":
        return Section(self.file, ".".join(p for p in (self.where, key) if p), self.data.get(key))

    def get(self, key, types, default=None, *, expected: str, check=None, at_most=None):
        """The value of ``key`` (``default`` when absent or null), of ``types``, finite if a number, passing
        ``check``, and no larger than ``at_most``."""
        value = self.data.get(key)
        if value is None:
            return default
        # bool is an int in Python; a `true` where a number belongs is still a mistake.
        if isinstance(value, bool) and bool not in _as_tuple(types):
            self.fail(key, f"expected {expected}, got {value!r}")
        if not isinstance(value, types):
            self.fail(key, f"expected {expected}, got {kind_of(value)} {excerpt(value)}")
        # .nan passes every range check (each comparison is false) and .inf most of them.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not finite(value):
            self.fail(key, f"expected {expected} (a finite number), got {excerpt(value)}")
        if check is not None and not check(value):
            self.fail(key, f"expected {expected}, got {excerpt(value)}")
        if expected == "a file path" and (too_long := path_length_problem(value)):  # before the OS is asked
            self.fail(key, too_long)
        if at_most is not None and value > at_most:
            self.fail(key, f"expected at most {at_most}, got {excerpt(value)}")
        return value

    def choice(self, key, choices, default):
        value = self.data.get(key, default)
        if isinstance(value, str) and value.strip().lower() in ("null", "none"):
            value = None
        if value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            close = difflib.get_close_matches(value, [c for c in choices if c], n=1) if isinstance(value, str) else []
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(key, f"expected one of {shown}, got {excerpt(value)}{hint}")
        return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


NUMBER = (int, float)
# Upper bounds of numbers whose larger values are mistakes, not settings: a thousand-fold the usual
# value or more (every number read is also refused when not finite).
MAX_CONCURRENCY = 1024
MAX_RETRIES = 100
MAX_TIMEOUT_S = 86_400  # a day
MAX_JUDGE_TOKENS = 1_000_000
MAX_BOOTSTRAP_ROUNDS = 100_000
MAX_ELO_K = 1000
# Seeds go to numpy's Generator (no negatives), torch.manual_seed and vLLM.
SEED = dict(expected=f"an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}",
            check=lambda v: SEED_RANGE[0] <= v <= SEED_RANGE[1])


def shown_key(key) -> str:
    """A key as a key path shows it: cut short when it is long."""
    text = str(key)
    return text if len(text) <= 80 else text[:80] + "..."


_HTTP_URL = re.compile(r"^https?://[^/\s]+")


def read_base_urls(section: Section, expected: str) -> tuple[str, ...]:
    """``base_url``: one URL, or a list of the URLs of replicas of one model (pytest_arena/replicas.py);
    empty when absent. Each is refused without being quoted when it carries user:password or a query
    (redact.py), and must be http:// or https://."""
    value = section.get("base_url", (str, list), expected=f"{expected}, or a list of such URLs (replicas)")
    if value is None:
        return ()
    urls = [value] if isinstance(value, str) else value
    if not urls:
        section.fail("base_url", f"an empty list; expected {expected}, or a list of such URLs (replicas)")
    for number, url in enumerate(urls, start=1):
        where = "" if isinstance(value, str) else f" (entry {number})"
        if not isinstance(url, str):
            section.fail("base_url", f"expected {expected}{where}, got {kind_of(url)} {excerpt(url)}")
        problem = url_secret_problem(url)
        if problem:
            section.fail("base_url", f"{where.strip()} {problem}".strip())
        if not _HTTP_URL.match(url):
            section.fail("base_url", f"expected a URL starting with http:// or https://{where}, got {url!r}")
        try:
            same_server_form(url)
        except ValueError:  # the port is not a number, or out of range
            section.fail("base_url", f"expected a port from 0 to 65535 after the host{where}, got {url!r}")
    twice = same_servers(urls)  # (server_url.py: scheme and host case, default port, trailing slash)
    if twice is not None:
        first, second = twice
        section.fail("base_url", f"lists one server twice: entries {first + 1} and {second + 1} ({urls[first]!r} and "
                                 f"{urls[second]!r}) name the same server (scheme and host case, a default port "
                                 "and a trailing slash do not tell servers apart); expected each replica's URL once")
    return tuple(urls)


DEVICE = re.compile(r"^(cpu|auto|mps|(cuda|xpu|npu)(:\d+)?)$")


def check_model_context(section: Section, folder: str, limit, key: str = "max_new_tokens") -> None:
    """``max_new_tokens`` (or the local judge's ``max_tokens``) must fit the checkpoint's context."""
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None
    problem = check_context({"max_new_tokens": section.data.get(key)}, folder, limit)
    if problem:
        section.fail(key, problem)


def check_generation_config(gen: Section):
    """Types, ranges and fit of the generation settings (generation/settings.py), for every backend."""
    try:
        check_generation_settings(gen.data)
    except UnsupportedSetting as exc:
        gen.fail(exc.key, exc.problem)
    check_finite(gen)


def check_finite(section: Section) -> None:
    """No NaN or infinity anywhere in a mapping handed on as it is (settings without a rule, vllm_args,
    extra_body)."""
    found = first_non_finite(section.data)
    if found:
        section.fail(found[0].lstrip("."), f"expected a finite number, got {excerpt(found[1])}")


def str_or_none(value) -> str | None:
    return None if value is None else str(value)
