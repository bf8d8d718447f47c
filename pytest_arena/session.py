"""``ArenaSession``: the state of one arena run, and everything the pytest plugin delegates to.

It is plain Python (no pytest): build it from a config, ``select`` what should run, ``prepare`` the
answers and judgments, then ask for ``judgment``s, ``gate_result``s and the report. Models load one
at a time, only when a selected match needs answers that the answer cache lacks, and each is
released before the next loads (a local judge loads after the last candidate is released).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from .config import GATE_KINDS, ArenaConfig, GateSpec, load_config
from .errors import ArenaConfigError, excerpt
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo, checkpoint_fingerprint
from .judging.openai_judge import missing_credentials
from .judging.runner import Judgment, MatchJudge
from .judging.templates import (TurnsNotCovered, answer_problem, choose_template, load_templates,
                                skipped_reference_template)
from .plan import (Battle, Scoring, ambiguous_names, ambiguous_questions, blocks, describe, gate_id,
                   plan_against_baseline, plan_pairwise, plan_single, shared_ids)
from .question_sets import load_question_sets
from .questions import Question
from .store import file_lock, read_jsonl

Match = Battle | Scoring


class ArenaSession:
    def __init__(self, config: ArenaConfig, *, cache_dir: Path | None = None, log: Callable[[str], None] = print,
                 baseline_report: Path | None = None, update_baseline: bool = False,
                 question_files: list[Path] | None = None, limit: int | None = None):
        self.config = config
        self.log = log
        self.limit = limit
        self.question_sets = bool(question_files)  # named sets: their names prefix item IDs
        self.question_files = [Path(f) for f in question_files or ()]
        self.baseline_report = Path(baseline_report) if baseline_report else None
        self.update_baseline = update_baseline
        self.previous = None  # the baseline report's table, read in preflight
        self.gate_results: dict[str, object] = {}
        self.mode = config.review.judge.mode
        self.questions, self.is_limited = load_question_sets(config, question_files, limit)
        self.templates = load_templates(config.review.prompt_file)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memo = DigestMemo(self.cache_dir / "fingerprints.json" if self.cache_dir else None)
        self.baseline = self._baseline_name()
        self.participants = self._participants()
        self._check_names()
        self.matches = self._plan()
        self._check_item_ids(question_files)
        self.gates = list(config.gates)
        self.models_loaded: list[str] = []
        self.served_counters: dict[str, object] = {}  # API candidates: requests, answers, tokens
        self._selected: list[Match] = list(self.matches)
        self._judged: list[Match] = list(self.matches)  # the selection, or the whole plan when gates run
        self._futures: dict[str, Future] = {}
        self._reported: set[str] = set()  # matches whose item took its verdict (xdist controller: received it)
        self._prepared = False
        self._preparation_error: tuple[BaseException, object] | None = None  # and its traceback
        self._told: set[str] = set()  # items that reported the preparation's error
        self._retries_left = True  # a rerun item retries a failed preparation once per run
        self._ready: set[str] = set()  # models whose answers this process holds
        self._generated = False
        self._judge: MatchJudge | None = None
        self._ratings = None
        # Under pytest-xdist (see "Several processes" below): "worker" or "controller".
        self.role = "alone"
        self._workers = 1
        self._block_of: dict[str, int] | None = None
        self._taken: set[int] = set()

    @classmethod
    def from_file(cls, path, *, results_dir=None, model_paths=None, **kwargs) -> "ArenaSession":
        config = load_config(path, results_dir=results_dir, model_paths=model_paths,
                             questions_given=bool(kwargs.get("question_files")))
        return cls(config, **kwargs)

    # ---------------------------------------------------------------------------------------------
    # Before anything runs

    def _baseline_name(self) -> str | None:
        if self.mode != "pairwise_baseline":
            return None
        name = self.config.rating.baseline_model
        baseline_file = self.config.review.baseline_file
        if name is None and baseline_file is not None:
            records = read_jsonl(baseline_file)
            name = records[0].get("model_id") if records else None
        if not name:
            raise ArenaConfigError(self.config.path, "rating_gen.baseline_model",
                                   "pairwise_baseline needs a baseline: a model of answers_gen, or "
                                   "reviews_gen.baseline_file with answer records")
        if name not in self.config.models and baseline_file is None:
            raise ArenaConfigError(self.config.path, "rating_gen.baseline_model",
                                   f"expected one of the models in answers_gen ({', '.join(self.config.models)}) "
                                   f"or a reviews_gen.baseline_file, got {excerpt(name)}")
        return str(name)

    def _participants(self) -> dict[str, ModelAnswers]:
        """Who takes part: the models of answers_gen (or those target_answers names), extra answer
        files, and the baseline."""
        config, seed, memo = self.config, self.config.rating.seed, self._memo
        targets = config.review.target_answers
        chosen = {}
        for spec in config.models.values():
            if targets is not None and spec.output_file not in targets and spec.name != self.baseline:
                continue
            if not spec.enable and not os.path.isfile(spec.output_file):  # False, not OSError, for a name too long
                self.log(f"{spec.name}: enable is false and {spec.output_file} does not exist; it takes no part")
                continue
            chosen[spec.name] = ModelAnswers(spec.name, spec.output_file, spec, seed, memo)
        own_files = {spec.output_file for spec in config.models.values()}
        for path in targets or ():
            if path in own_files:
                continue
            records = read_jsonl(path)
            name = records[0].get("model_id") if records else None
            if not name:
                raise ArenaConfigError(config.path, "reviews_gen.target_answers", f"expected answer records with a model_id in {path}")
            chosen[str(name)] = ModelAnswers(str(name), path, None, seed, memo)
        if self.baseline is not None and config.review.baseline_file is not None:
            chosen[self.baseline] = ModelAnswers(self.baseline, config.review.baseline_file, None, seed, memo)
        needed = 1 if self.mode == "single" else 2
        if len(chosen) < needed:
            raise ArenaConfigError(config.path, "answers_gen",
                                   f"a {self.mode} arena needs at least {needed} models, got {list(chosen) or 'none'}")
        if self.baseline is not None and self.baseline not in chosen:
            raise ArenaConfigError(config.path, "rating_gen.baseline_model",
                                   f"the baseline {self.baseline!r} has no answers (enable it or give its output_file)")
        return chosen

    def _check_names(self) -> None:
        clash = ambiguous_names(list(self.participants))
        if clash:
            raise ArenaConfigError(self.config.path, "answers_gen",
                                   f"models {clash[0]!r} and {clash[1]!r} would share item IDs; rename one")
        same_label = ambiguous_questions(self.questions)
        if same_label:
            raise ArenaConfigError(self.config.question_file or "--arena-questions", "question_id",
                                   f"ids {same_label[0]!r} and {same_label[1]!r} would share item IDs; make them distinct")

    def _check_item_ids(self, question_files: list[Path] | None) -> None:
        """One item ID, one match: otherwise one verdict is counted for two matches."""
        self._question_files = {Path(f).stem: Path(f) for f in question_files or ()}
        clash = shared_ids(self.matches)
        if clash:
            raise ArenaConfigError(self._question_file(clash[0].question), "question_id",
                                   f"{describe(clash[0])} and {describe(clash[1])} would share the item ID "
                                   f"{clash[0].id!r}; rename a model or change a question id")

    def _question_file(self, question: Question):
        """The file a question came from (for error messages)."""
        if question.question_set is None:
            return self.config.question_file or "--arena-questions"
        return self._question_files.get(question.question_set, "--arena-questions")

    def _plan(self) -> list[Match]:
        names = list(self.participants)
        if self.mode == "single":
            return plan_single(self.questions, names)
        if self.mode == "pairwise_baseline":
            return plan_against_baseline(self.questions, names, self.baseline)
        return plan_pairwise(self.questions, names)

    def check_credentials(self) -> None:
        """The judge's API key: asked for only by a run that has arena items to run (the plugin calls
        it once collection is done), so ``--help`` or a run of the user's own tests never needs it."""
        review = self.config.review
        if review.enable and review.judge.is_openai:
            problem = missing_credentials(review.judge)
            if problem:
                raise ArenaConfigError(self.config.path, "reviews_gen.reviewer", problem)

    def _check_paths(self) -> None:
        """No two roles on one file, every output writable, every file we append to ours (paths.py)."""
        from .paths import first_problem, run_roles

        problem = first_problem(run_roles(
            self.config, question_files=self.question_files, baseline_report=self.baseline_report,
            update_baseline=self.update_baseline, baseline=self.baseline,
            writers=[a.name for a in self.participants.values() if a.generates]))
        if problem is not None:
            raise problem

    def preflight(self) -> None:
        """Checks that need a library or a second look, but no model: every one before any load
        (but the judge's key: ``check_credentials``)."""
        review, path = self.config.review, self.config.path
        self._check_paths()
        if review.enable:
            kind = "single" if self.mode == "single" else "pairwise"
            for question in self.questions:
                try:
                    choose_template(self.templates, kind, question)
                except TurnsNotCovered as exc:  # the question is beyond the templates, not the other way round
                    raise ArenaConfigError(self._question_file(question), f"question_id {question.question_id!r}",
                                           f"{exc} in {review.prompt_file}") from None
                except LookupError as exc:
                    raise ArenaConfigError(review.prompt_file, "", f"{exc} (question {question.question_id!r})") from None
        self._check_gates()
        # The files the run will read: a corrupt line is an error now, not after the first model loaded.
        # (keep: the answers cache and the judge take these records instead of parsing the files again)
        for answers in self.participants.values():
            read_jsonl(answers.output_file, keep=True)
        if review.enable:
            read_jsonl(review.review_file, keep=True)
        for answers in self.participants.values():
            # Only a model that will generate needs its settings checked: when every answer is cached
            # (their keys hold those very settings) the check would import transformers (seconds) for nothing.
            if answers.generates and answers.load_cached(self.questions):
                self._check_generator(answers)

    def _check_generator(self, answers: ModelAnswers) -> None:
        """What a candidate needs beyond its config: the API key it names, vLLM installed, or
        transformers' reading of its generation settings."""
        spec, path, where = answers.spec, self.config.path, f"answers_gen.{answers.name}"
        if spec.api is not None:
            env = spec.api.api_key_env
            if env is not None and not os.environ.get(env):
                raise ArenaConfigError(path, f"{where}.api.api_key_env",
                                       f"the environment variable {env} is not set (it holds the server's API key; "
                                       "leave api_key_env out for a server without auth)")
            return
        if spec.backend == "vllm":
            from .generation.vllm_backend import INSTALL_HINT, vllm_installed

            if not vllm_installed():
                raise ArenaConfigError(path, f"{where}.backend", f"vllm is not installed: {INSTALL_HINT}")
            return
        from .generation.transformers_backend import generation_config_for

        try:
            generation_config_for(spec)
        except ValueError as exc:
            raise ArenaConfigError(path, where, str(exc)) from None

    def _check_gates(self) -> None:
        """Gates that could never be judged are config errors, not failures found an hour later."""
        path = self.config.path
        for i, gate in enumerate(self.gates):
            where = f"gates[{i}]"
            if self.mode == "single" and gate.kind != "score":
                raise ArenaConfigError(path, where, f"{GATE_KINDS[gate.kind]} needs a pairwise mode; single mode only has min_score")
            if self.mode != "single" and gate.kind == "score":
                raise ArenaConfigError(path, where, "min_score needs single mode (reviews_gen.reviewer.args.mode: single)")
            if gate.kind == "winrate" and self.mode != "pairwise_baseline":
                raise ArenaConfigError(path, where, "min_win_rate needs pairwise_baseline mode")
        if any(g.kind == "drop" for g in self.gates) or self.baseline_report is not None:
            self._read_previous()

    def _read_previous(self) -> None:
        from .report import read_previous

        if self.baseline_report is None:
            raise ArenaConfigError(self.config.path, "gates",
                                   "a max_drop gate needs the previous report: pass --arena-baseline PATH")
        if not self.baseline_report.is_file():
            if self.update_baseline:
                self.log(f"baseline report {self.baseline_report} does not exist yet: this run writes it; "
                         "max_drop gates fail until then")
                return
            raise ArenaConfigError(self.baseline_report, "", "baseline report not found (run once with "
                                   "--arena-baseline-update to write it)")
        try:
            self.previous = read_previous(self.baseline_report)
        except ValueError as exc:
            raise ArenaConfigError(self.baseline_report, "", str(exc)) from None

    def select(self, matches: list[Match], gates: list[GateSpec]) -> None:
        """What this run does (pytest's selection after -k/-m/--lf): only these are generated for and
        judged, and the whole plan when a gate runs: a gate rates the arena, not what a run selected.

        Kept in plan (config) order, whatever order pytest or a plugin (pytest-randomly) runs the items
        in: the online Elo takes the battles in this order, so the ratings do not change with it."""
        in_plan = {m.id: i for i, m in enumerate(self.matches)}
        self._selected = sorted(matches, key=lambda m: in_plan[m.id])
        in_config = {gate_id(g): i for i, g in enumerate(self.config.gates)}
        self.gates = sorted(gates, key=lambda g: in_config.get(gate_id(g), len(in_config)))
        # (under xdist the workers judge the blocks of the selected items only)
        self._judged = list(self.matches) if self.gates and self.role == "alone" else self._selected
        if self.role == "worker" and self._selected:
            self._block_of = blocks([m.id for m in self._selected], self._workers)

    @property
    def is_subset(self) -> bool:
        """A -k/-m selection or a --arena-limit run: it rates part of the arena only."""
        return len(self._selected) < len(self.matches) or self.is_limited

    def needed_models(self) -> list[str]:
        needed = {m for match in self._judged for m in match.models}
        return [name for name in self.participants if name in needed]

    def gate_id(self, gate: GateSpec) -> str:
        return gate_id(gate)

    def calls_per_match(self) -> int:
        return 2 if self.config.review.judge.position_bias_mitigation == "swap_position" and self.mode != "single" else 1

    # ---------------------------------------------------------------------------------------------
    # Running

    def prepare(self) -> None:
        """Answers for every model the selection needs, then every selected match sent to the judge
        (an xdist worker: those of the blocks it takes).

        With an API judge a match is submitted as soon as its answers exist, so judging overlaps the
        generation of later models. A local judge is a model too: it loads only after the last
        candidate has been released, so two models never share the memory.

        Done only once it has finished: an attempt cut short (a timeout, a failed load) is taken up
        again where it stopped by the next call, never passed over as if it had finished.
        """
        if self._prepared:
            return
        review = self.config.review
        if review.enable and not review.judge.is_local and self._judge is None:
            self._judge = self._make_judge()
        waiting = [name for name in self.needed_models() if name not in self._ready]
        while waiting:
            # Processes sharing the run (xdist workers) share the models: each takes one that nobody
            # is generating, and waits for another's only when every model left is taken.
            name = next((n for n in waiting if self._answers_for(n, wait=False)), None)
            if name is None:
                name = waiting[0]
                self._answers_for(name)
            waiting.remove(name)
            self._ready.add(name)
            if self._judge is not None:
                self._submit_ready()
        if review.enable and self._judge is None:
            self._judge = self._make_judge()
        if self._judge is not None:
            self._submit_ready()
        self._generated = True
        self._settle_unjudged()
        self._prepared = True

    def prepare_run(self) -> None:
        """Before the first item (pytest's run loop): generate and judge here, so that no item's
        time limit (pytest-timeout) counts the arena's work; the judge's own timeout and retries
        bound each call. A failure is kept for the items to report (``ready_for``)."""
        try:
            self.prepare()
            if self.role == "alone":  # (an xdist worker judges the blocks it is given, as they come)
                self._await_judgments()
        except Exception as exc:  # noqa: BLE001 - every arena item reports it, as its fixture's error
            self._preparation_error = (exc, exc.__traceback__)

    def _await_judgments(self) -> None:
        pending = [self._futures[m.id] for m in self._judged if not self._futures[m.id].done()]
        extra = len(self._judged) - len(self._selected)
        if extra:
            self.log(f"the gates rate the whole arena: {extra} {self.match_kind} not selected are judged too "
                     "(from the review cache where it has them)")
        if pending:
            self.log(f"judging {len(pending)} {self.match_kind} before the items report them")
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

    def _settle_unjudged(self) -> None:
        """Answers only, or a match whose answer is missing: its outcome is known without a judge."""
        for match in self._judged:
            if match.id not in self._futures and self._judged_here(match):
                self._futures[match.id] = _done(self._unjudged(match))

    @property
    def prepared(self) -> bool:
        return self._prepared

    def _answers_for(self, name: str, wait: bool = True) -> bool:
        """Load (or generate) a model's answers; False, at once, when ``wait`` is False and another
        process is generating them."""
        answers = self.participants[name]
        if not answers.load_cached(self.questions) or not answers.generates:
            self._count_cached(answers, [])
            return True
        # One generator per model across processes (another run, an xdist worker): whoever gets the
        # lock second finds the answers in the cache.
        with file_lock(answers.output_file.with_name(answers.output_file.name + ".lock"), wait=wait) as locked:
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
        if spec.backend == "vllm":
            from .generation.vllm_backend import VllmGenerator

            self.log(f"{name}: loading model {spec.path} with vLLM")
            generator = VllmGenerator(spec)
        else:
            from .generation.gguf import loadable
            from .generation.transformers_backend import TransformersGenerator

            self.log(f"{name}: loading model {spec.path}")
            generator = TransformersGenerator(loadable(spec, self.cache_dir, self._memo, self.log))
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
        from .generation.api_backend import ServedModel, public_url

        api = answers.spec.api
        served = ServedModel(answers.spec, self.served_counters[answers.name])
        self.log(f"{answers.name}: asking {public_url(api.base_url)} (model {api.model}) for {len(missing)} answers, "
                 f"up to {api.max_concurrency} at a time")
        try:
            answers.ask(missing, served, self.log)
        finally:
            served.close()

    def _make_judge(self) -> MatchJudge:
        spec = self.config.review.judge
        if spec.is_local:
            def load_local_judge():
                from .generation.gguf import loadable
                from .judging.local_judge import LocalJudge

                self.log(f"judge: loading local model {spec.checkpoint.path}")
                checkpoint = loadable(spec.checkpoint, self.cache_dir, self._memo, self.log)
                return LocalJudge(dataclasses.replace(spec, checkpoint=checkpoint))

            # Loaded on the first call the review cache cannot answer: a cached rerun loads nothing.
            judge = LazyJudge(load_local_judge)
        else:
            def load_api_judge():
                from .judging.openai_judge import OpenAIJudge

                return OpenAIJudge(spec)

            # Importing openai costs seconds: a fully cached run never does.
            judge = LazyJudge(load_api_judge)
            if self._workers > 1:  # max_concurrency is the whole run's: the workers share it
                spec = dataclasses.replace(spec, max_concurrency=-(-spec.max_concurrency // self._workers))
        self._log_template_choices()
        return MatchJudge(judge, spec, self.templates, self.config.review.review_file, self._judge_identity(), self.log)

    def _log_template_choices(self) -> None:
        """Say once per category when questions without reference answers get the general template."""
        kind = "single" if self.mode == "single" else "pairwise"
        reported = set()
        for question in {m.question.key: m.question for m in self._judged}.values():
            skipped = skipped_reference_template(self.templates, kind, question)
            if skipped is not None and question.category not in reported:
                reported.add(question.category)
                used = choose_template(self.templates, kind, question)
                self.log(f"category {question.category!r}: questions without a reference answer are judged with "
                         f"{used.name!r} instead of {skipped.name!r}")

    def _answers(self, match: Match) -> dict | None:
        """The answers the judge compares; None when one is missing or cannot be shown (``_unjudged``)."""
        found = {m: self.participants[m].get(match.question) for m in match.models}
        if None in found.values() or any(answer_problem(match.question, a.turns) for a in found.values()):
            return None
        return found

    def _submit_ready(self) -> None:
        for match in self._judged:
            if match.id in self._futures or not set(match.models) <= self._ready or not self._judged_here(match):
                continue
            answers = self._answers(match)
            if answers is not None:
                self._futures[match.id] = self._judge.submit(match, answers)

    def _unjudged(self, match: Match) -> Judgment | None:
        """A match with no judge call: a missing answer is an error; with reviews off, answers suffice."""
        missing = [m for m in match.models if self.participants[m].get(match.question) is None]
        if missing:
            reason = self.participants[missing[0]].failures.get(match.question.key)
            return Judgment(match, (), error=f"{missing[0]} has no answer to question {match.question.question_id!r}"
                                             + (f" ({reason})" if reason else ""))
        for name in match.models if self.config.review.enable else ():
            # An empty answer, or one short of turns, is never sent: the judge would rate nothing.
            answers = self.participants[name]
            problem = answer_problem(match.question, answers.get(match.question).turns)
            if problem:
                return Judgment(match, (), error=f"{name}'s answer to question {match.question.question_id!r} "
                                                 f"{problem} (in {answers.output_file}); it was not sent to the judge")
        return None

    @property
    def match_kind(self) -> str:
        return "scorings" if self.mode == "single" else "battles"

    def judgment(self, match: Match) -> Judgment | None:
        """The match's verdict (waiting for it), or None when reviews are disabled.

        Asked again for the same match (its item rerun, pytest-rerunfailures), a failed judgment is
        asked of the judge once more instead of being handed back as it was."""
        self.prepare()
        if match.id not in self._futures:  # an xdist worker given an item of a block it had not taken
            self.take_block(match)
        if match.id in self._reported:
            self._reask(match)
        self._reported.add(match.id)
        return self._futures[match.id].result()

    def _reask(self, match: Match) -> None:
        future = self._futures[match.id]
        failed = future.exception() is not None or (future.result() is not None and not future.result().ok)
        answers = self._answers(match)
        if failed and self._judge is not None and answers is not None:  # (a missing answer stays missing)
            self._futures[match.id] = self._judge.submit(match, answers)
            self._ratings = None

    def judgments(self) -> list[Judgment]:
        """Finished judgments of the selection, in plan order."""
        found = []
        for match in self._judged:
            future = self._futures.get(match.id)
            if future is not None and future.done() and not future.cancelled() and future.exception() is None:
                if future.result() is not None:
                    found.append(future.result())
        return found

    def planned_calls(self) -> tuple[int, int | None]:
        """Judge calls the selection needs, and how many the review cache holds (None while answers are missing)."""
        if not self.config.review.enable:
            return 0, 0
        total = len(self._judged) * self.calls_per_match()
        for name in self.needed_models():
            if self.participants[name].load_cached(self.questions):
                return total, None
        probe = MatchJudge(None, self.config.review.judge, self.templates, self.config.review.review_file,
                           self._judge_identity())
        try:
            cached = sum(probe.cached_calls(m, a) for m in self._judged if (a := self._answers(m)) is not None)
        finally:
            probe.close()
        return total, cached

    def _judge_identity(self) -> str:
        """What makes a judge's replies reusable: the API model's name, or a local checkpoint's bytes."""
        spec = self.config.review.judge
        if spec.is_local:
            checkpoint = checkpoint_fingerprint(spec.checkpoint.path, spec.checkpoint.revision,
                                                spec.checkpoint.gguf_file, self._memo)
            return f"local:{checkpoint}:{spec.checkpoint.precision}:{spec.verdict}"
        return f"openai:{spec.model}"

    @property
    def counters(self):
        """Judge calls, cache hits, failures and tokens of this run (None when nothing was judged)."""
        if self.role == "controller":
            return self._worker_counters
        return self._judge.counters if self._judge else None

    # ---------------------------------------------------------------------------------------------
    # Several processes (pytest-xdist): the workers generate and judge, the controller rates
    #
    # Every worker prepares the answers of the whole selection, and they share that work through the
    # answer files and their locks (``prepare``): each model is generated once, by whichever worker
    # takes it first. The judging is split in blocks of consecutive matches (``plan.blocks``); the
    # controller's scheduler sends each block's items to one worker, which judges that block and no
    # other. Each finished judgment reaches the controller as a summary on its item's report, the
    # counters when a worker finishes; only the controller rates, evaluates gates and reports.

    def work_in_blocks(self, workers: int) -> None:
        """This process is one of ``workers`` xdist workers: it judges only the blocks it takes."""
        self.role = "worker"
        self._workers = workers

    def take_block(self, match: Match) -> None:
        """This process runs ``match``'s item: judge its whole block here (at once, if its answers exist)."""
        block = self._block_of.get(match.id) if self._block_of is not None else None
        if block is None or block in self._taken:
            return
        self._taken.add(block)
        if self._judge is not None:
            self._submit_ready()
        if self._generated:
            self._settle_unjudged()

    def _judged_here(self, match: Match) -> bool:
        return self._block_of is None or self._block_of.get(match.id) in self._taken

    def judgment_summary(self, match: Match) -> dict | None:
        """The finished judgment of a match judged here, as plain data (None: not judged here, or reviews off)."""
        future = self._futures.get(match.id)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return None
        judgment = future.result()
        return judgment.summary() if judgment is not None else None

    def worker_output(self) -> dict:
        """What the controller adds up when this worker finishes."""
        return {"counters": self._judge.counters.counts() if self._judge else None,
                "models_loaded": list(self.models_loaded),
                "served": {name: counters.counts() for name, counters in self.served_counters.items()}}

    def receive_from_workers(self) -> None:
        """This process is the xdist controller: workers prepare and judge, it gets their results."""
        self.role = "controller"
        self._worker_counters = None
        self._by_id = {m.id: m for m in self.matches}

    def worker_ran(self) -> None:
        """A worker ran an arena item: there is a run to report on, even when nothing was judged."""
        self._prepared = True

    def receive_judgment(self, summary: dict) -> None:
        match = self._by_id[summary["id"]]
        self._futures[match.id] = _done(Judgment.from_summary(match, summary))
        self._reported.add(match.id)
        self._ratings = None

    def receive_worker_output(self, output: dict) -> None:
        if output.get("counters") is not None:
            from .judging.runner import JudgeCounters

            self._worker_counters = self._worker_counters or JudgeCounters()
            self._worker_counters.add(**output["counters"])
        self.models_loaded.extend(output.get("models_loaded", ()))
        for name, counts in output.get("served", {}).items():
            # The worker that asked the server has the real figures; the others read its answers
            # from the file and would count them all as cached.
            known = self.served_counters.get(name)
            if known is None or _work(counts) > _work(known.counts()):
                from .generation.api_backend import ServedCounters

                self.served_counters[name] = ServedCounters(**counts)

    # ---------------------------------------------------------------------------------------------
    # Ratings, gates, report

    def ratings(self):
        """The rating table over this session's verdicts (None when nothing was judged)."""
        if self._ratings is None:
            from .report import rating_table

            verdicts = [j for j in self.judgments() if j.ok]
            if not verdicts:
                return None
            table = rating_table(verdicts, list(self.participants), self.config.rating, baseline=self.baseline)
            self._ratings = dataclasses.replace(table, subset=self.is_subset)
        return self._ratings

    def set_tables(self) -> dict:
        """Ratings per question set, when named sets take part (--arena-questions)."""
        if not self.question_sets:
            return {}
        from .report import rating_table

        verdicts = [j for j in self.judgments() if j.ok]
        tables = {}
        for name in dict.fromkeys(q.question_set for q in self.questions):
            in_set = [j for j in verdicts if j.match.question.question_set == name]
            if in_set:
                tables[name] = rating_table(in_set, list(self.participants), self.config.rating, baseline=self.baseline)
        return tables

    def gate_result(self, gate: GateSpec):
        from .gates import evaluate_gate

        if self.role != "controller":  # the controller has every verdict before its scheduler sends a gate
            self.prepare()
            for match in self._judged:  # every verdict of the run is in before any gate is judged
                self._futures[match.id].exception()
        result = evaluate_gate(gate, self.ratings(), self.previous)
        self.gate_results[self.gate_id(gate)] = result
        return result

    def items_ran(self) -> tuple[int, int]:
        """How many selected matches had their item take its verdict, of how many: fewer when the run
        stopped early (-x, --maxfail, --sw) or an item did not run (an error in its setup, a skip)."""
        return sum(m.id in self._reported for m in self._selected), len(self._selected)

    def report_path(self, partial: bool = False) -> Path:
        path = self.config.rating.report_file
        # A -k run rates only part of the arena; it must not pass for the full report.
        return path.with_name(f"{path.stem}.subset{path.suffix}") if self.is_subset or partial else path

    def write_report(self, stopped: str | None = None) -> list[str]:
        """Write the report (and the plot, the step summary, the updated baseline); say what was written.
        ``stopped``: why pytest stopped early, if it did."""
        from .run_outputs import write_outputs

        return write_outputs(self, stopped)

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close(wait=False)
            self._judge.judge.close()


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


def _work(counts: dict[str, int]) -> int:
    return counts.get("requests", 0) + counts.get("answered", 0) + counts.get("failed", 0)


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future
