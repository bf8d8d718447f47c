"""Nothing the user owns is altered: the run's files checked before anything runs (pytest_arena/paths.py).

Two roles on one file (the report over the questions, two models on one answers file, reviews in an
answers file), an output that cannot be written (a read-only filesystem, a parent that is a file, a
name too long) and an existing output that is not ours are refused at preflight; one file in one role
is not. The one-folder cases of tests/bad_inputs/path-* hold the ERROR lines; here: the rules, and,
end to end, that a refused file is byte-identical afterwards and no judge call is paid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from support.arena_project import fixed_answers_config

from pytest_arena.config import load_config
from pytest_arena.errors import ArenaConfigError
from pytest_arena.file_names import files_beside
from pytest_arena.paths import first_problem, run_roles
from pytest_arena.session import ArenaSession

JUDGE_URL = "http://127.0.0.1:9/v1"  # never called: these tests stop before any judge call
SERVED = {"api": {"base_url": JUDGE_URL, "model": "m"}}  # a candidate that generates, with no checkpoint


def project(root: Path, **overrides) -> Path:
    """A config whose two models answer from files (enable: false), with reviews and a report."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "questions.jsonl").write_text("".join(
        json.dumps({"question_id": i, "text": f"question {i}"}) + "\n" for i in (1, 2)))
    (root / "answers").mkdir(exist_ok=True)
    models = {}
    for name in ("a", "b"):
        (root / "answers" / f"answer_{name}.jsonl").write_text("".join(
            json.dumps({"question_id": i, "model_id": name, "answer": f"{name} {i}"}) + "\n" for i in (1, 2)))
        models[name] = {"enable": False, "output_file": f"answers/answer_{name}.jsonl"}
    config = {
        "question_file": "questions.jsonl",
        "answers_gen": models,
        "reviews_gen": {"enable": True, "review_file": "reviews/reviews.jsonl",
                        "reviewer": {"ref": "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4",
                                     "args": {"mode": "pairwise", "base_url": JUDGE_URL}}},
        "rating_gen": {"enable": True, "metrics": ["elo"], "report_file": "reports/elo.csv"},
    }
    for dotted, value in overrides.items():
        *parents, last = dotted.split("__")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = root / "cfg_arena.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def problem_of(config_path: Path, **session) -> ArenaConfigError | None:
    config = load_config(config_path, results_dir=config_path.parent / "results")
    return first_problem(run_roles(config, **session))


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root, with the files' bytes."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# --------------------------------------------------------------------------------------------------
# Two roles, one file


def test_a_plain_project_has_no_path_problem_and_the_check_leaves_no_trace(tmp_path):
    config_path = project(tmp_path, answers_gen__a=SERVED)
    before = tree(tmp_path)
    assert problem_of(config_path, writers=["a"]) is None
    # The probe files are gone, and no output folder (reviews/, reports/) was created to test it.
    assert tree(tmp_path) == before


@pytest.mark.parametrize("overrides, key, expected", [
    (dict(rating_gen__report_file="questions.jsonl"), "rating_gen.report_file", "is also question_file"),
    (dict(rating_gen__report_file="cfg_arena.yaml"), "rating_gen.report_file", "is also the config file"),
    (dict(reviews_gen__review_file="answers/answer_a.jsonl"), "reviews_gen.review_file",
     "is also the output_file of model 'a'"),
    (dict(answers_gen__b__output_file="answers/answer_a.jsonl"), "answers_gen.b.output_file",
     "is also the output_file of model 'a': each model needs its own answers file"),
    (dict(reviews_gen__reference_file="questions.jsonl"), "reviews_gen.reference_file",
     "is also question_file: expected two different files"),
    (dict(reviews_gen__prompt_file="questions.jsonl"), "reviews_gen.prompt_file", "is also question_file"),
], ids=["report-is-questions", "report-is-config", "reviews-in-answers", "two-models-one-file",
        "reference-is-questions", "prompts-are-questions"])
def test_two_roles_on_one_file_are_refused(tmp_path, overrides, key, expected):
    problem = problem_of(project(tmp_path, **overrides))
    assert problem is not None and problem.where == key, problem
    assert expected in problem.problem


