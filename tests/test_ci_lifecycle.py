"""The arena under the pytest habits of CI pipelines: early stops (-x, --maxfail, --sw), pytest-timeout,
pytest-rerunfailures, pytest-randomly, --lf/--ff, and a user's fixture named like the suite's.

Candidates answer from files (``fixed_answers_config``) where the test is about the run's lifecycle,
so no model loads; the loopback judge is asked over real HTTP.
"""

from __future__ import annotations

import shutil
import threading

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest
from support.arena_project import OWN_MARKERS, fixed_answers_config
from support.judge_server import Fault, faults_then, prefer_longer, prompt_text

from pytest_arena.session import ArenaSession

# Answers of 9, 5, 2 and 1 words: prefer_longer gives every pair a fixed winner.
WORDS = {"long": 9, "mid": 5, "short": 2, "tiny": 1}


def write_arena(project, questions=3, models=("long", "mid", "short"), gates=None, **judge_args):
    config = fixed_answers_config(project, questions, {m: WORDS[m] for m in models}, **judge_args)
    if gates:
        config["gates"] = gates
    return project.write(config)


def fail_question(question_id: int, good=prefer_longer(**OWN_MARKERS)):
    """A judge that cannot read its verdicts on one question (its answers are the words ``w<id>``)."""
    marker = f"w{question_id} "

    def reply(body):
        return "I will not say." if marker in prompt_text(body) else good(body)

    return reply


def run(project, *args):
    """An arena run in item order: pytester's in-process runs drop PYTEST_ADDOPTS, and with it the
    suite's ``-p no:randomly``; a test of the random order asks for it."""
    return project.run(*args) if "randomly" in args else project.run("-p", "no:randomly", *args)


# -- a partial run never passes for a whole one ------------------------------------------------------


def test_a_stop_at_the_first_failure_writes_the_subset_report_and_keeps_the_full_one_and_the_baseline(arena_project):
    root = arena_project.root
    baseline = root / "baseline.csv"
    write_arena(arena_project)
    whole = run(arena_project, "--arena-baseline", str(baseline), "--arena-baseline-update")
    whole.assert_outcomes(passed=9)
    report = root / "reports/elo_rating.csv"
    full_bytes, baseline_bytes = report.read_bytes(), baseline.read_bytes()

    # The same arena judged afresh (another review file), by a judge that fails question 1: -x stops.
    config = fixed_answers_config(arena_project, 3, {m: WORDS[m] for m in ("long", "mid", "short")})
    config["reviews_gen"]["review_file"] = "reviews/second.jsonl"
    arena_project.write(config)
    arena_project.server.reply = fail_question(1)
    stopped = run(arena_project, "--maxfail", "1", "--arena-baseline", str(baseline), "--arena-baseline-update")
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED
    assert stopped.parseoutcomes() == {"failed": 1}
    stopped.stdout.fnmatch_lines([
        "partial run (stopping after 1 failures; 1 of 9 battles ran): report: *elo_rating.subset.csv; "
        "the full report and the baseline are left as they were"])
    stopped.stdout.no_fnmatch_line("baseline: updated*")
    assert report.read_bytes() == full_bytes and baseline.read_bytes() == baseline_bytes
    assert (root / "reports/elo_rating.subset.csv").is_file()
    # Only the judge's real failures (question 1's three battles) are errors in the review file.
    errors = [r for r in arena_project.read_jsonl("reviews/second.jsonl") if r["win"] == "error"]
    assert sorted(r["question_id"] for r in errors) == [1, 1, 1]


def test_a_judge_error_is_a_judged_battle_so_the_whole_run_still_reports(arena_project):
    # A battle whose judge failed ran and was judged: it fails, the ratings leave it out, the run is whole.
    write_arena(arena_project)
    arena_project.server.reply = fail_question(2)
    result = run(arena_project)
    result.assert_outcomes(passed=6, failed=3)
    assert (arena_project.root / "reports/elo_rating.csv").is_file()
    assert not (arena_project.root / "reports/elo_rating.subset.csv").exists()
    result.stdout.no_fnmatch_line("partial run*")


def test_calls_in_flight_at_close_are_cancelled_not_recorded_as_errors(arena_project):
    config_path = write_arena(arena_project, questions=4, max_concurrency=2)
    arena_project.server.latency = 5.0  # every call is still in flight when the run stops
    session = ArenaSession.from_file(config_path, log=lambda message: None)
    session.preflight()
    session.prepare()  # answers read, the 12 calls submitted: 2 running, 10 queued
    session.close()  # what the plugin does when pytest stops early
    for thread in threading.enumerate():
        if thread.name.startswith("arena-judge"):
            thread.join(timeout=30)
    review_file = arena_project.root / "reviews/review_gpt4.jsonl"
    records = arena_project.read_jsonl("reviews/review_gpt4.jsonl") if review_file.exists() else []
    assert [r for r in records if r.get("win") == "error" or "error" in r] == []
    assert arena_project.server.request_count <= 2  # the queued calls were never sent
    assert session.counters.failed == 0


