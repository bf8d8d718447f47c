"""Batching concurrent calls for a model that runs one batch at a time.

Concurrent ``complete`` calls (the judge pool's threads) are gathered into batches of up to the
checkpoint's ``batch_size``: the first waiting caller leads -- it waits up to ``MAX_WAIT_SECONDS`` for
the batch to fill, runs it for everyone, and hands the results back -- while the others wait; then
the next caller still waiting leads. A caller alone waits at most that long, never for a batch that
never fills. The model runs one batch at a time. A failing batch is retried prompt by prompt, so an
error reaches only the calls it belongs to, as a ``JudgeCallError``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .openai_judge import JudgeCallError


@dataclass(eq=False)
class _Request:
    kind: str
    payload: Any
    arrived: float = field(default_factory=time.monotonic)
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """Gathers concurrent calls into batches; a waiting caller leads (runs) each batch.

    ``run(kind, payloads)`` returns one result per payload. Only requests of one kind share a batch
    (the kind of the oldest waiting request goes first), at most ``max_batch`` of them; the leader
    waits until the oldest request has waited ``max_wait`` seconds or the batch is full.
    """

    def __init__(self, run: Callable[[str, list], list], max_batch: int, max_wait: float):
        self._run = run
        self._max_batch = max(1, max_batch)
        self._max_wait = max_wait
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False

    def submit(self, kind: str, payload: Any) -> Any:
        request = _Request(kind, payload)
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
            try:
                while not request.done:
                    if self._leading:
                        self._cond.wait()
                        continue
                    self._lead()
            except BaseException:
                if request in self._queue:  # interrupted before its batch ran: nobody runs it now
                    self._queue.remove(request)
                raise
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self) -> None:
        """Gather one batch and run it, with the lock held on entry and exit (not while running)."""
        self._leading = True
        taken: list[_Request] = []
        try:
            first = self._queue[0]
            deadline = first.arrived + self._max_wait
            while True:
                batch = [r for r in self._queue if r.kind == first.kind][: self._max_batch]
                remaining = deadline - time.monotonic()
                if len(batch) >= self._max_batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            for request in batch:
                self._queue.remove(request)
            taken = batch
            self._cond.release()
            try:
                self._execute(first.kind, taken)
            finally:
                self._cond.acquire()
        finally:
            for request in taken:
                if not request.done:  # only when running was interrupted
                    request.error = JudgeCallError("the judge was interrupted")
                    request.done = True
            self._leading = False
            self._cond.notify_all()

    def _execute(self, kind: str, batch: list[_Request]) -> None:
        try:
            results = self._run(kind, [r.payload for r in batch])
        except Exception as exc:  # noqa: BLE001 - reported to the calls of this batch
            error = as_call_error(exc)  # its text only: the traceback stays behind
        else:
            for request, result in zip(batch, results):
                request.result = result
                request.done = True
            return
        # Out of the handler, the exception and its traceback are gone, and with them the frames that
        # held the failed pass's activations: an out-of-memory batch frees them before the retries.
        release_memory()
        if len(batch) == 1:
            batch[0].error = error
            batch[0].done = True
            return
        # One bad prompt (too long, say) or a batch too large for the memory left must not fail the
        # others: run them one by one.
        for request in batch:
            self._execute(kind, [request])


def release_memory() -> None:
    """Hand the memory a failed pass freed back to the device, so the next pass can use it."""
    import gc
    import sys

    gc.collect()  # tensors caught in reference cycles too
    torch = sys.modules.get("torch")  # a model ran, so torch is loaded; nothing to do otherwise
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def as_call_error(exc: BaseException) -> JudgeCallError:
    if isinstance(exc, JudgeCallError):
        return exc
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:300] + "..."
    # Not chained: the original's traceback would keep the batch's tensors (and the model) alive.
    return JudgeCallError(f"{type(exc).__name__}: {text}")