def test_files_written_beside_the_report_collide_too(tmp_path):
    # A -k run writes reports/elo.subset.csv: it must not land on an input either.
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "elo.subset.csv").write_text('{"question_id": 1, "reference": "r"}\n')
    problem = problem_of(project(tmp_path, reviews_gen__reference_file="reports/elo.subset.csv"))
    assert problem is not None and problem.where == "rating_gen.report_file"
    assert "elo.subset.csv is also reviews_gen.reference_file" in problem.problem
    assert [p.name for p in files_beside(Path("r/elo.csv"), metrics=("elo", "bt"))] == [
        "elo.csv", "elo.sets.csv", "elo.png", "elo.turns.csv", "elo.html",
        "elo.subset.csv", "elo.subset.sets.csv", "elo.subset.png", "elo.subset.turns.csv", "elo.subset.html",
        "elo.flips.csv", "elo.subset.flips.csv", "elo.elo.csv", "elo.subset.elo.csv",
        "elo.audit.csv", "elo.subset.audit.csv", "elo.judges.csv", "elo.subset.judges.csv",
            "elo.style.csv", "elo.subset.style.csv", "elo.notes.csv", "elo.subset.notes.csv"]


def test_a_symlink_or_a_hard_link_to_an_input_is_the_same_file(tmp_path):
    config_path = project(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "elo.csv").symlink_to(tmp_path / "questions.jsonl")
    problem = problem_of(config_path)
    assert problem is not None and problem.where == "rating_gen.report_file"
    assert "is also question_file" in problem.problem

    os.link(tmp_path / "questions.jsonl", tmp_path / "linked.jsonl")  # no symlink to follow: the same inode
    problem = problem_of(project(tmp_path / "h", question_file=str(tmp_path / "questions.jsonl"),
                                 reviews_gen__reference_file=str(tmp_path / "linked.jsonl")))
    assert problem is not None and problem.where == "reviews_gen.reference_file"


def test_two_model_names_with_one_default_output_file_are_refused(tmp_path):
    config_path = project(tmp_path)
    config = yaml.safe_load(config_path.read_text())
    config["answers_gen"] = {"org/m": {"enable": False}, "org_m": {"enable": False}, **config["answers_gen"]}
    config_path.write_text(yaml.safe_dump(config))
    problem = problem_of(config_path, writers=[])
    assert problem is not None and problem.where == "answers_gen.org_m.output_file"
    assert "answer_org_m.jsonl is also the output_file of model 'org/m'" in problem.problem


def test_one_file_in_one_role_is_no_collision(tmp_path):
    # target_answers names a model's own answers file; baseline_file names the baseline model's file.
    config_path = project(tmp_path, reviews_gen__target_answers=["answers/answer_a.jsonl", "answers/answer_b.jsonl"],
                          reviews_gen__baseline_file="answers/answer_b.jsonl",
                          reviews_gen__reviewer__args__mode="pairwise_baseline", rating_gen__baseline_model="b")
    assert problem_of(config_path, baseline="b") is None
    # ... but a baseline file that is another model's answers file is two models on one file.
    problem = problem_of(config_path, baseline="a")
    assert problem is not None and problem.where == "answers_gen.b.output_file"


def test_an_output_that_is_not_written_is_not_checked(tmp_path):
    # Reviews off: review_file is never written, so naming the question file there harms nothing.
    config_path = project(tmp_path, reviews_gen__enable=False, reviews_gen__review_file="questions.jsonl",
                          answers_gen__a__output_file="/proc/arena/answer_a.jsonl")
    assert problem_of(config_path, writers=[]) is None  # and model a (enable: false) only reads its file


def test_the_baseline_report_is_an_input_and_when_updated_an_output(tmp_path):
    config_path = project(tmp_path)
    problem = problem_of(config_path, baseline_report=tmp_path / "reports" / "elo.csv")
    assert problem is not None and problem.where == "rating_gen.report_file"
    assert "an output must not be written over an input" in problem.problem
    problem = problem_of(config_path, baseline_report=tmp_path / "cfg_arena.yaml", update_baseline=True)
    assert problem is not None and problem.where == "--arena-baseline" and problem.file == str(tmp_path / "cfg_arena.yaml")


# --------------------------------------------------------------------------------------------------
# Outputs that can be written, and are ours


@pytest.mark.parametrize("overrides, key, expected", [
    (dict(rating_gen__report_file="/proc/arena/report.csv"), "rating_gen.report_file", "no file can be created in /proc"),
    (dict(reviews_gen__review_file="/proc/arena/reviews.jsonl"), "reviews_gen.review_file", "no file can be created"),
    (dict(reviews_gen__review_file="questions.jsonl/reviews.jsonl"), "reviews_gen.review_file",
     "questions.jsonl is a file, not a folder"),
], ids=["report-on-proc", "reviews-on-proc", "parent-is-a-file"])
def test_an_output_that_cannot_be_written_is_refused(tmp_path, overrides, key, expected):
    problem = problem_of(project(tmp_path, **overrides))
    assert problem is not None and problem.where == key, problem
    assert problem.problem.startswith("cannot write ") and expected in problem.problem


