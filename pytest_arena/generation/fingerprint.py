"""What identifies a checkpoint's content, for the answer cache key.

A fine-tune saved over the same folder must never be served the old answers, so the key covers the
bytes of the weight files, the config and the tokenizer (whose chat template shapes every prompt).
Hashing many GB on every run would be slow, so each file's digest is memoised by
(path, size, mtime, inode): a file that has not changed is hashed once, and the memo is kept beside
the answers it validates (``digests_file``), so a CI run that keeps ``results/`` reads no checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from ..config.models import LOADABLE_WEIGHT_SUFFIXES, TOKENIZER_FILES
from ..file_names import digests_file, lock_file
from ..record_files import write_atomic

# The weight files transformers loads, and TensorFlow / Flax weights besides: not loaded, but part of
# what the folder holds.
WEIGHT_SUFFIXES = LOADABLE_WEIGHT_SUFFIXES + (".h5", ".msgpack")
# Files besides weights that change what a model says for the same question.
SIDE_FILES = (
    "config.json", "generation_config.json", *TOKENIZER_FILES, "special_tokens_map.json", "chat_template.jinja",
    "chat_template.json", "merges.txt", "added_tokens.json",
)


class DigestMemo:
    """file stat -> sha256, kept in a small JSON file between runs (or only in memory).

    The session's memo lives in pytest's cache folder; ``beside(answers_file)`` gives the memo kept next
    to a model's answers (``digests_file``), which CI keeps with ``results/`` even where it drops
    ``.pytest_cache``: the answers and the digests that validate them travel together. A memo with a
    ``fallback`` reads the fallback's digests too and tells it what it hashes, so either one saves a
    re-read. Saving merges with what is on disk under a file lock (two runs, xdist workers), written
    atomically; entries of a file whose stat changed are dropped, so the memo holds one per file.
    """

    def __init__(self, memo_file: Path | None = None, fallback: DigestMemo | None = None):
        self.memo_file = Path(memo_file) if memo_file else None
        self.fallback = fallback
        self.hashed = 0  # files read in full by this memo: what a warm memo saves
        self._lock = threading.Lock()
        self._digests: dict[str, str] = self._read() if self.memo_file else {}
        self._current: dict[str, str] = {}  # path -> the stat key it has now (those this run looked at)

    def beside(self, answers_file: Path) -> DigestMemo:
        """The memo kept next to ``answers_file``, falling back on this one."""
        return DigestMemo(digests_file(answers_file), fallback=self)

    def known(self, path: Path) -> str | None:
        """The digest of ``path`` if this memo (or its fallback) holds it for the file as it is now."""
        key = _stat_key(path)
        with self._lock:
            found = self._digests.get(key)
        if found is None and self.fallback is not None:
            found = self.fallback.known(path)
            if found is not None:
                self._remember(key, found)
        return found

    def digest(self, path: Path) -> str:
        known = self.known(path)
        if known:
            return known
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                sha.update(block)
        value = sha.hexdigest()
        with self._lock:
            self.hashed += 1
        self._remember(_stat_key(path), value)
        if self.fallback is not None:
            self.fallback._remember(_stat_key(path), value)
        return value

    def _remember(self, key: str, value: str) -> None:
        with self._lock:
            self._digests[key] = value
            self._current[_path_of(key)] = key
            self._save()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.memo_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing, or damaged: that only costs a re-hash
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}

    def _save(self):
        if not self.memo_file:
            return
        from ..record_files import file_lock

        with file_lock(lock_file(self.memo_file)):
            merged = {**self._read(), **self._digests}
            # Another stat of a file looked at now is a version of it that is gone: one entry per file.
            self._digests = {k: v for k, v in merged.items() if self._current.get(_path_of(k), k) == k}
            write_atomic(self.memo_file, json.dumps(self._digests, sort_keys=True))


def _path_of(key: str) -> str:
    return key.rsplit("|", 3)[0]


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"


def checkpoint_fingerprint(path: str, revision: str | None, gguf_file: str | None, memo: DigestMemo,
                           hash_missing: bool = True) -> str | None:
    """One digest over a local checkpoint's files; a hub id is named by id and revision. With
    ``hash_missing`` False: None when a file would have to be read (its digest is not in the memo)."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}@{revision or 'main'}"
    parts = []
    for file in sorted(folder.iterdir()):
        if not file.is_file():
            continue
        is_weights = file.suffix in WEIGHT_SUFFIXES and (gguf_file is None or file.suffix != ".gguf" or file.name == gguf_file)
        if is_weights or file.name in SIDE_FILES:
            digest = memo.digest(file) if hash_missing else memo.known(file)
            if digest is None:
                return None
            parts.append(f"{file.name}:{digest}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
