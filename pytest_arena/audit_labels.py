"""Labelled pairs for a judge audit (issue 26): a file of human (or trusted) verdicts, read strictly.

Two formats, told apart line by line by whether a record has a ``judge``:

* **FastChat's MT-bench human judgments** (``lmsys/mt_bench_human_judgments``: ``human_judgments.json``,
  ``gpt4_pair_judgments.json``, or the same records one a line), read unchanged: ``question_id``,
  ``model_a``, ``model_b``, ``winner``, ``judge`` (the annotator, ``"expert_3"``; a model judge is a
  list, ``["gpt-4", "pair-v2"]``), ``turn`` (1 = the first answer, 2 = the second, judged with the
  first in view) and optionally ``conversation_a``/``conversation_b`` (the two conversations as
  ``{"role", "content"}`` messages). Other keys are ignored: the format is FastChat's, not ours.
* **Ours**, one JSON object a line: ``question_id``, ``model_a``, ``model_b``, ``winner`` and an
  optional ``turn`` (absent: the whole conversation, as a review record without ``turn``). Unknown
  keys are errors, with a "did you mean".

``winner`` is ``model_a``, ``model_b``, ``tie`` or ``tie (bothbad)`` (both answers bad: still a tie, as
FastChat's ``compute_agreement.py`` counts every winner containing "tie"); ``tie (inconsistent)`` is
accepted too, because FastChat's released GPT-4 verdicts use it (the two orders disagreed), so that
file can serve as the trusted labels when auditing a cheaper judge against GPT-4.

**Several labels of the same pair** (several annotators, or one annotator twice) are all kept, in file
order: FastChat's agreement compares the judge's one verdict with each label in turn, so a pair with
three labels counts three times (``get_mt_bench_votes_data`` appends every vote to its pair's list).
Which annotators count is the caller's choice (:func:`select_annotators`); FastChat's own figures
count only the ``expert*`` annotators as "human" (``get_judge_name``).

Every problem is one :class:`~pytest_arena.errors.ArenaDataError` naming the file, the line and what
was expected. This module imports nothing heavy: the plugin can read a labels file at configure
time, before any model loads or judge call is paid.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ArenaDataError, excerpt, kind_of
from .record_files import invalid_json, json_lines, refuse_unencodable

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)", "tie (inconsistent)")
FASTCHAT_KEYS = ("question_id", "model_a", "model_b", "winner", "judge", "turn", "conversation_a",
                 "conversation_b")
OWN_KEYS = ("question_id", "model_a", "model_b", "winner", "turn")
# FastChat's model_judgment/*_pair.jsonl (what gen_judgment.py writes) is a different format: name it.
_JUDGMENT_FILE_KEYS = ("model_1", "model_2", "g1_winner", "g2_winner")


@dataclass(frozen=True)
class Label:
    """One labelled pair: which model's answer the annotator preferred, in the file's own order."""

    question_id: int | str
    model_a: str
    model_b: str
    winner: str  # as written: one of WINNERS
    turn: int | None  # None: the whole conversation (our format without ``turn``)
    annotator: str  # FastChat's ``judge`` ("expert_3"; a list judge joined by "/"); "" in our format
    where: str  # "line 7": where the label is, for errors found later (an unknown question or model)
    questions: tuple[str, ...] | None = None  # the user turns of the conversations, when given
    answers_a: tuple[str, ...] | None = None  # model_a's answer to each turn, when given
    answers_b: tuple[str, ...] | None = None

    @property
    def outcome(self) -> str:
        """``model_a``, ``model_b`` or ``tie`` (every kind of tie is a tie)."""
        return "tie" if self.winner.startswith("tie") else self.winner


def read_labels(path: str | Path) -> list[Label]:
    """Every label of the file, in file order. A JSON array (FastChat's ``*.json``) or JSON lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArenaDataError(path, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # missing, a folder, unreadable
        raise ArenaDataError(path, "", f"cannot read the labels file ({exc.strerror or exc})") from None
    records = _array_records(path, text) if text.lstrip().startswith("[") else json_lines(path, text.split("\n"))
    labels: list[Label] = []
    seen = _Conversations(path)
    fastchat_line = own_line = None
    for where, record in records:
        label = _label(path, where, record)
        if "judge" in record:
            fastchat_line = fastchat_line or where
        else:
            own_line = own_line or where
        if fastchat_line and own_line:
            raise ArenaDataError(path, where, f"mixes FastChat's format (a judge, as on {fastchat_line}) with "
                                 f"ours (no judge, as on {own_line}); expected one format a file")
        seen.check(label)
        labels.append(label)
    if not labels:
        raise ArenaDataError(path, "", "no labels (expected JSON objects with question_id, model_a, model_b "
                             "and winner)")
    return labels


def select_annotators(labels: Iterable[Label], prefixes: str | Iterable[str]) -> list[Label]:
    """The labels whose annotator starts with one of ``prefixes``. ``"expert"`` selects what FastChat's
    ``compute_agreement.py`` calls "human" on its MT-bench file (its ``author`` votes are left out)."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    return [label for label in labels if label.annotator.startswith(prefixes)]


def check_labels(path: str | Path, labels: Iterable[Label], question_turns: Mapping[int | str, int],
                 models: Iterable[str]) -> None:
    """Raise ArenaDataError at the first label about a question the arena does not ask
    (``question_turns``: question_id -> its number of turns), a model it does not run, or a turn past
    the question's last. For the caller that audits its own arena; labels of other pairs are a mistake."""
    models = set(models)
    for label in labels:
        turns = question_turns.get(label.question_id)
        if turns is None:
            raise ArenaDataError(path, label.where, f"question_id: {excerpt(label.question_id)} is not a question "
                                 f"of the arena{_id_hint(label.question_id, question_turns)}")
        for side in ("model_a", "model_b"):
            name = getattr(label, side)
            if name not in models:
                close = difflib.get_close_matches(name, sorted(models), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (its models: {', '.join(sorted(models))})"
                raise ArenaDataError(path, label.where, f"{side}: {excerpt(name)} is not a model of the arena{hint}")
        if label.turn is not None and label.turn > turns:
            raise ArenaDataError(path, label.where, f"turn: {label.turn}, but question {excerpt(label.question_id)} "
                                 f"has {turns} turn{'s' if turns != 1 else ''}")


def _id_hint(qid, question_turns: Mapping) -> str:
    """A question id written as the other type (``"81"`` for ``81``) is the likely mistake: say so."""
    for other in (str(qid), int(qid) if isinstance(qid, str) and qid.isdigit() else None):
        if other is not None and other != qid and other in question_turns:
            return f" (the question file has {other!r}, a {'string' if isinstance(other, str) else 'number'})"
    return ""


# --------------------------------------------------------------------------------------------------
# One record


def _label(path: Path, where: str, record) -> Label:
    def fail(problem: str):
        raise ArenaDataError(path, where, problem)

    if not isinstance(record, dict):
        fail(f"expected a JSON object with question_id, model_a, model_b and winner, got {kind_of(record)}")
    fastchat = "judge" in record
    if not fastchat:
        if any(key in record for key in _JUDGMENT_FILE_KEYS):
            fail("this is a FastChat judgment record (model_1, g1_winner, ...); expected a labels record "
                 "(question_id, model_a, model_b, winner), as in FastChat's human_judgments.json")
        for key in record:
            if key not in OWN_KEYS:
                close = difflib.get_close_matches(str(key), OWN_KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (expected: {', '.join(OWN_KEYS)})"
                fail(f"unknown key {excerpt(key)}{hint}")
    qid = record.get("question_id")
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or qid == "":
        fail(f"question_id: expected an integer or a non-empty string, got {excerpt(qid)}")
    for side in ("model_a", "model_b"):
        name = record.get(side)
        if not isinstance(name, str) or not name.strip():
            fail(f"{side}: expected the model's name as a non-empty string, got {excerpt(name)}")
    if record["model_a"] == record["model_b"]:
        fail(f"model_a and model_b are both {excerpt(record['model_a'])}; expected two different models")
    winner = record.get("winner")
    if winner not in WINNERS:
        close = difflib.get_close_matches(winner.strip().lower(), WINNERS, n=1) if isinstance(winner, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        fail(f"winner: expected one of {', '.join(WINNERS)}, got {excerpt(winner)}{hint}")
    turn = record.get("turn")
    if fastchat and "turn" not in record:
        fail("turn: missing (FastChat's format names the turn judged: 1 or 2)")
    if turn is not None or "turn" in record:
        if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
            fail(f"turn: expected the turn judged, a whole number from 1, got {excerpt(turn)}")
    annotator = _annotator(record.get("judge"), fail) if fastchat else ""
    conversations = _conversations(record, turn, fail)
    return Label(qid, record["model_a"], record["model_b"], winner, turn, annotator, where, *conversations)


def _annotator(judge, fail) -> str:
    if isinstance(judge, str) and judge.strip():
        return judge
    if isinstance(judge, list) and judge and all(isinstance(part, str) and part.strip() for part in judge):
        return "/".join(judge)  # FastChat's model judge: [model, prompt name]
    fail(f"judge: expected the annotator's name (a string, or FastChat's [model, prompt] list), got {excerpt(judge)}")


def _conversations(record: dict, turn: int | None, fail) -> tuple:
    present = [side for side in ("conversation_a", "conversation_b") if side in record]
    if not present:
        return None, None, None
    if len(present) == 1:
        missing = "conversation_b" if present == ["conversation_a"] else "conversation_a"
        fail(f"{missing}: missing (expected both conversations, or neither when the answer files give them)")
    parsed = [_conversation(record[side], side, fail) for side in ("conversation_a", "conversation_b")]
    (asked_a, answers_a), (asked_b, answers_b) = parsed
    if asked_a != asked_b:
        fail("conversation_a and conversation_b ask different questions; expected the same user turns in both")
    if turn is not None and turn > len(answers_a):
        fail(f"turn: {turn}, but the conversations hold {len(answers_a)} answer{'s' if len(answers_a) != 1 else ''}")
    return asked_a, answers_a, answers_b


def _conversation(messages, side: str, fail) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(user turns, assistant turns) of a conversation that alternates user, assistant from the start."""
    if not isinstance(messages, list) or not messages:
        fail(f"{side}: expected a non-empty list of {{\"role\", \"content\"}} messages, got {excerpt(messages)}")
    asked, answered = [], []
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != expected:
            got = message.get("role") if isinstance(message, dict) else message
            fail(f"{side}[{i}]: expected a message with role {expected!r} (user and assistant alternate, user "
                 f"first), got {excerpt(got)}")
        content = message.get("content")
        if not isinstance(content, str):
            fail(f"{side}[{i}].content: expected a string, got {excerpt(content)}")
        (asked if expected == "user" else answered).append(content)
    if len(answered) < len(asked):
        fail(f"{side}: ends with a user turn; expected each user turn to be answered")
    return tuple(asked), tuple(answered)


class _Conversations:
    """A model's answer to a question is one answer: two lines giving it differently are a broken file
    (the judge would be asked about one of them, the labels would be about both). A turn-1 record may
    hold fewer turns than a turn-2 record of the same answers: the shorter must start the longer."""

    def __init__(self, path: Path):
        self.path = path
        self.first: dict[tuple, tuple[tuple[str, ...], str]] = {}

    def check(self, label: Label) -> None:
        if label.answers_a is None:
            return
        for model, answers in ((label.model_a, label.answers_a), (label.model_b, label.answers_b)):
            key = (label.question_id, model)
            if key not in self.first:
                self.first[key] = (answers, label.where)
                continue
            known, where = self.first[key]
            short, long = sorted((known, answers), key=len)
            if long[:len(short)] != short:
                raise ArenaDataError(self.path, label.where, f"{model}'s answer to question "
                                     f"{excerpt(label.question_id)} differs from the one on {where}; expected "
                                     "one answer per model and question")
            if len(answers) > len(known):
                self.first[key] = (answers, label.where)


# --------------------------------------------------------------------------------------------------
# A JSON array, record by record, with the line each starts on


def _array_records(path: Path, text: str) -> Iterator[tuple[str, object]]:
    """``(where, record)`` for each element of a JSON array: FastChat's files are one array, and an
    error should name the line of the record, not just "record 812"."""
    decoder = json.JSONDecoder()
    position = _skip_space(text, text.index("[") + 1)
    line, counted = 1, 0
    first = True
    while True:
        if position >= len(text):
            raise ArenaDataError(path, f"line {text.count(chr(10)) + 1}", "invalid JSON (the array is not closed)")
        if text[position] == "]" and first:
            position += 1
            break
        line += text.count("\n", counted, position)
        counted = position
        where = f"line {line}"
        try:
            record, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ArenaDataError(path, f"line {exc.lineno}", invalid_json(exc)) from None
        refuse_unencodable(path, where, text[position:end], record)
        yield where, record
        first = False
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            position += 1
            break
        line += text.count("\n", counted, position)
        counted = position
        if position >= len(text):
            raise ArenaDataError(path, f"line {line}", "invalid JSON (the array is not closed)")
        raise ArenaDataError(path, f"line {line}", "invalid JSON (expected ',' or ']' after a record)")
    position = _skip_space(text, position)
    if position < len(text):
        line += text.count("\n", counted, position)
        raise ArenaDataError(path, f"line {line}", "invalid JSON (text after the closing ']')")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
