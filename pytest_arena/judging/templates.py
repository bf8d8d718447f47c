"""Judge prompt templates in EvalScope's JSONL format, how one is chosen, and how it is filled in.

A line: ``{"name", "type": "pairwise"|"single", "system_prompt", "prompt_template", "description",
"category": str | [str, ...], "output_format"}``. Placeholders are ``{question}``, ``{answer_a}``,
``{answer_b}``, ``{answer}``, ``{ref_answer_1}`` and their per-turn forms ``{question_2}``,
``{answer_a_2}``, ... Only those names are substituted, so braces in a model's answer are left
alone. A template file is checked when it is read: each template must show the judge every answer it
judges (``{answer_a}`` and ``{answer_b}``, or ``{answer}``, in their turn forms for a multi-turn template)
and may hold no other ``{name}`` placeholder (one that nothing fills would reach the judge as the literal
``{name}``). A question is judged only by a template that covers exactly its turns, and only with answers
that have a non-empty text for each turn (``answer_problem``).

FastChat's own ``judge_prompts.jsonl`` (llm_judge) is recognised by its template names and chosen as
FastChat chooses (``fastchat_choice``): its tags cannot choose (its reference templates say only "math",
one of them "general"), while FastChat judges math, reasoning and coding against reference answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Callable

from ..errors import ArenaDataError
from ..questions import Question
from ..record_files import json_lines

TEMPLATE_KEYS = ("name", "type", "system_prompt", "prompt_template", "output_format")
GENERAL = "general"
_PLACEHOLDER = re.compile(r"\{(question|answer|answer_a|answer_b|ref_answer)(?:_(\d+))?\}")
# Anything that reads as a format placeholder: a {name} no slot fills would reach the judge as it is.
_NAMED_BRACES = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The answer slots each kind of template fills; a template must show the judge every one of them.
ANSWER_SLOTS = {"pairwise": ("answer_a", "answer_b"), "single": ("answer",)}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str
    categories: tuple[str, ...]

    @cached_property
    def turns(self) -> int:
        """How many turns of a conversation the template shows (``{question_2}`` ... : two)."""
        return max((int(turn or 1) for _, turn in _PLACEHOLDER.findall(self.prompt_template)), default=1)

    @cached_property
    def multi_turn(self) -> bool:
        return self.turns > 1

    @cached_property
    def needs_reference(self) -> bool:
        return self.reference_turns > 0

    @cached_property
    def reference_turns(self) -> int:
        """How many reference answers the template fills in (``{ref_answer_2}`` needs two)."""
        turns = [int(turn or 1) for name, turn in _PLACEHOLDER.findall(self.prompt_template) if name == "ref_answer"]
        return max(turns, default=0)

    @cached_property
    def digest(self) -> str:
        """Identifies the exact wording, for the review cache: an edited template is a new judge."""
        text = json.dumps([self.system_prompt, self.prompt_template, self.output_format])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def render(self, values: dict[str, str]) -> str:
        def fill(match: re.Match) -> str:
            name, turn = match.group(1), match.group(2)
            key = f"{name}_{turn}" if turn else name
            return values.get(key, match.group(0))

        return _PLACEHOLDER.sub(fill, self.prompt_template)


def load_templates(path: Path) -> list[PromptTemplate]:
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 may be in a string
    except UnicodeDecodeError as exc:
        raise ArenaDataError(path, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    templates = []
    for where, data in json_lines(path, lines):
        if not isinstance(data, dict):
            raise ArenaDataError(path, where, "expected a JSON object (a prompt template)")
        for key in TEMPLATE_KEYS:
            if not isinstance(data.get(key), str):
                raise ArenaDataError(path, where, f"{key}: expected a string, got {data.get(key)!r}")
        if data["type"] not in ("pairwise", "single"):
            raise ArenaDataError(path, where, f"type: expected pairwise or single, got {data['type']!r}")
        category = data.get("category", GENERAL)
        categories = (category,) if isinstance(category, str) else category
        if not isinstance(categories, (list, tuple)) or not all(isinstance(c, str) for c in categories):
            raise ArenaDataError(path, where, f"category: expected a string or a list of strings, got {category!r}")
        categories = tuple(categories)
        template = PromptTemplate(data["name"], data["type"], data["system_prompt"], data["prompt_template"],
                                  data["output_format"], categories)
        problem = placeholder_problem(template)
        if problem:
            raise ArenaDataError(path, where, f"template {template.name!r}: prompt_template: {problem}")
        templates.append(template)
    if not templates:
        raise ArenaDataError(path, "", "no prompt templates (expected one JSON object a line)")
    return templates


def placeholder_problem(template: PromptTemplate) -> str | None:
    """Why ``template`` cannot be filled in as a judge prompt of its type, or None.

    Every ``{name}`` must be a slot of its type (``{answer_a}`` in a single template, ``{answer_x}`` or
    ``{question_0}`` anywhere would reach the judge as written), and every answer slot must show the
    template's last turn: a pairwise template without ``{answer_b}`` would have the judge pick between
    one answer and nothing.
    """
    slots = ANSWER_SLOTS[template.type]
    known = ("question", "ref_answer", *slots)
    for name in dict.fromkeys(_NAMED_BRACES.findall(template.prompt_template)):
        match = _PLACEHOLDER.fullmatch(f"{{{name}}}")
        if match is None or match.group(1) not in known or int(match.group(2) or 1) == 0:
            forms = ", ".join(f"{{{n}}}" for n in known)
            return (f"unknown placeholder {{{name}}}: a {template.type} template can use {forms} "
                    "and their turn forms ({question_2}, ...)")
    turns = template.turns
    present = {(n, int(t or 1)) for n, t in _PLACEHOLDER.findall(template.prompt_template)}
    for slot in slots:
        if (slot, turns) not in present:
            form = f"{{{slot}}}" if turns == 1 else f"{{{slot}_{turns}}}"
            return f"no {form} placeholder: the judge would not see that answer (of turn {turns})"
    return None


class TurnsNotCovered(LookupError):
    """Templates of the kind exist, but none shows as many turns as the question has."""

    def __init__(self, kind: str, question: Question, of_kind: list[PromptTemplate]):
        n = len(question.turns)
        self.template = max(of_kind, key=lambda t: t.turns)  # the longest there is
        shown = " or ".join(str(t) for t in sorted({t.turns for t in of_kind}))
        super().__init__(f"{_count(n, 'turn')}{' (a multi-turn question)' if n > 1 else ''}, but no {kind} "
                         f"template shows {n}: they show {shown} (e.g. {self.template.name!r}: "
                         f"{self.template.turns}); add a {kind} template for {_count(n, 'turn')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def choose_template(templates: list[PromptTemplate], kind: str, question: Question) -> PromptTemplate:
    """The template for a question: its category's own if there is one, else the general one.

    Only a template that shows exactly the question's turns is used: a 3-turn question is never
    judged on two of its turns. A reference-guided template is only used when the question has a
    reference answer; otherwise the general template is used (EvalScope rendered the word "None" as
    the reference instead). FastChat's own file is chosen from as FastChat does (``fastchat_choice``).
    """
    of_kind = [t for t in templates if t.type == kind]
    if is_fastchat_file(of_kind, kind):
        return fastchat_choice(of_kind, kind, question)
    fitting = [t for t in of_kind if t.turns == len(question.turns)]
    if of_kind and not fitting:
        raise TurnsNotCovered(kind, question, of_kind)
    multi_turn = len(question.turns) > 1
    usable = [t for t in fitting if len(question.reference or ()) >= t.reference_turns]
    for wanted in (question.category, GENERAL):
        for template in usable:
            if wanted in template.categories:
                return template
    if usable:
        return usable[0]
    turns = "multi-turn" if multi_turn else "single-turn"
    raise LookupError(f"no {kind} {turns} template for category {question.category!r}")


# FastChat's llm_judge: the categories it judges against reference answers (common.NEED_REF_CATS),
# and, per kind, the prompt it uses for them and for every other category (gen_judgment.make_judge_*);
# the second turn (a multi-turn judgment) takes the same name with "-multi-turn".
FASTCHAT_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
FASTCHAT_NAMES = {"pairwise": {"reference": "pair-math-v1", "plain": "pair-v2"},
                  "single": {"reference": "single-math-v1", "plain": "single-v1"}}
MULTI_TURN_SUFFIX = "-multi-turn"


class ReferenceMissing(LookupError):
    """A question FastChat judges against a reference answer has none (FastChat's check_data refuses it too)."""


def is_fastchat_file(of_kind: list[PromptTemplate], kind: str) -> bool:
    """Whether templates of ``kind`` are FastChat's judge_prompts.jsonl as FastChat ships it: its names, and
    a reference template whose tags do not name every category FastChat gives it. (EvalScope's copy of the
    file tags its reference templates math, reasoning and coding: its tags choose as FastChat does.)"""
    names = {t.name: t for t in of_kind}
    wanted = FASTCHAT_NAMES[kind]
    if not all(name in names for name in wanted.values()):
        return False
    return not set(FASTCHAT_REFERENCE_CATEGORIES) <= set(names[wanted["reference"]].categories)


def fastchat_choice(of_kind: list[PromptTemplate], kind: str, question: Question) -> PromptTemplate:
    """FastChat's template for a question: ``pair-math-v1`` (``single-math-v1``) with the reference answers
    for math, reasoning and coding, ``pair-v2`` (``single-v1``) for the rest; the ``-multi-turn`` form for a
    two-turn judgment. A reference question without its reference answers is a ``ReferenceMissing``: FastChat
    would not judge it, and judging it without them is another benchmark."""
    turns = len(question.turns)
    if turns > 2:  # FastChat judges the first turn and the first two, nothing longer
        raise TurnsNotCovered(kind, question, of_kind)
    needs_reference = question.category in FASTCHAT_REFERENCE_CATEGORIES
    name = FASTCHAT_NAMES[kind]["reference" if needs_reference else "plain"] + (MULTI_TURN_SUFFIX if turns == 2 else "")
    template = next((t for t in of_kind if t.name == name), None)
    if template is None or template.turns != turns:
        raise LookupError(f"FastChat's judge prompts lack {name!r} (for {_count(turns, 'turn')} of category "
                          f"{question.category!r}), or it does not show {_count(turns, 'turn')}")
    have = len(question.reference or ())
    if have < template.reference_turns:
        shown = "no reference answer" if have == 0 else f"a reference answer for {_count(have, 'turn')} only"
        raise ReferenceMissing(
            f"category {question.category!r} is judged with {name!r} against reference answers (FastChat: math, "
            f"reasoning and coding), but the question has {shown} ({name!r} needs {template.reference_turns}); "
            "give reviews_gen.reference_file with its answers (FastChat's reference_answer/gpt-4.jsonl)")
    return template


def describe_choice(template: PromptTemplate, category: str) -> str:
    """The log line for the template chosen for a category (said once per category and template)."""
    with_reference = " (reference answers)" if template.needs_reference else ""
    return f"judge template for {category}: {template.name}{with_reference}"


class ChoiceLog:
    """Says which template judges a category, once per category and template, from any thread."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self._told: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, template: PromptTemplate, category: str) -> None:
        with self._lock:
            first = (category, template.name) not in self._told
            self._told.add((category, template.name))
        if first:
            self.log(describe_choice(template, category))


def answer_problem(question: Question, turns: tuple[str, ...]) -> str | None:
    """Why an answer cannot be shown to the judge, or None: an empty (or blank) answer, or fewer
    answered turns than the question has, would be judged as the empty text or a literal
    ``{answer_a_2}``."""
    if len(turns) < len(question.turns):
        return f"answers {len(turns)} of the question's {len(question.turns)} turns"
    blank = [i for i, text in enumerate(turns[:len(question.turns)], start=1) if not text.strip()]
    if not blank:
        return None
    if len(question.turns) == 1:
        return "is empty"
    return f"is empty in turn {blank[0]}"


def template_values(question: Question, answers: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Placeholder values: ``answers`` maps a slot (``answer_a``, ``answer_b``, ``answer``) to its turns.

    An answer ``answer_problem`` refuses is a ValueError: it must have been kept from the judge before.
    """
    values: dict[str, str] = {"question": question.turns[0]}
    for i, turn in enumerate(question.turns, start=1):
        values[f"question_{i}"] = turn
    for i, ref in enumerate(question.reference or (), start=1):
        values[f"ref_answer_{i}"] = ref
    if question.reference:
        values["ref_answer"] = question.reference[0]
    for slot, turns in answers.items():
        problem = answer_problem(question, turns)
        if problem:
            raise ValueError(f"the {slot} to question {question.question_id!r} {problem}")
        values[slot] = turns[-1] if len(question.turns) == 1 else turns[0]
        for i, text in enumerate(turns, start=1):
            values[f"{slot}_{i}"] = text
    return values


def skipped_reference_template(templates: list[PromptTemplate], kind: str, question: Question) -> PromptTemplate | None:
    """The reference-guided template this question would get if it had reference answers, when it
    lacks them (so the choice of the general template can be reported); None otherwise."""
    if question.reference and len(question.reference) >= len(question.turns):
        return None
    chosen = choose_template(templates, kind, question)
    with_reference = choose_template(templates, kind, replace(question, reference=("",) * len(question.turns)))
    return with_reference if with_reference is not chosen else None
