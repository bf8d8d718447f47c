"""Why a gate failed, end to end: the baseline's per-battle verdicts, the flips a failing max_drop gate
lists (worst first, with the judge's reason), the battles a failing beats gate lists, and flips.csv."""

from __future__ import annotations

import csv
import json

import pandas as pd  # noqa: F401 - two in-process pytester arenas in one module (COMMON.md)
import pytest
from support.arena_project import OWN_MARKERS, fixed_answers_config
from support.judge_server import prompt_text

from pytest_arena.flips import SHOWN

REVIEWS = "reviews/review_gpt4.jsonl"


def _blocks(body) -> tuple[str, str]:
    text = prompt_text(body)

    def between(start, end):
        begin = text.index(start) + len(start)
        return text[begin:text.index(end, begin)].strip()

    return (between(OWN_MARKERS["a_start"], OWN_MARKERS["a_end"]),
            between(OWN_MARKERS["b_start"], OWN_MARKERS["b_end"]))


def scripted(outcomes: dict[int, str], default: str = "win"):
    """A judge that gives the model with the longer answer ``outcomes[question]`` (win, tie or loss),
    its reason's first line naming the question and the outcome."""

    def reply(body) -> str:
        answer_a, answer_b = _blocks(body)
        question = int(answer_a.split()[0][1:])  # fixed answers read "w<question> w<question> ..."
        outcome = outcomes.get(question, default)
        long_side, short_side = ("A", "B") if len(answer_a) > len(answer_b) else ("B", "A")
        verdict = {"win": long_side, "loss": short_side, "tie": "C"}[outcome]
        return f"Question {question}: the long answer gets a {outcome}.\nSecond line, not shown.\n[[{verdict}]]"

    return reply


def arena(project, questions: int, gates: list[dict]):
    # (a generous timeout: a judge call cut off on a loaded machine would change the verdicts compared)
    config = fixed_answers_config(project, questions, {"long": 6, "short": 2}, timeout=60)
    config["gates"] = gates
    return project.write(config)


def rejudge(project, outcomes: dict[int, str]) -> None:
    """The next run asks the judge again (a new review file), and the judge now answers ``outcomes``."""
    (project.root / REVIEWS).unlink()
    project.server.reply = scripted(outcomes)


def test_baseline_update_stores_each_battles_verdict_beside_the_csv(arena_project):
    arena_project.server.reply = scripted({})
    arena(arena_project, 3, [{"model": "long", "min_elo": 0}])
    baseline = arena_project.root / "base" / "baseline.csv"
    result = arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update")
    assert result.ret == 0
    verdicts = baseline.with_name("baseline.verdicts.jsonl")
    result.stdout.fnmatch_lines([f"baseline verdicts: {verdicts}"])
    records = [json.loads(line) for line in verdicts.read_text().splitlines()]
    reviews = {r["cache_key"]: r for r in arena_project.read_jsonl(REVIEWS)}
    assert [r["item"] for r in records] == ["q001-long--vs--short", "q002-long--vs--short", "q003-long--vs--short"]
    assert [(r["question_id"], r["model_a"], r["model_b"], r["win"]) for r in records] == [
        (q, "long", "short", "model_a") for q in (1, 2, 3)]
    # Each verdict's review cache key finds its reply in the review file.
    assert all(reviews[r["cache_keys"][0]]["question_id"] == r["question_id"] for r in records)
    # Small: no question, answer or reply text in it.
    assert "Tell me" not in verdicts.read_text() and "Question 1" not in verdicts.read_text()

    # Only whole runs write it, as the baseline CSV: a -k run with other verdicts leaves both as they were.
    stored = verdicts.read_bytes(), baseline.read_bytes()
    rejudge(arena_project, {1: "loss"})
    subset = arena_project.run("-k", "q001 or q002", "--arena-baseline", str(baseline), "--arena-baseline-update")
    assert subset.ret == 0 and arena_project.server.request_count > 0
    assert (verdicts.read_bytes(), baseline.read_bytes()) == stored


