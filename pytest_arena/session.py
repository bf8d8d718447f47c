"""``ArenaSession``: the state of one arena run, and everything the pytest plugin delegates to.

It is plain Python (no pytest): build it from a config, ``select`` what should run, ``prepare`` the
answers and judgments, then ask for ``judgment``s, ``gate_result``s and the ``report``. Models load
one at a time, only when a selected battle needs answers that the answer cache lacks, and each is
released before the next loads.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from .config import ArenaConfig, GateSpec, load_config
from .errors import ArenaConfigError
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo
from .judging.openai_judge import missing_credentials
from .judging.runner import BattleJudge, Judgment
from .judging.templates import load_templates
from .plan import Battle, ambiguous_names, ambiguous_questions, gate_id, plan_pairwise
from .questions import load_questions
from .store import read_jsonl


class ArenaSession:
    def __init__(self, config: ArenaConfig, *, cache_dir: Path | None = None, log: Callable[[str], None] = print):
        self.config = config
        self.log = log
        self.questions = load_questions(config.question_file)
        self.templates = load_templates(config.review.prompt_file)
        memo = DigestMemo(Path(cache_dir) / "fingerprints.json" if cache_dir else None)
        self.participants = self._participants(memo)
        names = list(self.participants)
        clash = ambiguous_names(names)
        if clash:
            raise ArenaConfigError(config.path, "answers_gen", f"models {clash[0]!r} and {clash[1]!r} would share item IDs; rename one")
        same_label = ambiguous_questions(self.questions)
        if same_label:
            raise ArenaConfigError(config.question_file, "question_id",
                                   f"ids {same_label[0]!r} and {same_label[1]!r} would share item IDs; make them distinct")
        self.battles = plan_pairwise(self.questions, names)
        self.gates = list(config.gates)
        self.models_loaded: list[str] = []
        self._selected: list[Battle] = list(self.battles)
        self._futures: dict[str, Future] = {}
        self._prepared = False
        self._judge: BattleJudge | None = None
        self._ratings = None

    @classmethod
    def from_file(cls, path, **kwargs) -> "ArenaSession":
        return cls(load_config(path), **kwargs)

    # ---------------------------------------------------------------------------------------------
    # Before anything runs

    def _participants(self, memo: DigestMemo) -> dict[str, ModelAnswers]:
        """Who takes part: the models of answers_gen (or those target_answers names) and extra answer files."""
        config, seed = self.config, self.config.rating.seed
        targets = self.config.review.target_answers
        chosen = {}
        for spec in config.models.values():
            if targets is not None and spec.output_file not in targets:
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
        if len(chosen) < 2:
            raise ArenaConfigError(config.path, "answers_gen", f"a pairwise arena needs at least two models, got {list(chosen) or 'none'}")
        return chosen

    def preflight(self) -> None:
        """Checks that need a library but no model: judge credentials and generation settings."""
        review = self.config.review
        where = "reviews_gen.reviewer.args"
        if review.judge.mode != "pairwise":
            raise ArenaConfigError(self.config.path, f"{where}.mode", f"{review.judge.mode!r} is not supported yet; expected pairwise")
        if review.judge.position_bias_mitigation is not None:
            raise ArenaConfigError(self.config.path, f"{where}.position_bias_mitigation", "not supported yet; expected null")
        if review.enable and review.judge.is_openai:
            problem = missing_credentials(review.judge)
            if problem:
                raise ArenaConfigError(self.config.path, "reviews_gen.reviewer", problem)
        from .generation.transformers_backend import generation_config_for

        for answers in self.participants.values():
            if answers.generates:
                try:
                    generation_config_for(answers.spec)
                except ValueError as exc:
                    raise ArenaConfigError(self.config.path, f"answers_gen.{answers.name}", str(exc)) from None

    def select(self, battles: list[Battle], gates: list[GateSpec]) -> None:
        """What this run does (pytest's selection after -k/-m): only these are generated for and judged."""
        self._selected = list(battles)
        self.gates = list(gates)

    @property
    def is_subset(self) -> bool:
        return len(self._selected) < len(self.battles)

    def needed_models(self) -> list[str]:
        needed = {m for battle in self._selected for m in battle.models}
        return [name for name in self.participants if name in needed]

    def gate_id(self, gate: GateSpec) -> str:
        return gate_id(gate)

    # ---------------------------------------------------------------------------------------------
    # Running

    def prepare(self) -> None:
        """Answers for every model the selection needs, then every selected battle sent to the judge.

        A battle is submitted as soon as both its answers exist, so judging overlaps the generation of
        the models that come later.
        """
        if self._prepared:
            return
        self._prepared = True
        if self.config.review.enable:
            self._judge = self._make_judge()
        ready: set[str] = set()
        for name in self.needed_models():
            self._answers_for(name)
            ready.add(name)
            for battle in self._selected:
                if battle.id not in self._futures and set(battle.models) <= ready:
                    self._submit(battle)

    def _answers_for(self, name: str) -> None:
        answers = self.participants[name]
        missing = answers.load_cached(self.questions)
        if not missing:
            return
        from .generation.transformers_backend import TransformersGenerator

        self.log(f"{name}: loading model {answers.spec.path}")
        generator = TransformersGenerator(answers.spec)
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

    def _make_judge(self) -> BattleJudge:
        from .judging.openai_judge import OpenAIJudge

        judge_spec = self.config.review.judge
        return BattleJudge(OpenAIJudge(judge_spec), judge_spec, self.templates, self.config.review.review_file)

    def _submit(self, battle: Battle) -> None:
        a = self.participants[battle.model_a].get(battle.question.question_id)
        b = self.participants[battle.model_b].get(battle.question.question_id)
        if a is None or b is None:
            missing = battle.model_a if a is None else battle.model_b
            future: Future = Future()
            future.set_result(Judgment(battle, None, "", "", cached=False,
                                       error=f"{missing} has no answer to question {battle.question.question_id!r}"))
            self._futures[battle.id] = future
        elif self._judge is not None:
            self._futures[battle.id] = self._judge.submit(battle, a, b)

    def judgment(self, battle: Battle) -> Judgment | None:
        """The battle's verdict (waiting for it), or None when reviews are disabled."""
        self.prepare()
        future = self._futures.get(battle.id)
        return None if future is None else future.result()

    def judgments(self) -> list[Judgment]:
        """Finished judgments of the selection, in plan order."""
        return [f.result() for b in self._selected if (f := self._futures.get(b.id)) is not None and f.done()]

    def cached_judgments(self) -> int | None:
        """How many selected battles the review cache already answers (None if answers are missing)."""
        if not self.config.review.enable:
            return 0
        judge = BattleJudge(None, self.config.review.judge, self.templates, self.config.review.review_file)
        try:
            for name in self.needed_models():
                if self.participants[name].load_cached(self.questions):
                    return None
            count = 0
            for battle in self._selected:
                a = self.participants[battle.model_a].get(battle.question.question_id)
                b = self.participants[battle.model_b].get(battle.question.question_id)
                count += bool(a and b and judge.is_cached(battle, a, b))
            return count
        finally:
            judge.close()

    @property
    def counters(self):
        """Judge calls, cache hits, failures and tokens of this run (None when nothing was judged)."""
        return self._judge.counters if self._judge else None

    # ---------------------------------------------------------------------------------------------
    # Ratings, gates, report

    def ratings(self):
        """The rating table over this session's verdicts (None when nothing was judged)."""
        if self._ratings is None:
            from .report import rating_table

            verdicts = [j for j in self.judgments() if j.ok]
            if not verdicts:
                return None
            self._ratings = rating_table(verdicts, list(self.participants), self.config.rating)
        return self._ratings

    def gate_result(self, gate: GateSpec):
        from .gates import evaluate_gate

        self.prepare()
        for battle in self._selected:  # every verdict of the run is in before any gate is judged
            future = self._futures.get(battle.id)
            if future is not None:
                future.result()
        return evaluate_gate(gate, self.ratings())

    def report_path(self) -> Path:
        path = self.config.rating.report_file
        # A -k run rates only part of the arena; it must not pass for the full report.
        return path.with_name(f"{path.stem}.subset{path.suffix}") if self.is_subset else path

    def write_report(self) -> Path | None:
        table = self.ratings()
        if table is None or not self.config.rating.enable:
            return None
        from .report import write_csv

        path = self.report_path()
        write_csv(table.frame, path)
        return path

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close(wait=False)
            self._judge.judge.close()


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARENA_CACHE_DIR", ".arena-cache"))
