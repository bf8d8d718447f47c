"""The arena's plan: who takes part, which matches are fought on which questions, which gates judge
them (``ArenaPlan``), built from the config by reading the question, template and answer files, and in
a rating-only run the review file, whose verdicts it brings (``build_plan``). It loads no model and
calls no judge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ArenaConfig, GateSpec, names_read_from_files
from .errors import ArenaConfigError, excerpt
from .evalscope.reviews import rating_only
from .evalscope.stages import rating_asked
from .generation.answer_formats import OURS, detect_format, index_answers, read_answer_records
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo
from .judging.judgment import Judgment
from .judging.templates import load_templates
from .judging.turns import calls_per_question
from .matches import Battle, Scoring, plan_matches
from .question_sets import load_question_sets
from .questions import Question
from .record_files import foreign_content, read_jsonl


# -------------------------------------------------------------------------------------------------
# The whole plan, built from the config: reads the question, template and answer files, loads nothing


@dataclass
class ArenaPlan:
    """What the run is about, fixed at configure time: the questions (``question_file`` or named sets,
    with their references), the judge's templates, the participants and their answers files, the
    matches in plan order and the configured gates. ``validation.check_plan`` checks it."""

    config: ArenaConfig
    questions: list[Question]
    is_limited: bool  # --arena-limit left questions out
    question_files: list[Path]  # named sets (--arena-questions); empty: question_file
    templates: list
    baseline: str | None
    participants: dict[str, ModelAnswers]
    matches: list[Battle | Scoring]
    gates: list[GateSpec]
    # A rating-only run (EvalScope's stage flags): the review file's verdicts, one per match; the
    # runner takes them as its matches' judgments and asks the judge nothing.
    recorded: tuple[Judgment, ...] = ()

    @classmethod
    def build(cls, config: ArenaConfig, question_files: list[Path] | None, limit: int | None, memo: DigestMemo,
              log: Callable[[str], None]) -> "ArenaPlan":
        questions, is_limited = load_question_sets(config, question_files, limit)
        templates = load_templates(config.review.prompt_file)
        baseline = baseline_name(config)
        participants = read_participants(config, baseline, memo, log)
        return cls(config, questions, is_limited, [Path(f) for f in question_files or ()], templates, baseline,
                   participants, plan_matches(config.review.judge.mode, questions, list(participants), baseline),
                   list(config.gates))

    @property
    def rating_only(self) -> bool:
        return bool(self.recorded)

    @property
    def mode(self) -> str:
        return self.config.review.judge.mode

    @property
    def match_kind(self) -> str:
        return "scorings" if self.mode == "single" else "battles"

    def calls_per_match(self, match: Battle | Scoring | None = None) -> int:
        """Judge calls per match: both orders under swap_position; given the match, times the turns it is
        judged at (``judge_turns: each``)."""
        swapped = self.config.review.judge.position_bias_mitigation == "swap_position" and self.mode != "single"
        orders = (2 if swapped else 1) * max(1, len(self.config.review.panel))  # (a panel: each judge's calls)
        return orders if match is None else orders * calls_per_question(match.question, self.config.review.judge_turns)

    def question_file(self, question: Question):
        """The file a question came from (for error messages)."""
        if question.question_set is None:
            return self.config.question_file or "--arena-questions"
        return {f.stem: f for f in self.question_files}.get(question.question_set, "--arena-questions")


def build_plan(config: ArenaConfig, question_files: list[Path] | None, limit: int | None, memo: DigestMemo,
               log: Callable[[str], None]) -> ArenaPlan:
    """The run's plan. With reviews off and rating on (EvalScope's rating stage), the reviews in the
    review file make it (``evalscope.reviews.rating_only``); the config's plan stays when there are none
    and a model generates answers (answers only)."""
    if not rating_asked(config):
        return ArenaPlan.build(config, question_files, limit, memo, log)
    held: list[str] = []  # the plan's lines about answer files: said only when the answers are used
    plan = ArenaPlan.build(config, question_files, limit, memo, held.append)
    rated = rating_only(plan, log)
    if rated is None:
        for line in held:
            log(line)
        return plan
    return rated


def baseline_name(config: ArenaConfig) -> str | None:
    """The model every other one meets in pairwise_baseline mode: named, or read from the baseline file."""
    if config.review.judge.mode != "pairwise_baseline":
        return None
    name = config.rating.baseline_model
    baseline_file = config.review.baseline_file
    if name is None and baseline_file is not None:
        records = read_jsonl(baseline_file)
        name = records[0].get("model_id") if records else None
    if not name:
        raise ArenaConfigError(config.path, "rating_gen.baseline_model",
                               "pairwise_baseline needs a baseline: a model of answers_gen, or "
                               "reviews_gen.baseline_file with answer records")
    # A model of a target_answers file is named by its records: check_plan finds it among the participants.
    if name not in config.models and baseline_file is None and not names_read_from_files(config.review, config.models):
        raise ArenaConfigError(config.path, "rating_gen.baseline_model",
                               f"expected one of the models in answers_gen ({', '.join(config.models)}) "
                               f"or a reviews_gen.baseline_file, got {excerpt(name)}")
    return str(name)


def read_participants(config: ArenaConfig, baseline: str | None, memo: DigestMemo,
                      log: Callable[[str], None]) -> dict[str, ModelAnswers]:
    """Who takes part: the models of answers_gen (or those target_answers names), extra answer
    files, and the baseline."""
    seed = config.rating.seed
    targets = config.review.target_answers
    chosen = {}
    for spec in config.models.values():
        if targets is not None and spec.output_file not in targets and spec.name != baseline:
            continue
        if not spec.enable and not os.path.isfile(spec.output_file):  # False, not OSError, for a name too long
            log(f"{spec.name}: enable is false and {spec.output_file} does not exist; it takes no part")
            continue
        _check_answer_format(config, spec, log)
        chosen[spec.name] = ModelAnswers(spec.name, spec.output_file, spec, seed, memo)
    own_files = {spec.output_file for spec in config.models.values()}
    for path in targets or ():
        if path in own_files:
            continue
        records = read_answer_records(path, keep=True)
        index = index_answers(path, records)  # refuses records that name different models
        fmt = index.fmt
        # The model's name as the file gives it, else the file's name (AlpacaEval's outputs often lack one).
        name = index.model
        if not name and (fmt == OURS or not records):  # our own records always carry their model_id
            raise ArenaConfigError(config.path, "reviews_gen.target_answers", f"expected answer records with a model_id in {path}")
        name = name or path.stem
        if name in chosen:  # not one model's answers in place of another's: one file a model
            raise ArenaConfigError(config.path, "reviews_gen.target_answers", f"{path} holds answers of {name!r}, "
                                   f"as {chosen[name].output_file} does: expected one answers file a model")
        log(f"{name}: {path} read as {fmt} answers")
        chosen[str(name)] = ModelAnswers(str(name), path, None, seed, memo)
    if baseline is not None and config.review.baseline_file is not None:
        chosen[baseline] = ModelAnswers(baseline, config.review.baseline_file, None, seed, memo)
    for answers in chosen.values():  # read-only files are checked whole now; a question answered twice is said
        repeated = None if answers.generates else answers.read_only_index().repeated
        if repeated:
            log(f"WARNING: {repeated}")
    return chosen


def _check_answer_format(config: ArenaConfig, spec, log: Callable[[str], None]) -> None:
    """Another tool's answers file is a read-only input: said in the log; a model that would append
    its answers to it is refused."""
    if not os.path.isfile(spec.output_file) or (spec.enable and foreign_content(spec.output_file) is not None):
        return  # nothing to read yet, or not records at all (paths.py refuses it, with its reason)
    records = read_answer_records(spec.output_file, keep=True)
    fmt = detect_format(records)
    if spec.enable:
        if fmt == OURS:
            return
        raise ArenaConfigError(config.path, f"answers_gen.{spec.name}.output_file",
                               f"{spec.output_file} holds {fmt} answers, which are read, never appended to: "
                               "set enable: false to use them, or give the model another output_file")
    log(f"{spec.name}: {spec.output_file} read as {fmt} answers")
