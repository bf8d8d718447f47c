"""Gates and reports, end to end: Bradley-Terry, baseline reports, win-rate and score gates, outputs people read."""

from __future__ import annotations

import pandas as pd
import pytest
from support.judge_server import prompt_text


def rate_by_length(body):
    text = prompt_text(body)
    answer = text[text.index("[Answer of the assistant]"):text.index("[End of answer]")]
    return f"Rating: [[{min(10, 1 + len(answer.split()) // 3)}]]"


def test_bt_metric_leads_the_table_and_judges_gates(arena_project):
    gates = [{"model": "tiny-a", "min_elo": 1000}, {"model": "tiny-b", "beats": "tiny-a", "margin": 20}]
    arena_project.write(arena_project.config(questions=6, gates=gates, rating_gen__metrics=["elo", "bt"]))
    result = arena_project.run("-v", "--junitxml=junit.xml")
    result.stdout.fnmatch_lines(["*test_gate?elo-tiny-a? PASSED*", "*test_gate?beats-tiny-b--vs--tiny-a? FAILED*",
                                 # (paired by question: both models' ratings refitted on one question draw)
                                 "*tiny-b - tiny-a: BT rating difference * (paired 95% CI * .. *, 6 questions resampled "
                                 "for both); significantly below -margin -20*",
                                 "rank*model*BT rating*95% CI*"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert list(report.columns[:7]) == ["Model", "Elo_Rating", "CI_Lower", "CI_Upper", "BT_Rating", "BT_CI_Lower",
                                        "BT_CI_Upper"]
    assert abs(report["BT_Rating"].mean() - 1000) < 1e-6  # anchored: mean 1000 without a baseline
    assert list(report["Model"]) == ["tiny-a", "tiny-b", "tiny-c"]
    xml = (arena_project.root / "junit.xml").read_text()
    # (under JUnit's default xunit2 an item's properties are the suite's, named by the item: test_ci_junit.py)
    assert 'name="test_gate[elo-tiny-a].gate_threshold" value="1000.0"' in xml and '].gate_ci"' in xml


def test_max_drop_against_a_stored_baseline_report(arena_project, tmp_path):
    baseline = arena_project.root / "baseline.csv"
    gates = [{"model": "tiny-a", "max_drop": 10}]
    config = arena_project.config(questions=4, gates=gates)
    arena_project.write(config)

    missing = arena_project.run("--arena-baseline", str(baseline))
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["ERROR: *baseline.csv: baseline report not found (run once with --arena-baseline-update*"])

    first = arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update")
    first.stdout.fnmatch_lines(["baseline: updated *baseline.csv"])
    assert first.ret == 1  # no baseline yet: the max_drop gate cannot pass on this run
    stored = pd.read_csv(baseline).set_index("Model")

    # Same answers and verdicts: no change, the gate passes and the table shows the delta.
    second = arena_project.run("--arena-baseline", str(baseline), "-v")
    second.stdout.fnmatch_lines(["*test_gate?drop-tiny-a? PASSED*", "rank*model*BT rating*change*", "1 *tiny-a*+0.0*"])
    assert second.ret == 0

    # A baseline in which tiny-a was much stronger: now its rating has significantly dropped.
    for column in ("BT_Rating", "BT_CI_Lower", "BT_CI_Upper"):
        stored.loc["tiny-a", column] += 200
    stored.reset_index().to_csv(baseline, index=False)
    # (the paired gate would refit the baseline from its verdicts: without them, the CSV's point is judged)
    baseline.with_name("baseline.verdicts.jsonl").unlink()
    third = arena_project.run("--arena-baseline", str(baseline), "-v")
    third.stdout.fnmatch_lines(["*test_gate?drop-tiny-a? FAILED*",
                                "*tiny-a: BT rating * against * in the baseline report: change -200.0 (95% CI * .. *), significantly more "
                                "than the allowed drop of 10*"])
    assert third.ret == 1


def test_max_drop_without_a_baseline_is_a_usage_error(arena_project):
    arena_project.write(arena_project.config(questions=2, gates=[{"model": "tiny-a", "max_drop": 10}]))
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *gates: a max_drop gate needs the previous report: pass --arena-baseline PATH"])


def test_a_subset_run_never_updates_the_baseline(arena_project):
    baseline = arena_project.root / "baseline.csv"
    arena_project.write(arena_project.config(questions=2))
    result = arena_project.run("-k", "tiny-a and tiny-b", "--arena-baseline", str(baseline), "--arena-baseline-update")
    result.stdout.fnmatch_lines(["baseline: not updated from a subset run*"])
    assert not baseline.exists()


def test_min_win_rate_gate_in_baseline_mode(arena_project):
    gates = [{"model": "tiny-a", "min_win_rate": 0.5}, {"model": "tiny-c", "min_win_rate": 0.5}]
    config = arena_project.config(questions=6, gates=gates, rating_gen__baseline_model="tiny-b",
                                  rating_gen__metrics=["elo", "pairwise"],
                                  reviews_gen__reviewer__args__mode="pairwise_baseline")
    arena_project.write(config)
    result = arena_project.run("-v")
    result.stdout.fnmatch_lines(["*test_gate?winrate-tiny-a? PASSED*", "*test_gate?winrate-tiny-c? FAILED*",
                                 "*tiny-c: win rate vs baseline 0.000 (95% CI 0.000 .. 0.000, 6 battles); "
                                 "CI lower bound 0.000 < min_win_rate 0.5*"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert report.loc["tiny-a", "Baseline_Win_Rate"] == 1.0
    assert report.loc["tiny-c", "Baseline_Loss_Rate"] == 1.0
    assert pd.isna(report.loc["tiny-b", "Baseline_Win_Rate"])


def test_min_score_gate_in_single_mode(arena_project):
    arena_project.server.reply = rate_by_length
    gates = [{"model": "tiny-a", "min_score": 2}, {"model": "tiny-c", "min_score": 5}]
    config = arena_project.config(questions=4, gates=gates, reviews_gen__reviewer__args__mode="single")
    arena_project.write(config)
    result = arena_project.run("-v")
    result.stdout.fnmatch_lines(["*test_gate?score-tiny-a? PASSED*", "*test_gate?score-tiny-c? FAILED*",
                                 "*tiny-c: mean score * (95% CI *, 4 questions); CI lower bound * < min_score 5*"])


@pytest.mark.parametrize(
    ("mode", "gate", "expected"),
    [
        ("single", {"model": "tiny-a", "min_elo": 900}, "gates[0]: min_elo needs a pairwise mode"),
        ("pairwise", {"model": "tiny-a", "min_score": 5}, "gates[0]: min_score needs single mode"),
        ("pairwise", {"model": "tiny-a", "min_win_rate": 0.5}, "gates[0]: min_win_rate needs pairwise_baseline mode"),
    ],
)
def test_gates_that_cannot_apply_are_usage_errors(arena_project, mode, gate, expected):
    arena_project.write(arena_project.config(questions=1, gates=[gate], reviews_gen__reviewer__args__mode=mode))
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()


def test_plot_and_step_summary(arena_project, monkeypatch):
    pytest.importorskip("matplotlib")
    summary = arena_project.root / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    arena_project.write(arena_project.config(questions=3, gates=[{"model": "tiny-c", "min_elo": 1000}]))
    result = arena_project.run()
    result.stdout.fnmatch_lines(["plot: *elo_rating.png", "step summary: appended to $GITHUB_STEP_SUMMARY"])
    png = (arena_project.root / "reports/elo_rating.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    text = summary.read_text()
    assert "| rank | model | BT rating | 95% CI |" in text
    assert "| elo-tiny-c | **failed** | tiny-c: BT rating" in text


def test_ties_and_bootstrap_by_question(arena_project):
    arena_project.server.reply = lambda body: "They are equally good. [[C]]"
    config = arena_project.config(questions=4, models=("tiny-a", "tiny-b"), rating_gen__bootstrap_by="question")
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=4)
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert report["Ties"].tolist() == [4, 4]
    assert report["Elo_Rating"].tolist() == [1000.0, 1000.0]  # ties between equals move nothing
