"""Records on disk: append-only JSONL files that are both the output people read and the cache.

One cache-key function for everything (answers, reviews), and one way to read and append JSONL so a
crash loses at most the line being written: each record is a single ``write`` of a whole line to a
file opened for appending, and a torn last line (no newline: the writer died mid-line) is ignored on
read and cut off before the next append. Only a torn record of ours is ever cut: a file that is not
JSONL of records (a user's notes named as an output by mistake) is refused, never truncated.

Lines are split on ``\n`` only: JSON strings may hold U+2028 or U+0085 raw, which ``str.splitlines``
would take for line ends. A record whose text holds a lone surrogate (``"\ud800"``: valid JSON, but no
UTF-8 file or request can carry it) is refused with its line when read, not met as a UnicodeEncodeError
when the text is next written or sent to the judge.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import ArenaDataError


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


def _take_kept(path: Path, keep: bool = False) -> tuple[int, list[dict], int] | None:
    """What read_jsonl kept of this file, if the file has not changed since (dropped either way,
    unless ``keep``: then it stays for the next reader too)."""
    key = os.path.abspath(path)
    with _KEPT_LOCK:
        kept = _KEPT.pop(key, None)
    if kept is None:
        return None
    try:
        if _identity(os.stat(path)) != kept[0]:
            return None
    except OSError:
        return None
    if keep:
        with _KEPT_LOCK:
            _KEPT.setdefault(key, kept)
    return kept[1:]


def read_jsonl(path: Path, keep: bool = False) -> list[dict]:
    """The complete records of a JSONL file; a missing file has none. A torn last line is skipped.

    ``keep``: hand the records to the next read_jsonl or JsonlFollower of this file, if it is unchanged.
    """
    kept = _take_kept(path, keep)
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
    # One look at the whole file: most hold no hint of a surrogate, and their lines need no look each.
    hinted = may_hold_surrogate(raw)
    for where, record in json_lines(path, complete, lambda exc: f"not a JSON record ({exc.msg})", hinted):
        if not isinstance(record, dict):
            raise ArenaDataError(path, where, f"expected a JSON object (one record a line), "
                                   f"got {_json_kind(record)}")
        records.append(record)
    complete_count = len(records)
    if torn.strip():
        try:  # a file written by another tool may just lack the final newline
            record = json.loads(torn)
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError when torn inside a character
            record = None
        if isinstance(record, dict):
            if hinted:
                refuse_unencodable(path, f"line {len(lines)}", torn, record)
            records.append(record)
    if keep and len(raw) == identity[2]:  # not appended to while being read
        with _KEPT_LOCK:
            _KEPT[os.path.abspath(path)] = (identity, len(raw) - len(torn), records, complete_count)
    return records


def record_lines(path: Path) -> list[str]:
    """``"line N"`` of each record ``read_jsonl`` gives of this file, in its order: for a message about one
    record (blank lines are skipped, so a record's index is not its line). Read again, only when needed."""
    try:
        with open(path, "rb") as handle:
            pieces = handle.read().split(b"\n")
    except OSError:
        return []
    return [f"line {number}" for number, piece in enumerate(pieces, start=1) if piece.strip()]


def invalid_json(exc: json.JSONDecodeError) -> str:
    return f"invalid JSON ({exc.msg} at column {exc.colno})"


def json_lines(path: Path, lines: Iterable[str | bytes], invalid: Callable[[json.JSONDecodeError], str] = invalid_json,
               hinted: bool = True) -> Iterator[tuple[str, object]]:
    """The one loop over the lines of a JSON-lines file (records, questions, templates): ``(where,
    value)`` for each line that is not blank, ``where`` being ``"line N"`` (counted from 1). A line that
    is not JSON raises ArenaDataError naming the file and the line (``invalid`` words the problem).

    ``lines`` must come from splitting on ``\\n`` only: JSON strings may hold U+2028 or U+0085 raw.
    A line whose strings UTF-8 cannot encode (a lone surrogate) is refused too; ``hinted=False``: the
    caller found no hint of one in the whole text (``may_hold_surrogate``), and no line is searched.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ArenaDataError(path, where, invalid(exc)) from None
        except UnicodeDecodeError as exc:
            raise ArenaDataError(path, where, f"not UTF-8 text ({exc.reason})") from None
        if hinted:
            refuse_unencodable(path, where, line, value)
        yield where, value


# What JSON text holds before json.loads may give a lone surrogate: a \uD800-\uDFFF escape, or (json.loads
# decodes bytes with "surrogatepass") the raw bytes ED A0..BF. Files hold neither, mostly: the regex skips
# from one "\u" to the next (rare in files written with ensure_ascii=False, as ours are) and ED is one byte
# (~10 ms for 27 MiB of reviews; ~60 ms for 40 MiB of escaped CJK text, a third of what json.loads takes).
_ESCAPED = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPED_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_RAW = re.compile(rb"\xed[\xa0-\xbf]")


def may_hold_surrogate(raw: str | bytes) -> bool:
    """Whether JSON text could parse to a string holding a lone surrogate (False: it cannot)."""
    if isinstance(raw, str):
        return _ESCAPED_TEXT.search(raw) is not None
    return _ESCAPED.search(raw) is not None or (b"\xed" in raw and _RAW.search(raw) is not None)


def refuse_unencodable(path: Path, where: str, raw: str | bytes | None, value) -> None:
    """Raise ArenaDataError (file, ``where``) when ``value``, parsed from ``raw``, holds a string that UTF-8
    cannot encode. Only a value whose text hints at a surrogate is searched (all, when ``raw`` is None)."""
    if raw is not None and not may_hold_surrogate(raw):
        return
    spot = unencodable_spot(value)
    if spot is not None:
        raise ArenaDataError(path, where, f"expected text that UTF-8 can encode, got a lone surrogate {spot} "
                             "(valid JSON, but no file or judge request can carry it)")


def unencodable_spot(value) -> str | None:
    """Where in a parsed JSON value a string holds a lone surrogate (``'\\ud800' at answer``, ``... at
    choices[0].turns[1]``, ``... in a key of metadata``), or None when UTF-8 encodes every string.
    A loop, not recursion: json.loads nests deeper than a recursive walk could follow from here."""
    stack = [("", value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            bad = _lone_surrogate(item)
            if bad is not None:
                return f"{bad!r} at {at or 'the top level'}"
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                bad = _lone_surrogate(key)
                if bad is not None:
                    return f"{bad!r} in a key" + (f" of {at}" if at else "")
                stack.append((f"{at}.{key}" if at else key, inner))
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))
    return None


def _lone_surrogate(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start]
    return None


def _json_kind(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {list: "an array", str: "a string"}.get(type(value), "a number")


# How much of a file is read at once when looking for its first or last line (a line of ours is far shorter).
_STEP = 1 << 20


def foreign_content(path: Path) -> str | None:
    """Why an existing file is not a JSONL file of records that we may append to (None: it is, or it
    does not exist yet). Cheap for any size: it reads the first line and the last one, not the middle
    (a broken line in between is refused by ``read_jsonl``, with its number)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_STEP)
            size = handle.seek(0, os.SEEK_END)
            last = _last_line(handle, size)
    except FileNotFoundError:
        return None
    if last is not None and last.strip() and _not_a_record(last) is not None and not is_torn_record(last):
        return "its last line is neither a JSON object nor a record torn by a crash"
    pieces = head.split(b"\n")
    for number, line in enumerate(pieces[:-1], start=1):  # the last piece is unfinished
        if line.strip():
            problem = _not_a_record(line)
            return f"line {number} is {problem}" if problem else None
    if len(head) < size and not pieces[-1].lstrip().startswith(b"{"):  # a first line longer than the head
        return "line 1 is not a JSON object"
    return None


