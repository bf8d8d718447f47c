"""Records on disk: append-only JSONL files that are both the output people read and the cache.

One cache-key function for everything (answers, reviews), and one way to read and append JSONL so a
crash loses at most the line being written: each record is a single ``write`` of a whole line to a
file opened for appending, and a torn last line (no newline: the writer died mid-line) is ignored on
read and cut off before the next append.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

from .errors import ArenaConfigError


def cache_key(**parts) -> str:
    """A stable digest of everything an output depends on (canonical JSON, sorted keys)."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# What read_jsonl(path, keep=True) parsed, for the next reader of the same, unchanged file (once):
# preflight checks the answer and review files line by line before any model loads, and the answers
# cache and the judge then read the same bytes again (~0.3 s for 20,000 cached battles).
# path -> (file identity, end of the last complete line, records, how many of them are complete lines)
_KEPT: dict[str, tuple[tuple, int, list[dict], int]] = {}
_KEPT_LOCK = threading.Lock()


def _identity(stat: os.stat_result) -> tuple:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _take_kept(path: Path) -> tuple[int, list[dict], int] | None:
    """What read_jsonl kept of this file, if the file has not changed since (dropped either way)."""
    with _KEPT_LOCK:
        kept = _KEPT.pop(os.path.abspath(path), None)
    if kept is None:
        return None
    try:
        if _identity(os.stat(path)) != kept[0]:
            return None
    except OSError:
        return None
    return kept[1:]


def read_jsonl(path: Path, keep: bool = False) -> list[dict]:
    """The complete records of a JSONL file; a missing file has none. A torn last line is skipped.

    ``keep``: hand the records to the next read_jsonl or JsonlFollower of this file, if it is unchanged.
    """
    kept = _take_kept(path)
    if kept is not None:
        return list(kept[1])
    try:
        with open(path, "rb") as handle:
            identity = _identity(os.fstat(handle.fileno()))
            raw = handle.read()
    except FileNotFoundError:
        return []
    lines = raw.split(b"\n")
    complete, torn = lines[:-1], lines[-1]  # text after the last newline was never finished
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ArenaConfigError(path, f"line {number}", f"not a JSON record ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise ArenaConfigError(path, f"line {number}", f"not UTF-8 text ({exc.reason})") from None
        if isinstance(record, dict):
            records.append(record)
    complete_count = len(records)
    if torn.strip():
        try:  # a file written by another tool may just lack the final newline
            record = json.loads(torn)
            if isinstance(record, dict):
                records.append(record)
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError when torn inside a character
            pass
    if keep and len(raw) == identity[2]:  # not appended to while being read
        with _KEPT_LOCK:
            _KEPT[os.path.abspath(path)] = (identity, len(raw) - len(torn), records, complete_count)
    return records


class JsonlAppender:
    """Appends records to a JSONL file as they arrive, each flushed to the OS at once.

    Thread-safe; one ``os.write`` per record on an ``O_APPEND`` descriptor keeps concurrent writers
    (threads or processes) from interleaving inside a line.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair_torn_tail(self):
        """Make the file end on a newline: a torn line is dropped, a finished one is closed."""
        try:
            with open(self.path, "rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return
                handle.seek(size - 1)
                if handle.read(1) == b"\n":
                    return
                # Step back until the last newline is in view: a last line longer than one
                # step must not make us cut the whole file.
                start, cut = size, -1
                while start > 0 and cut < 0:
                    start = max(0, start - (1 << 20))
                    handle.seek(start)
                    tail = handle.read()
                    cut = tail.rfind(b"\n")
                last = tail[cut + 1:]
                try:
                    json.loads(last)
                    handle.seek(0, os.SEEK_END)
                    handle.write(b"\n")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    handle.truncate(start + cut + 1 if cut >= 0 else 0)
        except FileNotFoundError:
            pass

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def write_atomic(path: Path, text: str) -> None:
    """Replace a file in one step, so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class JsonlFollower:
    """Reads a JSONL file's complete records, then only the ones appended since, by this process or
    another one running on the same files (so neither pays for what the other already stored)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0

    def read_new(self) -> list[dict]:
        if self.offset == 0:
            kept = _take_kept(self.path)
            if kept is not None:  # parsed already by read_jsonl, file unchanged: its complete lines
                end, records, complete_count = kept
                self.offset = end
                return records[:complete_count]
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += end
        records = []
        for line in data[:end].split(b"\n"):
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:  # a line torn by a crash elsewhere, later cut off by the repair
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True):
    """An exclusive lock between processes (e.g. two runs generating the same model's answers).

    Yields whether this process holds it: with ``wait=False`` a lock held elsewhere yields False at
    once instead of blocking (xdist workers use that to pick a model nobody is generating).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: runs may duplicate work, never corrupt it
        yield True
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
