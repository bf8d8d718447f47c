"""The runner: answers for every model the run needs, then every match sent to the judge.

Models load one at a time, only when a selected match needs answers that the answer cache lacks,
and each is released before the next loads (a local judge loads after the last candidate is
released). Backends come from ``backends`` by name; under pytest-xdist the process's role
(``distributed``) says which matches are judged here.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from .backends import generator_backend
from .batch_judging import BatchPending, judge_in_batches
from .budget import Budget, BudgetExceeded, before_first_call
from .file_names import lock_file
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo
from .judge_setup import judge_identity, make_match_judge, probe_judge
from .judging.judgment import Judgment
from .judging.match_judge import MatchJudge
from .judging.templates import answer_problem
from .matches import Battle, Scoring
from .plan import ArenaPlan
from .record_files import file_lock

Match = Battle | Scoring


class ArenaRunner:
    def __init__(self, plan: ArenaPlan, role, cache_dir: Path | None, memo: DigestMemo, log: Callable[[str], None]):
        self.plan = plan
        self.config = plan.config
        self.role = role  # distributed.Alone, or an xdist worker's or controller's role
        self.cache_dir = cache_dir
        self.memo = memo
        self.log = log
        self.judged: list[Match] = list(plan.matches)  # the selection, or the whole plan when gates run
        self.answers = AnswerMaker(plan, cache_dir, memo, log)
        self.models_loaded = self.answers.models_loaded
        self.served_counters = self.answers.served_counters
        self.futures: dict[str, Future] = {}
        self.reported: set[str] = set()  # matches whose item took its verdict (xdist controller: received it)
        self.changes = 0  # verdicts received or asked again: the ratings are computed anew
        self.prepared = False
        self._preparation_error: tuple[BaseException, object] | None = None  # and its traceback
        self._told: set[str] = set()  # items that reported the preparation's error
        self._retries_left = True  # a rerun item retries a failed preparation once per run
        self._ready: set[str] = set()  # models whose answers this process holds
        self._generated = False
        self.judge: MatchJudge | None = None
        self.budget = Budget()  # reviews_gen.max_calls/max_cost (budget.py), read at preflight
        self.rounds = None  # early_stop.RoundJudging when judging stops once every gate is decided
        for judgment in plan.recorded:  # a rating-only run: the review file's verdicts, asked of no judge
            self.accept(judgment)

    def needed_models(self) -> list[str]:
        needed = {m for match in self.judged for m in match.models}
        return [name for name in self.plan.participants if name in needed]

    # ---------------------------------------------------------------------------------------------
    # Preparing: answers, then judgments

    def prepare(self) -> None:
        """Answers for every model the selection needs, then every selected match sent to the judge
        (an xdist worker: those of the blocks it takes).

        With an API judge a match is submitted as soon as its answers exist, so judging overlaps the
        generation of later models. A local judge is a model too: it loads only after the last
        candidate has been released, so two models never share the memory.

        Done only once it has finished: an attempt cut short (a timeout, a failed load) is taken up
        again where it stopped by the next call, never passed over as if it had finished.
        """
        if self.prepared:
            return
        review = self.config.review
        # (under a budget or in batches, judging waits for every answer: the calls are counted, or sent, at once)
        local = any(j.is_local for j in review.panel or (review.judge,))  # (a panel: any of its judges)
        if review.enable and not local and self.judge is None and not self.budget.active \
                and not review.judge.batch:
            self.judge = self._make_judge()
        waiting = [name for name in self.needed_models() if name not in self._ready]
        while waiting:
            # Processes sharing the run (xdist workers) share the models: each takes one that nobody
            # is generating, and waits for another's only when every model left is taken.
            name = next((n for n in waiting if self.answers.answers_for(n, wait=False)), None)
            if name is None:
                name = waiting[0]
                self.answers.answers_for(name)
            waiting.remove(name)
            self._ready.add(name)
            if self.judge is not None:
                self._submit_ready()
        if review.enable and self.judge is None:
            before_first_call(self)  # over the budget: BudgetExceeded, and no call is made
            judge = self._make_judge()
            self.futures.update(judge_in_batches(self, judge))  # reviewer.args.batch: provider batches first
            self.judge = judge
        self._generated = True
        self.catch_up()
        if self.rounds is not None:
            self.rounds.judge(self)  # round by round, until every gate is decided (early_stop)
        self.prepared = True

    def catch_up(self) -> None:
        """Send every match judged here whose answers exist; resolve those that need no judge."""
        if self.judge is not None:
            self._submit_ready()
        if self._generated:
            self._resolve_unjudged()

    def prepare_run(self, selected: list[Match]) -> None:
        """Before the first item (pytest's run loop): generate and judge here, so that no item's
        time limit (pytest-timeout) counts the arena's work; the judge's own timeout and retries
        bound each call. A failure is kept for the items to report (``ready_for``)."""
        try:
            self.prepare()
            if self.role.whole_run_here:  # (an xdist worker judges the blocks it is given, as they come)
                self._await_judgments(selected)
        except (BudgetExceeded, BatchPending):
            raise  # a usage error of the whole run (or its pause), not one for each item to report
        except Exception as exc:  # noqa: BLE001 - every arena item reports it, as its fixture's error
            self._preparation_error = (exc, exc.__traceback__)

    def _await_judgments(self, selected: list[Match]) -> None:
        pending = [f for m in self.judged if (f := self.futures.get(m.id)) is not None and not f.done()]
        extra = len(self.judged) - len(selected)
        if extra:
            self.log(f"the gates rate the whole arena: {extra} {self.plan.match_kind} not selected are judged too "
                     "(from the review cache where it has them)")
        if pending:
            self.log(f"judging {len(pending)} {self.plan.match_kind} before the items report them")
        for future in pending:
            future.exception()  # waits; a judgment's own error is its item's to report

    def ready_for(self, item_id: str) -> None:
        """An arena item is about to use the session: the preparation's error, if it failed, is this
        item's error; an item run again (pytest-rerunfailures) takes the preparation up again, once."""
        if self._preparation_error is not None:
            error, traceback = self._preparation_error
            if item_id not in self._told or not self._retries_left:
                self._told.add(item_id)
                raise error.with_traceback(traceback)  # (the first traceback: it does not grow per item)
            self._retries_left = False
            self._preparation_error = None
        try:
            self.prepare()
        except Exception as exc:
            self._preparation_error = (exc, exc.__traceback__)
            self._told.add(item_id)
            raise

    # ---------------------------------------------------------------------------------------------
    # Judgments

    def _make_judge(self) -> MatchJudge:
        return make_match_judge(self.plan, self.role, self.budget, self.judged, self.cache_dir, self.memo, self.log)

    def probe_judge(self) -> MatchJudge:
        """A judge that asks nothing: what the matches would ask, and what the review cache holds."""
        return probe_judge(self.plan, self.memo)

    def answers_of(self, match: Match) -> dict | None:
        """The answers the judge compares; None when one is missing or cannot be shown (``_unjudged``)."""
        found = {m: self.plan.participants[m].get(match.question) for m in match.models}
        if None in found.values() or any(answer_problem(match.question, a.turns) for a in found.values()):
            return None
        return found

    def _submit_ready(self) -> None:
        for match in self.judged:
            if match.id in self.futures or not set(match.models) <= self._ready or not self._judges_here(match):
                continue
            answers = self.answers_of(match)
            if answers is not None:
                self.futures[match.id] = self.judge.submit(match, answers)

    def _resolve_unjudged(self) -> None:
        """Answers only, or a match whose answer is missing: its outcome is known without a judge."""
        for match in self.judged:
            if match.id not in self.futures and self._judges_here(match):
                self.futures[match.id] = done(self._unjudged(match))

    def _judges_here(self, match: Match) -> bool:
        # In rounds (early_stop) every process judges each round it reaches, each call paid once (claims).
        return self.rounds.allows(match) if self.rounds is not None else self.role.judges(match)

    def _unjudged(self, match: Match) -> Judgment | None:
        """A match with no judge call: a missing answer is an error; with reviews off, answers suffice."""
        participants = self.plan.participants
        missing = [m for m in match.models if participants[m].get(match.question) is None]
        if missing:
            reason = participants[missing[0]].failures.get(match.question.key)
            return Judgment(match, (), error=f"{missing[0]} has no answer to question {match.question.question_id!r}"
                                             + (f" ({reason})" if reason else ""))
        for name in match.models if self.config.review.enable else ():
            # An empty answer, or one short of turns, is never sent: the judge would rate nothing.
            answers = participants[name]
            problem = answer_problem(match.question, answers.get(match.question).turns)
            if problem:
                return Judgment(match, (), error=f"{name}'s answer to question {match.question.question_id!r} "
                                                 f"{problem} (in {answers.output_file}); it was not sent to the judge")
        return None

    def judgment(self, match: Match) -> Judgment | None:
        """The match's verdict (waiting for it), or None when reviews are disabled.

        Asked again for the same match (its item rerun, pytest-rerunfailures), a failed judgment is
        asked of the judge once more instead of being handed back as it was."""
        self.prepare()
        if match.id not in self.futures:  # an xdist worker given an item of a block it had not taken
            self.role.take_block(match)
        if match.id in self.reported:
            self._reask(match)
        self.reported.add(match.id)
        return self.futures[match.id].result()

    def _reask(self, match: Match) -> None:
        future = self.futures[match.id]
        failed = future.exception() is not None or (future.result() is not None and not future.result().ok)
        answers = self.answers_of(match)
        if failed and self.judge is not None and answers is not None:  # (a missing answer stays missing)
            self.futures[match.id] = self.judge.submit(match, answers)
            self.changes += 1

    def accept(self, judgment: Judgment, reported: bool = False) -> None:
        """Take a judgment made elsewhere as its match's own: a rating-only run's recorded verdict, or one
        an xdist worker sent (``reported``: its item has run there)."""
        self.futures[judgment.match.id] = done(judgment)
        if reported:
            self.reported.add(judgment.match.id)
        self.changes += 1

    def finished(self, match: Match) -> Judgment | None:
        """The match's judgment if it finished here without an error (None otherwise, or with reviews off)."""
        future = self.futures.get(match.id)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def judgments(self) -> list[Judgment]:
        """Finished judgments of the selection, in plan order."""
        return [j for match in self.judged if (j := self.finished(match)) is not None]

    def await_all(self) -> None:
        """Every verdict of the run is in (a gate is judged on all of them)."""
        self.prepare()
        for match in self.judged:
            if self.rounds is None or match.id in self.futures:  # (not there: its round was never judged)
                self.futures[match.id].exception()

    def planned_calls(self) -> tuple[int, int | None]:
        """Judge calls the selection needs, and how many the review cache holds (None while answers are missing)."""
        if not self.config.review.enable:
            return 0, 0
        total = sum(self.plan.calls_per_match(m) for m in self.judged)  # (judge_turns each: per turn)
        for name in self.needed_models():
            if self.plan.participants[name].load_cached(self.plan.questions):
                return total, None
        from .cached_count import cached_calls

        return total, cached_calls(self, judge_identity(self.config.review.judge, self.memo), self._count_cached_calls)

    def _count_cached_calls(self, matches: list[Match]) -> dict[str, int]:
        """Match id -> its calls the review cache answers, counted exactly (every prompt rendered)."""
        probe = self.probe_judge()
        try:
            return {m.id: probe.cached_calls(m, a) if (a := self.answers_of(m)) is not None else 0 for m in matches}
        finally:
            probe.close()

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close(wait=False)
            self.judge.judge.close()


class AnswerMaker:
    """Each model's answers: read from its answers file, or generated (a model loaded, then released)
    or asked of its server, one model at a time."""

    def __init__(self, plan: ArenaPlan, cache_dir: Path | None, memo: DigestMemo, log: Callable[[str], None]):
        self.participants = plan.participants
        self.questions = plan.questions
        self.cache_dir = cache_dir
        self.memo = memo
        self.log = log
        self.models_loaded: list[str] = []
        self.served_counters: dict[str, object] = {}  # API candidates: requests, answers, tokens

    def answers_for(self, name: str, wait: bool = True) -> bool:
        """Load (or generate) a model's answers; False, at once, when ``wait`` is False and another
        process is generating them."""
        answers = self.participants[name]
        if not answers.load_cached(self.questions) or not answers.generates:
            self._count_cached(answers, [])
            return True
        # One generator per model across processes (another run, an xdist worker): whoever gets the
        # lock second finds the answers in the cache.
        with file_lock(lock_file(answers.output_file), wait=wait) as locked:
            if not locked:
                return False
            missing = answers.load_cached(self.questions)
            self._count_cached(answers, missing)
            if missing:
                self._generate(answers, missing)
        return True

    def _count_cached(self, answers: ModelAnswers, missing) -> None:
        if answers.served:
            from .generation.api_backend import ServedCounters

            counters = self.served_counters.setdefault(answers.name, ServedCounters())
            counters.cached = len(self.questions) - len(missing)

    def _generate(self, answers: ModelAnswers, missing) -> None:
        if answers.served:
            self._ask_server(answers, missing)
            return
        name, spec = answers.name, answers.spec
        backend = generator_backend(spec)
        self.log(f"{name}: loading model {spec.path}{backend.loading}")
        if backend.converts_gguf:
            from .generation.gguf import loadable

            spec = loadable(spec, self.cache_dir, self.memo, self.log)
        generator = backend.load()(spec)
        self.models_loaded.append(name)
        try:
            if generator.chat_template_missing:
                self.log(f"{name}: the tokenizer has no chat template; using the plain question as the prompt")
            self.log(f"{name}: loaded in {generator.load_seconds:.1f}s on {generator.device}; "
                     f"generating {len(missing)} answers")
            answers.generate(missing, generator, self.log)
        finally:
            generator.close()
            self.log(f"{name}: model released")

    def _ask_server(self, answers: ModelAnswers, missing) -> None:
        """An API candidate: no model loads here; its server answers, many questions at a time."""
        from .generation.api_backend import ServedModel
        from .redact import public_url

        api = answers.spec.api
        served = ServedModel(answers.spec, self.served_counters[answers.name])
        where = ", ".join(public_url(url) for url in api.urls)
        self.log(f"{answers.name}: asking {where} (model {api.model}) for {len(missing)} answers, "
                 f"up to {api.max_concurrency} at a time")
        try:
            answers.ask(missing, served, self.log)
        finally:
            served.close()


def done(value) -> Future:
    """A future that has its value already (a judgment known without a judge call, or received)."""
    future: Future = Future()
    future.set_result(value)
    return future
