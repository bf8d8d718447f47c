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
from .errors import ArenaConfigError
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo, checkpoint_fingerprint
from .judging.openai_judge import missing_credentials
from .judging.runner import Judgment, MatchJudge
from .judging.templates import choose_template, load_templates, skipped_reference_template
from .plan import (Battle, Scoring, ambiguous_names, ambiguous_questions, blocks, gate_id, plan_against_baseline,
                   plan_pairwise, plan_single)
from .questions import Question, load_questions
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
        self.baseline_report = Path(baseline_report) if baseline_report else None
        self.update_baseline = update_baseline
        self.previous = None  # the baseline report's table, read in preflight
        self.gate_results: dict[str, object] = {}
        self.mode = config.review.judge.mode
        self.questions, self.is_limited = _load_question_sets(config, question_files, limit)
        self.templates = load_templates(config.review.prompt_file)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memo = DigestMemo(self.cache_dir / "fingerprints.json" if self.cache_dir else None)
        self.baseline = self._baseline_name()
        self.participants = self._participants()
        self._check_names()
        self.matches = self._plan()
        self.gates = list(config.gates)
        self.models_loaded: list[str] = []
        self.served_counters: dict[str, object] = {}  # API candidates: requests, answers, tokens
        self._selected: list[Match] = list(self.matches)
        self._futures: dict[str, Future] = {}
        self._prepared = False
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
                                   f"or a reviews_gen.baseline_file, got {name!r}")
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
            if not spec.enable and not spec.output_file.is_file():
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

    def _plan(self) -> list[Match]:
        names = list(self.participants)
        if self.mode == "single":
            return plan_single(self.questions, names)
        if self.mode == "pairwise_baseline":
            return plan_against_baseline(self.questions, names, self.baseline)
        return plan_pairwise(self.questions, names)

    def preflight(self) -> None:
        """Checks that need a library or a second look, but no model: every one before any load."""
        review, path = self.config.review, self.config.path
        if review.enable and review.judge.is_openai:
            problem = missing_credentials(review.judge)
            if problem:
                raise ArenaConfigError(path, "reviews_gen.reviewer", problem)
        if review.enable:
            kind = "single" if self.mode == "single" else "pairwise"
            for question in self.questions:
                try:
                    choose_template(self.templates, kind, question)
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
        """What this run does (pytest's selection after -k/-m): only these are generated for and judged."""
        self._selected = list(matches)
        self.gates = list(gates)
        if self.role == "worker" and self._selected:
            self._block_of = blocks([m.id for m in self._selected], self._workers)

    @property
    def is_subset(self) -> bool:
        """A -k/-m selection or a --arena-limit run: it rates part of the arena only."""
        return len(self._selected) < len(self.matches) or self.is_limited

    def needed_models(self) -> list[str]:
        needed = {m for match in self._selected for m in match.models}
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
        """
        if self._prepared:
            return
        self._prepared = True
        review = self.config.review
        if review.enable and not review.judge.is_local:
            self._judge = self._make_judge()
        waiting = self.needed_models()
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
            self._submit_ready()
        self._generated = True
        self._settle_unjudged()

    def _settle_unjudged(self) -> None:
        """Answers only, or a match whose answer is missing: its outcome is known without a judge."""
        for match in self._selected:
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
        for question in {m.question.key: m.question for m in self._selected}.values():
            skipped = skipped_reference_template(self.templates, kind, question)
            if skipped is not None and question.category not in reported:
                reported.add(question.category)
                used = choose_template(self.templates, kind, question)
                self.log(f"category {question.category!r}: questions without a reference answer are judged with "
                         f"{used.name!r} instead of {skipped.name!r}")

    def _answers(self, match: Match) -> dict | None:
        found = {m: self.participants[m].get(match.question) for m in match.models}
        return None if None in found.values() else found

    def _submit_ready(self) -> None:
        for match in self._selected:
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
        return None

    def judgment(self, match: Match) -> Judgment | None:
        """The match's verdict (waiting for it), or None when reviews are disabled."""
        self.prepare()
        if match.id not in self._futures:  # an xdist worker given an item of a block it had not taken
            self.take_block(match)
        return self._futures[match.id].result()

    def judgments(self) -> list[Judgment]:
        """Finished judgments of the selection, in plan order."""
        found = []
        for match in self._selected:
            future = self._futures.get(match.id)
            if future is not None and future.done() and not future.cancelled() and future.exception() is None:
                if future.result() is not None:
                    found.append(future.result())
        return found

    def planned_calls(self) -> tuple[int, int | None]:
        """Judge calls the selection needs, and how many the review cache holds (None while answers are missing)."""
        if not self.config.review.enable:
            return 0, 0
        total = len(self._selected) * self.calls_per_match()
        for name in self.needed_models():
            if self.participants[name].load_cached(self.questions):
                return total, None
        probe = MatchJudge(None, self.config.review.judge, self.templates, self.config.review.review_file,
                           self._judge_identity())
        try:
            cached = sum(probe.cached_calls(m, a) for m in self._selected if (a := self._answers(m)) is not None)
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
            for match in self._selected:  # every verdict of the run is in before any gate is judged
                self._futures[match.id].exception()
        result = evaluate_gate(gate, self.ratings(), self.previous)
        self.gate_results[self.gate_id(gate)] = result
        return result

    def report_path(self) -> Path:
        path = self.config.rating.report_file
        # A -k run rates only part of the arena; it must not pass for the full report.
        return path.with_name(f"{path.stem}.subset{path.suffix}") if self.is_subset else path

    def write_report(self) -> list[str]:
        """Write the report (and the plot, the step summary, the updated baseline); say what was written."""
        table = self.ratings()
        if table is None or not self.config.rating.enable:
            return []
        from .report import markdown_summary, write_csv, write_plot

        path = self.report_path()
        write_csv(table.frame, path)
        what = "a limited run (--arena-limit)" if self.is_limited else "a subset run"
        written = [f"report: {path}" + (f" ({what}: the full report is left as it was)" if self.is_subset else "")]
        sets = self.set_tables()
        if sets:
            import pandas as pd

            by_set = pd.concat([t.frame.assign(Question_Set=name) for name, t in sets.items()], ignore_index=True)
            by_set = by_set[["Question_Set", *[c for c in by_set.columns if c != "Question_Set"]]]
            sets_path = path.with_name(f"{path.stem}.sets{path.suffix}")
            write_csv(by_set, sets_path)
            written.append(f"per-set report: {sets_path}")
        plot = path.with_suffix(".png")
        if write_plot(table, plot):
            written.append(f"plot: {plot}")
        else:
            written.append("plot: pip install 'pytest-arena[plot]' (matplotlib) for a PNG of the ratings")
        if self.update_baseline and self.baseline_report is not None:
            if self.is_subset:
                written.append(f"baseline: not updated from a subset run ({self.baseline_report})")
            else:
                write_csv(table.frame, self.baseline_report)
                written.append(f"baseline: updated {self.baseline_report}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            gates = [(gate_id, r.passed, r.message) for gate_id, r in self.gate_results.items()]
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown_summary(table, gates, self.previous))
            written.append("step summary: appended to $GITHUB_STEP_SUMMARY")
        return written

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