# -- pytest-timeout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_timeout_counts_no_generation_or_judging_against_an_item(arena_project, tiny_models, method):
    # Each judge call takes longer than an item may: an item that waited for its verdict would time out
    # (and the thread method would kill the whole process). One model generates, too.
    config = fixed_answers_config(arena_project, 2, {"long": 9, "short": 2}, max_concurrency=1)
    config["answers_gen"]["tiny-a"] = arena_project.config(questions=2)["answers_gen"]["tiny-a"]
    arena_project.write(config)
    arena_project.server.latency = 1.5
    result = arena_project.pytester.runpytest_subprocess(
        "-p", "no:randomly", "--arena-config", str(arena_project.root / "cfg_arena.yaml"),
        "--timeout", "1", "--timeout-method", method)
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*report: *elo_rating.csv"])
    assert "Timeout" not in result.stdout.str() + result.stderr.str()


def test_an_interrupted_preparation_is_taken_up_again_not_passed_over(arena_project):
    # A timeout (or Ctrl-C) that stops the preparation half-way: the next attempt finishes the work
    # instead of finding it "done", and every match then has a real verdict.
    arena_project.write(arena_project.config(questions=2, models=("tiny-a", "tiny-c")))
    stops = []

    def log(message):
        if "tiny-c: loading model" in message and not stops:
            stops.append(message)
            raise TimeoutError("the item's time is up")  # as pytest-timeout's signal would, mid-preparation

    session = ArenaSession.from_file(arena_project.root / "cfg_arena.yaml", log=log)
    session.preflight()
    with pytest.raises(TimeoutError):
        session.prepare()
    assert not session.prepared
    session.prepare()
    assert session.prepared and session.models_loaded == ["tiny-a", "tiny-c"]
    verdicts = [session.judgment(match) for match in session.matches]
    assert len(verdicts) == 2 and all(v.ok for v in verdicts)
    session.close()


# -- pytest-rerunfailures ----------------------------------------------------------------------------


