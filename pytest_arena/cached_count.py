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

The same file remembers which bytes of the review file preflight read whole and found sound (no corrupt
line, no EvalScope record: ``checked_once``), so a later ``--collect-only`` on exactly those bytes does
not parse 20,000 records again to reach the same answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from .file_names import cached_count_file, member_reviews
from .record_files import write_atomic

FORMAT = 1

# Review file (absolute path) -> the identity of the bytes whose checks passed in this process (read
# whole, or found identical to bytes that passed before): written into the count file with the counts.
_CHECKED: dict[str, tuple] = {}
# Count file (absolute path) -> (its identity, its parsed content): read by preflight, then by the count.
_PARSED: dict[str, tuple] = {}


def cached_calls(runner, judge_identity: str, exact: Callable[[list], dict[str, int]]) -> int:
    """Cached judge calls of ``runner.judged``: from the kept counts when their signature holds, else
    ``exact(matches)`` (match id -> cached calls), kept for the next count when it covered the plan."""
    review = runner.config.review
    path = cached_count_file(review.review_file)
    signature = _signature(runner, judge_identity)
    kept = _read(path, signature)
    wanted = [m.id for m in runner.judged]
    if kept is not None and all(match_id in kept for match_id in wanted):
        checked = _CHECKED.get(os.path.abspath(review.review_file))
        if checked is not None and _kept_checked(review.review_file) != checked:
            _write(path, signature, kept, review.review_file)  # the counts as they were, now with the checks
        return sum(kept[match_id] for match_id in wanted)
    counts = exact(runner.judged)
    if {m.id for m in runner.plan.matches} <= set(counts):
        _write(path, signature, counts, review.review_file)
    return sum(counts[match_id] for match_id in wanted)


def checked_once(review_file: Path, check: Callable[[], None]) -> None:
    """Run ``check`` (which reads every record of the review file and raises on a problem) unless the file
    holds exactly the bytes a passed ``check`` read before, as the count file beside it records.

    "Exactly" is the file's identity: device, inode, size, mtime and ctime (ns). Every write changes
    mtime and ctime, and ctime cannot be set back (``touch``/``os.utime`` set only atime and mtime), so an
    append, a rewrite, a copy or a line edited in place with its size kept is checked again in full.
    The checks are a function of the bytes alone (a corrupt line; EvalScope records), so the verdict
    that held for those bytes holds now. The identity is recorded only when the file did not change
    while ``check`` read it (the same identity before and after)."""
    key = os.path.abspath(review_file)
    before = _identity(review_file)
    if before is not None and _kept_checked(review_file) == before:
        _CHECKED[key] = before
        return
    check()
    if before is not None and _identity(review_file) == before:
        _CHECKED[key] = before


def _kept_checked(review_file: Path) -> tuple | None:
    data = _parsed(cached_count_file(review_file))
    checked = data.get("checked") if data is not None else None
    return tuple(checked) if isinstance(checked, list) else None


def _identity(path: Path) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _signature(runner, judge_identity: str) -> str:
    plan, review = runner.plan, runner.config.review
    files = [review.review_file] + [answers.output_file for answers in plan.participants.values()]
    files += [member_reviews(review.review_file, judge.model) for judge in review.panel]  # (a panel's judges)
    parts = {
        "format": FORMAT,
        "judge": judge_identity,
        "judge_settings": repr(review.panel or review.judge),
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


def _parsed(path: Path) -> dict | None:
    """The count file's content (None: missing or damaged), parsed once per process while unchanged."""
    key, identity = os.path.abspath(path), _identity(path)
    kept = _PARSED.get(key)
    if kept is not None and identity is not None and kept[0] == identity:
        return kept[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if identity is not None:
        _PARSED[key] = (identity, data)
    return data


def _read(path: Path, signature: str) -> dict[str, int] | None:
    data = _parsed(path)
    if data is None or data.get("signature") != signature or not isinstance(data.get("counts"), dict):
        return None
    return data["counts"]


def _write(path: Path, signature: str, counts: dict[str, int], review_file: Path) -> None:
    kept = {"signature": signature, "counts": counts}
    checked = _CHECKED.get(os.path.abspath(review_file))
    if checked is not None:  # the bytes this process's checks passed (checked_once), whatever the file is now
        kept["checked"] = list(checked)
    try:
        write_atomic(path, json.dumps(kept))
    except OSError:
        pass  # a folder we cannot write to only costs the next count its speed
