"""Each judge call paid once: shared by the judgments of a run that need it while it is in flight,
and claimed across the runs (or xdist workers) that share a review file.

Within a process, a call asked for one judgment is shared by every other judgment that needs the
same prompt while it is in flight (two names for one checkpoint give identical prompts): they get
its reply, as from the cache, once it is stored.

Across processes, a process about to ask the judge takes a claim on the call's cache key: an
exclusive ``flock`` on ``<review_file>.claims/<key>.lock``. It holds the claim until the judgment's
review record is written, so another run that wants the same call waits, then finds the reply in the
review file instead of paying for it. The OS drops a lock when its process dies (SIGKILL included),
so a crashed claimant never blocks anyone: the next claimant just asks again.

Claims are taken without ever blocking while holding one (all keys of a judgment at once, or none,
retried by one thread until they are free), and a judgment asks for its claim only once the replies
it shares are in, so two runs that want the same calls in different orders cannot deadlock. A claim
file is removed by its owner when released; files left by a crash are swept by the next run that
closes, and the folder goes when it is empty.
"""

from __future__ import annotations

import os
import random
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..file_names import claims_folder

try:
    import fcntl
except ImportError:  # no advisory locks on this platform: runs may pay twice, never corrupt a file
    fcntl = None

POLL_SECONDS = (0.01, 0.2)  # back-off between retries of claims held elsewhere: first, longest


class ClaimsClosed(RuntimeError):
    """The judge closed (the run ended or was interrupted) before this judgment's claim came."""


@dataclass
class Claim:
    """Locks held on some cache keys: (lock file path, open descriptor) per key."""

    held: list[tuple[Path, int]] = field(default_factory=list)


class ClaimFolder:
    """The lock files of one review file's calls."""

    def __init__(self, review_file: Path):
        review_file = Path(review_file)
        self.folder = claims_folder(review_file)

    def try_claim(self, keys: list[str]) -> Claim | None:
        """Every key's lock, or None at once (holding nothing) when another process holds one."""
        claim = Claim()
        if fcntl is None:
            return claim
        try:
            for key in sorted(set(keys)):  # one order for everyone
                path = self.folder / f"{key}.lock"
                fd = _lock(path)
                if fd is None:
                    self.release(claim)
                    return None
                claim.held.append((path, fd))
        except BaseException:
            self.release(claim)
            raise
        return claim

    def release(self, claim: Claim) -> None:
        """Remove the lock files, then unlock: a waiter on a removed file sees it is gone and retries."""
        for path, fd in claim.held:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)
        claim.held.clear()

    def sweep(self) -> None:
        """Remove lock files that nobody holds (left by a crash), and the folder once it is empty."""
        if fcntl is None:
            return
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        for name in names:
            if name.endswith(".lock"):
                path = self.folder / name
                fd = _lock(path, create=False)
                if fd is not None:
                    self.release(Claim([(path, fd)]))
        try:
            self.folder.rmdir()
        except OSError:  # not empty: another run holds claims in it now
            pass


def _lock(path: Path, create: bool = True) -> int | None:
    """An exclusive lock on ``path`` without waiting: the descriptor, or None when it is held elsewhere.

    The lock counts only if the file we locked is still the one at ``path`` (its owner may have
    removed it in between): otherwise try again on the new file.
    """
    while True:
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:  # the folder was swept away between mkdir and open
            if not create:
                return None
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not create:
            return None


@dataclass(eq=False)  # told apart by identity
class _Request:
    keys: list[str]
    settled: Callable[[], bool]  # the calls need no claim any more (another run stored the replies)
    granted: Callable[[Claim | None], None]  # told the claim, or None when settled elsewhere
    failed: Callable[[BaseException], None]  # closed before its turn, or a bug: the judgment must hear of it


class ClaimQueue:
    """One thread that takes claims for waiting judgments, in the order they came, skipping past the
    ones held elsewhere and retrying them with a back-off, so waiting never holds up the judge pool."""

    def __init__(self, folder: ClaimFolder):
        self.folder = folder
        self._pending: list[_Request] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, keys: list[str], settled: Callable[[], bool], granted: Callable[[Claim | None], None],
            failed: Callable[[BaseException], None]) -> None:
        """Call ``granted`` with the claim on every key, from the queue's thread, once it is free.

        ``granted`` and ``settled`` run on that thread: they should be quick (no judge call in them).
        """
        with self._wake:
            if self._closed:
                failed(ClaimsClosed())
                return
            self._pending.append(_Request(keys, settled, granted, failed))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="arena-claims", daemon=True)
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Stop; requests still waiting fail with ClaimsClosed."""
        with self._wake:
            self._closed = True
            pending, self._pending = self._pending, []
            self._wake.notify()
        for request in pending:
            request.failed(ClaimsClosed())
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        delay = POLL_SECONDS[0]
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch = list(self._pending)
            done = {id(request) for request in batch if self._serve(request)}
            with self._wake:
                self._pending = [r for r in self._pending if id(r) not in done]
                if len(done) < len(batch) and not self._closed:
                    # Some are held by another run: wait a little (new requests wake us at once).
                    self._wake.wait(delay * random.uniform(0.5, 1.5))
            delay = POLL_SECONDS[0] if done else min(delay * 2, POLL_SECONDS[1])

    def _serve(self, request: _Request) -> bool:
        try:
            try:
                claim = self.folder.try_claim(request.keys)
            except OSError:  # no lock file can be made here (a full disk): ask unclaimed, as without flock
                claim = Claim()
            if claim is not None:
                request.granted(claim)
                return True
            if request.settled():
                request.granted(None)
                return True
            return False
        except Exception as exc:  # noqa: BLE001 - a failure here must reach the judgment, not kill the thread
            request.failed(exc)
            return True


@dataclass
class Ticket:
    """A judgment's share of the work: the calls it asks itself, and its claim on them once granted."""

    own: dict[str, tuple[object, Future]] = field(default_factory=dict)  # key -> (call, its reply)
    stored: dict[str, Future] = field(default_factory=dict)  # key -> the reply for sharers, once stored
    claim: Claim | None = None