def test_a_rerun_battle_asks_the_judge_again(arena_project):
    write_arena(arena_project, questions=2)
    # Each distinct judge call fails once (400: not retried by the client), then answers.
    arena_project.server.reply = faults_then(1, Fault(status=400), prefer_longer(**OWN_MARKERS))
    result = run(arena_project, "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 6, "rerun": 6}
    assert arena_project.server.request_count == 12  # once failed, once answered: no memoized failure
    assert (arena_project.root / "reports/elo_rating.csv").is_file()


def test_rerun_items_do_not_pile_up_their_properties(arena_project):
    write_arena(arena_project, questions=1, gates=[{"model": "short", "min_elo": 5000}])
    arena_project.server.reply = fail_question(1)
    recorder = arena_project.pytester.inline_run(
        "-p", "no:randomly", "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "--reruns", "2")
    finals = [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call" and r.outcome == "failed"]
    assert len(finals) == 4  # 3 battles and the gate, each after 2 reruns
    for report in finals:
        names = [name for name, _ in report.user_properties]
        assert len(names) == len(set(names)), (report.nodeid, names)


def test_a_failed_preparation_errors_every_item_and_a_rerun_retries_it_once(arena_project, tiny_models, tmp_path):
    # A checkpoint that cannot load: no item may pass or KeyError on a preparation marked done too early.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["tiny-a"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    config = fixed_answers_config(arena_project, 2, {"long": 9, "short": 2})
    config["answers_gen"]["broken"] = dict(arena_project.config(questions=2)["answers_gen"]["tiny-a"],
                                           model_id_or_path=str(broken))
    arena_project.write(config)
    result = run(arena_project, "--reruns", "2")
    assert result.parseoutcomes() == {"errors": 6, "rerun": 12}
    output = result.stdout.str()
    assert output.count("broken: loading model") == 2  # before the items, then once more for a rerun
    assert "KeyError" not in output and not (arena_project.root / "reports").exists()


def test_timeout_with_reruns_gives_every_battle_a_true_verdict(arena_project):
    write_arena(arena_project, questions=2, max_concurrency=1)
    arena_project.server.latency = 1.5  # more than an item may take: a verdict awaited in an item times out
    result = arena_project.pytester.runpytest_subprocess(
        "-p", "no:randomly", "--arena-config", str(arena_project.root / "cfg_arena.yaml"),
        "--timeout", "1", "--reruns", "2", "-v")
    assert result.parseoutcomes() == {"passed": 6}
    assert "KeyError" not in result.stdout.str()
    assert len(arena_project.read_jsonl("reviews/review_gpt4.jsonl")) == 6


# -- pytest-randomly, --ff, --lf, --sw ---------------------------------------------------------------


def test_ratings_do_not_depend_on_the_order_items_run_in(arena_project):
    gates = [{"model": "long", "min_elo": 0}]
    write_arena(arena_project, questions=4, models=("long", "mid", "short", "tiny"), gates=gates)
    report = arena_project.root / "reports/elo_rating.csv"
    csvs, orders = [], []
    for seed in ("1", "2"):
        result = run(arena_project, "-p", "randomly", "--randomly-seed", seed, "-v")
        result.assert_outcomes(passed=25)
        ran = [line.split("::")[-1].split(" ")[0] for line in result.stdout.lines if " PASSED" in line]
        assert ran[-1] == "test_gate[elo-long]"  # gates stay last in any order
        orders.append(ran)
        csvs.append(report.read_bytes())
        report.unlink()
    assert orders[0] != orders[1]  # the seeds did shuffle the battles
    assert csvs[0] == csvs[1]


def test_failed_first_still_runs_gates_last(arena_project):
    write_arena(arena_project, gates=[{"model": "short", "min_elo": 5000}])
    run(arena_project).assert_outcomes(passed=9, failed=1)
    result = run(arena_project, "--ff", "-v")
    lines = [line for line in result.stdout.lines if " PASSED" in line or " FAILED" in line]
    assert "test_gate[elo-short] FAILED" in lines[-1]


def test_last_failed_gate_alone_rates_the_whole_arena_from_the_cache(arena_project):
    write_arena(arena_project, gates=[{"model": "short", "min_elo": 5000}, {"model": "long", "min_elo": 0}])
    first = run(arena_project)
    first.assert_outcomes(passed=10, failed=1)
    full_report = (arena_project.root / "reports/elo_rating.csv").read_bytes()
    arena_project.server.reset_counters()
    again = run(arena_project, "--lf", "-v")
    again.assert_outcomes(failed=1, deselected=10)
    again.stdout.fnmatch_lines(["*short: *CI lower bound * < min_elo 5000"])
    again.stdout.no_fnmatch_line("*no judged battles*")
    assert arena_project.server.request_count == 0  # every verdict came from the review cache
    # The gate fixed, the last failed gate alone passes; a gate-only run does not write the full report.
    write_arena(arena_project, gates=[{"model": "short", "min_elo": -10000}, {"model": "long", "min_elo": 0}])
    fixed = run(arena_project, "--lf")
    fixed.assert_outcomes(passed=1, deselected=10)
    fixed.stdout.fnmatch_lines(["report: *elo_rating.subset.csv (a subset run*"])
    assert (arena_project.root / "reports/elo_rating.csv").read_bytes() == full_report


def test_a_gate_selected_alone_judges_what_the_cache_lacks(arena_project):
    write_arena(arena_project, gates=[{"model": "long", "min_elo": 0}])
    result = run(arena_project, "-k", "gate")
    result.assert_outcomes(passed=1)
    assert arena_project.server.request_count == 9
    result.stdout.fnmatch_lines(["*the gates rate the whole arena: 9 battles not selected are judged too*"])


def test_stepwise_run_whose_last_item_fails_is_a_failed_run_with_its_report(arena_project):
    write_arena(arena_project, gates=[{"model": "short", "min_elo": 5000}])
    result = run(arena_project, "--sw")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*interrupted: no report written*")
    assert (arena_project.root / "reports/elo_rating.csv").is_file()


def test_stepwise_stop_in_the_middle_writes_the_subset(arena_project):
    write_arena(arena_project)
    arena_project.server.reply = fail_question(2)
    result = run(arena_project, "--sw")
    result.stdout.fnmatch_lines(["partial run (Test failed, continuing from this test next run.; 4 of 9 battles ran)*"])
    assert not (arena_project.root / "reports/elo_rating.csv").exists()


# -- a user's fixtures do not reach into the suite ---------------------------------------------------


def test_a_user_fixture_named_arena_does_not_shadow_the_suites(arena_project):
    arena_project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def arena():
            raise RuntimeError("the user's own arena fixture")

        @pytest.fixture
        def arena_battle():
            raise RuntimeError("the user's own arena_battle fixture")
        """
    )
    write_arena(arena_project, gates=[{"model": "long", "min_elo": 0}])
    result = run(arena_project)
    result.assert_outcomes(passed=10)
