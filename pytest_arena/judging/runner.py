"""Judging: the review cache first, then the judge, through a bounded pool of threads.

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
from ..plan import Battle, Scoring
from ..store import JsonlAppender, JsonlFollower, cache_key
from ..tally import Tally
from .claims import PaidOnce, Ticket, when_all_done
from .openai_judge import JudgeCallError
from .parsers import ParsedVerdict, VerdictParseError, parse_verdict
from .review_records import review_record
from .templates import ChoiceLog, PromptTemplate, choose_template, template_values
from .turns import answer_up_to, judged_turns, up_to_turn

EXCERPT = 300
# A verdict about the answers as shown ("A" first) -> the battle's own sides.
SIDE = {False: {"A": "model_a", "B": "model_b", "tie": "tie"}, True: {"A": "model_b", "B": "model_a", "tie": "tie"}}


@dataclass(frozen=True)
class Call:
    """One request to the judge: which template, the prompt, its cache key, and the order shown."""

    template: PromptTemplate
    prompt: str
    key: str
    swapped: bool = False  # model_b's answer was shown as assistant A
    # For a likelihood verdict, the judge compares the answers themselves, not a prompt about them:
    # (question turns, answer A's turns, answer B's turns), in the order shown.
    exchange: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    # The answers shown, as (label, turns): a verdict the judge copied out of one is no verdict.
    quoted: tuple[tuple[str, tuple[str, ...]], ...] = ()


# How the parser names an answer slot in ``verdict_source`` ("ignored 1 token quoted from answer B").
QUOTED_LABELS = {"answer_a": "answer A", "answer_b": "answer B", "answer": "the answer"}


@dataclass(frozen=True)
class CallResult:
    call: Call
    text: str
    verdict: ParsedVerdict | None
    cached: bool
    error: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None

    @property
    def winner(self) -> str | None:
        """The verdict in the battle's own terms: model_a, model_b or tie."""
        if self.verdict is None or self.verdict.winner is None:
            return None
        return SIDE[self.call.swapped][self.verdict.winner]


