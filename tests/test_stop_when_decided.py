"""Paired and sequential gates end to end (issue 25): answers from files (no model loads), the loopback
judge counting its calls; stopping when every gate is decided; the paired max_drop and its fallback."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support.arena_project import OWN_MARKERS, body, fixed_answers_config
from support.judge_server import prefer_containing, prompt_text

QUESTIONS = 40  # 8 rounds of 5; the sequential test starts at 20 questions


def _broken_arena(project, gates, **overrides):
    # base answers 10 words, sft 1 word: the judge (prefer_longer) makes sft lose every battle.
    config = fixed_answers_config(project, QUESTIONS, {"base": 10, "sft": 1})
    config["gates"] = gates
    config["rating_gen"]["style_control"] = "none"  # (the sequential and paired tests rate raw Bradley-Terry)
    config["rating_gen"].update(overrides)
    return project.write(config)


def test_a_broken_candidate_is_failed_after_the_first_rounds(arena_project, monkeypatch):
    _broken_arena(arena_project, [{"model": "sft", "beats": "base", "margin": 0}])
    summary = arena_project.root / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    baseline = arena_project.root / "baseline.csv"
    result = arena_project.run("--arena-stop-when-decided", "-rs", "--junitxml=junit.xml",
                               "--arena-baseline", str(baseline), "--arena-baseline-update")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS  # tested from 20 questions on, decided long before the last round
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == calls and outcomes["skipped"] == QUESTIONS - calls and outcomes["failed"] == 1
    result.stdout.fnmatch_lines([
        "*sft - base: BT rating difference, sequential test (%d of %d battles): decided after * of 40 questions: "
        "* significantly below +0*" % (calls, QUESTIONS),
        "stopped when decided: decided after %d of %d battles (* of 8 rounds)*" % (calls, QUESTIONS),
        "baseline: not updated from a run that stopped when decided*",
        "*SKIPPED*not judged: every gate was decided after %d of %d battles (--arena-stop-when-decided)*" % (calls, QUESTIONS),
    ])
    assert not baseline.exists() and not baseline.with_suffix(".verdicts.jsonl").exists()
    assert (arena_project.root / "reports/elo_rating.csv").is_file()  # a whole report of what it judged
    notes = pd.read_csv(arena_project.root / "reports/elo_rating.notes.csv").set_index("Note")["Value"]
    assert notes["stopped when decided"].startswith(f"decided after {calls} of {QUESTIONS} battles (")
    assert notes["not judged"] == f"{QUESTIONS - calls} battles (--arena-stop-when-decided)"
    xml = (arena_project.root / "junit.xml").read_text()
    assert f'decided_after" value="{calls} of {QUESTIONS} battles"' in xml
    assert f"stopped when decided: decided after {calls} of {QUESTIONS} battles" in summary.read_text()
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")

    # The same run again: every judged verdict is cached, the same rounds are judged and no call is made.
    arena_project.server.reset_counters()
    again = arena_project.run("--arena-stop-when-decided")
    assert arena_project.server.request_count == 0
    assert again.parseoutcomes()["skipped"] == QUESTIONS - calls


def test_without_the_option_every_battle_is_judged(arena_project):
    _broken_arena(arena_project, [{"model": "sft", "beats": "base", "margin": 0}])
    stale = arena_project.root / "reports/elo_rating.notes.csv"  # left by an earlier run that stopped early
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("Note,Value\nstopped when decided,decided after 1 of 40 battles\n")
    result = arena_project.run()
    assert arena_project.server.request_count == QUESTIONS
    assert not stale.exists()  # a whole run's report carries no note of an earlier early stop
    result.assert_outcomes(passed=QUESTIONS, failed=1)


def test_a_gate_not_tested_round_by_round_keeps_every_battle_judged(arena_project, tmp_path):
    ini = arena_project.root / "pytest.ini"
    ini.write_text("[pytest]\narena_stop_when_decided = true\n")
    # A min_win_rate gate under length control judges AlpacaEval's GLM, which has no round-by-round look.
    config = fixed_answers_config(arena_project, QUESTIONS, {"base": 1, "sft": 10}, mode="pairwise_baseline")
    config["gates"] = [{"model": "sft", "min_win_rate": 0.5, "control": "length"}]
    config["rating_gen"].update(style_control="none", baseline_model="base", metrics=["elo", "pairwise"])
    arena_project.write(config)
    result = arena_project.run("-s")
    assert arena_project.server.request_count == QUESTIONS
    result.stdout.fnmatch_lines(["*stop when decided: gate winrate-sft* judges the length-controlled win rate, which "
                                 "is not tested round by round (give the gate control: none to stop early); every "
                                 "battle is judged*"])


def _quality_arena(project, questions):
    """base's answers hold the judge's marker, sft's do not; both vary in length (from 2 to 12 words,
    independently), so length control can tell length from quality and the default control applies."""
    config = fixed_answers_config(project, questions, {"base": 1, "sft": 1})
    for name, offset in (("base", 0), ("sft", 5)):
        path = project.root / "answers" / f"answer_{name}.jsonl"
        with open(path, "w") as handle:
            for i in range(1, questions + 1):
                words = 2 + (i * 7 + offset) % 11
                marker = ["GOOD"] if name == "base" else []
                handle.write(json.dumps({"question_id": i, "model_id": name,
                                         "answer": " ".join(marker + [f"w{i}"] * words)}) + "\n")
    config["gates"] = [{"model": "sft", "beats": "base", "margin": 0}]
    config["rating_gen"]["style_control"] = "length"  # the package's default (the test projects pin none)
    return project.write(config)


def test_a_length_controlled_gate_stops_when_decided(arena_project):
    _quality_arena(arena_project, QUESTIONS)
    arena_project.server.reply = prefer_containing("GOOD", **OWN_MARKERS)
    result = arena_project.run("--arena-stop-when-decided", "-rs", "--junitxml=junit.xml")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS  # the controlled looks decided it before the last round
    assert result.parseoutcomes()["skipped"] == QUESTIONS - calls
    result.stdout.fnmatch_lines([
        "*sft - base: length-controlled BT rating difference, sequential test (%d of %d battles): decided after * "
        "significantly below +0*" % (calls, QUESTIONS),
        "stopped when decided: decided after %d of %d battles*" % (calls, QUESTIONS)])
    xml = (arena_project.root / "junit.xml").read_text()
    assert 'gate_control" value="length"' in xml


def test_stop_when_decided_under_xdist(arena_project):
    pytest.importorskip("xdist")
    _broken_arena(arena_project, [{"model": "sft", "beats": "base", "margin": 0}], stop_when_decided=True)
    result = arena_project.run("-n", "2", "-rs")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS  # each call paid once across the workers (the review file's claims)
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == QUESTIONS - calls and outcomes["failed"] == 1
    result.stdout.fnmatch_lines(["*sequential test (%d of %d battles)*significantly below +0*" % (calls, QUESTIONS),
                                 "stopped when decided: decided after %d of %d battles*" % (calls, QUESTIONS)])


def test_paired_max_drop_and_its_unpaired_fallback(arena_project):
    config = fixed_answers_config(arena_project, 6, {"base": 10, "sft": 5, "ref": 3})
    config["gates"] = [{"model": "sft", "max_drop": 10}]
    config["rating_gen"]["style_control"] = "none"
    arena_project.write(config)
    baseline = arena_project.root / "baseline.csv"
    arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update")
    verdicts = baseline.with_suffix(".verdicts.jsonl")
    records = [json.loads(line) for line in verdicts.read_text().splitlines()]
    assert all(r["games"] == [[r["win"], 1.0]] for r in records)  # what pairing resamples, stored per battle

    paired = arena_project.run("--arena-baseline", str(baseline), "-v")
    paired.stdout.fnmatch_lines(["*test_gate?drop-sft? PASSED*"])
    assert paired.ret == 0
    # The report CSV's point no longer decides: the paired change is recomputed from both runs' verdicts.
    stored = pd.read_csv(baseline).set_index("Model")
    stored.loc["sft", ["BT_Rating", "BT_CI_Lower", "BT_CI_Upper"]] += 200
    stored.reset_index().to_csv(baseline, index=False)
    again = arena_project.run("--arena-baseline", str(baseline), "-v", "--junitxml=junit.xml")
    again.stdout.fnmatch_lines(["*test_gate?drop-sft? PASSED*"])
    xml = (arena_project.root / "junit.xml").read_text()
    assert "change +0.0 (paired 95% CI +0.0 .. +0.0, 6 of 6 questions paired), not significantly more" in xml

    # An older baseline without its verdicts file: today's unpaired test, said on one line.
    verdicts.unlink()
    old = arena_project.run("--arena-baseline", str(baseline), "-v")
    old.stdout.fnmatch_lines(["*test_gate?drop-sft? FAILED*", "*change -200.0 (95% CI * .. *)*",
                              "(no per-battle verdicts beside the baseline report: baseline.verdicts.jsonl is missing*"])
    assert body(old.stdout.str()).count("baseline.verdicts.jsonl is missing") == 1
    stored.loc["sft", ["BT_Rating", "BT_CI_Lower", "BT_CI_Upper"]] -= 200
    stored.reset_index().to_csv(baseline, index=False)
    passing = arena_project.run("--arena-baseline", str(baseline), "--junitxml=junit.xml")
    assert passing.ret == 0
    xml = (arena_project.root / "junit.xml").read_text()
    assert xml.count("(unpaired test: no per-battle verdicts beside the baseline report (baseline.verdicts.jsonl") == 1


def test_arena_power_prints_what_the_gates_detect_and_judges_nothing(arena_project):
    questions = 12
    config = fixed_answers_config(arena_project, questions, {"base": 6, "sft": 6, "ref": 5})
    sft = arena_project.root / "answers" / "answer_sft.jsonl"  # sft's answers vary: it wins some, loses some
    sft.write_text("".join(json.dumps({"question_id": i, "model_id": "sft", "answer": " ".join(["w"] * (3 if i % 3 else 9))})
                           + "\n" for i in range(1, questions + 1)))
    config["gates"] = [{"model": "sft", "max_drop": 15}, {"model": "sft", "beats": "base"},
                       {"model": "sft", "min_elo": 900}]
    config["rating_gen"]["style_control"] = "none"
    arena_project.write(config)
    baseline = arena_project.root / "baseline.csv"
    arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update")
    arena_project.server.reset_counters()

    result = arena_project.run("--arena-baseline", str(baseline), "--arena-power=100")
    assert result.ret == 0 and arena_project.server.request_count == 0
    result.stdout.fnmatch_lines([
        "power of the gates, from *baseline.verdicts.jsonl (12 questions judged there), for this config's 12 "
        "questions; 80% power, one-sided 2.5%*",
        "  drop-sft: sft max_drop 15, carried over: at 12 questions a drop of * points is caught 80% of the time "
        "(standard error *); a drop of 100 needs * questions",
        "  drop-sft: sft max_drop 15, not carried over: *",
        "  beats-sft--vs--base: sft beats base (margin 0), same run: at 12 questions *; a drop of 100 needs * questions",
        "  elo-sft: not a regression gate*",
    ])
    assert "passed" not in result.stdout.str()  # nothing collected, nothing judged
    # The figures are the power module's own (rating.power): the line shown is DropPower.line() as computed here.
    from pytest_arena.flips import read_verdicts
    from pytest_arena.rating import battles_from_verdicts, max_drop_power

    rows = max_drop_power(battles_from_verdicts(read_verdicts(baseline.with_suffix(".verdicts.jsonl"))), "sft", 15,
                          100, questions=questions)
    assert f"  drop-sft: {rows[0].line()}" in result.stdout.lines


def test_a_max_drop_gate_stops_against_the_baseline_runs_verdicts(arena_project):
    baseline = arena_project.root / "baseline.csv"
    _broken_arena(arena_project, [{"model": "sft", "max_drop": 15}])
    sft = arena_project.root / "answers" / "answer_sft.jsonl"
    # The baseline run: sft's answers 20 words longer, so it wins every battle against base.
    sft.write_text("".join(line.replace('"answer": "', '"answer": "' + "x " * 20) + "\n" for line in sft.read_text().splitlines()))
    first = arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update", "--arena-stop-when-decided")
    first.stdout.fnmatch_lines(["*stop when decided: gate drop-sft has no baseline verdicts*; every battle is judged*",
                                "baseline: updated *baseline.csv"])
    assert arena_project.server.request_count == QUESTIONS and baseline.is_file()
    # Now a broken sft (one word): it loses every battle, a drop far beyond 15, decided at the first look.
    sft.write_text("".join(json.dumps({"question_id": i, "model_id": "sft", "answer": "w"}) + "\n"
                           for i in range(1, QUESTIONS + 1)))
    arena_project.server.reset_counters()
    before = baseline.read_bytes()
    result = arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update", "--arena-stop-when-decided")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS
    result.stdout.fnmatch_lines([
        "*sft: BT rating change against the baseline run, sequential test (%d of %d battles): decided after * of 40 "
        "questions: * significantly below -15*" % (calls, QUESTIONS),
        "baseline: not updated from a run that stopped when decided*"])
    assert baseline.read_bytes() == before



def rate_by_length(body):
    text = prompt_text(body)
    answer = text[text.index("[Answer of the assistant]"):text.index("[End of answer]")]
    return f"Rating: [[{min(10, 1 + len(answer.split()) // 3)}]]"


def test_a_min_score_gate_is_passed_early_in_single_mode(arena_project):
    arena_project.server.reply = rate_by_length
    config = fixed_answers_config(arena_project, QUESTIONS, {"good": 30}, mode="single")
    config["gates"] = [{"model": "good", "min_score": 5}]
    config["rating_gen"].update(style_control="none", stop_when_decided=True)
    arena_project.write(config)
    result = arena_project.run("-v")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS and result.ret == 0
    assert result.parseoutcomes()["skipped"] == QUESTIONS - calls
    result.stdout.fnmatch_lines(["*test_gate?score-good? PASSED*",
                                 "stopped when decided: decided after %d of %d battles*" % (calls, QUESTIONS)])


def test_a_min_win_rate_gate_is_passed_early_against_the_baseline_model(arena_project):
    config = fixed_answers_config(arena_project, QUESTIONS, {"base": 1, "sft": 10}, mode="pairwise_baseline")
    config["gates"] = [{"model": "sft", "min_win_rate": 0.5}]
    config["rating_gen"].update(style_control="none", baseline_model="base", metrics=["elo", "pairwise"])
    arena_project.write(config)
    result = arena_project.run("-v", "--arena-stop-when-decided", "--junitxml=junit.xml")
    calls = arena_project.server.request_count
    assert 20 <= calls < QUESTIONS and result.ret == 0
    xml = (arena_project.root / "junit.xml").read_text()
    assert "sft: win rate vs the baseline model, sequential test (%d of %d battles): decided after" % (calls, QUESTIONS) in xml
    assert "significantly above +0.5" in xml


def _mostly_better_arena(project, **overrides):
    # sft's answers are the longer on three questions of four: it wins those, so `beats` is clearly passed.
    _broken_arena(project, [{"model": "sft", "beats": "base", "margin": 0}], **overrides)
    words = lambda i: 1 if i % 4 == 0 else 20  # noqa: E731
    (project.root / "answers" / "answer_sft.jsonl").write_text("".join(
        json.dumps({"question_id": i, "model_id": "sft", "answer": " ".join(["v"] * words(i))}) + "\n"
        for i in range(1, QUESTIONS + 1)))


def test_the_power_cost_says_whether_a_gate_may_pass_early(arena_project):
    # Power cost 0: no early default decision, so a gate that is not failing is judged to the last battle.
    _mostly_better_arena(arena_project, stop_power_cost=0)
    result = arena_project.run("--arena-stop-when-decided")
    assert arena_project.server.request_count == QUESTIONS and result.ret == 0
    assert "stopped when decided" not in result.stdout.str()
    # The default (0.05): the same verdicts, read from the cache, pass the gate after the first looks.
    _mostly_better_arena(arena_project)
    arena_project.server.reset_counters()
    result = arena_project.run("--arena-stop-when-decided")
    assert arena_project.server.request_count == 0 and result.ret == 0
    skipped = result.parseoutcomes()["skipped"]
    assert 0 < skipped <= QUESTIONS - 20
    notes = pd.read_csv(arena_project.root / "reports/elo_rating.notes.csv").set_index("Note")["Value"]
    assert notes["power cost"] == "0.05 (the default)"
    assert notes["not judged"] == f"{skipped} battles (--arena-stop-when-decided)"
