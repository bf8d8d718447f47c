"""Checks on every answer, as pytest tests: an example to copy into your project and adapt.

Each test takes ``arena_answer`` and runs once per question x model, with ids as the arena's
(``test_not_empty[q017-sft]``), so ``-k``/``-m`` select them as they select battles:

    pytest --arena-config cfg_arena.yaml checks/test_answer_checks.py               # battles and checks
    pytest --arena-config cfg_arena.yaml checks/test_answer_checks.py -k "sft and test_"   # sft's answers, no judge

``arena_answer`` has ``.model``, ``.question_id``, ``.question`` (the last turn's text),
``.question_turns``, ``.turns`` (the answer's turns), ``.text`` (the last one), ``.category`` and
``.reference``. The rules below are examples: change the phrases, the JSON rule and the bound to yours.
"""

import json
import re

import pytest

# The longest answer turn accepted, in characters (a runaway generation that never stops).
MAX_CHARS = 4000

# Boilerplate that means the model declined instead of answering (lower case; ’ is read as ').
REFUSALS = (
    "as an ai language model",
    "as an ai model",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i can't help with that",
    "i cannot help with that",
    "i can't assist with",
    "i cannot assist with",
    "i'm unable to help",
    "i am unable to help",
)

# A fenced block (```json ... ``` or ``` ... ```): its content is the JSON, the prose around it is not.
FENCED = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def wants_json(answer) -> bool:
    """The rule: a question asks for JSON when its category has the word ``json`` (``json``,
    ``json-output``, ``extraction_json``) or its last turn says ``JSON`` (upper case, as prose writes it)."""
    in_category = "json" in re.split(r"[^a-z0-9]+", answer.category.lower())
    return in_category or re.search(r"\bJSON\b", answer.question) is not None


def json_part(text: str) -> str:
    """The JSON an answer gives: its first fenced block if it has one, else the whole answer."""
    fenced = FENCED.search(text)
    return (fenced.group(1) if fenced else text).strip()


def where(answer, turn: int | None = None) -> str:
    which = f"turn {turn} of " if turn is not None and len(answer.turns) > 1 else ""
    return f"{answer.model}: {which}the answer to question {answer.question_id!r}"


def test_not_empty(arena_answer):
    for turn, text in enumerate(arena_answer.turns, start=1):
        assert text.strip(), f"{where(arena_answer, turn)} is empty"


def test_no_refusal_boilerplate(arena_answer):
    for turn, text in enumerate(arena_answer.turns, start=1):
        lowered = text.lower().replace("\u2019", "'")
        found = [phrase for phrase in REFUSALS if phrase in lowered]
        assert not found, f"{where(arena_answer, turn)} refuses: it says {found[0]!r}"


def test_length_bound(arena_answer):
    for turn, text in enumerate(arena_answer.turns, start=1):
        size = len(text)
        assert size <= MAX_CHARS, f"{where(arena_answer, turn)} has {size} characters (at most {MAX_CHARS})"


def test_valid_json_where_asked(arena_answer):
    if not wants_json(arena_answer):
        pytest.skip(f"question {arena_answer.question_id!r} does not ask for JSON")
    try:
        json.loads(json_part(arena_answer.text))
    except json.JSONDecodeError as exc:
        pytest.fail(f"{where(arena_answer)} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                    f"{arena_answer.text[:80]!r}", pytrace=False)
