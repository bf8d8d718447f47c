"""The judge budget during the run: no call past ``max_calls``, and none whose worst case would pass ``max_cost``.

The estimate before the first call (budget.py) counts one call per prompt and its tokens as characters / 4;
re-asks and prompts whose tokens outnumber that (CJK text: about one token per character) can spend more.
So the run also holds a running bound, per logical judge call (a re-ask is a call of its own):

- Before a call is made, its worst case is reserved (``worst_case``): as prompt tokens, the UTF-8 bytes of
  every message plus ``CHAT_OVERHEAD_TOKENS`` per message, and ``max_tokens`` as completion tokens, at the
  judge's prices. A byte-level BPE tokenizer (GPT-4's, Llama 3's, Qwen's) never makes more tokens of a text
  than its UTF-8 bytes, nor does a SentencePiece one with byte fallback (Llama 2, Mistral) but for the one
  word-start marker it may put before a message; the overhead covers the chat template's role markers and
  the default system line some templates insert. A call whose reservation, added to what was spent and what
  calls in flight hold, would pass ``max_cost`` waits for this process's calls in flight to settle when that
  could make room, else is not made: its battle fails with the reason, and nothing is cached.
- When the reply comes, the reservation is settled at the reply's ``usage`` (prompt_tokens,
  completion_tokens). A call that failed (no reply) or a reply without usage keeps its worst case as spent:
  what it cost cannot be seen. A reply that reports more than its reservation is counted as reported, and
  said once (the bound then holds only as far as the server's counts do).
- The ``openai`` client's own retries (``max_retries``) and a replica list's failover happen inside one
  call and are not seen here: only the reply that came back reports usage.

Under pytest-xdist the workers share one record of the run (``file_names.spend_file``: calls, tokens spent and
tokens held, under the run's id), read and written under a lock between processes, as for ``max_calls``;
the controller removes the run's entry at the end (``end_shared_count``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ArenaDataError
from .file_names import lock_file, spend_file
from .record_files import file_lock, write_atomic

# Tokens a chat template may add per message beyond its text: OpenAI's format adds 3 per message and 3 to
# prime the reply; Llama 3 and ChatML-style templates add a header of a few tokens, and some insert a default
# system line (a date, the model's name) of a few dozen when none is given. 128 is over all of these; at
# judge prices it is a few hundredths of a cent per call, and only calls near the bound feel it.
CHAT_OVERHEAD_TOKENS = 128
WAIT = "wait"  # a decision: calls of this process in flight may free the room this call needs


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    completion: int = 0

    def __add__(self, other: "Tokens") -> "Tokens":
        return Tokens(self.prompt + other.prompt, self.completion + other.completion)

    def __sub__(self, other: "Tokens") -> "Tokens":
        return Tokens(self.prompt - other.prompt, self.completion - other.completion)

    def within(self, other: "Tokens") -> bool:
        return self.prompt <= other.prompt and self.completion <= other.completion

    def cost(self, prices: tuple[float, float]) -> float:
        return (self.prompt * prices[0] + self.completion * prices[1]) / 1e6


def worst_case(call, max_tokens: int) -> Tokens:
    """The most a judge call (judging/judgment.Call) can be billed: see the module docstring."""
    return Tokens(prompt_bound(call.template.system_prompt, call.prompt, call.exchange), max_tokens)


def prompt_bound(system_prompt: str | None, prompt: str, exchange=None) -> int:
    """Prompt tokens no tokenizer of the kinds named above exceeds. A likelihood verdict (``exchange``:
    question turns, answer A's, answer B's) reads each answer's conversation once per turn, up to that turn."""
    if exchange is None:
        messages = [prompt] if not system_prompt else [system_prompt, prompt]
        return sum(_utf8(text) + CHAT_OVERHEAD_TOKENS for text in messages)
    question, *answers = exchange
    total = 0
    for answer in answers:
        so_far = 0
        for asked, answered in zip(question, answer):
            so_far += _utf8(asked) + CHAT_OVERHEAD_TOKENS
            total += so_far + _utf8(answered) + CHAT_OVERHEAD_TOKENS
            so_far += _utf8(answered) + CHAT_OVERHEAD_TOKENS
    return total


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def reported(reply) -> Tokens | None:
    """The reply's usage, or None where it reported none (no reply, or no prompt tokens counted)."""
    if reply is None or reply.prompt_tokens <= 0:
        return None
    return Tokens(reply.prompt_tokens, reply.completion_tokens)