@pytest.mark.parametrize("overrides, key", [
    (dict(rating_gen__report_file="reports/" + "r" * 300 + ".csv"), "rating_gen.report_file"),
    (dict(answers_gen__a__output_file="a" * 300 + ".jsonl"), "answers_gen.a.output_file"),  # enable: false too
    (dict(question_file="q" * 256), "question_file"),
    (dict(reviews_gen__target_answers=["t" * 256]), "reviews_gen.target_answers[0]"),
    (dict(reviews_gen__review_file="/".join(["d" * 200] * 25)), "reviews_gen.review_file"),
], ids=["report", "output-file", "question-file", "target-answers", "whole-path"])
def test_a_path_too_long_for_any_file_is_a_config_error_not_an_os_error(tmp_path, overrides, key):
    with pytest.raises(ArenaConfigError, match="too long") as refused:
        load_config(project(tmp_path, **overrides))
    assert refused.value.where == key


def test_only_models_that_generate_need_a_writable_answers_file(tmp_path):
    config_path = project(tmp_path, answers_gen__a__output_file="/proc/arena/answer_a.jsonl")
    assert problem_of(config_path, writers=[]) is None
    problem = problem_of(config_path, writers=["a"])
    assert problem is not None and problem.where == "answers_gen.a.output_file"
    assert "cannot write /proc/arena/answer_a.jsonl" in problem.problem


@pytest.mark.parametrize("text", [
    b"remember: buy milk",  # one line, no final newline: the old repair cut it and appended answers
    b"remember: buy milk\n",
    b"a,b\n1,2\n",
    b'[{"question_id": 1}]\n',
    b'{"question_id": 1}\n42\nnot json either',
], ids=["text-no-newline", "text", "csv", "json-array", "foreign-last-line"])
def test_an_existing_file_that_is_not_ours_is_refused_as_an_output_and_left_as_it_is(tmp_path, text):
    config_path = project(tmp_path, reviews_gen__review_file="notes.txt")
    (tmp_path / "notes.txt").write_bytes(text)
    problem = problem_of(config_path)
    assert problem is not None and problem.where == "reviews_gen.review_file"
    assert "notes.txt is not a JSONL file of records" in problem.problem and "left as it is" in problem.problem
    assert (tmp_path / "notes.txt").read_bytes() == text


def test_a_file_of_ours_with_a_torn_last_record_is_accepted(tmp_path):
    config_path = project(tmp_path)
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "reviews.jsonl").write_bytes(b'{"win": "tie"}\n{"win": "mod')
    assert problem_of(config_path) is None


# --------------------------------------------------------------------------------------------------
# In the session and end to end


def test_the_session_refuses_before_reading_a_file_named_too_long(tmp_path):
    """A 300-character model name: its default answers file name is too long. Refused at preflight,
    not a traceback when the file is first opened."""
    config_path = project(tmp_path, reviews_gen__enable=False)
    config = yaml.safe_load(config_path.read_text())
    config["answers_gen"]["m" * 300] = SERVED
    config_path.write_text(yaml.safe_dump(config))
    session = ArenaSession.from_file(config_path, results_dir=tmp_path / "results", log=lambda line: None)
    with pytest.raises(ArenaConfigError, match="file name too long") as refused:
        session.preflight()
    assert refused.value.where == f"answers_gen.{'m' * 300}.output_file"


@pytest.mark.parametrize("case", ["foreign-output-file", "foreign-review-file", "review-file-on-proc"])
def test_a_refused_path_costs_no_judge_call_and_leaves_every_file_as_it_was(arena_project, case):
    config = fixed_answers_config(arena_project, questions=2, models={"x": 3, "y": 5})
    notes = arena_project.root / "notes.txt"
    notes.write_bytes(b"remember: buy milk")
    if case == "foreign-output-file":
        config["answers_gen"]["x"] = {"model_id_or_path": str(arena_project.models["tiny-a"]),
                                      "precision": "torch.float32", "output_file": str(notes)}
    elif case == "foreign-review-file":
        config["reviews_gen"]["review_file"] = str(notes)
    else:
        config["reviews_gen"]["review_file"] = "/proc/arena/reviews.jsonl"
    arena_project.write(config)
    before = tree(arena_project.root)

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: ") and "Traceback" not in result.stdout.str()
    assert arena_project.server.request_count == 0
    assert notes.read_bytes() == b"remember: buy milk"
    after = tree(arena_project.root)
    assert {k: v for k, v in after.items() if not k.startswith(".pytest_cache")} == \
        {k: v for k, v in before.items() if not k.startswith(".pytest_cache")}
