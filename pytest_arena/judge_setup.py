"""The run's judge, built: the backend behind a ``LazyJudge`` (loaded on the first call the review cache
cannot answer), wrapped in a ``MatchJudge`` with the run's templates, review file, identity and budget; for a panel of
judges (``reviews_gen.reviewer`` as a list), one such judge per member in a ``PanelJudge``.

``judge_identity`` is what makes a judge's replies reusable (part of every review cache key);
``probe_judge`` is a judge that asks nothing, for counting what the review cache holds.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from .backends import judge_backend
from .batch_judging import pending_keys
from .budget import call_limit, priced_spec
from .file_names import member_reviews
from .generation.fingerprint import DigestMemo, checkpoint_fingerprint
from .judging.match_judge import MatchJudge
from .judging.templates import choose_template, skipped_reference_template
from .plan import ArenaPlan


def make_match_judge(plan: ArenaPlan, role, budget, judged: list, cache_dir, memo: DigestMemo,
                     log: Callable[[str], None]) -> MatchJudge:
    """The judge of a run whose process plays ``role`` (under xdist the workers share max_concurrency)
    and which judges the matches ``judged``; a ``PanelJudge`` for a panel of judges (judging/panel.py)."""
    review = plan.config.review
    log_template_choices(plan, judged, log)
    if review.panel:
        from .judging.panel import PanelJudge

        members = [(spec.model, _one_judge(plan, spec, member_reviews(review.review_file, spec.model), role, cache_dir,
                                           memo, log)) for spec in review.panel]
        panel = PanelJudge(members, review.judge, review.panel_rule, review.review_file, log)
        # One limit for every judge's calls (N judges: N times the calls), at the dearest judge's prices.
        panel.call_limit = call_limit(budget, priced_spec(review), review.review_file, role.run_id, log)
        return panel
    match_judge = _one_judge(plan, review.judge, review.review_file, role, cache_dir, memo, log)
    # No call past reviews_gen.max_calls or max_cost (budget.py, spend.py): the run's, shared by its xdist workers.
    match_judge.call_limit = call_limit(budget, review.judge, review.review_file, role.run_id, log)
    return match_judge


def _one_judge(plan: ArenaPlan, spec, review_file, role, cache_dir, memo: DigestMemo,
               log: Callable[[str], None]) -> MatchJudge:
    """One judge (the run's, or one of a panel's) asking into ``review_file``, its cache."""
    review = plan.config.review
    backend = judge_backend(spec)
    if backend.converts_gguf:
        def load_judge(spec=spec):
            from .generation.gguf import loadable

            log(f"judge: loading local model {spec.checkpoint.path}")
            checkpoint = loadable(spec.checkpoint, cache_dir, memo, log)
            return backend.load()(dataclasses.replace(spec, checkpoint=checkpoint))
    else:
        def load_judge(spec=spec):
            return backend.load()(spec)

        if role.workers > 1:  # max_concurrency is the whole run's: the workers share it
            spec = dataclasses.replace(spec, max_concurrency=-(-spec.max_concurrency // role.workers))
    # Built on the first call the review cache cannot answer: a cached rerun loads no model and
    # never imports openai (seconds).
    judge = LazyJudge(load_judge)
    match_judge = MatchJudge(judge, spec, plan.templates, review_file, judge_identity(spec, memo), log,
                             judge_turns=review.judge_turns)
    # Calls a pending provider batch holds are paid: no run asks them live until it is collected (batch_judging).
    match_judge.batch.pending = pending_keys(review_file)
    return match_judge


def probe_judge(plan: ArenaPlan, memo: DigestMemo) -> MatchJudge:
    """A judge that asks nothing: what the matches would ask, and what the review cache holds."""
    review = plan.config.review
    if review.panel:
        from .judging.panel import PanelJudge

        members = [(spec.model, _probe(plan, spec, member_reviews(review.review_file, spec.model), memo))
                   for spec in review.panel]
        return PanelJudge(members, review.judge, review.panel_rule, review.review_file)
    return _probe(plan, review.judge, review.review_file, memo)


def _probe(plan: ArenaPlan, spec, review_file, memo: DigestMemo) -> MatchJudge:
    probe = MatchJudge(None, spec, plan.templates, review_file, judge_identity(spec, memo),
                       judge_turns=plan.config.review.judge_turns)
    probe.batch.pending = pending_keys(review_file)  # paid already: the budget's estimate skips them
    return probe


def log_template_choices(plan: ArenaPlan, judged: list, log: Callable[[str], None]) -> None:
    """Say once per category when questions without reference answers get the general template."""
    kind = "single" if plan.mode == "single" else "pairwise"
    reported = set()
    for question in {m.question.key: m.question for m in judged}.values():
        skipped = skipped_reference_template(plan.templates, kind, question)
        if skipped is not None and question.category not in reported:
            reported.add(question.category)
            used = choose_template(plan.templates, kind, question)
            log(f"category {question.category!r}: questions without a reference answer are judged with "
                f"{used.name!r} instead of {skipped.name!r}")


def judge_identity(spec, memo: DigestMemo) -> str:
    """What makes a judge's replies reusable: the API model's name, or a local checkpoint's bytes."""
    if spec.is_local:
        checkpoint = checkpoint_fingerprint(spec.checkpoint.path, spec.checkpoint.revision,
                                            spec.checkpoint.gguf_file, memo)
        return f"local:{checkpoint}:{spec.checkpoint.precision}:{spec.verdict}"
    return f"openai:{spec.model}"


class LazyJudge:
    """A judge built on its first call, once, whatever the number of threads calling."""

    def __init__(self, build: Callable[[], object]):
        self._build = build
        self._judge = None
        self._lock = threading.Lock()

    def complete(self, *args, **kwargs):
        return self._built().complete(*args, **kwargs)

    def compare(self, *args, **kwargs):
        return self._built().compare(*args, **kwargs)

    def _built(self):
        with self._lock:
            if self._judge is None:
                self._judge = self._build()
        return self._judge

    def close(self) -> None:
        with self._lock:
            if self._judge is not None:
                self._judge.close()
