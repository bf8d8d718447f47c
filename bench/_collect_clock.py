"""A pytest plugin for bench/plugin_overhead.py (``-p _collect_clock``, bench/ on PYTHONPATH): writes the
CPU seconds the process has used by the end of collection to the file named by $ARENA_BENCH_CLOCK.

That is the collection share of a normal run (start-up, imports, collection and every plugin's
collection hooks), which ``--collect-only`` cannot give for the arena: there the plugin also counts
the plan's cached judge calls, work a normal run does later, when it judges.
"""

from __future__ import annotations

import os
import time

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    path = os.environ.get("ARENA_BENCH_CLOCK")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"{time.process_time()}\n")
