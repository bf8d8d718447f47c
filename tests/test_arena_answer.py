"""Your own checks on every answer: a test module given beside --arena-config takes `arena_answer`,
one item per question x model (`test_format[q001-tiny-b]`), selected with -k/-m as the battles are.

The runs use the tiny models (real loads, logged as `arena: NAME: loading model`) or models that answer
from files, and the loopback judge, whose request count shows that an answer-only run judges nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest

from pytest_arena.collection import EXAMPLES

LOADING = re.compile(r"arena: (\S+): loading model")
LOAD_OR_RELEASE = re.compile(r"arena: (\S+): (loading model|model released)")
EXAMPLE = EXAMPLES / "test_answer_checks.py"

# A user's check that writes down what it was given, so the outer test can compare it with the files.
RECORDING_CHECKS = '''
import json
from pathlib import Path


def test_format(arena_answer, request):
    seen = {"id": request.node.callspec.id, "model": arena_answer.model, "question_id": arena_answer.question_id,
            "question": arena_answer.question, "turns": list(arena_answer.turns), "text": arena_answer.text,
            "category": arena_answer.category, "reference": arena_answer.reference}
    with open(Path(__file__).parent / "seen.jsonl", "a") as handle:
        handle.write(json.dumps(seen) + "\\n")
    assert arena_answer.text.strip()
'''


def loaded_models(result) -> list[str]:
    return LOADING.findall(result.stdout.str())


def write_checks(project, source: str = RECORDING_CHECKS) -> str:
    folder = project.root / "checks"
    folder.mkdir(exist_ok=True)
    (folder / "test_format.py").write_text(source)
    return "checks/test_format.py"


def seen(project) -> list[dict]:
    return project.read_jsonl("checks/seen.jsonl")


def files_in(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def no_key(monkeypatch) -> None:
    """An answer-only run never asks for the judge's key: it is not there to ask for."""
    monkeypatch.delenv("OPENAI_API_KEY")


# -------------------------------------------------------------------------------------------------
# Answers from files: what a check receives, and the ids it runs under


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


QUESTIONS = [
    {"question_id": 1, "text": "Give the weather as an object.", "category": "json", "reference": '{"sky": "blue"}'},
    {"question_id": 2, "category": "writing", "turns": ["Write a line about rain.", "Now make it rhyme."]},
]


def answers_from_files(project, answers: dict[str, dict[int, list[str]]], questions=QUESTIONS) -> dict:
    """An arena whose models answer from files: `answers` maps a model to {question_id: turns}. The
    first model is a disabled answers_gen entry, the others come from reviews_gen.target_answers."""
    config = project.config(questions=1, models=("tiny-a",))
    write_jsonl(project.root / "questions.jsonl", questions)
    files = {}
    for name, by_question in answers.items():
        records = [{"question_id": qid, "model_id": name, "answer": turns[-1], "answer_turns": turns}
                   for qid, turns in by_question.items()]
        files[name] = write_jsonl(project.root / "answers" / f"answer_{name}.jsonl", records)
    first = next(iter(answers))
    config["answers_gen"] = {first: {"enable": False, "output_file": files[first]}}
    config["reviews_gen"]["target_answers"] = list(files.values())
    project.write(config)
    return files


GOOD = {1: ['{"sky": "grey"}'], 2: ["Rain taps the roof.", "Rain taps the roof, and I am aloof."]}
BAD = {1: ["As an AI language model, I cannot tell the weather."], 2: ["", "x" * 5000]}


