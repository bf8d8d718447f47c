"""Errors the core library raises. The pytest plugin turns them into ``pytest.UsageError``."""

from __future__ import annotations

import math
import reprlib


class ArenaConfigError(ValueError):
    """Bad input found before any work starts: a config key, a question file, a model folder.

    The message is one line that names the file, the key (or line) and what was expected. A value the
    user wrote goes into ``problem`` through ``excerpt``, so the line stays short whatever the value is.
    """

    def __init__(self, file, where: str, problem: str):
        self.file = str(file)
        # A last bound, for text no one passed through excerpt: room for the longest path, no more.
        self.where = clipped(where, MAX_WHERE)
        self.problem = clipped(problem, MAX_PROBLEM)
        location = f"{self.file}: {self.where}" if self.where else self.file
        super().__init__(f"{location}: {self.problem}")


class ArenaDataError(ArenaConfigError):
    """A data file the run reads is corrupt or unreadable: questions, answers, reviews, a baseline
    report, prompt templates. Also a usage error (the same one-line message); its own type says the
    config is fine and a file it names is not."""


MAX_WHERE, MAX_PROBLEM = 1000, 5000


def clipped(text: str, limit: int) -> str:
    """``text``, or its start and end around a note of what was left out when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} ...({len(text) - 2 * keep} characters left out)... {text[-keep:]}"


class UnsupportedSetting(ValueError):
    """A ``generation_config`` setting that a generation backend cannot honour (the config reader names the key)."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"generation_config.{key}: {problem}")


class _Excerpt(reprlib.Repr):
    """``repr`` cut short: a few levels, a few items, the start of a long string. It never builds the
    whole repr, so a value nested by YAML aliases (a "billion laughs" config) costs no more to show
    than a small one. Non-finite floats are written as YAML writes them."""

    def __init__(self):
        super().__init__()
        self.maxlevel = 2
        self.maxtuple = self.maxlist = self.maxarray = self.maxset = self.maxfrozenset = self.maxdeque = 4
        self.maxdict = 4
        self.maxstring = 80
        self.maxlong = 40
        self.maxother = 60

    def repr_float(self, value, level):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)

    def repr_str(self, value, level):
        if len(value) <= self.maxstring:
            return repr(value)
        # Only the start is repr'd: a megabyte string is never copied whole.
        return repr(value[:self.maxstring]) + f"... ({len(value)} characters)"


_EXCERPT = _Excerpt()


def excerpt(value) -> str:
    """A short, bounded ``repr`` of a value the user wrote, for error messages."""
    return _EXCERPT.repr(value)


def kind_of(value) -> str:
    """What a value is, in the words of a YAML user: a mapping, a list, a string, a boolean."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
