"""What identifies a checkpoint's content, for the answer cache key.

A fine-tune saved over the same folder must never be served the old answers, so the key covers the
bytes of the weight files, the config and the tokenizer (whose chat template shapes every prompt).
Hashing many GB on every run would be slow, so each file's digest is memoised by
(path, size, mtime, inode): a file that has not changed is hashed once per machine.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from ..store import write_atomic

# Weight files transformers loads (config.models.checkpoint_problem wants one in a checkpoint folder).
LOADABLE_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
# ...and TensorFlow / Flax weights besides: not loaded, but part of what the folder holds.
WEIGHT_SUFFIXES = LOADABLE_WEIGHT_SUFFIXES + (".h5", ".msgpack")
# A checkpoint folder needs one of these (config.models.checkpoint_problem); each shapes the prompt's tokens.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")
# Files besides weights that change what a model says for the same question.
SIDE_FILES = (
    "config.json", "generation_config.json", *TOKENIZER_FILES, "special_tokens_map.json", "chat_template.jinja",
    "chat_template.json", "merges.txt", "added_tokens.json",
)


class DigestMemo:
    """file stat -> sha256, kept in a small JSON file between runs (or only in memory)."""

    def __init__(self, memo_file: Path | None = None):
        self.memo_file = Path(memo_file) if memo_file else None
        self._lock = threading.Lock()
        self._digests: dict[str, str] = {}
        if self.memo_file and self.memo_file.is_file():
            try:
                self._digests = json.loads(self.memo_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._digests = {}  # a damaged memo only costs a re-hash

    def digest(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
        with self._lock:
            known = self._digests.get(key)
        if known:
            return known
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                sha.update(block)
        value = sha.hexdigest()
        with self._lock:
            self._digests[key] = value
            self._save()
        return value

    def _save(self):
        if not self.memo_file:
            return
        write_atomic(self.memo_file, json.dumps(self._digests))


def checkpoint_fingerprint(path: str, revision: str | None, gguf_file: str | None, memo: DigestMemo) -> str:
    """One digest over a local checkpoint's files; a hub id is named by id and revision."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}@{revision or 'main'}"
    parts = []
    for file in sorted(folder.iterdir()):
        if not file.is_file():
            continue
        is_weights = file.suffix in WEIGHT_SUFFIXES and (gguf_file is None or file.suffix != ".gguf" or file.name == gguf_file)
        if is_weights or file.name in SIDE_FILES:
            parts.append(f"{file.name}:{memo.digest(file)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
