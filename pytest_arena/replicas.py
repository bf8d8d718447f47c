"""Replicas of one model behind several ``base_url``s: calls spread over them, a failing one set aside.

Users who outgrow one machine start the same model on N servers (vLLM, SGLang, TGI: each with its own
tensor/pipeline parallelism) and list their URLs; the arena sends each call to the replica with the
fewest calls in flight (ties: the one sent the fewest so far, so a sequential caller alternates). Each
replica has its own client with the configured retries and timeout: the ``openai`` client's own
retries run against one replica first.

A replica whose call still fails with the server not answering (``ChatCallError.server_down``:
connection refused or reset, timeout, 5xx, 429) is set aside for ``cooldown_s`` and the call goes to
the next replica not yet tried; the others carry on meanwhile. When every replica is set aside, the
one due back first is tried: with all of them down a call fails as it would with one URL, after its
retries. One URL behaves exactly as before (no failover, nothing set aside matters).

A reply that came but cannot be used (not JSON, no choices) or a 4xx is not a replica's fault and
would come back the same from its twins: that call fails at once, as with one URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .openai_chat import ChatCallError, ThreadClients
from .server_url import same_servers

T = TypeVar("T")

# Long enough that a dead host costs a handful of calls' retries, not every call's; short enough that
# a restarted server is back in the rotation within the run.
COOLDOWN_S = 30.0


@dataclass
class Replica:
    url: str | None  # None: the client's default (OPENAI_BASE_URL, else api.openai.com)
    clients: Any  # ThreadClients (or anything with get() and close())
    in_flight: int = 0
    sent: int = 0
    failures: int = 0
    down_until: float = field(default=float("-inf"))


class ReplicaSet:
    """Clients for the replicas of one model; ``call`` may be used from many threads at once."""

    def __init__(self, urls: Sequence[str | None], make_clients: Callable[[str | None], Any],
                 cooldown_s: float = COOLDOWN_S, clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise ValueError("a replica set needs at least one URL")
        twice = same_servers(urls)
        if twice is not None:  # (the config refuses it first: a server listed twice would take two shares)
            raise ValueError(f"replicas {twice[0] + 1} and {twice[1] + 1} name the same server")
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self.replicas = [Replica(url, make_clients(url)) for url in urls]

    @classmethod
    def of_threads(cls, urls: Sequence[str | None], api_key_env: str | None, max_retries: int,
                   timeout: float, **options) -> ReplicaSet:
        """One ``ThreadClients`` per replica (a client per calling thread each), configured alike."""
        return cls(urls, lambda url: ThreadClients(api_key_env, url, max_retries, timeout), **options)

    def call(self, send: Callable[[Any], T]) -> T:
        """``send(client)`` on the least busy replica; on a server-down failure, on the next one."""
        tried: set[int] = set()
        last_error: ChatCallError | None = None
        while True:
            index = self._take(tried)
            if index is None:  # every replica failed this call (the first take always gives one)
                raise last_error
            replica = self.replicas[index]
            try:
                result = send(replica.clients.get())
            except ChatCallError as exc:
                self._release(index, failed=exc.server_down)
                if not exc.server_down:
                    raise
                tried.add(index)
                last_error = exc
                continue
            self._release(index, failed=False)
            return result

    def _take(self, tried: set[int]) -> int | None:
        """The replica for the next attempt (counted in flight), or None when none is left to try."""
        with self._lock:
            now = self._clock()
            fresh = [i for i in range(len(self.replicas)) if i not in tried]
            up = [i for i in fresh if self.replicas[i].down_until <= now]
            if up:
                index = min(up, key=lambda i: (self.replicas[i].in_flight, self.replicas[i].sent, i))
            elif not tried:
                # Every replica is set aside: probe the one due back first rather than fail unasked.
                index = min(fresh, key=lambda i: (self.replicas[i].down_until, i))
            else:
                return None
            replica = self.replicas[index]
            replica.in_flight += 1
            replica.sent += 1
            return index

    def _release(self, index: int, failed: bool) -> None:
        with self._lock:
            replica = self.replicas[index]
            replica.in_flight -= 1
            if failed:
                replica.failures += 1
                replica.down_until = self._clock() + self._cooldown_s
            else:
                replica.down_until = float("-inf")

    def close(self) -> None:
        for replica in self.replicas:
            replica.clients.close()
