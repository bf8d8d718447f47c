"""The count of cached judge calls that ``--collect-only`` prints, remembered beside the review file.

Counting exactly renders every call's prompt, hashes it into its cache key and parses the stored reply
(a reply the parser cannot read is asked again, so it is no cached call): ~0.5 ms a battle, the most
of what ``--collect-only`` adds to bare pytest at 20,000 cached battles. Those counts change only
when what they are computed from changes, so the exact count of every match of the plan is kept in
``<review_file>.count.json`` under a signature of all of it: the review file's and every answers file's
size, mtime and inode, the questions, the templates, the judge's settings and identity. A later count
with the same signature sums the kept counts; any difference (a review appended, an answer file
rewritten, a setting changed), a missing or damaged file, or a match it does not hold, and the count is
made exactly again, as before. The file is written after an exact count of the whole plan (never of a
-k subset, which would leave matches out).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .store import write_atomic

FORMAT = 1


def count_file(review_file: Path) -> Path:
    """Where the kept counts of a review file live: beside it."""
    review_file = Path(review_file)
    return review_file.with_name(review_file.name + ".count.json")


def cached_calls(runner, judge_identity: str, exact: Callable[[list], dict[str, int]]) -> int:
    """Cached judge calls of ``runner.judged``: from the kept counts when their signature holds, else
    ``exact(matches)`` (match id -> cached calls), kept for the next count when it covered the plan."""
    review = runner.config.review
    path = count_file(review.review_file)
    signature = _signature(runner, judge_identity)
    kept = _read(path, signature)
    wanted = [m.id for m in runner.judged]
    if kept is not None and all(match_id in kept for match_id in wanted):
        return sum(kept[match_id] for match_id in wanted)
    counts = exact(runner.judged)
    if {m.id for m in runner.plan.matches} <= set(counts):
        _write(path, signature, counts)
    return sum(counts[match_id] for match_id in wanted)


def _signature(runner, judge_identity: str) -> str:
    plan, review = runner.plan, runner.config.review
    files = [review.review_file] + [answers.output_file for answers in plan.participants.values()]
    parts = {
        "format": FORMAT,
        "judge": judge_identity,
        "judge_settings": repr(review.judge),
        "judge_turns": review.judge_turns,
        "templates": [(t.name, t.digest) for t in plan.templates],
        "files": [(str(f), _stat(f)) for f in files],
        "questions": hashlib.sha256(repr(plan.questions).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _stat(path: Path) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def _read(path: Path, signature: str) -> dict[str, int] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("signature") != signature or not isinstance(data.get("counts"), dict):
        return None
    return data["counts"]


def _write(path: Path, signature: str, counts: dict[str, int]) -> None:
    try:
        write_atomic(path, json.dumps({"signature": signature, "counts": counts}))
    except OSError:
        pass  # a folder we cannot write to only costs the next count its speed
