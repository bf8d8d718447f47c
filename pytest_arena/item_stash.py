"""What the plugin, the xdist hooks and the suite's fixture share: the session's key on pytest's
config, and an arena item's parameters. Its own small module so that none of them imports another."""

from __future__ import annotations

import pytest

SESSION_KEY = pytest.StashKey["object"]()  # the run's ArenaSession, on config.stash
FIRST_PROPERTIES = pytest.StashKey[list]()  # an arena item's user_properties before its first run


def param(item: pytest.Item, name: str):
    """The item's value of the parameter ``name`` (None when it has none)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec is not None else None


def match_of(item: pytest.Item):
    """The battle or scoring an arena item judges (None for any other item)."""
    return param(item, "arena_battle") or param(item, "arena_scoring")
