"""``MatchJudge``: matches into judge calls, the review cache first, then the judge, through a bounded
pool of threads; the calls' replies combined into ``Judgment``s (``judgment.py``) and recorded.

A battle is one judge call, or two under ``swap_position`` (both orders); a scoring (single mode)
is one call. Calls are submitted as soon as their answers exist, so up to ``max_concurrency`` are in
flight whatever order pytest later asks for the results in. Each finished judgment is appended to
the review file at once. That file is also the cache: every reply in it is indexed by its call's key
and reused when it still parses; a call that failed left no reply, so the next run asks again.
"""

from __future__ import annotations

import dataclasses
import errno
import random
import threading
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import JudgeSpec
from ..errors import ArenaConfigError
from ..generation.answers import Answer
from ..matches import Battle, Scoring
from ..record_files import JsonlAppender, JsonlFollower, cache_key
from ..tally import Tally
from .batch_answers import BatchAnswers
from .claims import PaidOnce, Ticket, when_all_done
from .judgment import QUOTED_LABELS, Call, CallResult, Judgment, combine
from .openai_judge import JudgeCallError
from .parsers import ParsedVerdict, VerdictParseError, parse_verdict
from .review_records import LatestVerdicts, review_record
from .templates import ChoiceLog, PromptTemplate, choose_template, template_values
from .turns import answer_up_to, judged_turns, up_to_turn

@dataclass
class JudgeCounters(Tally):
    calls: int = 0
    cached: int = 0
    failed: int = 0
    reasked: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    swapped_pairs: int = 0
    consistent_pairs: int = 0
    batched: int = 0  # of ``calls``: answered by a provider batch (batch_judging.py), paid at the batch price
    batch_prompt_tokens: int = 0  # of ``prompt_tokens``
    batch_completion_tokens: int = 0

    def cost(self, spec: JudgeSpec) -> float | None:
        if spec.prompt_cost_per_1m is None and spec.completion_cost_per_1m is None:
            return None
        from ..budget import batch_prices

        batch_prompt, batch_completion = batch_prices(spec)[:2]
        return ((self.prompt_tokens - self.batch_prompt_tokens) * (spec.prompt_cost_per_1m or 0)
                + (self.completion_tokens - self.batch_completion_tokens) * (spec.completion_cost_per_1m or 0)
                + self.batch_prompt_tokens * batch_prompt + self.batch_completion_tokens * batch_completion) / 1e6