def test_values_ids_and_no_judging_for_models_that_answer_from_files(arena_project, monkeypatch):
    no_key(monkeypatch)
    answers_from_files(arena_project, {"good": GOOD, "other": GOOD})
    checks = write_checks(arena_project)
    collected = arena_project.run(checks, "--collect-only", "-q", "-k", "test_format")
    collected.stdout.fnmatch_lines([
        "checks/test_format.py::test_format?q001-good?", "checks/test_format.py::test_format?q002-good?",
        "checks/test_format.py::test_format?q001-other?", "checks/test_format.py::test_format?q002-other?",
        "*4/6 tests collected (2 deselected)*",  # the battles are collected too, and -k deselects them
    ])
    collected.stdout.fnmatch_lines(["arena: answer checks: 4 items; answers of: good, other (no judge call)"])

    result = arena_project.run(checks, "-k", "test_format")
    result.assert_outcomes(passed=4, deselected=2)
    assert result.ret == 0
    assert loaded_models(result) == []
    assert arena_project.server.request_count == 0
    assert not (arena_project.root / "reports").exists()
    by_id = {s["id"]: s for s in seen(arena_project)}
    assert by_id["q001-good"] == {
        "id": "q001-good", "model": "good", "question_id": 1, "question": "Give the weather as an object.",
        "turns": ['{"sky": "grey"}'], "text": '{"sky": "grey"}', "category": "json", "reference": '{"sky": "blue"}'}
    assert by_id["q002-other"] == {
        "id": "q002-other", "model": "other", "question_id": 2, "question": "Now make it rhyme.",
        "turns": GOOD[2], "text": GOOD[2][1], "category": "writing", "reference": None}


def test_a_missing_answer_errors_its_item_with_where_it_was_looked_for(arena_project, monkeypatch):
    no_key(monkeypatch)
    answers_from_files(arena_project, {"good": GOOD, "partial": {1: ['{"sky": "grey"}']}})
    result = arena_project.run(write_checks(arena_project), "-k", "test_format", "-v")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_format?q002-partial?*",
                                 "*partial has no answer to question 2 in *answer_partial.jsonl*"])


# -------------------------------------------------------------------------------------------------
# Tiny models: what loads, when, and what the run leaves behind


def test_k_one_model_loads_only_that_model_and_leaves_the_report_alone(arena_project, monkeypatch):
    arena_project.write(arena_project.config(questions=2))
    checks = write_checks(arena_project)
    with monkeypatch.context() as keyless:
        no_key(keyless)
        result = arena_project.run(checks, "-k", "tiny-b and test_format")
    result.assert_outcomes(passed=2, deselected=10)  # 6 battles, and the 4 answers of tiny-a and tiny-c
    assert loaded_models(result) == ["tiny-b"]
    assert sorted(s["id"] for s in seen(arena_project)) == ["q001-tiny-b", "q002-tiny-b"]
    assert not (arena_project.root / "answers/answer_tiny-a.jsonl").exists()
    assert arena_project.server.request_count == 0
    assert not (arena_project.root / "reports").exists()  # no battle ran: no report, not even a subset one

    # The battles take tiny-b's answers from the file the checks had it write: it is not loaded again.
    whole = arena_project.run()
    whole.assert_outcomes(passed=6)
    assert sorted(loaded_models(whole)) == ["tiny-a", "tiny-c"]
    written = files_in(arena_project.root / "reports")
    assert "elo_rating.csv" in written

    again = arena_project.run(checks, "-k", "tiny-a and test_format")
    again.assert_outcomes(passed=2, deselected=10)
    assert loaded_models(again) == []
    assert files_in(arena_project.root / "reports") == written  # not rewritten, no subset report beside it
    assert arena_project.server.request_count == 6  # the whole run's, and none since


def test_marker_selects_and_each_model_is_released_before_the_next_loads(arena_project, monkeypatch):
    no_key(monkeypatch)
    arena_project.write(arena_project.config(questions=2))
    checks = write_checks(arena_project)
    only_c = arena_project.run(checks, "-v", "-m", "arena_model(name='tiny-c') and not arena")
    only_c.assert_outcomes(passed=2, deselected=10)
    assert loaded_models(only_c) == ["tiny-c"]

    # Every model's answer items (tiny-c's answers are cached now): one model at a time, in config order,
    # each released before the next one loads, whatever order the questions come in.
    result = arena_project.run(checks, "-v", "-m", "arena_model and not arena")
    result.assert_outcomes(passed=6, deselected=6)
    assert LOAD_OR_RELEASE.findall(result.stdout.str()) == [
        ("tiny-a", "loading model"), ("tiny-a", "model released"),
        ("tiny-b", "loading model"), ("tiny-b", "model released")]
    ran = re.findall(r"test_format\[(\S+)\] PASSED", result.stdout.str())
    assert ran == ["q001-tiny-a", "q002-tiny-a", "q001-tiny-b", "q002-tiny-b", "q001-tiny-c", "q002-tiny-c"]
    assert arena_project.server.request_count == 0


