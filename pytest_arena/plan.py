"""The arena's plan: who takes part, which battles are fought on which questions, which gates judge
them (``ArenaPlan``), and the one function that names them for pytest.

Item IDs are ASCII, free of spaces and ``/``, and made only of characters that ``-k`` accepts, so
``-k Qwen2-3B`` selects a model's battles and gates: ``q017-Qwen2-3B--vs--Qwen2-0.5B``,
``elo-Qwen2-3B``.
"""

from __future__ import annotations

import itertools
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import ArenaConfig, GateSpec, names_read_from_files
from .errors import ArenaConfigError, excerpt
from .generation.answer_formats import OURS, detect_format, read_answer_records, record_model
from .generation.answers import ModelAnswers
from .generation.fingerprint import DigestMemo
from .judging.templates import load_templates
from .judging.turns import calls_per_question
from .question_sets import load_question_sets
from .questions import Question
from .store import foreign_content, read_jsonl

VS = "--vs--"


def safe_name(name: str) -> str:
    """A model name as it may appear in an item ID: ``org/name`` -> ``org--name``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = ascii_name.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", ascii_name).strip("_") or "model"


def question_label(question: Question, width: int) -> str:
    """``q017``, or ``mtbench-q017`` when several question sets take part."""
    qid = question.question_id
    label = f"q{qid:0{width}d}" if isinstance(qid, int) else "q" + safe_name(str(qid))
    return f"{safe_name(question.question_set)}-{label}" if question.question_set else label


@dataclass(frozen=True)
class Battle:
    """One question answered by two models; ``model_a`` is shown to the judge first."""

    question: Question
    model_a: str
    model_b: str
    id: str

    def __repr__(self) -> str:  # its item ID: what reports (allure) show as the parameter
        return self.id

    @property
    def models(self) -> tuple[str, str]:
        return (self.model_a, self.model_b)

    @property
    def label(self) -> str:
        """The question as the item ID shows it: ``q017`` of ``q017-A--vs--B``."""
        return _label_of(self.id, f"{safe_name(self.model_a)}{VS}{safe_name(self.model_b)}")


@dataclass(frozen=True)
class Scoring:
    """One question answered by one model, scored alone by the judge (``single`` mode)."""

    question: Question
    model: str
    id: str

    def __repr__(self) -> str:  # its item ID: what reports (allure) show as the parameter
        return self.id

    @property
    def models(self) -> tuple[str]:
        return (self.model,)

    @property
    def label(self) -> str:
        """The question as the item ID shows it: ``q017`` of ``q017-MODEL``."""
        return _label_of(self.id, safe_name(self.model))


def _label_of(item_id: str, models_part: str) -> str:
    return item_id[: -len(models_part) - 1] if item_id.endswith("-" + models_part) else item_id


def plan_pairwise(questions: list[Question], models: list[str]) -> list[Battle]:
    """Every pair of models on every question, question by question."""
    return _battles(questions, list(itertools.combinations(models, 2)))


def plan_against_baseline(questions: list[Question], models: list[str], baseline: str) -> list[Battle]:
    """Every other model against the baseline (shown second), question by question."""
    return _battles(questions, [(m, baseline) for m in models if m != baseline])


def plan_single(questions: list[Question], models: list[str]) -> list[Scoring]:
    width = _label_width(questions)
    return [
        Scoring(q, m, f"{question_label(q, width)}-{safe_name(m)}")
        for q in questions for m in models
    ]


def _battles(questions: list[Question], pairs: list[tuple[str, str]]) -> list[Battle]:
    width = _label_width(questions)
    # Each pair's ID suffix once, not per question: 20,000 battles would call safe_name 40,000 times.
    suffixes = [f"{safe_name(a)}{VS}{safe_name(b)}" for a, b in pairs]
    battles = []
    for question in questions:
        label = question_label(question, width)
        for (a, b), suffix in zip(pairs, suffixes):
            battles.append(Battle(question, a, b, f"{label}-{suffix}"))
    return battles


def ambiguous_questions(questions: list[Question]) -> tuple[object, object] | None:
    """Two question ids that would share an item label (``1`` and ``"001"``), if any."""
    width = _label_width(questions)
    seen: dict[str, object] = {}
    for question in questions:
        other = seen.setdefault(question_label(question, width), question.question_id)
        if other != question.question_id:
            return other, question.question_id
    return None


def shared_ids(matches: list[Battle | Scoring]) -> tuple[Battle | Scoring, Battle | Scoring] | None:
    """Two matches of the plan with the same item ID, if any: question ``z`` with model ``m-x`` and
    question ``z-m`` with model ``x`` both make ``qz-m-x``, and one verdict would be counted twice."""
    seen: dict[str, Battle | Scoring] = {}
    for match in matches:
        other = seen.setdefault(match.id, match)
        if other is not match:
            return other, match
    return None


def describe(match: Battle | Scoring) -> str:
    """A match in words, for error messages: ``question 'z' with models 'm-x' and 'y'``."""
    models = " and ".join(repr(m) for m in match.models)
    return f"question {match.question.question_id!r} with model{'s' if len(match.models) > 1 else ''} {models}"


def _label_width(questions: list[Question]) -> int:
    return max(3, max((len(str(q.question_id)) for q in questions if isinstance(q.question_id, int)), default=3))


def gate_id(gate: GateSpec) -> str:
    if gate.kind == "beats":
        return f"beats-{safe_name(gate.model)}{VS}{safe_name(gate.beats)}"
    return f"{gate.kind}-{safe_name(gate.model)}"


def ambiguous_names(models: list[str]) -> tuple[str, str] | None:
    """Two model names that would share an item ID, if any."""
    seen: dict[str, str] = {}
    for model in models:
        other = seen.setdefault(safe_name(model), model)
        if other != model:
            return other, model
    return None


def blocks(ids: list[str], count: int) -> dict[str, int]:
    """Split the run's matches (in item order) into ``count`` blocks of consecutive matches, near
    equal in size: match ID -> block. Under pytest-xdist each block is judged by the one worker that
    runs its items; the controller's scheduler and every worker compute the same split."""
    return {match_id: i * count // len(ids) for i, match_id in enumerate(ids)}


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
    def mode(self) -> str:
        return self.config.review.judge.mode

    @property
    def match_kind(self) -> str:
        return "scorings" if self.mode == "single" else "battles"

    def calls_per_match(self, match: Battle | Scoring | None = None) -> int:
        """Judge calls per match: both orders under swap_position; given the match, times the turns it is
        judged at (``judge_turns: each``)."""
        swapped = self.config.review.judge.position_bias_mitigation == "swap_position" and self.mode != "single"
        orders = 2 if swapped else 1
        return orders if match is None else orders * calls_per_question(match.question, self.config.review.judge_turns)

    def question_file(self, question: Question):
        """The file a question came from (for error messages)."""
        if question.question_set is None:
            return self.config.question_file or "--arena-questions"
        return {f.stem: f for f in self.question_files}.get(question.question_set, "--arena-questions")


def plan_matches(mode: str, questions: list[Question], names: list[str], baseline: str | None) -> list[Battle | Scoring]:
    if mode == "single":
        return plan_single(questions, names)
    if mode == "pairwise_baseline":
        return plan_against_baseline(questions, names, baseline)
    return plan_pairwise(questions, names)


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
        fmt = detect_format(records)
        # The model's name as the file gives it, else the file's name (AlpacaEval's outputs often lack one).
        name = next((n for r in records if (n := record_model(fmt, r))), None)
        if not name and (fmt == OURS or not records):  # our own records always carry their model_id
            raise ArenaConfigError(config.path, "reviews_gen.target_answers", f"expected answer records with a model_id in {path}")
        name = name or path.stem
        log(f"{name}: {path} read as {fmt} answers")
        chosen[str(name)] = ModelAnswers(str(name), path, None, seed, memo)
    if baseline is not None and config.review.baseline_file is not None:
        chosen[baseline] = ModelAnswers(baseline, config.review.baseline_file, None, seed, memo)
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
