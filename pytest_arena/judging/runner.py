"""Judging battles: the review cache first, then the judge, through a bounded pool of threads.

Battles are submitted as soon as both answers exist, so up to ``max_concurrency`` judge calls are in
flight whatever order pytest later asks for the results in. Each finished judgment is appended to
the review file at once (it is also the review cache); a judgment that failed is written with
``win: error`` for people to see but is never served from the cache, so the next run asks again.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..config import JudgeSpec
from ..generation.answers import Answer
from ..plan import Battle
from ..store import JsonlAppender, cache_key, read_jsonl
from .openai_judge import JudgeCallError
from .parsers import VerdictParseError, parse_verdict
from .templates import PromptTemplate, choose_template, template_values

WINNER_OF = {"A": "model_a", "B": "model_b", "tie": "tie"}
EXCERPT = 300


@dataclass(frozen=True)
class Judgment:
    battle: Battle
    winner: str | None  # "model_a", "model_b" or "tie"; None when there is no verdict
    review_text: str
    template: str
    cached: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.winner is not None

    def excerpt(self) -> str:
        text = " ".join(self.review_text.split())
        return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]


@dataclass
class JudgeCounters:
    calls: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **amounts):
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


class BattleJudge:
    def __init__(self, judge, spec: JudgeSpec, templates: list[PromptTemplate], review_file: Path):
        self.judge = judge
        self.spec = spec
        self.templates = templates
        self.counters = JudgeCounters()
        self._reviews = JsonlAppender(review_file)
        # Only verdicts are reused: failures must be asked again.
        self._cache = {
            r["cache_key"]: r for r in read_jsonl(review_file)
            if r.get("cache_key") and r.get("win") in WINNER_OF.values()
        }
        self._pool = ThreadPoolExecutor(max_workers=spec.max_concurrency, thread_name_prefix="arena-judge")

    def request(self, battle: Battle, answer_a: Answer, answer_b: Answer) -> tuple[PromptTemplate, str, str]:
        """The template, the rendered prompt and the cache key of a battle's judge call."""
        template = choose_template(self.templates, "pairwise", battle.question)
        prompt = template.render(
            template_values(battle.question, {"answer_a": answer_a.turns, "answer_b": answer_b.turns})
        )
        key = cache_key(
            kind="review",
            judge=self.spec.model,
            template=template.name,
            template_digest=template.digest,
            system_prompt=template.system_prompt,
            prompt=prompt,
            temperature=self.spec.temperature,
            max_tokens=self.spec.max_tokens,
            parser=self.spec.fn_completion_parser,
        )
        return template, prompt, key

    def is_cached(self, battle: Battle, answer_a: Answer, answer_b: Answer) -> bool:
        return self.request(battle, answer_a, answer_b)[2] in self._cache

    def submit(self, battle: Battle, answer_a: Answer, answer_b: Answer) -> Future:
        template, prompt, key = self.request(battle, answer_a, answer_b)
        cached = self._cache.get(key)
        if cached is not None:
            self.counters.add(cached=1)
            done: Future = Future()
            done.set_result(
                Judgment(battle, cached["win"], cached.get("review_text", ""), template.name, cached=True)
            )
            return done
        return self._pool.submit(self._judge, battle, template, prompt, key)

    def _judge(self, battle: Battle, template: PromptTemplate, prompt: str, key: str) -> Judgment:
        self.counters.add(calls=1)
        try:
            reply = self.judge.complete(template.system_prompt, prompt)
        except JudgeCallError as exc:
            self.counters.add(failed=1)
            judgment = Judgment(battle, None, "", template.name, cached=False, error=f"judge call failed: {exc}")
            self._record(judgment, key, usage=None, finish_reason=None)
            return judgment
        self.counters.add(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
        try:
            verdict = parse_verdict(self.spec.fn_completion_parser, reply.text, template.output_format)
            winner, error = WINNER_OF[verdict.winner], None
        except (VerdictParseError, KeyError) as exc:
            self.counters.add(failed=1)
            winner, error = None, f"unparseable verdict: {exc}"
        judgment = Judgment(battle, winner, reply.text, template.name, cached=False, error=error)
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        self._record(judgment, key, usage=usage, finish_reason=reply.finish_reason)
        return judgment

    def _record(self, judgment: Judgment, key: str, usage, finish_reason) -> None:
        battle = judgment.battle
        record = {
            "model_a": battle.model_a,
            "model_b": battle.model_b,
            "win": judgment.winner or "error",
            "question_id": battle.question.question_id,
            "category": battle.question.category,
            "question": battle.question.text,
            "review_text": judgment.review_text,
            "tstamp": time.time(),
            "judge": self.spec.model,
            "template": judgment.template,
            "cache_key": key,
            "usage": usage,
            "finish_reason": finish_reason,
        }
        if judgment.error:
            record["error"] = judgment.error
        self._reviews.append(record)
        if judgment.ok:
            self._cache[key] = record

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._reviews.close()