def _not_a_record(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, or UnicodeDecodeError
        return "not JSON"
    return None if isinstance(record, dict) else f"{_json_kind(record)}, not a JSON object"


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def is_torn_record(line: bytes) -> bool:
    """The start of a record as ``JsonlAppender`` writes it (``{"``...), cut short by a crash or a
    full disk (which may leave as little as its first byte)."""
    return bool(line) and b'{"'.startswith(line[:2])


def _last_line(handle, size: int) -> bytes | None:
    """The bytes after the file's last newline (None: the file ends with a newline or is empty).
    Steps back until the last newline is in view: a last line longer than one step is read whole."""
    if size == 0:
        return None
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return None
    start, cut = size, -1
    while start > 0 and cut < 0:
        start = max(0, start - _STEP)
        handle.seek(start)
        chunk = handle.read(size - start)
        cut = chunk.rfind(b"\n")
    return chunk[cut + 1:]


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
        """Make the file end on a newline: a torn record of ours is dropped, a finished line is closed.

        Anything else at the end is not ours to cut (preflight refuses such a file as an output): the
        file is left as it is and the append refused.
        """
        try:
            with open(self.path, "rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                last = _last_line(handle, size)
                if last is None:
                    return
                if not last.strip() or _is_json(last):
                    handle.seek(0, os.SEEK_END)
                    handle.write(b"\n")
                elif is_torn_record(last):
                    handle.truncate(size - len(last))
                else:
                    raise ArenaDataError(self.path, "", "not a JSONL file of records (its last line is not a "
                                           "record of ours); it is left as it is and nothing is appended")
        except FileNotFoundError:
            pass

    def append(self, record: dict) -> None:
        """Write one record, whole, or raise OSError (a full disk: ``ENOSPC``). After a failed write the
        file is reopened on the next append, which first cuts a line the failure left torn."""
        line = (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            try:
                written = os.write(self._fd, line)
                if written < len(line):  # the file system took part of the line: it is full
                    raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({written} of {len(line)} bytes "
                                                "written)", str(self.path))
            except OSError:
                os.close(self._fd)
                self._fd = None
                raise

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
                # What is there now, not more: a device in the file's place (/dev/zero) never ends.
                data = handle.read(max(0, os.fstat(handle.fileno()).st_size - self.offset))
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
            # A record no UTF-8 file can hold is no cached result (read_jsonl refuses it, with its line).
            if isinstance(record, dict) and (not may_hold_surrogate(line) or unencodable_spot(record) is None):
                records.append(record)
        return records


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True):
    """An exclusive lock between processes (e.g. two runs generating the same model's answers).

    Yields whether this process holds it: with ``wait=False`` a lock held elsewhere yields False at
    once instead of blocking (xdist workers use that to pick a model nobody is generating). The lock
    is filelock's OS lock (flock on Unix) on its own open of the file, so a second ``file_lock`` in the
    same process conflicts as another process's would, and a process that dies releases it.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, thread_local=False)  # a new lock per call: one holder, whichever thread
    try:
        lock.acquire(timeout=-1 if wait else 0)  # 0: one try
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