class PaidOnce:
    """Each judge call is paid once: by one judgment of this run (the others that need the same call
    while it is in flight share its reply), and by one run of those on the same review file.

    The runner says how (callbacks): ``cached(call)`` looks a reply up in what it has read,
    ``refresh()`` reads what other runs stored since, ``start(call, future)`` asks the judge in its
    pool and sets the future, ``share(result, call)`` rebinds a stored reply to another judgment's call.
    A shared reply is handed over once its owner's review record is written (or failed to be), so no
    judgment counts a verdict that is not in the review file.
    """

    def __init__(self, review_file: Path, *, cached: Callable, refresh: Callable[[], None],
                 start: Callable[[object, Future], None], share: Callable):
        self.folder = ClaimFolder(review_file)
        self._queue = ClaimQueue(self.folder)
        self._cached, self._refresh, self._start, self._share = cached, refresh, start, share
        self._in_flight: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._held: dict[int, Ticket] = {}
        self._used = False

    def plan(self, calls: list) -> tuple[list, Ticket]:
        """Each call's reply (at hand, or a future), and the ticket for the calls this judgment asks."""
        parts, shared, ticket = [], [], Ticket()
        with self._lock:
            for call in calls:
                found = self._cached(call)
                if found is not None:
                    parts.append(found)
                elif call.key in ticket.own:  # the same prompt twice in one judgment (identical answers)
                    parts.append(_then(ticket.own[call.key][1], lambda r, c=call: self._share(r, c)))
                elif call.key in self._in_flight:  # asked by another judgment of this run
                    part = _then(self._in_flight[call.key], lambda r, c=call: self._share(r, c))
                    shared.append(part)
                    parts.append(part)
                else:
                    ticket.own[call.key] = (call, Future())
                    ticket.stored[call.key] = self._in_flight[call.key] = Future()
                    parts.append(ticket.own[call.key][1])
        if ticket.own:
            self._used = True
            # The claim is asked for once the shared replies are in: a claim is never held while
            # waiting on another judgment, so runs that share calls in different orders never deadlock.
            when_all_done(shared, lambda: self._queue.put(list(ticket.own), lambda: self._settled(ticket),
                                                           lambda claim: self._granted(ticket, claim),
                                                           lambda exc: _fail_all(ticket, exc)))
        return parts, ticket

    def _settled(self, ticket: Ticket) -> bool:
        self._refresh()
        return all(self._cached(call) is not None for call, _ in ticket.own.values())

    def _granted(self, ticket: Ticket, claim: Claim | None) -> None:
        with self._lock:
            ticket.claim = claim
            self._held[id(ticket)] = ticket  # release() or close() lets it go
        self._refresh()  # the run that held the claim before us may have stored these replies
        for call, reply in ticket.own.values():
            found = self._cached(call)
            if found is not None:
                _resolve(reply, found, None)
            else:
                self._start(call, reply)

    def release(self, ticket: Ticket, for_sharers: dict[str, object]) -> None:
        """The judgment's record is written (or could not be): release its claim, hand its replies over."""
        with self._lock:
            self._held.pop(id(ticket), None)
            claim, ticket.claim = ticket.claim, None
            for key, stored in ticket.stored.items():
                if self._in_flight.get(key) is stored:
                    del self._in_flight[key]
        if claim is not None:
            self.folder.release(claim)
        for key, stored in ticket.stored.items():
            _resolve(stored, for_sharers.get(key), ClaimsClosed())

    def close(self) -> None:
        """Stop claiming, release what is still held (a run stopped early), sweep the claim folder."""
        self._queue.close()
        with self._lock:
            claims = [t.claim for t in self._held.values() if t.claim is not None]
            for ticket in self._held.values():
                ticket.claim = None
            self._held = {}
            waited_on, self._in_flight = list(self._in_flight.values()), {}
        for claim in claims:
            self.folder.release(claim)
        for stored in waited_on:  # judgments sharing a call that will not be made now
            _resolve(stored, None, ClaimsClosed())
        if self._used:
            self.folder.sweep()


def _then(future: Future, convert: Callable) -> Future:
    """A future of ``convert(future's result)``."""
    converted: Future = Future()

    def done(source: Future) -> None:
        try:
            value = convert(source.result())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            _resolve(converted, None, exc)
            return
        _resolve(converted, value, None)

    future.add_done_callback(done)
    return converted


def when_all_done(futures: list[Future], then: Callable[[], None]) -> None:
    """Call ``then`` once every future is done (at once when there are none), from the last one's thread."""
    if not futures:
        then()
        return
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then()

    for future in futures:
        future.add_done_callback(one_done)


def _fail_all(ticket: Ticket, exc: BaseException) -> None:
    for _, reply in ticket.own.values():
        _resolve(reply, None, exc)


def _resolve(future: Future, value, exc: BaseException | None) -> None:
    """Set a future's result (or exception, when ``value`` is None) unless it is set already."""
    try:
        if value is None and exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
    except InvalidStateError:
        pass
