"""Answer files of other tools, read as they are: which format a file is in, and one record's answer.

- ``evalscope``: ours (EvalScope's superset): ``question_id``, ``model_id``, ``answer``, ``answer_turns``;
- ``fastchat``: FastChat llm_judge's ``model_answer/*.jsonl``: ``question_id``, ``model_id``,
  ``choices[0].turns`` (a list of strings);
- ``arena-hard-v0.1``: arena-hard-auto's first answers: ``question_id``, ``model_id``,
  ``choices[0].turns[i].content``;
- ``arena-hard-v2``: ``uid``, ``model``, ``messages[-1].content.answer``;
- ``alpaca_eval``: ``instruction``, ``output``, ``generator`` (a JSON list, or one record a line);
  matched to a question by its text, as AlpacaEval has no ids.

Only ``evalscope`` files are ours to append to (the answer cache); the others are read-only inputs,
read strictly (``index_answers``): one file is one model's answers, so records naming different models
are refused, as are names and ids of the wrong type; a question answered twice is refused where the tool
gives no rule (AlpacaEval judges every row), else its last record is read, as the tool's own readers do,
and a warning says which line was read.
No file is read here but by ``read_answer_records`` (and ``record_lines``, for a message's line numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ArenaDataError, excerpt
from ..record_files import may_hold_surrogate, read_jsonl, record_lines, refuse_unencodable

OURS = "evalscope"
FORMATS = (OURS, "fastchat", "arena-hard-v0.1", "arena-hard-v2", "alpaca_eval")


def read_answer_records(path: Path, keep: bool = False) -> list[dict]:
    """The records of an answers file: JSONL, or (AlpacaEval's outputs) one JSON list of records."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(4096).lstrip()
    except FileNotFoundError:
        return []
    if not start.startswith(b"["):
        return read_jsonl(path, keep=keep)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        records = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArenaDataError(path, "", f"expected a JSON list of answer records or JSONL, got invalid JSON ({exc})") from None
    if not all(isinstance(r, dict) for r in records):
        raise ArenaDataError(path, "", "expected a JSON list of answer records (JSON objects)")
    if may_hold_surrogate(text):
        for number, record in enumerate(records, start=1):
            refuse_unencodable(path, f"record {number}", None, record)
    return records


def detect_format(records: list[dict]) -> str:
    """The format of a file's records, told by the first record that shows one (ours when none does)."""
    for record in records:
        found = record_format(record)
        if found is not None:
            return found
    return OURS


def record_format(record: dict) -> str | None:
    if "answer" in record or "answer_turns" in record:
        return OURS
    choices = record.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            return "arena-hard-v0.1"
        return "fastchat"
    if "uid" in record and isinstance(record.get("messages"), list):
        return "arena-hard-v2"
    if "instruction" in record and "output" in record:
        return "alpaca_eval"
    return None


def model_key(fmt: str) -> str:
    """The key that names the model which wrote a record of this format."""
    return {"arena-hard-v2": "model", "alpaca_eval": "generator"}.get(fmt, "model_id")


def id_key(fmt: str) -> str:
    """The key that says which question a record of this format answers."""
    return {"arena-hard-v2": "uid", "alpaca_eval": "instruction"}.get(fmt, "question_id")


def record_model(fmt: str, record: dict) -> str | None:
    """The name of the model that wrote a record, if the record says (as a string: ``index_answers``
    refuses a name of another type)."""
    name = record.get(model_key(fmt))
    return name if isinstance(name, str) and name else None


def record_key(fmt: str, record: dict) -> str | None:
    """What matches a record to a question: its id as text, or (AlpacaEval) the instruction's text."""
    value = record.get(id_key(fmt))
    return None if value is None else str(value)


def record_turns(fmt: str, record: dict) -> list:
    """A record's answer, one text per turn (a null turn stays None: the caller makes it "")."""
    if fmt == OURS:
        return record.get("answer_turns") or [record.get("answer", "")]
    if fmt == "alpaca_eval":
        return [record.get("output")]
    if fmt == "arena-hard-v2":
        messages = record.get("messages") or [None]
        content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
        return [content.get("answer") if isinstance(content, dict) else content]
    choices = record.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    turns = first.get("turns")
    if not isinstance(turns, list):
        return []
    if fmt == "arena-hard-v0.1":
        return [t.get("content") if isinstance(t, dict) else t for t in turns]
    return turns


def seen_keys(records: list[dict], limit: int = 8) -> list[str]:
    """The keys a file's records hold, for the message that refuses it."""
    keys: dict[str, None] = {}
    for record in records[:100]:
        keys.update(dict.fromkeys(map(str, record)))
    return list(keys)[:limit]


# -------------------------------------------------------------------------------------------------
# A read-only answers file, checked whole before anything is paid


# Where a question is answered twice, the record each tool's own reader keeps (None: the tool gives no rule).
_REPEAT_RULES = {
    OURS: "the newest (the answers file is appended to)",
    "fastchat": "as FastChat's own readers do",
    "arena-hard-v0.1": "as arena-hard-auto's own readers do",
    "arena-hard-v2": "as arena-hard-auto's own readers do",
    "alpaca_eval": None,  # AlpacaEval pairs outputs row by row: both rows would be judged
}


@dataclass(frozen=True)
class AnswerIndex:
    """A read-only answers file, checked: its format, the model its records name (None: none does), the
    record that answers each key (ours: ``(question_set, question_id)``; others: ``record_key``) and, when
    some question is answered twice, the warning that says which record was read."""

    fmt: str
    model: str | None
    by_key: dict
    repeated: str | None = None


def index_answers(path: Path, records: list[dict]) -> AnswerIndex:
    """Check a read-only answers file's records and index them by what matches them to a question.

    Refused (ArenaDataError naming the file and the line): a model name that is not a string, records
    naming different models, an id of the wrong type, and (where the tool gives no rule) a question
    answered twice. Every line is checked, whichever questions the arena asks.
    """
    fmt = detect_format(records)
    places: list[str] = []

    def where(index: int) -> str:  # line numbers are read again only for a message
        if not places:
            places.extend(_places(path, len(records)))
        return places[index] if index < len(places) else f"record {index + 1}"

    name_key = model_key(fmt)
    model, model_at = None, 0
    by_key: dict = {}
    seen_at: dict = {}
    repeats: list[tuple[object, int, int]] = []
    for index, record in enumerate(records):
        name = record.get(name_key)
        if name is not None and not isinstance(name, str):
            raise ArenaDataError(path, where(index), f"{name_key}: expected the model's name as a string, "
                                 f"got {excerpt(name)}")
        if name:
            if model is None:
                model, model_at = name, index
            elif name != model:
                raise ArenaDataError(path, where(index), f"{name_key} {excerpt(name)} differs from {excerpt(model)} "
                                     f"on {where(model_at)}: expected one model's answers in one file (split it by "
                                     f"{name_key}, one file a model)")
        key = _match_key(path, fmt, record, lambda i=index: where(i))
        if key in seen_at:
            repeats.append((key, seen_at[key], index))
        seen_at[key] = index
        by_key[key] = record
    return AnswerIndex(fmt, model, by_key, _repeated(path, fmt, records, repeats, where))


def _match_key(path: Path, fmt: str, record: dict, where: Callable[[], str]):
    key = id_key(fmt)
    value = record.get(key)
    if fmt == "alpaca_eval":
        if not isinstance(value, str):
            raise ArenaDataError(path, where(), f"{key}: expected the question's text, got {excerpt(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise ArenaDataError(path, where(), f"{key}: expected an integer or a non-empty string, got {excerpt(value)}")
    if fmt != OURS:
        return str(value)  # another tool's ids are matched as text (FastChat's 81, arena-hard's hex uids)
    question_set = record.get("question_set")
    if question_set is not None and not isinstance(question_set, str):
        raise ArenaDataError(path, where(), f"question_set: expected a string, got {excerpt(question_set)}")
    return (question_set, value)


def _repeated(path: Path, fmt: str, records: list[dict], repeats: list, where: Callable[[int], str]) -> str | None:
    """The warning on questions answered more than once, naming the record read (the last), or the error
    where the tool has no rule to choose one."""
    if not repeats:
        return None
    key, first, again = repeats[0]
    shown = excerpt(records[again].get(id_key(fmt)))  # as the file writes it (81, not '81')
    rule = _REPEAT_RULES[fmt]
    if rule is None:
        raise ArenaDataError(path, where(again), f"{id_key(fmt)} {shown} is answered again (first on {where(first)}): "
                             f"expected one answer a question, as {fmt} would judge both")
    chosen = max(i for k, _, i in repeats if k == key)
    others = [where(i) for i in sorted({i for k, i, _ in repeats if k == key})]  # all before the last
    keys = {k for k, _, _ in repeats}
    more = f"; {len(keys) - 1} more question(s) answered more than once, the last of each read" if len(keys) > 1 else ""
    return (f"{path}: {where(chosen)}: {id_key(fmt)} {shown} is answered more than once (also on "
            f"{', '.join(others)}): {where(chosen)} is read, the last, {rule}{more}")


def _places(path: Path, count: int) -> list[str]:
    """``line N`` of each record of a JSONL file, ``record N`` of each record of a JSON list."""
    try:
        with open(path, "rb") as handle:
            is_list = handle.read(4096).lstrip().startswith(b"[")
    except OSError:
        is_list = True
    return [f"record {n}" for n in range(1, count + 1)] if is_list else record_lines(path)