@dataclass
class RunSpend:
    """What a run has used: calls made, tokens spent (settled) and tokens held by calls in flight."""

    calls: int = 0
    spent: Tokens = Tokens()
    held: Tokens = Tokens()

    def as_json(self) -> dict:
        return {"calls": self.calls, "spent": [self.spent.prompt, self.spent.completion],
                "held": [self.held.prompt, self.held.completion]}

    @classmethod
    def from_json(cls, entry, path: Path) -> "RunSpend":
        if entry is None:
            return cls()
        if _count(entry):  # (a count of calls alone)
            return cls(entry)
        if isinstance(entry, dict) and _count(entry.get("calls")) and all(
                isinstance(entry.get(k), list) and len(entry[k]) == 2 and all(map(_count, entry[k]))
                for k in ("spent", "held")):
            return cls(entry["calls"], Tokens(*entry["spent"]), Tokens(*entry["held"]))
        raise ArenaDataError(path, "", f"the judge budget's record of this run is not one we wrote "
                                       f"({str(entry)[:80]}): no call is made past a spend that is not known")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Hold:
    """A call's place in the budget: refused (``refused`` says why), or granted with its worst case reserved
    until ``settle``."""

    def __init__(self, limit: "CallLimit | None", worst: Tokens, refused: str | None = None):
        self._limit, self.worst, self.refused = limit, worst, refused

    def settle(self, reply=None) -> None:
        """The call is over: ``reply`` (a JudgeReply) with its usage, or None (it failed: the worst case stays)."""
        limit, self._limit = self._limit, None
        if limit is not None:
            limit.settle(self.worst, reported(reply))


class CallLimit:
    """Hard bounds on this process's judge calls: ``max_calls`` and ``max_cost`` (None: no such bound); thread-safe."""

    def __init__(self, max_calls: int | None, max_cost: float | None = None, prices: tuple[float, float] = (0.0, 0.0),
                 max_tokens: int = 0, cost_key: str = "reviews_gen.max_cost",
                 log: Callable[[str], None] = lambda message: None):
        self.max_calls, self.max_cost, self.prices, self.max_tokens = max_calls, max_cost, prices, max_tokens
        self.cost_key = cost_key
        self.log = log
        self.made = 0
        self._lock = threading.Condition()
        self._run = RunSpend()  # the run's record (a run alone: this process's)
        self._own_held = Tokens()  # what this process's calls in flight hold
        self._said_over = False
        self._paid_in_batches = 0.0  # the cost of this process's batch calls, at the batch price (``take_batch``)

    @property
    def call_refusal(self) -> str:
        return f"not asked: the judge budget (reviews_gen.max_calls {self.max_calls}) is spent"

    def take(self, call) -> Hold:
        """Count one more call and reserve its worst case, or refuse it (``Hold.refused``)."""
        worst = worst_case(call, self.max_tokens) if self.max_cost is not None else Tokens()
        with self._lock:
            while (decision := self._transact(lambda run: self._decide(run, worst))) == WAIT:
                self._lock.wait()  # (woken by each settle of this process's calls)
            if decision is None:
                self.made += 1
                self._own_held += worst
        if decision is not None:
            return Hold(None, worst, decision)
        return Hold(self if self.max_cost is not None else None, worst)  # (max_calls alone: nothing to settle)

    def take_batch(self, calls: int, worst_cost: float) -> str | None:
        """Count ``calls`` sent in a provider batch (paid at submit, batch_judging.py) and their worst-case cost
        at the batch price; or refuse them all (why, as ``Hold.refused``), before anything is uploaded."""
        def decide(run: RunSpend) -> str | None:
            if self.max_calls is not None and run.calls + calls > self.max_calls:
                return (f"not sent: the judge batch of {calls} calls would pass the judge budget "
                        f"(reviews_gen.max_calls {self.max_calls}, {run.calls} made)")
            spent = (run.spent + run.held).cost(self.prices) + self._paid_in_batches
            if self.max_cost is not None and spent + worst_cost > self.max_cost:
                return (f"not sent: the judge batch of {calls} calls may cost up to {worst_cost:.4g} at the batch "
                        f"price, past the judge budget ({self.cost_key} {self.max_cost:g}, {spent:.4g} spent)")
            run.calls += calls
            return None

        with self._lock:
            refused = self._transact(decide)
            if refused is None:
                self.made += calls
                self._paid_in_batches += worst_cost
        return refused

    def settle_batch(self, worst_cost: float, cost: float) -> None:
        """A batch's replies are read: its calls cost ``cost`` (their usage at the batch price), not their worst
        case."""
        with self._lock:
            self._paid_in_batches += cost - worst_cost
            self._lock.notify_all()

    def settle(self, worst: Tokens, seen: Tokens | None) -> None:
        over = seen is not None and not seen.within(worst)
        with self._lock:
            try:
                self._transact(lambda run: _settled(run, worst, seen if seen is not None else worst))
            finally:  # (a record that cannot be written must not leave this process's waiters waiting)
                self._own_held -= worst
                self._lock.notify_all()
            first_over, self._said_over = over and not self._said_over, self._said_over or over
        if first_over:
            self.log(f"judge budget: a reply reported {seen.prompt} prompt + {seen.completion} completion tokens, more "
                     f"than the {worst.prompt} + {worst.completion} reserved for it (its messages' UTF-8 bytes + "
                     f"{CHAT_OVERHEAD_TOKENS} a message, and max_tokens); it is counted as reported, so "
                     f"{self.cost_key} holds only as far as the server's token counts stay within those bounds")

    def _decide(self, run: RunSpend, worst: Tokens) -> str | None:
        """None: granted (``run`` updated); else WAIT, or why the call is refused."""
        if self.max_calls is not None and run.calls >= self.max_calls:
            return self.call_refusal
        batches = self._paid_in_batches
        if self.max_cost is not None and (run.spent + run.held + worst).cost(self.prices) + batches > self.max_cost:
            without_ours = run.spent + run.held - self._own_held + worst  # were this process's calls free
            if self._own_held != Tokens() and without_ours.cost(self.prices) + batches <= self.max_cost:
                return WAIT
            spent, held, need = (t.cost(self.prices) for t in (run.spent, run.held, worst))
            spent += batches
            in_flight = f" and {held:.4g} held by calls in flight" if held else ""
            return (f"not asked: the judge budget ({self.cost_key} {self.max_cost:g}) has no room for this call: "
                    f"{spent:.4g} spent{in_flight}, and it may cost up to {need:.4g}")
        run.calls += 1
        run.held += worst
        return None

    def _transact(self, change: Callable[[RunSpend], object]):
        return change(self._run)


