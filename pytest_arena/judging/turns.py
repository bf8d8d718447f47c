"""Judging a multi-turn question turn by turn (``reviews_gen.judge_turns: each``), as FastChat's MT-bench does.

Turn ``t`` is judged on the conversation up to that turn: the question's first ``t`` turns (and
reference answers) and each answer's first ``t`` turns. So turn 1 of a two-turn question gets the
single-turn template (``{question}``, ``{answer_a}``), and turn 2 the two-turn template, which shows
the whole conversation and asks about the second answer (``{question_1}``, ``{answer_a_2}``, ...).
Which template that is stays the template module's choice (``choose_template`` on the shortened
question). A single-turn question is judged once, as turn 1.

``whole`` (the default) judges the whole conversation once: turn ``None``.
"""

from __future__ import annotations

from dataclasses import replace

from ..questions import Question

WHOLE = "whole"
EACH = "each"


def judged_turns(question: Question, judge_turns: str) -> tuple[int | None, ...]:
    """The turns a match on ``question`` is judged at: ``(None,)`` for the whole conversation at once."""
    if judge_turns != EACH:
        return (None,)
    return tuple(range(1, len(question.turns) + 1))


def up_to_turn(question: Question, turn: int | None) -> Question:
    """The question as the judge sees it at ``turn``: its first ``turn`` turns and reference answers."""
    if turn is None or turn >= len(question.turns):
        return question
    reference = question.reference[:turn] if question.reference else None
    return replace(question, turns=question.turns[:turn], reference=reference)


def answer_up_to(turns: tuple[str, ...], turn: int | None) -> tuple[str, ...]:
    """An answer's turns up to ``turn`` (all of them for the whole conversation)."""
    return tuple(turns) if turn is None else tuple(turns[:turn])


def calls_per_question(question: Question, judge_turns: str) -> int:
    """How many times a match on ``question`` is judged (before swap_position doubles each)."""
    return len(judged_turns(question, judge_turns))
