"""The seed's command-line parameters: --arena-limit, --arena-model, --arena-questions, --arena-results."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from support.arena_project import write_questions
from support.tiny_models import build_tiny_model

LOADING = re.compile(r"arena: (\S+): loading model (\S+)")


def test_limit_takes_the_first_n_questions_and_marks_the_report(arena_project):
    arena_project.write(arena_project.config(questions=5))
    result = arena_project.run("-v", "--arena-limit", "2")
    result.assert_outcomes(passed=6)
    result.stdout.no_fnmatch_line("*q003*")
    assert len(arena_project.read_jsonl("answers/answer_tiny-a.jsonl")) == 2
    assert arena_project.server.request_count == 6
    result.stdout.fnmatch_lines(["limited run: the first 2 questions of each question set",
                                 "report: *elo_rating.subset.csv (a limited run (--arena-limit): the full report *"])
    assert not (arena_project.root / "reports/elo_rating.csv").exists()


@pytest.mark.parametrize(("value", "message"), [("0", "got '0'"), ("-3", "got '-3'"), ("many", "got 'many'")])
def test_limit_must_be_positive(arena_project, value, message):
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run("--arena-limit", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --arena-limit: expected a positive whole number of questions, {message}"])


def test_arena_model_gates_a_new_checkpoint_given_only_on_the_command_line(arena_project, tmp_path):
    checkpoint = build_tiny_model(tmp_path / "step-4000", seed=7)
    gates = [{"model": "tiny-a", "min_elo": 0}]
    arena_project.write(arena_project.config(questions=2, models=("tiny-a", "tiny-c"), gates=gates))
    result = arena_project.run("-v", "--arena-model", f"sft={checkpoint}")
    # New candidate "sft" joins with the first model's settings: 2 questions x 3 pairs + 1 gate.
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*test_battle?q001-tiny-a--vs--sft? PASSED*"])
    loads = dict(LOADING.findall(result.stdout.str()))
    assert loads["sft"] == str(checkpoint)
    sft = arena_project.read_jsonl("results/answers/answer_sft.jsonl")
    assert len(sft) == 2 and sft[0]["metadata"]["model_path"] == str(checkpoint)


def test_arena_model_replaces_a_path_and_never_serves_stale_answers(arena_project, tmp_path):
    arena_project.write(arena_project.config(questions=2, models=("tiny-a", "tiny-c")))
    arena_project.run().assert_outcomes(passed=2)
    before = arena_project.read_jsonl("answers/answer_tiny-c.jsonl")
    other = build_tiny_model(tmp_path / "other", seed=11, chat_template=False)
    result = arena_project.run("--arena-model", f"tiny-c={other}")
    result.assert_outcomes(passed=2)
    assert [name for name, _ in LOADING.findall(result.stdout.str())] == ["tiny-c"]
    after = arena_project.read_jsonl("answers/answer_tiny-c.jsonl")
    assert len(after) == 4  # two new answers appended: the new weights' cache key differs
    assert {r["metadata"]["cache_key"] for r in after[2:]}.isdisjoint(r["metadata"]["cache_key"] for r in before)


@pytest.mark.parametrize(
    ("value", "message"),
    [("sft", "--arena-model: expected NAME=PATH (e.g. sft=/ckpt/step-4000), got 'sft'"),
     ("=/x", "--arena-model: expected NAME=PATH"),
     ("sft=./no/such/folder", "answers_gen.sft.model_id_or_path: model folder not found")],
)
def test_arena_model_mistakes_are_usage_errors(arena_project, value, message):
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run("--arena-model", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_question_sets_prefix_ids_tag_reviews_and_break_down_the_report(arena_project):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-c")))
    write_questions(arena_project.root / "mtbench.jsonl", 3)
    write_questions(arena_project.root / "vicuna.jsonl", 2)
    result = arena_project.run("-v", "--arena-questions", "mtbench.jsonl", "vicuna.jsonl")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*test_battle?mtbench-q001-tiny-a--vs--tiny-c? PASSED*",
                                 "*test_battle?vicuna-q002-tiny-a--vs--tiny-c? PASSED*",
                                 "question set mtbench:", "question set vicuna:"])
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert sorted((r["question_set"], r["question_id"]) for r in reviews) == [
        ("mtbench", 1), ("mtbench", 2), ("mtbench", 3), ("vicuna", 1), ("vicuna", 2)]
    answers = arena_project.read_jsonl("answers/answer_tiny-a.jsonl")
    assert len(answers) == 5  # question 1 of each set answered separately
    by_set = pd.read_csv(arena_project.root / "reports/elo_rating.sets.csv")
    assert list(by_set.columns[:3]) == ["Question_Set", "Model", "Elo_Rating"]
    assert by_set.groupby("Question_Set")["Battles"].max().to_dict() == {"mtbench": 3, "vicuna": 2}
    # -k selects a set by its name.
    again = arena_project.run("-k", "vicuna", "--arena-questions", "mtbench.jsonl", "vicuna.jsonl")
    again.assert_outcomes(passed=2)


def test_question_sets_with_a_limit(arena_project):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-c")))
    write_questions(arena_project.root / "one.jsonl", 4)
    write_questions(arena_project.root / "two.jsonl", 4)
    result = arena_project.run("--arena-limit", "1", "--arena-questions", "one.jsonl", "two.jsonl")
    result.assert_outcomes(passed=2)


def test_missing_question_file_is_a_usage_error(arena_project):
    arena_project.write(arena_project.config(questions=1))
    result = arena_project.run("--arena-questions", "nope.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --arena-questions: question file not found: nope.jsonl"])


def test_results_dir_holds_outputs_the_config_does_not_name(arena_project):
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"))
    for entry in config["answers_gen"].values():
        del entry["output_file"]
    del config["reviews_gen"]["review_file"]
    del config["rating_gen"]["report_file"]
    arena_project.write(config)
    result = arena_project.run("--arena-results", "out")
    result.assert_outcomes(passed=1)
    root = arena_project.root / "out"
    assert (root / "answers/answer_tiny-a.jsonl").is_file()
    assert (root / "reviews/reviews.jsonl").is_file()
    assert (root / "reports/rating.csv").is_file()
    # The default is ./results.
    arena_project.run().assert_outcomes(passed=1)
    assert (arena_project.root / "results/reports/rating.csv").is_file()


def test_flags_have_ini_equivalents(arena_project):
    arena_project.write(arena_project.config(questions=3, models=("tiny-a", "tiny-b")))
    arena_project.pytester.makeini("[pytest]\narena_config = cfg_arena.yaml\narena_limit = 1\n")
    arena_project.pytester.runpytest().assert_outcomes(passed=1)


def test_flags_are_in_help(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*LLM arena (pytest-arena)*", "*--arena-config=PATH*", "*--arena-baseline=PATH*",
                                 "*--arena-limit=N*", "*--arena-model=NAME=PATH*", "*--arena-questions=FILE*",
                                 "*--arena-results=DIR*"])
