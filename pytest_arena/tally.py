"""Counters that many threads add to at once (judge calls, an API candidate's requests)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class Tally:
    """Subclasses declare their counts as fields with defaults; ``add`` adds to several under one lock."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def counts(self) -> dict[str, int]:
        """The counts as plain data (the lock left out): what an xdist worker sends the controller."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