def test_checks_and_battles_in_one_command(arena_project):
    arena_project.write(arena_project.config(questions=2))
    checks = write_checks(arena_project)
    result = arena_project.run(checks, "-v")
    result.assert_outcomes(passed=6 + 6)
    assert sorted(loaded_models(result)) == ["tiny-a", "tiny-b", "tiny-c"]  # once each, for both
    assert arena_project.server.request_count == 6
    assert len(seen(arena_project)) == 6
    report = arena_project.root / "reports/elo_rating.csv"
    with_checks = report.read_bytes()

    # The checks change nothing in the arena's report: the arena alone writes the same bytes.
    report.unlink()
    alone = arena_project.run()
    alone.assert_outcomes(passed=6)
    assert report.read_bytes() == with_checks


# -------------------------------------------------------------------------------------------------
# The shipped example module


def test_the_example_module_holds_on_good_answers_and_says_what_is_wrong_with_bad_ones(arena_project, monkeypatch):
    no_key(monkeypatch)
    answers_from_files(arena_project, {"good": GOOD, "bad": BAD})
    # Named where it is shipped (the project's own ini keeps the rootdir in the project, not the checkout).
    ini = arena_project.root / "pytest.ini"
    ini.write_text("[pytest]\n")
    result = arena_project.run(str(EXAMPLE), "-c", str(ini), "-m", "not arena", "-v", "-rs")
    # 4 checks x 2 questions x 2 models; the JSON check is skipped where no JSON is asked for (q002).
    result.assert_outcomes(passed=10, failed=4, skipped=2, deselected=2)
    assert arena_project.server.request_count == 0
    out = result.stdout.str()
    assert sorted(re.findall(r"(test_\w+)\[(q00\d-bad)\] FAILED", out)) == [
        ("test_length_bound", "q002-bad"), ("test_no_refusal_boilerplate", "q001-bad"),
        ("test_not_empty", "q002-bad"), ("test_valid_json_where_asked", "q001-bad")]
    for message in ("*bad: turn 1 of the answer to question 2 is empty*",
                    "*bad: the answer to question 1 refuses: it says 'as an ai language model'*",
                    "*bad: turn 2 of the answer to question 2 has 5000 characters (at most 4000)*",
                    "*bad: the answer to question 1 is not valid JSON (Expecting value at line 1 column 1)*"):
        result.stdout.fnmatch_lines([message])
    assert "FAILED" not in "".join(line for line in out.splitlines() if "-good]" in line)
    result.stdout.fnmatch_lines(["SKIPPED*question 2 does not ask for JSON*"])


def test_the_example_module_is_green_on_the_tiny_models_answers(arena_project, monkeypatch):
    no_key(monkeypatch)
    arena_project.write(arena_project.config(questions=2))
    checks = write_checks(arena_project, EXAMPLE.read_text())  # copied into the project, as a user would
    result = arena_project.run(checks, "-m", "not arena")
    # Their answers are noise but never empty, short and no refusal; no question asks for JSON.
    result.assert_outcomes(passed=3 * 6, skipped=6, deselected=6)
    assert sorted(loaded_models(result)) == ["tiny-a", "tiny-b", "tiny-c"]


def test_the_examples_are_not_arena_items_and_collect_without_an_arena(arena_project, pytester):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    arena = arena_project.run("--collect-only", "-q")  # the arena alone: the examples are not part of it
    arena.stdout.fnmatch_lines(["*1 test collected*"])
    assert "examples" not in arena.stdout.str()
    plain = pytester.runpytest(str(EXAMPLES), "--collect-only", "-q")  # no arena config: collected, not broken
    assert plain.ret == 0
    plain.stdout.fnmatch_lines(["*4 tests collected*"])
