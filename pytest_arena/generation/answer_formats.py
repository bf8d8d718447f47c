"""Answer files of other tools, read as they are: which format a file is in, and one record's answer.

- ``evalscope``: ours (EvalScope's superset): ``question_id``, ``model_id``, ``answer``, ``answer_turns``;
- ``fastchat``: FastChat llm_judge's ``model_answer/*.jsonl``: ``question_id``, ``model_id``,
  ``choices[0].turns`` (a list of strings);
- ``arena-hard-v0.1``: arena-hard-auto's first answers: ``question_id``, ``model_id``,
  ``choices[0].turns[i].content``;
- ``arena-hard-v2``: ``uid``, ``model``, ``messages[-1].content.answer``;
- ``alpaca_eval``: ``instruction``, ``output``, ``generator`` (a JSON list, or one record a line);
  matched to a question by its text, as AlpacaEval has no ids.

Only ``evalscope`` files are ours to append to (the answer cache); the others are read-only inputs.
Pure: no file is read here but by ``read_answer_records``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ArenaDataError
from ..store import read_jsonl

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
            records = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArenaDataError(path, "", f"expected a JSON list of answer records or JSONL, got invalid JSON ({exc})") from None
    if not all(isinstance(r, dict) for r in records):
        raise ArenaDataError(path, "", "expected a JSON list of answer records (JSON objects)")
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


def record_model(fmt: str, record: dict) -> str | None:
    """The name of the model that wrote a record, if the record says."""
    key = {"arena-hard-v2": "model", "alpaca_eval": "generator"}.get(fmt, "model_id")
    name = record.get(key)
    return str(name) if name not in (None, "") else None


def record_key(fmt: str, record: dict) -> str | None:
    """What matches a record to a question: its id as text, or (AlpacaEval) the instruction's text."""
    if fmt == "alpaca_eval":
        value = record.get("instruction")
    elif fmt == "arena-hard-v2":
        value = record.get("uid")
    else:
        value = record.get("question_id")
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
