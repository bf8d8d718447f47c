"""Judge prompt templates in EvalScope's JSONL format, how one is chosen, and how it is filled in.

A line: ``{"name", "type": "pairwise"|"single", "system_prompt", "prompt_template", "description",
"category": str | [str, ...], "output_format"}``. Placeholders are ``{question}``, ``{answer_a}``,
``{answer_b}``, ``{answer}``, ``{ref_answer_1}`` and their per-turn forms ``{question_2}``,
``{answer_a_2}``, ... Only those names are substituted, so braces in a template's prose or in a
model's answer are left alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ..errors import ArenaConfigError
from ..questions import Question

TEMPLATE_KEYS = ("name", "type", "system_prompt", "prompt_template", "output_format")
GENERAL = "general"
_PLACEHOLDER = re.compile(r"\{(question|answer|answer_a|answer_b|ref_answer)(?:_(\d+))?\}")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str
    categories: tuple[str, ...]

    @cached_property
    def multi_turn(self) -> bool:
        return any(int(turn or 1) > 1 for _, turn in _PLACEHOLDER.findall(self.prompt_template))

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
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ArenaConfigError(path, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    templates = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ArenaConfigError(path, where, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ArenaConfigError(path, where, "expected a JSON object (a prompt template)")
        for key in TEMPLATE_KEYS:
            if not isinstance(data.get(key), str):
                raise ArenaConfigError(path, where, f"{key}: expected a string, got {data.get(key)!r}")
        if data["type"] not in ("pairwise", "single"):
            raise ArenaConfigError(path, where, f"type: expected pairwise or single, got {data['type']!r}")
        category = data.get("category", GENERAL)
        categories = (category,) if isinstance(category, str) else category
        if not isinstance(categories, (list, tuple)) or not all(isinstance(c, str) for c in categories):
            raise ArenaConfigError(path, where, f"category: expected a string or a list of strings, got {category!r}")
        categories = tuple(categories)
        templates.append(
            PromptTemplate(data["name"], data["type"], data["system_prompt"], data["prompt_template"],
                           data["output_format"], categories)
        )
    if not templates:
        raise ArenaConfigError(path, "", "no prompt templates (expected one JSON object a line)")
    return templates


def choose_template(templates: list[PromptTemplate], kind: str, question: Question) -> PromptTemplate:
    """The template for a question: its category's own if there is one, else the general one.

    A reference-guided template is only used when the question has a reference answer; otherwise
    the general template is used (EvalScope rendered the word "None" as the reference instead).
    """
    multi_turn = len(question.turns) > 1
    usable = [
        t for t in templates
        if t.type == kind and t.multi_turn == multi_turn and len(question.reference or ()) >= t.reference_turns
    ]
    for wanted in (question.category, GENERAL):
        for template in usable:
            if wanted in template.categories:
                return template
    if usable:
        return usable[0]
    turns = "multi-turn" if multi_turn else "single-turn"
    raise LookupError(f"no {kind} {turns} template for category {question.category!r}")


def template_values(question: Question, answers: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Placeholder values: ``answers`` maps a slot (``answer_a``, ``answer_b``, ``answer``) to its turns."""
    values: dict[str, str] = {"question": question.turns[0]}
    for i, turn in enumerate(question.turns, start=1):
        values[f"question_{i}"] = turn
    for i, ref in enumerate(question.reference or (), start=1):
        values[f"ref_answer_{i}"] = ref
    for slot, turns in answers.items():
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