def test_a_failing_max_drop_gate_lists_the_flipped_questions_worst_first(arena_project):
    arena_project.server.reply = scripted({})
    questions = 14
    arena(arena_project, questions, [{"model": "long", "max_drop": 0}])
    baseline = arena_project.root / "baseline.csv"
    assert arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update").ret == 1  # no baseline yet

    # Now: q1 a tie, q2..q12 losses, q13 and q14 still wins. The losses come first, then the tie.
    outcomes = {1: "tie", **{q: "loss" for q in range(2, 13)}}
    rejudge(arena_project, outcomes)
    result = arena_project.run("--arena-baseline", str(baseline), "-v")
    assert result.ret == 1
    flips_path = arena_project.root / "reports" / "elo_rating.flips.csv"
    result.stdout.fnmatch_lines([
        "*test_gate?drop-long? FAILED*",
        "*long: BT rating * significantly more than the allowed drop of 0",
        f"questions whose verdicts changed against the baseline run, worst first (the first {SHOWN} of 12; all in {flips_path}):",
        "  q002 vs short: win -> loss: Question 2: the long answer gets a loss.",
        "  q003 vs short: win -> loss: Question 3: the long answer gets a loss.",
    ])
    shown = [line.strip() for line in result.stdout.lines if line.startswith("  q0") and " vs short: " in line]
    assert [line.split()[0] for line in shown[:SHOWN]] == [f"q{q:03d}" for q in range(2, 12)]
    assert "Second line" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"flips: {flips_path}"])

    rows = list(csv.DictReader(flips_path.open()))
    assert [(r["gate"], r["question"], r["before"], r["now"]) for r in rows] == (
        [("drop-long", f"q{q:03d}", "win", "loss") for q in range(2, 13)] + [("drop-long", "q001", "win", "tie")])
    assert rows[-1]["reason"] == "Question 1: the long answer gets a tie."
    assert rows[0]["item"] == "q002-long--vs--short" and rows[0]["opponent"] == "short" and rows[0]["model"] == "long"
    reviews = {r["cache_key"]: r for r in arena_project.read_jsonl(REVIEWS)}
    assert reviews[rows[0]["cache_key"]]["question_id"] == 2

    # Deterministic: the same run again (from the review cache now), its items in random order, writes
    # the same file, byte for byte.
    first = flips_path.read_bytes()
    calls = arena_project.server.request_count
    again = arena_project.run("--arena-baseline", str(baseline), "-p", "randomly")
    assert again.ret == 1 and flips_path.read_bytes() == first
    assert arena_project.server.request_count == calls  # no judge call is made to explain


def test_a_passing_run_leaves_no_stale_flips_file(arena_project):
    arena_project.server.reply = scripted({})
    arena(arena_project, 3, [{"model": "short", "beats": "long"}])
    flips_path = arena_project.root / "reports" / "elo_rating.flips.csv"
    assert arena_project.run().ret == 1 and flips_path.is_file()
    arena_project.write(fixed_answers_config(arena_project, 3, {"long": 6, "short": 2}))  # no gate now
    assert arena_project.run().ret == 0
    assert not flips_path.exists()


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_a_failing_beats_gate_lists_the_battles_lost(arena_project, xdist):
    """Under xdist the controller holds verdicts without replies: the reasons come from the review file."""
    arena_project.server.reply = scripted({2: "loss"})  # short wins q2 only
    arena(arena_project, 12, [{"model": "short", "beats": "long"}])
    result = arena_project.run("-v", *xdist)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*short - long: BT rating difference * significantly below -margin +0",
        f"battles short lost against long (the first {SHOWN} of 11; all in *elo_rating.flips.csv):",
        "  q001 vs long: loss: Question 1: the long answer gets a win.",
        "  q003 vs long: loss: Question 3: the long answer gets a win.",
        "  q004 vs long: loss: *",
    ])
    assert "q002 vs long" not in result.stdout.str() and "q012 vs long" not in result.stdout.str()
    rows = list(csv.DictReader((arena_project.root / "reports" / "elo_rating.flips.csv").open()))
    assert [(r["gate"], r["question"], r["before"], r["now"]) for r in rows] == [
        ("beats-short--vs--long", f"q{q:03d}", "", "loss") for q in [1, *range(3, 13)]]
    reviews = {r["cache_key"]: r for r in arena_project.read_jsonl(REVIEWS)}
    assert [reviews[r["cache_key"]]["question_id"] for r in rows] == [1, *range(3, 13)]


