"""End-to-end runs of `pytest --arena-config ...` through pytester, with tiny models and the loopback judge."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest
from support.arena_project import FAKE_KEY, OWN_MARKERS
from support.judge_server import constant, prefer_longer

LOADING = re.compile(r"arena: (\S+): loading model")


def loaded_models(result) -> list[str]:
    return LOADING.findall(result.stdout.str())


def test_items_ids_report_and_rating_order(arena_project):
    arena_project.write(arena_project.config(questions=4))
    result = arena_project.run("-v")
    result.assert_outcomes(passed=12)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*test_battle?q001-tiny-a--vs--tiny-b? PASSED*",
        "*test_battle?q001-tiny-a--vs--tiny-c? PASSED*",
        "*test_battle?q004-tiny-b--vs--tiny-c? PASSED*",
    ])
    assert sorted(loaded_models(result)) == ["tiny-a", "tiny-b", "tiny-c"]
    # The judge prefers longer answers and the models answer with 24, 12 and 3 tokens.
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert list(report.columns) == ["Model", "Elo_Rating", "CI_Lower", "CI_Upper", "BT_Rating", "BT_CI_Lower",
                                    "BT_CI_Upper", "Battles", "Wins", "Ties", "Losses", "Win_Rate"]
    assert list(report["Model"]) == ["tiny-a", "tiny-b", "tiny-c"]
    assert report["Elo_Rating"].is_monotonic_decreasing
    assert report["BT_Rating"].is_monotonic_decreasing
    assert (report["BT_CI_Lower"] <= report["BT_Rating"]).all() and (report["BT_Rating"] <= report["BT_CI_Upper"]).all()
    # The CSV agrees with the review file, verdict by verdict.
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert len(reviews) == 12
    for model in ("tiny-a", "tiny-b", "tiny-c"):
        wins = sum(r[r["win"]] == model for r in reviews if r["win"] in ("model_a", "model_b"))
        row = report[report["Model"] == model].iloc[0]
        assert row["Wins"] == wins
        assert row["Battles"] == 8
    assert abs(report["Elo_Rating"].mean() - 1000) < 1e-6 + 0.01  # online Elo is zero-sum
    result.stdout.fnmatch_lines(["*= arena =*", "rank*model*BT rating*95% CI*", "1 *tiny-a*", "*report: *elo_rating.csv"])


def test_answer_records_follow_evalscope(arena_project):
    arena_project.write(arena_project.config(questions=3, models=("tiny-a", "tiny-c")))
    arena_project.run().assert_outcomes(passed=3)
    records = arena_project.read_jsonl("answers/answer_tiny-a.jsonl")
    assert [r["question_id"] for r in records] == [1, 2, 3]
    for record in records:
        assert {"question_id", "text", "category", "model_id", "answer", "metadata"} <= set(record)
        assert record["model_id"] == "tiny-a"
        assert record["answer"].strip()
        assert len(record["metadata"]["cache_key"]) == 64
        assert record["metadata"]["completion_tokens"] > 0


def test_k_selects_one_pair_and_never_loads_the_other_model(arena_project):
    arena_project.write(arena_project.config(questions=4))
    result = arena_project.run("-v", "-k", "tiny-a and tiny-b")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("PASSED") == 4
    assert sorted(loaded_models(result)) == ["tiny-a", "tiny-b"]
    assert not (arena_project.root / "answers/answer_tiny-c.jsonl").exists()
    assert arena_project.server.request_count == 4
    # A subset run never passes for the full report.
    assert not (arena_project.root / "reports/elo_rating.csv").exists()
    assert (arena_project.root / "reports/elo_rating.subset.csv").exists()


def test_k_model_name_selects_its_battles_and_gates(arena_project):
    gates = [{"model": "tiny-a", "min_elo": 0}, {"model": "tiny-b", "min_elo": 0}]
    arena_project.write(arena_project.config(questions=2, gates=gates))
    result = arena_project.run("-v", "-k", "tiny-c")
    # 2 questions x (a-c, b-c); neither gate names tiny-c.
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*test_gate*")


def test_exact_model_marker_selects(arena_project):
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run("-v", "-m", "arena_model(name='tiny-b')")
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*tiny-a--vs--tiny-c*")


def test_identical_rerun_loads_no_model_and_sends_no_judge_request(arena_project):
    arena_project.write(arena_project.config(questions=4))
    first = arena_project.run()
    first.assert_outcomes(passed=12)
    requests = arena_project.server.request_count
    assert requests == 12
    report = (arena_project.root / "reports/elo_rating.csv").read_bytes()

    second = arena_project.run()
    second.assert_outcomes(passed=12)
    assert loaded_models(second) == []
    assert arena_project.server.request_count == requests
    second.stdout.fnmatch_lines(["judge: 0 calls, 12 from cache, 0 failed*", "models loaded: none*"])
    assert (arena_project.root / "reports/elo_rating.csv").read_bytes() == report
    # The caches were reused, not rewritten.
    assert len(arena_project.read_jsonl("reviews/review_gpt4.jsonl")) == 12
    assert len(arena_project.read_jsonl("answers/answer_tiny-a.jsonl")) == 4


def test_changed_generation_config_regenerates_only_that_model(arena_project):
    config = arena_project.config(questions=3)
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=9)
    config["answers_gen"]["tiny-b"]["generation_config"]["temperature"] = 0.5
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=9)
    assert loaded_models(result) == ["tiny-b"]


def test_judge_calls_run_concurrently_up_to_the_limit(arena_project):
    arena_project.server.latency = 0.3
    arena_project.write(arena_project.config(questions=32, models=("tiny-a", "tiny-c"), max_concurrency=8))
    result = arena_project.run()
    result.assert_outcomes(passed=32)
    assert arena_project.server.request_count == 32
    assert arena_project.server.max_in_flight == 8


def test_judge_settings_and_key_reach_the_server(arena_project):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    arena_project.run().assert_outcomes(passed=1)
    request = arena_project.server.requests[0]
    assert request["model"] == "gpt-4"
    assert request["temperature"] == 0.2
    assert request["max_tokens"] == 256
    assert request["messages"][0]["role"] == "system"
    assert arena_project.server.auth_headers[0] == f"Bearer {FAKE_KEY}"


def test_key_is_never_written(arena_project):
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run("--junitxml=junit.xml", "-v")
    result.assert_outcomes(passed=6)
    assert FAKE_KEY not in result.stdout.str() + result.stderr.str()
    for path in arena_project.root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_unparseable_verdict_fails_its_item_and_is_asked_again(arena_project):
    arena_project.server.reply = constant("Both answers are fine, I cannot decide.")
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    result = arena_project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unparseable verdict*", "*judge said: Both answers are fine, I cannot decide.*"])
    assert arena_project.read_jsonl("reviews/review_gpt4.jsonl")[0]["win"] == "error"
    assert not (arena_project.root / "reports/elo_rating.csv").exists()

    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    arena_project.run().assert_outcomes(passed=1)
    assert arena_project.server.request_count == 2


def test_verdicts_are_recorded_in_junit_xml(arena_project):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    arena_project.run("--junitxml=junit.xml").assert_outcomes(passed=1)
    xml = (arena_project.root / "junit.xml").read_text()
    # (under JUnit's default xunit2 an item's properties are the suite's, named by the item: test_ci_junit.py)
    assert 'name="test_battle[q001-tiny-a--vs--tiny-b].verdict" value="model_a"' in xml


@pytest.mark.parametrize(
    ("model", "expected_ret", "outcome"),
    [("tiny-a", 0, "passed"), ("tiny-c", 1, "failed")],
)
def test_min_elo_gate_sets_the_exit_code(arena_project, model, expected_ret, outcome):
    gates = [{"model": model, "min_elo": 1000}]
    arena_project.write(arena_project.config(questions=4, gates=gates))
    result = arena_project.run("-v")
    assert result.ret == expected_ret
    outcomes = result.parseoutcomes()
    assert outcomes.get(outcome) == (13 if outcome == "passed" else 1)
    lines = result.stdout.lines
    # Gates run after every battle.
    gate_line = next(i for i, line in enumerate(lines) if f"test_gate[elo-{model}]" in line)
    assert all("test_battle" not in line for line in lines[gate_line + 1:] if "PASSED" in line)
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*tiny-c: BT rating *(95% CI * .. *, 8 battles); CI lower bound * < min_elo 1000*"])


def test_beats_gate(arena_project):
    gates = [{"model": "tiny-a", "beats": "tiny-c"}, {"model": "tiny-c", "beats": "tiny-a", "margin": 10}]
    arena_project.write(arena_project.config(questions=6, gates=gates))
    result = arena_project.run("-v")
    result.stdout.fnmatch_lines(["*test_gate?beats-tiny-a--vs--tiny-c? PASSED*",
                                 "*test_gate?beats-tiny-c--vs--tiny-a? FAILED*"])
    assert result.ret == 1


def test_gate_without_battles_fails(arena_project):
    # A gate selected alone rates the whole arena (tests/test_ci_lifecycle.py): here no verdict is readable.
    arena_project.server.reply = constant("I cannot decide.")
    gates = [{"model": "tiny-c", "min_elo": 0}]
    arena_project.write(arena_project.config(questions=2, gates=gates))
    result = arena_project.run("-k", "gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tiny-c: no judged battles in this run*"])


def test_collect_only_states_the_plan(arena_project):
    arena_project.write(arena_project.config(questions=3, gates=[{"model": "tiny-a", "min_elo": 900}]))
    result = arena_project.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(["10 tests collected*"])
    result.stdout.fnmatch_lines(["*plan: 9 battles, 1 gates; 9 judge calls (cache unknown until answers exist)*"])
    assert loaded_models(result) == []
    arena_project.run().assert_outcomes(passed=10)
    again = arena_project.run("--collect-only", "-q")
    again.stdout.fnmatch_lines(["*plan: 9 battles, 1 gates; 9 judge calls (9 cached, 0 to make)*"])


def test_without_arena_config_the_plugin_does_nothing(pytester):
    """pytest imports the plugin on every run: it must add no section and import nothing heavy."""
    pytester.makepyfile("def test_one():\n    assert True\n")
    script = (
        "import sys, pytest\n"
        "code = pytest.main(['-p', 'no:cacheprovider', '-c', '/dev/null', '--rootdir', '.', '-q'])\n"
        "assert 'pytest_arena.plugin' in sys.modules, 'the plugin was not loaded at all'\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'openai', 'pandas', 'numpy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    result = pytester.run(sys.executable, "-c", script)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*1 passed*", "HEAVY []"])
    result.stdout.no_fnmatch_line("*= arena =*")


def test_explicit_paths_are_respected(arena_project):
    arena_project.pytester.makepyfile(test_mine="def test_mine():\n    assert True\n")
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    # (the arena suite is collected besides given paths: tests/test_ci_collection.py; -m deselects it)
    result = arena_project.run("test_mine.py", "-m", "not arena")
    result.assert_outcomes(passed=1, deselected=1)
    assert loaded_models(result) == []


def _break_key(config):
    config["answers_gen"]["tiny-a"]["generation_config"]["max_new_token"] = 5


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update(question_flie="q.jsonl"), "question_flie: unknown key; did you mean 'question_file'?"),
        (lambda c: c["reviews_gen"]["reviewer"]["args"].update(mode="pairwize"),
         "reviews_gen.reviewer.args.mode: expected one of pairwise, pairwise_baseline, single, got 'pairwize'"),
        (lambda c: c["answers_gen"]["tiny-b"].update(precision="torch.float17"),
         "answers_gen.tiny-b.precision: expected one of torch.float16, torch.bfloat16, torch.float32, auto"),
        (lambda c: c["answers_gen"]["tiny-b"]["generation_config"].update(max_new_tokens="many"),
         "answers_gen.tiny-b.generation_config.max_new_tokens: expected a positive integer, got a string 'many'"),
        (lambda c: c["answers_gen"]["tiny-b"].update(model_id_or_path="./no/such/model"),
         "answers_gen.tiny-b.model_id_or_path: model folder not found"),
        (lambda c: c.update(question_file="missing.jsonl"), "question_file: file not found"),
        (lambda c: c.update(gates=[{"model": "tiny-z", "min_elo": 1000}]),
         "gates[0].model: expected one of the models in answers_gen (tiny-a, tiny-b, tiny-c), got 'tiny-z'"),
        (_break_key, "answers_gen.tiny-a: generation_config.max_new_token: unknown generation setting; "
                     "did you mean 'max_new_tokens'?"),
    ],
    ids=["unknown-key", "bad-mode", "bad-precision", "wrong-type", "missing-model", "missing-questions",
         "gate-unknown-model", "generation-typo"],
)
def test_config_mistakes_are_one_line_usage_errors(arena_project, mutate, expected):
    config = arena_project.config(questions=2)
    mutate(config)
    path = arena_project.write(config)
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith(f"ERROR: {path}: ")
    assert expected in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert loaded_models(result) == []


def test_missing_api_key_is_a_usage_error_before_any_model_loads(arena_project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *cfg_arena.yaml: reviews_gen.reviewer: the judge needs an API key "
                                 "in the environment variable OPENAI_API_KEY*"])
    assert loaded_models(result) == []
    assert not (arena_project.root / "answers").exists()


def test_bad_question_line_is_reported_with_its_number(arena_project):
    arena_project.write(arena_project.config(questions=2))
    with open(arena_project.root / "questions.jsonl", "a") as handle:
        handle.write('{"question_id": 3, "text": \n')
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *questions.jsonl: line 3: invalid JSON*"])


def test_ini_option_names_the_config(arena_project):
    arena_project.write(arena_project.config(questions=1, models=("tiny-a", "tiny-b")))
    arena_project.pytester.makeini("[pytest]\narena_config = cfg_arena.yaml\n")
    result = arena_project.pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_reviews_disabled_generates_answers_only(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"))
    config["reviews_gen"]["enable"] = False
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    assert arena_project.server.request_count == 0
    assert len(arena_project.read_jsonl("answers/answer_tiny-b.jsonl")) == 2
    assert not (arena_project.root / "reports/elo_rating.csv").exists()


def test_disabled_model_takes_part_with_its_existing_answers(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"))
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    config["answers_gen"]["tiny-b"]["enable"] = False
    config["answers_gen"]["tiny-b"]["model_id_or_path"] = "./gone"
    config["reviews_gen"]["review_file"] = "reviews/second.jsonl"
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    assert loaded_models(result) == []
    assert arena_project.server.request_count == 4