@dataclass(frozen=True)
class Judgment:
    """The outcome of one battle or scoring: what the items report and the ratings count."""

    match: Battle | Scoring
    results: tuple[CallResult, ...]
    winner: str | None = None  # pairwise: model_a, model_b or tie (swap: both orders combined)
    games: tuple[tuple[str, float], ...] = ()  # (winner, weight) rows the ratings count
    score: float | None = None  # single mode
    error: str | None = None
    turn: int | None = None  # judge_turns each: the turn this judgment is about (None: the whole conversation)
    turns: tuple["Judgment", ...] = ()  # judge_turns each: the match's judgment per turn, combined in this one

    @classmethod
    def of_turns(cls, match: Battle | Scoring, parts: list["Judgment"]) -> "Judgment":
        """A match judged per turn: every turn's games count (FastChat counts both turns of MT-bench),
        a score is the mean over the turns, and the match fails when any turn's judgment failed."""
        results = tuple(r for part in parts for r in part.results)
        errors = [f"turn {part.turn}: {part.error}" for part in parts if part.error]
        if errors:
            return cls(match, results, error="; ".join(errors), turns=tuple(parts))
        if isinstance(match, Scoring):
            return cls(match, results, score=sum(p.score for p in parts) / len(parts), turns=tuple(parts))
        games = tuple(game for part in parts for game in part.games)
        # The item's verdict: the side that won more of the turns' games.
        lead = sum(w if winner == "model_a" else -w if winner == "model_b" else 0.0 for winner, w in games)
        winner = "model_a" if lead > 0 else "model_b" if lead < 0 else "tie"
        return cls(match, results, winner=winner, games=games, turns=tuple(parts))

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cached(self) -> bool:
        return bool(self.results) and all(r.cached for r in self.results)

    @property
    def template(self) -> str:
        """The template's name; judged per turn, each turn's (``pair-v2, pair-v2-multi-turn``)."""
        return ", ".join(dict.fromkeys(r.call.template.name for r in self.results))

    @property
    def consistent(self) -> bool | None:
        """Under swap_position: whether both orders gave the same verdict."""
        if len(self.results) != 2 or any(r.winner is None for r in self.results):
            return None
        return self.results[0].winner == self.results[1].winner

    def excerpt(self) -> str:
        failed = [r for r in self.results if r.error] or list(self.results)
        text = " ".join((failed[0].text if failed else "").split())
        return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]

    def summary(self) -> dict:
        """What the ratings need, as plain data: how an xdist worker sends the judgment to the controller."""
        return {"id": self.match.id, "winner": self.winner, "games": [list(game) for game in self.games],
                "score": self.score, "error": self.error, "turn": self.turn,
                "turns": [part.summary() for part in self.turns]}

    @classmethod
    def from_summary(cls, match: Battle | Scoring, summary: dict) -> "Judgment":
        """The judgment a ``summary`` describes; the judge's replies stay in the review file."""
        return cls(match, (), winner=summary["winner"], games=tuple((w, float(x)) for w, x in summary["games"]),
                   score=summary["score"], error=summary["error"], turn=summary.get("turn"),
                   turns=tuple(cls.from_summary(match, part) for part in summary.get("turns", ())))


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

    def cost(self, spec: JudgeSpec) -> float | None:
        if spec.prompt_cost_per_1m is None and spec.completion_cost_per_1m is None:
            return None
        return (self.prompt_tokens * (spec.prompt_cost_per_1m or 0)
                + self.completion_tokens * (spec.completion_cost_per_1m or 0)) / 1e6


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
        self._replies = _index_replies(self._follower.read_new())
        self._replies_lock = threading.Lock()
        self._parsed: dict[str, ParsedVerdict] = {}
        self._pool = ThreadPoolExecutor(max_workers=spec.max_concurrency, thread_name_prefix="arena-judge")
        # A call in flight is shared by every judgment of this run that needs it, and claimed across
        # the runs on this review file before it is asked.
        self._paid_once = PaidOnce(review_file, cached=self._from_cache, refresh=self._catch_up,
                                   start=self._start, share=_shared)
        self._unwritable: str | None = None  # why the review file cannot be written: judging has stopped
        self._cancelled = False  # closed without waiting: calls cut off in flight are no verdicts
        self.call_limit = None  # budget.CallLimit: no call past reviews_gen.max_calls
        self._tell_choice = ChoiceLog(log)  # which template judges each category, said once

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

    def _catch_up(self) -> None:
        """Take in the replies that other runs on the same review file stored since we last looked."""
        with self._replies_lock:
            self._replies.update(_index_replies(self._follower.read_new()))

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
        if self.call_limit is not None and not self.call_limit.take():
            return CallResult(call, "", None, cached=False, error=self.call_limit.refusal)
        self.counters.add(calls=1)
        try:
            if call.exchange is not None:
                reply = self.judge.compare(*call.exchange, output_format=call.template.output_format)
            else:
                reply = self.judge.complete(call.template.system_prompt, call.prompt, call.template.output_format)
        except (JudgeCallError, ValueError) as exc:  # ValueError: a judge that cannot answer this format
            return CallResult(call, "", None, cached=False, error=f"judge call failed: {exc}")
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
                              finish_reason=reply.finish_reason, usage=usage)
        return CallResult(call, reply.text, verdict, cached=False, finish_reason=reply.finish_reason, usage=usage)

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
        finally:  # whatever happened, the claim goes and the judgments sharing these calls hear of it
            self._paid_once.settle(ticket, {r.call.key: r if stored else _unstored(r, self._unwritable)
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

    def _record(self, judgment: Judgment) -> None:
        self._reviews.append(review_record(judgment, self.spec))
        for result in judgment.results:
            if result.error is None:
                self._replies[result.call.key] = result.text

    def close(self, wait: bool = True) -> None:
        self._cancelled = not wait
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._paid_once.close()
        self._reviews.close()


def combine(match, results: tuple[CallResult, ...], spec: JudgeSpec) -> Judgment:
    """The match's judgment from its calls' verdicts: a score, one game, or (under swap_position) the
    two orders as one game (FastChat's consistent rule) or as two (arena-hard's independent rule)."""
    errors = [r.error for r in results if r.error]
    if errors:
        return Judgment(match, results, error="; ".join(errors))
    if isinstance(match, Scoring):
        score = results[0].verdict.score
        if score is None:
            return Judgment(match, results, error="the judge gave no score (expected a [[rating]] template)")
        return Judgment(match, results, score=score)
    winners = [r.winner for r in results]
    if None in winners:
        return Judgment(match, results, error="the judge gave no pairwise verdict (expected an [[A]] template)")
    weights = [spec.strong_verdict_weight if r.verdict.strength == 2 else 1.0 for r in results]
    if len(results) == 1:
        return Judgment(match, results, winner=winners[0], games=((winners[0], weights[0]),))
    combined = winners[0] if winners[0] == winners[1] else "tie"
    if spec.swap_rule == "independent":  # arena-hard: each order is a game of its own
        games = tuple(zip(winners, weights))
    else:  # consistent (FastChat): one game, a disagreement is a tie
        games = ((combined, min(weights) if combined != "tie" else 1.0),)
    return Judgment(match, results, winner=combined, games=games)


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
