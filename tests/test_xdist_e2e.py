"""The arena under pytest-xdist (`pytest -n 2 --arena-config ...`): the same verdicts, ratings and report as
one process, each model generated once, each judge call made once, gates evaluated by the controller."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pandas as pd  # imported here once: in-process runs must not import pandas afresh each time
import pytest
from support.arena_project import fixed_answers_config
from support.judge_server import prompt_text

pytest.importorskip("xdist")  # a dev dependency: CI has it

LOADING = re.compile(r"arena \[(gw\d+)\]: (\S+): loading model")


def run_xdist(project, *args: str):
    # xdist workers are separate processes: the run must be a subprocess too.
    return project.pytester.runpytest_subprocess("--arena-config", str(project.root / "cfg_arena.yaml"), *args)


def loads(result) -> list[tuple[str, str]]:
    return LOADING.findall(result.stdout.str() + result.stderr.str())


def by_battle(records: list[dict]) -> dict:
    return {(r["question_id"], r["model_a"], r["model_b"]): r for r in records}


def test_two_workers_match_one_process_record_by_record(arena_project):
    gates = [{"model": "tiny-c", "beats": "tiny-b", "margin": 5000}]  # passes, with numbers to compare
    config = arena_project.config(questions=4, gates=gates)
    # The default control: the controller, which generated nothing, must read the answers' lengths from
    # the files the workers wrote, or its report would lose the controlled columns.
    config["rating_gen"]["style_control"] = "length"
    arena_project.write(config)
    parallel = run_xdist(arena_project, "-n", "2", "-v", "--junitxml=parallel.xml")
    parallel.assert_outcomes(passed=13)
    assert parallel.ret == 0
    # Each model loaded once in the whole run, the two workers loading different models side by side.
    loaded = loads(parallel)
    assert sorted(model for _, model in loaded) == ["tiny-a", "tiny-b", "tiny-c"]
    assert {worker for worker, _ in loaded} == {"gw0", "gw1"}
    for model in ("tiny-a", "tiny-b", "tiny-c"):
        assert len(arena_project.read_jsonl(f"answers/answer_{model}.jsonl")) == 4
    # Each judge call made once, by the worker that ran its battle.
    assert arena_project.server.request_count == 12
    parallel.stdout.fnmatch_lines(["*= arena =*", "judge: 12 calls, 0 from cache, 0 failed*",
                                   "models loaded: *", "report: *elo_rating.csv"])
    assert parallel.stdout.str().count("= arena =") == 1

    # One process over the same answers (the cache) and a fresh review file: the same judge calls again.
    moved = {"parallel.csv": "reports/elo_rating.csv", "parallel.jsonl": "reviews/review_gpt4.jsonl"}
    for saved, path in moved.items():
        shutil.move(arena_project.root / path, arena_project.root / saved)
    alone = arena_project.run("-n", "0", "-v", "--junitxml=alone.xml")
    alone.assert_outcomes(passed=13)
    assert arena_project.server.request_count == 24
    alone.stdout.fnmatch_lines(["judge: 12 calls, 0 from cache, 0 failed*", "models loaded: none*"])

    parallel_reviews = by_battle(arena_project.read_jsonl("parallel.jsonl"))
    alone_reviews = by_battle(arena_project.read_jsonl("reviews/review_gpt4.jsonl"))
    assert parallel_reviews.keys() == alone_reviews.keys() and len(alone_reviews) == 12
    for battle, record in alone_reviews.items():
        for field in ("win", "review_text", "cache_key", "template"):
            assert parallel_reviews[battle][field] == record[field], (battle, field)
    assert {r[r["win"]] for r in alone_reviews.values()} == {"tiny-a", "tiny-b"}  # real verdicts, not ties
    assert (arena_project.root / "parallel.csv").read_bytes() == (arena_project.root / "reports/elo_rating.csv").read_bytes()
    report = pd.read_csv(arena_project.root / "parallel.csv")
    assert list(report["Model"]) == ["tiny-a", "tiny-b", "tiny-c"]
    assert report["BT_Rating_SC"].notna().all()
    # JUnit XML: the same test cases with the same properties, the gate's included.
    assert junit_cases(arena_project.root / "parallel.xml") == junit_cases(arena_project.root / "alone.xml")


def junit_cases(path) -> dict:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[case.get("name")] = (outcome, properties)
    # Under JUnit's default xunit2 an item's properties are the suite's, named `<test name>.<property>`;
    # the run's own (the judge's biases, `judge_*`) have no test name and are kept under "run".
    for suite_property in ET.parse(path).getroot().iterfind("testsuite/properties/property"):
        test_name, _, name = suite_property.get("name").rpartition("].")
        if not test_name:
            cases.setdefault("run", ([], {}))[1][name] = suite_property.get("value")
            continue
        cases[test_name + "]"][1][name] = suite_property.get("value")
    return cases


def test_failing_gate_fails_a_two_worker_run_and_k_selects(arena_project):
    config = fixed_answers_config(arena_project, questions=3, models={"long": 9, "mid": 5, "short": 1},
                                  position_bias_mitigation="swap_position")
    config["gates"] = [{"model": "mid", "min_elo": 5000}, {"model": "short", "min_elo": 0}]
    arena_project.write(config)
    result = run_xdist(arena_project, "-n", "2", "-v", "-k", "mid", "--junitxml=junit.xml",
                       "--arena-worker-gpus", "0,1")
    # -k mid: its 2 pairs x 3 questions and its gate; short's gate is deselected.
    result.assert_outcomes(passed=6, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*FAILED*test_gate?elo-mid?*", "*mid:*5000*"])
    # Both orders of each battle asked once; the counters of both workers added up.
    assert arena_project.server.request_count == 12
    result.stdout.fnmatch_lines(["judge: 12 calls, 0 from cache, 0 failed*",
                                 "position consistency: 100.0% of 6 swapped pairs agree"])
    assert (arena_project.root / "reports/elo_rating.subset.csv").exists()
    cases = junit_cases(arena_project.root / "junit.xml")
    outcome, properties = cases["test_gate[elo-mid]"]
    assert outcome == ["failure"] and "5000" in properties["gate"] and float(properties["gate_threshold"]) == 5000
    assert "test_gate[elo-short]" not in cases
    # Each worker is shown its own device.
    output = result.stdout.str() + result.stderr.str()
    assert "arena [gw0]: this worker sees CUDA devices 0 " in output
    assert "arena [gw1]: this worker sees CUDA devices 1 " in output


def test_worker_gpus_are_checked_before_any_worker_starts(arena_project):
    arena_project.write(fixed_answers_config(arena_project, questions=1, models={"long": 3, "short": 1}))
    malformed = arena_project.run("-n", "2", "--arena-worker-gpus", "0,,1")
    assert malformed.ret == pytest.ExitCode.USAGE_ERROR
    malformed.stderr.fnmatch_lines(["*--arena-worker-gpus: expected CUDA devices per worker*'0,,1'*"])
    arena_project.pytester.makeini("[pytest]\narena_worker_gpus = 0+1\n")  # one worker's worth, from the ini
    too_few = arena_project.run("-n", "2")
    assert too_few.ret == pytest.ExitCode.USAGE_ERROR
    too_few.stderr.fnmatch_lines(["*--arena-worker-gpus: 2 workers but devices for only 1 (0,1)*"])
    alone = arena_project.run("-n", "0")  # no workers to pin: said, and the run goes on
    alone.assert_outcomes(passed=1)
    alone.stdout.fnmatch_lines(["arena: --arena-worker-gpus applies to pytest-xdist workers*"])
    arena_project.pytester.runpytest("--help").stdout.fnmatch_lines(["*--arena-worker-gpus=DEVICES*"])


def score_by_length(body) -> str:
    """A single-mode judge: the more words in the answer, the higher the score (1..10)."""
    text = prompt_text(body)
    answer = text[text.index("[Answer of the assistant]"):text.index("[End of answer]")]
    return f"Rating: [[{min(10, len(answer.split()) - 3)}]]"


def test_single_mode_scores_match_one_process(arena_project):
    arena_project.server.reply = score_by_length
    config = fixed_answers_config(arena_project, questions=3, models={"long": 9, "mid": 5, "short": 1}, mode="single")
    config["gates"] = [{"model": "short", "min_score": 3}]
    arena_project.write(config)
    parallel = run_xdist(arena_project, "-n", "2")
    parallel.assert_outcomes(passed=9, failed=1)
    parallel.stdout.fnmatch_lines(["*short: mean score * < min_score 3*"])
    assert arena_project.server.request_count == 9
    shutil.move(arena_project.root / "reports/elo_rating.csv", arena_project.root / "parallel.csv")
    scores = {(r["model"], r["question_id"]): r["score"] for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")}
    (arena_project.root / "reviews/review_gpt4.jsonl").unlink()
    arena_project.run("-n", "0").assert_outcomes(passed=9, failed=1)
    assert arena_project.server.request_count == 18
    alone = {(r["model"], r["question_id"]): r["score"] for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")}
    assert scores == alone and len(set(alone.values())) == 3
    assert (arena_project.root / "parallel.csv").read_bytes() == (arena_project.root / "reports/elo_rating.csv").read_bytes()
