"""The run's questions: ``question_file`` or named sets (``--arena-questions``), limited with
``--arena-limit``, with the reference answers of ``reviews_gen.reference_file`` merged in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import ArenaConfig
from .errors import ArenaConfigError
from .questions import Question, load_questions
from .record_files import read_jsonl


def load_question_sets(config: ArenaConfig, files: list[Path] | None, limit: int | None):
    """The run's questions: ``question_file``, or named sets from ``--arena-questions``; with a limit,
    the first ``limit`` of each set. Also says whether the limit left any question out."""
    if files:
        names = [Path(f).stem for f in files]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise ArenaConfigError("--arena-questions", "", f"two question sets are named {twice!r} (file stems must differ)")
        sets = [load_questions(f, question_set=name) for f, name in zip(files, names)]
    else:
        sets = [load_questions(config.question_file)]
    limited = limit is not None and any(len(questions) > limit for questions in sets)
    questions = [q for questions in sets for q in (questions[:limit] if limit else questions)]
    return _with_references(questions, config), limited


def _with_references(questions: list[Question], config: ArenaConfig) -> list[Question]:
    """Questions with the reference answers of ``reviews_gen.reference_file`` merged in."""
    path = config.review.reference_file
    if path is None:
        return questions
    references = {}
    for record in read_jsonl(path):
        turns = _reference_turns(record)
        if "question_id" in record and turns:
            references[record["question_id"]] = tuple(turns)
    return [dataclasses.replace(q, reference=references[q.question_id]) if q.question_id in references else q
            for q in questions]


def _reference_turns(record: dict) -> list[str] | None:
    """A reference answer record in any of the usual shapes: ``reference``, ``answer_turns``,
    MT-bench's ``choices[0].turns``, or EvalScope's ``answer``."""
    for key in ("reference", "answer_turns", "answer"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    choices = record.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and all(isinstance(t, str) for t in turns):
            return turns
    return None
