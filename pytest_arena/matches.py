"""The arena's matches: battles (two answers compared) and scorings (one answer scored), who meets whom
on which question (``plan_pairwise``, ``plan_against_baseline``, ``plan_single``), and the one function
family that names them for pytest.

Item IDs are ASCII, free of spaces and ``/``, and made only of characters that ``-k`` accepts, so
``-k Qwen2-3B`` selects a model's battles and gates: ``q017-Qwen2-3B--vs--Qwen2-0.5B``,
``elo-Qwen2-3B``. Plain data: what the judge, the ratings and the report take, below the plan that
reads the files (``plan.ArenaPlan``).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .questions import Question

if TYPE_CHECKING:
    from .config import GateSpec

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
    if gate.model is None:  # a gate on the judge (config.JudgeGateSpec): ``judge_agreement``
        return gate.kind
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


def plan_matches(mode: str, questions: list[Question], names: list[str], baseline: str | None) -> list[Battle | Scoring]:
    if mode == "single":
        return plan_single(questions, names)
    if mode == "pairwise_baseline":
        return plan_against_baseline(questions, names, baseline)
    return plan_pairwise(questions, names)