def _load_question_sets(config: ArenaConfig, files: list[Path] | None, limit: int | None):
    """The run's questions: ``question_file``, or named sets from ``--arena-questions``; with a limit,
    the first ``limit`` of each set. Also says whether the limit left any question out."""
    if files:
        names = [Path(f).stem for f in files]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise ArenaConfigError("--arena-questions", "", f"two question sets are named {twice!r} (file stems must differ)")
        sets = [load_questions(f, question_set=name) for f, name in zip(files, names)]
    else:
        sets = [load_questions(config.question_file)]
    limited = limit is not None and any(len(questions) > limit for questions in sets)
    questions = [q for questions in sets for q in (questions[:limit] if limit else questions)]
    return _with_references(questions, config), limited


def _with_references(questions: list[Question], config: ArenaConfig) -> list[Question]:
    """Questions with the reference answers of ``reviews_gen.reference_file`` merged in."""
    path = config.review.reference_file
    if path is None:
        return questions
    references = {}
    for record in read_jsonl(path):
        turns = _reference_turns(record)
        if "question_id" in record and turns:
            references[record["question_id"]] = tuple(turns)
    return [dataclasses.replace(q, reference=references[q.question_id]) if q.question_id in references else q
            for q in questions]


def _reference_turns(record: dict) -> list[str] | None:
    """A reference answer record in any of the usual shapes: ``reference``, ``answer_turns``,
    MT-bench's ``choices[0].turns``, or EvalScope's ``answer``."""
    for key in ("reference", "answer_turns", "answer"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    choices = record.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and all(isinstance(t, str) for t in turns):
            return turns
    return None