def _settled(run: RunSpend, worst: Tokens, cost: Tokens) -> None:
    run.held -= worst
    run.spent += cost


class SharedCallLimit(CallLimit):
    """The bounds across the processes of one run (pytest-xdist workers): the run's record is kept in
    ``file_names.spend_file`` under the run's id, read and written under a lock between processes. Each paid call
    costs a lock, a read and a write when it is taken, and under ``max_cost`` again when it is settled; a
    cached call never gets here."""

    def __init__(self, review_file, run_id: str, max_calls: int | None, **bounds):
        super().__init__(max_calls, **bounds)
        self.run_id = run_id
        self.path = spend_file(review_file)

    def _transact(self, change: Callable[[RunSpend], object]):
        # (called under the thread lock: this process's calls queue there, then on the file's lock)
        with file_lock(lock_file(self.path)):
            counts = _read_counts(self.path)
            run = RunSpend.from_json(counts.get(self.run_id), self.path)
            before = run.as_json()
            outcome = change(run)
            if run.as_json() != before:
                counts[self.run_id] = run.as_json()
                write_atomic(self.path, json.dumps(counts))  # a crash mid-write never leaves half a record
            return outcome


def end_shared_count(review_file, run_id: str) -> None:
    """The run is over (the xdist controller, once its workers are down): its record goes, and the file
    with it when no other run on this review file is counting there."""
    path = spend_file(review_file)
    if not path.exists():
        return
    with file_lock(lock_file(path)):  # (the lock file stays: one removed under a waiter would split the lock)
        counts = _read_counts(path)
        counts.pop(run_id, None)
        if counts:
            write_atomic(path, json.dumps(counts))
        else:
            path.unlink(missing_ok=True)


def _read_counts(path: Path) -> dict:
    try:
        counts = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # written only atomically: anything else is not ours to guess at
        problem = str(exc)
    else:
        if isinstance(counts, dict):
            return counts
        problem = f"expected a JSON object, got {type(counts).__name__}"
    raise ArenaDataError(path, "", f"the judge budget's call count cannot be read ({problem}): no call is made past "
                                   "a count that is not known; remove the file if no run is using it")
