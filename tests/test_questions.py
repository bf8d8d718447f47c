"""Question files (EvalScope JSONL, MT-bench multi-turn): what loads, and one clear error for each
kind of bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_arena.errors import ArenaConfigError
from pytest_arena.questions import Question, load_questions

from test_config import COMPAT


def write_lines(tmp_path: Path, *lines: str | dict) -> Path:
    path = tmp_path / "questions.jsonl"
    text = "".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ArenaConfigError:
    with pytest.raises(ArenaConfigError) as info:
        load_questions(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return info.value


def test_single_turn_question(tmp_path):
    path = write_lines(tmp_path, {"question_id": 1, "text": "How are you?", "category": "generic"})
    [question] = load_questions(path)
    assert question == Question(1, ("How are you?",), "generic", None)
    assert question.text == "How are you?"
    assert question.to_record() == {"question_id": 1, "text": "How are you?", "category": "generic"}


def test_category_defaults_to_generic_and_string_ids_are_kept(tmp_path):
    [question] = load_questions(write_lines(tmp_path, {"question_id": "math-7", "text": "1+1?"}))
    assert question.question_id == "math-7"
    assert question.category == "generic"


def test_multi_turn_question(tmp_path):
    path = write_lines(tmp_path, {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now shorter."]})
    [question] = load_questions(path)
    assert question.turns == ("Write a poem.", "Now shorter.")
    assert question.text == "Write a poem."  # the first turn
    record = question.to_record()
    assert record["text"] == "Write a poem." and record["turns"] == ["Write a poem.", "Now shorter."]
    assert record["category"] == "writing"


@pytest.mark.parametrize("reference, expected", [
    ("4", ("4",)),
    (["4", "5"], ("4", "5")),
    (None, None),
])
def test_references(tmp_path, reference, expected):
    line = {"question_id": 1, "text": "2+2?", "category": "math"}
    if reference is not None:
        line["reference"] = reference
    [question] = load_questions(write_lines(tmp_path, line))
    assert question.reference == expected


def test_reference_of_wrong_type(tmp_path):
    path = write_lines(tmp_path, {"question_id": 1, "text": "x"}, {"question_id": 2, "text": "y", "reference": 4})
    error = load_error(path)
    assert error.where == "line 2" and "reference" in str(error)


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = write_lines(tmp_path, {"question_id": 1, "text": "a"}, "", "   ", {"question_id": 2, "text": "b"}, "", "{oops")
    error = load_error(path)
    assert error.where == "line 6"  # the physical line, blank lines included
    path = write_lines(tmp_path, "", {"question_id": 1, "text": "a"}, "  \t", {"question_id": 2, "text": "b"}, "")
    assert [q.question_id for q in load_questions(path)] == [1, 2]


def test_malformed_json_names_its_line(tmp_path):
    path = write_lines(tmp_path, {"question_id": 1, "text": "a"}, {"question_id": 2, "text": "b"},
                       '{"question_id": 3, "text": "c"')
    error = load_error(path)
    assert error.where == "line 3"
    assert f"{path}: line 3: invalid JSON" in str(error)


def test_line_that_is_not_an_object(tmp_path):
    error = load_error(write_lines(tmp_path, {"question_id": 1, "text": "a"}, "[1, 2]"))
    assert error.where == "line 2" and "JSON object" in str(error)


def test_duplicate_question_ids_name_both_lines(tmp_path):
    path = write_lines(tmp_path, {"question_id": 7, "text": "a"}, {"question_id": 8, "text": "b"},
                       {"question_id": 7, "text": "c"})
    error = load_error(path)
    message = str(error)
    assert error.where == "line 3"
    assert "duplicate question_id 7" in message and "line 1" in message


@pytest.mark.parametrize("line, field", [
    ({"question_id": 1, "text": ""}, "text"),
    ({"question_id": 1, "text": "   "}, "text"),
    ({"question_id": 1}, "text"),
    ({"question_id": 1, "text": 5}, "text"),
    ({"question_id": 1, "turns": []}, "turns"),
    ({"question_id": 1, "turns": ["ok", ""]}, "turns"),
    ({"question_id": 1, "turns": "not a list"}, "turns"),
    ({"text": "no id"}, "question_id"),
    ({"question_id": None, "text": "x"}, "question_id"),
    ({"question_id": "", "text": "x"}, "question_id"),
    ({"question_id": True, "text": "x"}, "question_id"),
    ({"question_id": 1.5, "text": "x"}, "question_id"),
    ({"question_id": 1, "text": "x", "category": 3}, "category"),
])
def test_bad_question_fields(tmp_path, line, field):
    error = load_error(write_lines(tmp_path, {"question_id": 100, "text": "fine"}, line))
    assert error.where == "line 2"
    assert f"line 2: {field}: expected" in str(error)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_bytes('{"question_id": 1, "text": "caf\u00e9"}\n'.encode("latin-1"))
    error = load_error(path)
    assert "UTF-8" in str(error)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "questions.jsonl"
    path.write_text(content, encoding="utf-8")
    assert "no questions" in str(load_error(path))


def test_unicode_text_is_kept(tmp_path):
    [question] = load_questions(write_lines(tmp_path, {"question_id": 1, "text": "如何提高时间管理能力？ 🙂"}))
    assert question.text == "如何提高时间管理能力？ 🙂"


@pytest.mark.skipif(COMPAT is None, reason="EvalScope compat files (../shared/compat/evalscope) not present")
def test_evalscope_question_file_loads():
    questions = load_questions(COMPAT / "question.jsonl")
    assert len(questions) == 80
    assert [q.question_id for q in questions] == list(range(1, 81))
    assert questions[0].text == "How can I improve my time management skills?"
    assert questions[0].category == "generic"
    assert all(len(q.turns) == 1 and q.reference is None for q in questions)
    assert {"generic", "knowledge", "math", "coding", "writing"} <= {q.category for q in questions}