class MatchJudge:
    """Turns battles and scorings into judge calls, runs them, and combines the verdicts."""

    def __init__(self, judge, spec: JudgeSpec, templates: list[PromptTemplate], review_file: Path,
                 judge_identity: str, log: Callable[[str], None] = lambda message: None, judge_turns: str = "whole"):
        self.judge = judge
        self.spec = spec
        self.judge_turns = judge_turns  # reviews_gen.judge_turns: the whole conversation, or each turn (turns.py)
        self.templates = templates
        self.judge_identity = judge_identity
        self.log = log
        self.counters = JudgeCounters()
        self._reviews = JsonlAppender(review_file)
        self._follower = JsonlFollower(review_file)
        records = self._follower.read_new()
        self._replies = _index_replies(records)
        self._latest = LatestVerdicts(records)  # what each match's latest record says: a cached verdict's need of one
        self._replies_lock = threading.Lock()
        self._parsed: dict[str, ParsedVerdict] = {}
        self._pool = ThreadPoolExecutor(max_workers=spec.max_concurrency, thread_name_prefix="arena-judge")
        # A call in flight is shared by every judgment of this run that needs it, and claimed across
        # the runs on this review file before it is asked.
        self._paid_once = PaidOnce(review_file, cached=self._from_cache, refresh=self.refresh,
                                   start=self._start, share=_shared)
        self._unwritable: str | None = None  # why the review file cannot be written: judging has stopped
        self._cancelled = False  # closed without waiting: calls cut off in flight are no verdicts
        self.call_limit = None  # spend.CallLimit: no call past reviews_gen.max_calls, none past max_cost
        self._tell_choice = ChoiceLog(log)  # which template judges each category, said once
        self.batch = BatchAnswers()  # what provider batches answered, taken instead of a live call (batch_judging.py)

    # -- what would be asked ------------------------------------------------------------------------

    def calls(self, match: Battle | Scoring, answers: dict[str, Answer], turn: int | None = None) -> list[Call]:
        """The calls that judge the match at ``turn`` (None: the whole conversation at once)."""
        question = up_to_turn(match.question, turn)
        if isinstance(match, Scoring):
            template = choose_template(self.templates, "single", question)
            answer = answer_up_to(answers[match.model].turns, turn)
            return [self._call(template, question, {"answer": answer}, swapped=False)]
        template = choose_template(self.templates, "pairwise", question)
        orders = {None: [False], "swap_position": [False, True]}.get(self.spec.position_bias_mitigation)
        if orders is None:  # randomize_order: one call, its order drawn per battle, not per run
            orders = [random.Random(f"{self.spec.random_seed}:{match.id}").random() < 0.5]
        a, b = answer_up_to(answers[match.model_a].turns, turn), answer_up_to(answers[match.model_b].turns, turn)
        return [
            self._call(template, question, {"answer_a": b, "answer_b": a} if swapped else {"answer_a": a, "answer_b": b},
                       swapped)
            for swapped in orders
        ]

    def _call(self, template: PromptTemplate, question, slots: dict, swapped: bool) -> Call:
        exchange = None
        if self.spec.verdict == "likelihood":
            exchange = (tuple(question.turns), tuple(slots["answer_a"]), tuple(slots["answer_b"]))
        prompt = template.render(template_values(question, slots))
        self._tell_choice(template, question.category)
        key = cache_key(
            kind="review",
            judge=self.judge_identity,
            template=template.name,
            template_digest=template.digest,
            system_prompt=template.system_prompt,
            prompt=prompt,
            temperature=self.spec.temperature,
            max_tokens=self.spec.max_tokens,
        )
        quoted = tuple((QUOTED_LABELS[slot], tuple(turns)) for slot, turns in slots.items())
        return Call(template, prompt, key, swapped, exchange, quoted)

    def cached_calls(self, match, answers) -> int:
        return sum(self._from_cache(call) is not None for turn in judged_turns(match.question, self.judge_turns)
                   for call in self.calls(match, answers, turn))

    def uncached_calls(self, match, answers) -> list[Call]:
        """The match's calls that the review cache cannot answer: each would be paid (budget.py)."""
        return [call for turn in judged_turns(match.question, self.judge_turns)
                for call in self.calls(match, answers, turn) if self._from_cache(call) is None]

    # -- running ------------------------------------------------------------------------------------

    def submit(self, match: Battle | Scoring, answers: dict[str, Answer]) -> Future:
        """A future Judgment; cache hits resolve at once, a call in flight for another judgment is
        shared, the rest are claimed (across runs on the review file) and asked in the pool."""
        turns = judged_turns(match.question, self.judge_turns)
        if turns == (None,):
            return self._submit_turn(match, answers, None)
        return _gather([self._submit_turn(match, answers, turn) for turn in turns],
                       lambda done: Judgment.of_turns(match, done))

    def _submit_turn(self, match: Battle | Scoring, answers: dict[str, Answer], turn: int | None) -> Future:
        parts, ticket = self._paid_once.plan(self.calls(match, answers, turn))
        return _gather(parts, lambda done: self._finish(match, done, ticket, turn))

    @property
    def unwritable(self) -> str | None:
        return self._unwritable  # why the review file cannot be written (judging has stopped), or None

    def refresh(self) -> None:
        """Take in the replies that other runs on the same review file stored since we last looked."""
        with self._replies_lock:
            records = self._follower.read_new()
            self._replies.update(_index_replies(records))
            self._latest.add(records)

    def _start(self, call: Call, reply: Future) -> None:
        """Ask in the pool; ``reply`` gets the CallResult (a failure of ours is a failed call, not a hang)."""
        def ask() -> None:
            try:
                result = self._ask(call)
            except Exception as exc:  # noqa: BLE001
                result = CallResult(call, "", None, cached=False, error=f"judge call failed: {exc!r}")
            try:
                reply.set_result(result)
            except InvalidStateError:  # the judge was closed meanwhile
                pass

        self._pool.submit(ask)

    def _from_cache(self, call: Call) -> CallResult | None:
        text = self._replies.get(call.key)
        if text is None:
            return None
        # --collect-only and the run both look replies up: each is parsed once.
        verdict = self._parsed.get(call.key)
        if verdict is None:
            try:  # a stored reply the current parser cannot read is asked again
                verdict = self._parse(text, call)
            except VerdictParseError:
                return None
            self._parsed[call.key] = verdict
        return CallResult(call, text, verdict, cached=True)

    def _parse(self, text: str, call: Call) -> ParsedVerdict:
        # A likelihood verdict is our own line, not the judge's writing: nothing in it was copied.
        quoted = dict(call.quoted) if call.exchange is None else None
        return parse_verdict(self.spec.fn_completion_parser, text, call.template.output_format, quoted)

    def _ask(self, call: Call) -> CallResult:
        if self._unwritable:  # a verdict that cannot be stored is not paid for
            return CallResult(call, "", None, cached=False, error=self._unwritable)
        answered = self.batch.answer(call, self._result_of, self.counters)
        if answered is not None:
            if answered.error:
                self.counters.add(failed=1)
            return answered
        attempts = 2 if self.spec.reask_unparseable else 1
        for attempt in range(attempts):
            if attempt:
                self.counters.add(reasked=1)
            result = self._ask_once(call)
            if result.error is None or result.text == "":
                break
        if result.error and not self._cancelled:
            self.counters.add(failed=1)
        return result

    def _ask_once(self, call: Call) -> CallResult:
        hold = self.call_limit.take(call) if self.call_limit is not None else None
        if hold is not None and hold.refused:  # past max_calls, or its worst case would pass max_cost
            return CallResult(call, "", None, cached=False, error=hold.refused)
        self.counters.add(calls=1)
        reply = None
        try:
            if call.exchange is not None:
                reply = self.judge.compare(*call.exchange, output_format=call.template.output_format)
            else:
                reply = self.judge.complete(call.template.system_prompt, call.prompt, call.template.output_format)
        except (JudgeCallError, ValueError) as exc:  # ValueError: a judge that cannot answer this format
            return CallResult(call, "", None, cached=False, error=f"judge call failed: {exc}")
        finally:
            if hold is not None:  # settled at the reply's usage; no reply: its worst case stays spent
                hold.settle(reply)
        return self._result_of(call, reply)

    def _result_of(self, call: Call, reply, batch_id: str | None = None) -> CallResult:
        """A reply (live, or read from a batch) as the call's result: parsed, its usage counted."""
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        self.counters.add(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
        truncated = reply.finish_reason == "length"
        self.counters.add(truncated=int(truncated))
        try:
            verdict = self._parse(reply.text, call)
        except (VerdictParseError, ValueError) as exc:
            cut = " (the reply was cut off at max_tokens: finish_reason length)" if truncated else ""
            if reply.finish_reason == "content_filter":
                cut = " (the judge's content filter stopped the reply)"
            return CallResult(call, reply.text, None, cached=False, error=f"unparseable verdict{cut}: {exc}",
                              finish_reason=reply.finish_reason, usage=usage, batch_id=batch_id)
        return CallResult(call, reply.text, verdict, cached=False, finish_reason=reply.finish_reason, usage=usage,
                          batch_id=batch_id)

    def _finish(self, match: Battle | Scoring, results: list[CallResult], ticket: Ticket, turn: int | None) -> Judgment:
        stored = False
        try:
            judgment = dataclasses.replace(combine(match, tuple(results), self.spec), turn=turn)
            self.counters.add(cached=sum(r.cached for r in results))
            if judgment.consistent is not None:
                self.counters.add(swapped_pairs=1, consistent_pairs=int(judgment.consistent))
            stored = judgment.cached
            if not judgment.cached and not (judgment.error and self._cancelled):
                judgment, stored = self._store(judgment)
            elif judgment.cached and self._unrecorded(judgment):  # its replies are on file; its verdict is not
                judgment = self._store(judgment)[0]
        finally:  # whatever happened, the claim goes and the judgments sharing these calls hear of it
            self._paid_once.release(ticket, {r.call.key: r if stored else _unstored(r, self._unwritable)
                                            for r in results})
        return judgment

    def _store(self, judgment: Judgment) -> tuple[Judgment, bool]:
        """Write the judgment's review record, and say whether it was. One that cannot be written is a
        failed judgment (its verdict is not counted), and judging stops: no more calls are paid for
        verdicts we could not keep."""
        if self._unwritable is None:
            try:
                self._record(judgment)
                return judgment, True
            except (OSError, ArenaConfigError) as exc:
                self._stop_writing(exc)
        return dataclasses.replace(judgment, winner=None, games=(), score=None, error=self._unwritable), False

    def _stop_writing(self, exc: Exception) -> None:
        with self._replies_lock:
            first, self._unwritable = self._unwritable is None, self._unwritable or _unwritable(self._reviews.path, exc)
        if first:  # one line for the run; each battle it stops fails with the same reason
            self.log(f"judge: {self._unwritable}; judging stopped (no more calls are paid for)")

    # -- the review file ----------------------------------------------------------------------------

    def _unrecorded(self, judgment: Judgment) -> bool:
        """A verdict read from stored replies (another battle's call, or an earlier run's) that the review
        file's latest record of its match does not give: it gets a record of its own (review_records)."""
        if self._latest.on_file(review_record(judgment, self.spec)):
            return False
        self.refresh()  # another run on this file may have written it meanwhile
        return not self._latest.on_file(review_record(judgment, self.spec))

    def _record(self, judgment: Judgment) -> None:
        record = review_record(judgment, self.spec)
        self._reviews.append(record)
        self._latest.add([record])
        for result in judgment.results:
            if result.error is None:
                self._replies[result.call.key] = result.text

    def close(self, wait: bool = True) -> None:
        self._cancelled = not wait
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._paid_once.close()
        self._reviews.close()


def _unwritable(path: Path, exc: Exception) -> str:
    """Why a verdict is not counted: its record could not be written (``ENOSPC: No space left on device``)."""
    code = errno.errorcode.get(getattr(exc, "errno", None) or 0)
    reason = f"{code}: {exc.strerror}" if code and getattr(exc, "strerror", None) else str(exc)
    return f"not counted: the review file {path} could not be written ({reason})"


def _shared(result: CallResult, call: Call) -> CallResult:
    """Another judgment's stored reply to the same prompt, as this judgment's own: from the cache."""
    return dataclasses.replace(result, call=call, cached=result.error is None, usage=None)


def _unstored(result: CallResult, reason: str | None) -> CallResult:
    """A reply whose record was not written: no verdict for the judgments that shared it."""
    return dataclasses.replace(result, verdict=None, cached=False,
                               error=reason or result.error or "the reply was not stored")


def _index_replies(records: list[dict]) -> dict[str, str]:
    """Call key -> the judge's reply, from every record (single calls and both halves of swaps)."""
    replies = {}
    for record in records:
        for suffix in ("", "_1", "_2"):
            key, text = record.get(f"cache_key{suffix}"), record.get(f"review_text{suffix}")
            if key and text:
                replies[key] = text
    return replies


def _gather(parts: list, combine: Callable[[list], object]) -> Future:
    """One future for several CallResults (done already or futures), resolved by ``combine``."""
    gathered: Future = Future()

    def resolve():
        try:
            gathered.set_result(combine([p.result() if isinstance(p, Future) else p for p in parts]))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the judgment
            gathered.set_exception(exc)

    when_all_done([p for p in parts if isinstance(p, Future)], resolve)
    return gathered