def test_an_old_baseline_without_verdicts_says_so_in_one_line(arena_project):
    arena_project.server.reply = scripted({})
    arena(arena_project, 8, [{"model": "long", "max_drop": 0}])
    baseline = arena_project.root / "baseline.csv"
    arena_project.run("--arena-baseline", str(baseline), "--arena-baseline-update")
    baseline.with_name("baseline.verdicts.jsonl").unlink()  # as a baseline written before verdicts were kept
    rejudge(arena_project, {q: "loss" for q in range(1, 9)})
    result = arena_project.run("--arena-baseline", str(baseline), "-v")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*long: BT rating * significantly more than the allowed drop of 0",
        ("(no per-battle verdicts beside the baseline report: baseline.verdicts.jsonl is missing; the next "
         "--arena-baseline-update stores them)"),
    ])
    assert not (arena_project.root / "reports" / "elo_rating.flips.csv").exists()


def test_the_flips_file_and_the_baseline_verdicts_never_land_on_an_input(arena_project):
    config = fixed_answers_config(arena_project, 2, {"long": 6, "short": 2})
    (arena_project.root / "reports").mkdir()
    (arena_project.root / "reports" / "elo_rating.flips.csv").write_text('{"question_id": 1, "reference": "r"}\n')
    config["reviews_gen"]["reference_file"] = "reports/elo_rating.flips.csv"
    arena_project.write(config)
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *rating_gen.report_file: *elo_rating.flips.csv is also reviews_gen.reference_file*"])

    # The baseline's verdicts file is written with the baseline: it must not be an input either.
    (arena_project.root / "base.verdicts.jsonl").write_text('{"question_id": 1, "reference": "r"}\n')
    config["reviews_gen"]["reference_file"] = "base.verdicts.jsonl"
    arena_project.write(config)
    result = arena_project.run("--arena-baseline", str(arena_project.root / "base.csv"), "--arena-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *base.verdicts.jsonl is also reviews_gen.reference_file*"])
    assert (arena_project.root / "base.verdicts.jsonl").read_text() == '{"question_id": 1, "reference": "r"}\n'


def test_flips_are_per_question_and_turn_and_ignore_the_side_each_model_was_shown_on():
    """The baseline judged ``long`` vs ``short``; this run ``short`` vs ``long`` (the models' order changed),
    per turn. Each turn's verdict is compared with the same turn's, for the gate's model."""
    from pytest_arena.flips import changed_verdicts, verdict_records
    from pytest_arena.judging.judgment import Judgment
    from pytest_arena.matches import Battle
    from pytest_arena.questions import Question

    question = Question(question_id=7, turns=("first?", "second?"))
    before = Battle(question, "long", "short", "q007-long--vs--short")
    now = Battle(question, "short", "long", "q007-short--vs--long")

    def judged(match, winners):
        parts = [Judgment(match, (), winner=w, games=((w, 1.0),), turn=t) for t, w in enumerate(winners, 1)]
        return Judgment.of_turns(match, parts)

    baseline = verdict_records([judged(before, ["model_a", "model_a"])])  # long won both turns
    assert [(r["item"], r["turn"], r["win"]) for r in baseline] == [("q007-long--vs--short", 1, "model_a"),
                                                                    ("q007-long--vs--short", 2, "model_a")]
    flips = changed_verdicts([judged(now, ["model_b", "tie"])], baseline, "long")  # turn 1 still long's
    assert [(f.item, f.question, f.turn, f.before, f.now, f.opponent) for f in flips] == [
        ("q007-short--vs--long", "q007", 2, "win", "tie", "short")]
    assert flips[0].line() == "q007 turn 2 vs short: win -> tie: (no reason given)"
