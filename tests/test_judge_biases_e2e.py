"""Issue 24 end to end: style control in the report and the gates, the one-line disagreement, the judge's
measured biases, the self-preference warning, and a report with control off that is byte for byte the
one of before style control. Answers come from files (``support/style_arena.py``): no model loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.arena_project import FAKE_KEY, OWN_MARKERS, body
from support.judge_server import prefer_containing, prefer_longer
from support.style_arena import write_style_arena

# numpy, scipy and pandas imported here, outside the inner runs: pytester forgets the modules an inner
# run imported, and numpy's C extensions cannot be loaded twice in one process.
from pytest_arena import rating, style_ratings  # noqa: F401

DATA = Path(__file__).parent / "data"
LINE = re.compile(r"ft beats base only by length: raw \+\d+ \[\+\d+, \+\d+\], length-controlled -\d+ \[-\d+, -\d+\]")


@pytest.fixture
def arena(pytester, judge_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def run(*args, gates=None, judge_args=None, **rating_gen):
        config = write_style_arena(pytester.path, judge_server.base_url, **rating_gen)
        if gates:
            config["gates"] = gates
        config["reviews_gen"]["reviewer"]["args"].update(judge_args or {})
        (pytester.path / "cfg.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return pytester.runpytest("--arena-config", "cfg.yaml", *args)

    return run


def test_a_padded_candidate_passes_raw_and_fails_under_length_control(arena, pytester):
    gates = [{"model": "ft", "beats": "base"}]
    controlled = arena("-v", gates=gates, style_control="length")
    assert controlled.ret == 1
    out = controlled.stdout.str()
    controlled.stdout.fnmatch_lines(["*test_gate?beats-ft--vs--base? FAILED*",
                                     "*ft - base: length-controlled BT rating difference -*; significantly below -margin +0*"])
    assert len(LINE.findall(body(out))) == 2, out  # the line, in the failure and in the summary
    # AlpacaEval 2's view of the pair, and why it cannot help here (ft is longer in every battle).
    controlled.stdout.fnmatch_lines(["length-controlled win rate of ft vs base: *% (95% CI *); difficulty term "
                                     "dropped*; but ft's answer is the longer in every battle with base, so this "
                                     "win rate cannot separate length from quality*"])
    report = pd.read_csv(pytester.path / "reports" / "rating.csv")
    assert list(report.columns[:11]) == ["Model", "Elo_Rating", "CI_Lower", "CI_Upper", "BT_Rating", "BT_CI_Lower",
                                         "BT_CI_Upper", "BT_Rating_SC", "BT_SC_CI_Lower", "BT_SC_CI_Upper", "Battles"]
    rows = report.set_index("Model")
    assert rows.loc["ft", "BT_Rating"] > rows.loc["base", "BT_Rating"]  # raw: the padding wins
    assert rows.loc["ft", "BT_Rating_SC"] < rows.loc["base", "BT_Rating_SC"]  # controlled: it does not
    notes = pd.read_csv(pytester.path / "reports" / "rating.style.csv")
    assert list(notes["Covariate"]) == ["length"] and notes.loc[0, "Points"] > 0
    assert notes.loc[0, "CI_Lower"] <= notes.loc[0, "Points"] <= notes.loc[0, "CI_Upper"]
    assert notes.loc[0, "Length_Unit"] == "characters"
    controlled.stdout.fnmatch_lines(["note: length control: what one SD of each covariate buys, in BT points "
                                     "(95% CI): length ratio +*; length in characters"])

    # Raw ratings: the padded candidate passes. The reverse gate fails on raw ratings and passes under
    # control: its line says so, and its flips show how much longer each winning answer was.
    raw = arena("-v", gates=[*gates, {"model": "base", "beats": "ft"}], style_control="none")
    raw.stdout.fnmatch_lines(["*test_gate?beats-ft--vs--base? PASSED*", "*test_gate?beats-base--vs--ft? FAILED*",
                              "base - ft: BT rating difference -*; significantly below -margin +0",
                              "base loses to ft only by length: raw -* length-controlled +*",
                              "battles base lost against ft (the first 10 of 16; all in *):",
                              "  q001 vs ft: loss (length ratio 0.*): *"])
    assert raw.ret == 1
    assert len(LINE.findall(raw.stdout.str())) == 1  # printed once, in the summary (the gate passed)
    flips = pd.read_csv(pytester.path / "reports" / "rating.flips.csv")
    assert flips["length_ratio"].between(0, 1, inclusive="neither").all() and len(flips) == 16

    # A gate's own control wins over rating_gen's.
    overridden = arena("-v", gates=[{"model": "ft", "beats": "base", "control": "length"}], style_control="none")
    overridden.stdout.fnmatch_lines(["*test_gate?beats-ft--vs--base? FAILED*"])


def test_a_length_blind_judge_gives_raw_and_controlled_the_same_verdict(arena, judge_server):
    judge_server.reply = prefer_containing("clear", **OWN_MARKERS)
    for control in ("length", "none"):
        result = arena("-v", gates=[{"model": "ft", "beats": "base"}], style_control=control)
        result.stdout.fnmatch_lines(["*test_gate?beats-ft--vs--base? PASSED*"])
        assert "only by length" not in result.stdout.str()
        assert result.ret == 0


def test_style_control_off_writes_the_report_of_before_byte_for_byte(arena, pytester):
    # tests/data/style_off_report.csv: this arena run by the code before style control
    # (bench/style_off_reference.py, commit 7793621).
    stale = pytester.path / "reports" / "rating.style.csv"  # an earlier controlled run's notes
    stale.parent.mkdir()
    stale.write_text("Covariate,Points\nlength,786.5\n", encoding="utf-8")
    result = arena(style_control="none")
    assert result.ret == 0
    assert (pytester.path / "reports" / "rating.csv").read_bytes() == (DATA / "style_off_report.csv").read_bytes()
    assert not stale.exists()  # no notes of a control this report does not have


def test_judge_biases_are_measured_and_reported(arena, pytester, judge_server):
    judge_server.reply = prefer_longer(**OWN_MARKERS)
    result = arena("--junitxml=junit.xml", judge_args={"position_bias_mitigation": "swap_position"})
    # prefer_longer follows length, never the position: in each swapped pair one verdict went to the
    # first-shown answer and one to the second (50%); every decisive verdict went to the longer answer.
    result.stdout.fnmatch_lines([
        "judge gpt-4 position bias: first-shown answer won 50.0% (95% CI *% .. *%) of 96 decisive verdicts in "
        "swapped pairs (50% = no bias)",
        "judge gpt-4 length bias: longer answer won 100.0% (95% CI *% .. 100.0%) of 96 decisive verdicts "
        "(50% = length-blind)",
    ])
    xml = (pytester.path / "junit.xml").read_text()
    assert 'name="judge_length_bias" value="1.0"' in xml and 'name="judge_position_bias" value="0.5"' in xml
    assert 'name="judge_length_bias_ci"' in xml
    page = (pytester.path / "reports" / "rating.html").read_text()
    assert "length bias" in page and "position bias" in page


def test_a_judge_that_shares_a_family_with_a_candidate_is_warned_about(arena):
    result = arena(judge_args={"model": "ft-judge-2"})
    result.stdout.fnmatch_lines(["WARNING: self-preference: the judge ft-judge-2 shares the ft family with candidate "
                                 "ft; judges favour answers like their own"])
    assert "candidate base" not in result.stdout.str().split("WARNING: self-preference")[-1]


def test_generated_answers_are_measured_in_tokens(arena_project):
    # Answers this run generated carry completion_tokens: the lengths are tokens, and the notes say so.
    arena_project.write(arena_project.config(questions=2, rating_gen__style_control="length"))
    result = arena_project.run()
    result.stdout.fnmatch_lines(["note: length control: *; length in tokens"])
    notes = pd.read_csv(arena_project.root / "reports" / "elo_rating.style.csv")
    assert list(notes["Length_Unit"]) == ["tokens"]


def test_style_control_fits_the_markdown_covariates_end_to_end(arena, pytester, judge_server):
    # ref's long answers gain a header, list items and bold spans; a judge that prefers bold text.
    judge_server.reply = prefer_containing("**", **OWN_MARKERS)
    config = write_style_arena(pytester.path, judge_server.base_url)
    answers = pytester.path / "answers" / "answer_ref.jsonl"
    records = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
    for record in records:
        q = record["question_id"]  # the three markdown counts vary apart, so the fit can tell them apart
        header = "## Reply\n" if q % 4 == 0 else ""
        items = "".join(f"- item {i}\n" for i in range(q % 3 + 1)) if q % 2 == 0 else ""
        bold = "**note** " * (q % 5 > 1)
        record["answer"] = f"{header}{items}{bold}{record['answer']}"
    answers.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config["rating_gen"]["style_control"] = "style"
    config["gates"] = [{"model": "ref", "beats": "base"}]
    (pytester.path / "cfg.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = pytester.runpytest("--arena-config", "cfg.yaml", "-v", "--junitxml=junit.xml")
    assert "ref - base: style-controlled BT rating difference " in (pytester.path / "junit.xml").read_text()
    result.stdout.fnmatch_lines(["note: style control: what one SD of each covariate buys, in BT points (95% CI): "
                                 "length ratio *, headers *, list items *, bold *; length in characters"])
    notes = pd.read_csv(pytester.path / "reports" / "rating.style.csv")
    assert list(notes["Covariate"]) == ["length", "headers", "list_items", "bold"]
    assert set(notes["Control"]) == {"style"} and (notes["SD"] > 0).all()  # every covariate varied
    assert (notes["CI_Lower"] <= notes["Points"]).all() and (notes["Points"] <= notes["CI_Upper"]).all()
    report = pd.read_csv(pytester.path / "reports" / "rating.csv").set_index("Model")
    assert report["BT_Rating_SC"].notna().all()
    # The judge paid for markdown: ref's raw rating is above its style-controlled one.
    assert report.loc["ref", "BT_Rating"] > report.loc["ref", "BT_Rating_SC"]
