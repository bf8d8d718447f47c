"""Question files (EvalScope JSONL) -> ``Question`` objects.

One JSON object a line: ``{"question_id": 1, "text": "...", "category": "generic"}``, or MT-bench style
``{"question_id": 81, "category": "writing", "turns": ["...", "..."]}``; an optional ``reference``
(a string, or a list with one entry per turn) feeds reference-guided judge templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ArenaDataError, excerpt
from .record_files import json_lines


@dataclass(frozen=True)
class Question:
    question_id: int | str
    turns: tuple[str, ...]
    category: str = "generic"
    reference: tuple[str, ...] | None = None
    question_set: str | None = None  # the set's name when several question files take part

    @property
    def key(self) -> tuple[str | None, int | str]:
        """Identifies the question among all sets of the run (ids repeat across sets)."""
        return (self.question_set, self.question_id)

    @property
    def text(self) -> str:
        """The first turn: what a single-turn question asks."""
        return self.turns[0]

    def to_record(self) -> dict:
        """The question's fields as EvalScope writes them into answer records."""
        record = {"question_id": self.question_id, "text": self.text, "category": self.category}
        if self.question_set is not None:
            record["question_set"] = self.question_set
        if len(self.turns) > 1:
            record["turns"] = list(self.turns)
        return record


def load_questions(path: str | Path, question_set: str | None = None) -> list[Question]:
    path = Path(path)
    try:
        # "\n" only: str.splitlines would also split at U+2028 or U+0085 inside a JSON string.
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ArenaDataError(path, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:  # a folder, a file this user may not read, an I/O error
        raise ArenaDataError(path, "", f"cannot read the question file ({exc.strerror or exc})") from None
    questions: list[Question] = []
    first_line: dict[int | str, str] = {}
    for where, data in json_lines(path, lines):
        question = _question(path, where, data, question_set)
        if question.question_id in first_line:
            raise ArenaDataError(
                path, where,
                f"duplicate question_id {question.question_id!r} (first on {first_line[question.question_id]})",
            )
        first_line[question.question_id] = where
        questions.append(question)
    if not questions:
        raise ArenaDataError(path, "", "no questions (expected one JSON object a line)")
    return questions


def _question(path: Path, where: str, data, question_set: str | None) -> Question:
    if not isinstance(data, dict):
        raise ArenaDataError(path, where, "expected a JSON object with question_id and text")
    qid = data.get("question_id")
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or qid == "":
        raise ArenaDataError(path, where, f"question_id: expected an integer or a non-empty string, got {excerpt(qid)}")
    if "turns" in data:
        turns = data["turns"]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise ArenaDataError(path, where, "turns: expected a non-empty list of non-empty strings")
    else:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ArenaDataError(path, where, f"text: expected a non-empty string, got {excerpt(text)}")
        turns = [text]
    category = data.get("category", "generic")
    if not isinstance(category, str):
        raise ArenaDataError(path, where, f"category: expected a string, got {excerpt(category)}")
    reference = data.get("reference")
    if reference is not None:
        reference = [reference] if isinstance(reference, str) else reference
        if not isinstance(reference, list) or not all(isinstance(r, str) for r in reference):
            raise ArenaDataError(path, where, "reference: expected a string or a list of strings")
    return Question(qid, tuple(turns), category, tuple(reference) if reference else None, question_set)
