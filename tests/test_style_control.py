"""Tests for pytest_arena.rating.style_control: style-controlled Bradley-Terry."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_arena import rating
from pytest_arena.rating.style_control import (bootstrap_style_bradley_terry, normalised_differences,
                                               style_bradley_terry, style_covariates)
from pytest_arena.rating.style_features import add_style_columns, style_table

C = math.log(10.0) / 400.0
DATA = Path(__file__).parent / "data" / "style_control_reference.json"
FEATURES = ("length", "headers", "list_items", "bold")


def words(text):
    """The stand-in tokenizer of bench/style_reference.py: words and single punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def reference_battles(explode=False):
    """The judgments of tests/data/style_control_reference.json as a battles table, read as arena-hard's
    load_judgments reads them: game 1 has the baseline as A, game 2 the model; a strong verdict counts 3."""
    data = json.loads(DATA.read_text())
    rows = []
    for j in data["judgments"]:
        for label, model_is_a in zip((g["score"] for g in j["games"]), (False, True)):
            if "=" in label:
                winner = "tie"
            else:
                a_won = label.startswith("A>") or label.startswith("B<")
                winner = "model_a" if a_won == model_is_a else "model_b"
            weight = 3 if (">>" in label or "<<" in label) else 1
            row = {"model_a": j["model"], "model_b": data["baseline"], "winner": winner, "question_id": j["uid"]}
            rows += [dict(row, weight=1.0)] * weight if explode else [dict(row, weight=float(weight))]
    answers = {(m, u): text for m, by_uid in data["answers"].items() for u, text in by_uid.items()}
    return add_style_columns(pd.DataFrame(rows), style_table(answers, tokenizer=words)), data["baseline"]


# Printed by `python bench/style_reference.py` (arena-hard-auto v2's style-control fit, torch LBFGS, no
# prior): model logits relative to the baseline, and the feature coefficients in logits per SD.
REFERENCE = {
    "length": ({"base-model": 0.0, "markdown-model": 0.423373, "padded-model": 0.225161,
                "plain-model": 0.645761, "strong-model": 1.830731},
               {"length": 1.186769}),
    "style": ({"base-model": 0.0, "markdown-model": -0.042244, "padded-model": 0.114287,
               "plain-model": 1.020768, "strong-model": 2.002087},
              {"length": 1.077469, "headers": 0.334915, "list_items": 0.361130, "bold": 0.040065}),
}


@pytest.mark.parametrize("explode", [False, True], ids=["weight-3", "three-rows"])
@pytest.mark.parametrize("control", ["length", "style"])
def test_matches_arena_hard_style_control_fit(control, explode):
    battles, baseline = reference_battles(explode)
    fit = style_bradley_terry(battles, control=control, markdown="density", centre=True, reg=0.0, anchor=baseline)
    models, features = REFERENCE[control]
    logits = (fit.ratings - 1000.0) * C
    for model, value in models.items():
        assert logits[model] == pytest.approx(value, abs=1e-4)  # the issue asks for 1e-3
    for feature, value in features.items():
        assert fit.coefficients[feature] == pytest.approx(value, abs=1e-4)
    assert fit.coefficient_points["length"] == pytest.approx(features["length"] / C)


def simulate(n=800, seed=1, style_effect=0.0, length_only=False):
    rng = np.random.default_rng(seed)
    names = np.array(["A", "B", "C", "D"])
    true = np.array([0.0, 0.4, 0.8, -0.3])
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4
    frame = pd.DataFrame({"model_a": names[a], "model_b": names[b], "question_id": rng.integers(0, 120, n)})
    for side in "ab":
        frame[f"length_{side}"] = rng.integers(20, 600, n).astype(float)
        for f in FEATURES[1:]:
            frame[f"{f}_{side}"] = rng.integers(0, 6, n).astype(float)
    ratio = (frame.length_a - frame.length_b) / (frame.length_a + frame.length_b)
    eta = true[a] - true[b] + style_effect * ratio.to_numpy()
    u = rng.random(n)
    p = 1.0 / (1.0 + np.exp(-eta))
    frame["winner"] = np.where(u < 0.1, "tie", np.where(u < 0.1 + 0.9 * p, "model_a", "model_b"))
    return frame


def equal_answers(frame):
    out = frame.copy()
    for f in FEATURES:
        out[f"{f}_b"] = out[f"{f}_a"]
    return out


@pytest.mark.parametrize("anchor", [None, "B"])
def test_without_style_differences_it_is_todays_bradley_terry(anchor):
    battles = equal_answers(simulate())
    battles["weight"] = np.random.default_rng(5).choice([1.0, 2.0], len(battles))
    fit = style_bradley_terry(battles, control="style", anchor=anchor)
    bt = rating.bradley_terry(battles, anchor=anchor)
    assert (fit.ratings - bt).abs().max() < 1e-6
    assert list(fit.ratings.index) == list(bt.index)
    assert (fit.coefficients == 0).all() and (fit.scales == 0).all()
    for by in ("battle", "question"):
        ours = bootstrap_style_bradley_terry(battles, control="style", rounds=60, seed=11, by=by, anchor=anchor)
        theirs = rating.bootstrap_bradley_terry(battles, rounds=60, seed=11, by=by, anchor=anchor)
        assert np.nanmax(np.abs(ours.ratings.to_numpy() - theirs.to_numpy())) < 1e-6  # the same resamples


def test_control_none_is_bradley_terry_itself():
    battles = simulate(style_effect=1.5)
    fit = style_bradley_terry(battles, control="none", reg=0.0)
    pd.testing.assert_series_equal(fit.ratings, rating.bradley_terry(battles, reg=0.0))
    assert fit.coefficients.empty
    samples = bootstrap_style_bradley_terry(battles, control="none", rounds=20, seed=3, by="question")
    pd.testing.assert_frame_equal(samples.ratings, rating.bootstrap_bradley_terry(battles, rounds=20, seed=3,
                                                                                by="question"))


def test_a_model_that_wins_only_by_length_loses_its_edge():
    # Two equally good models; the candidate pads its answers by 0-150% and a length-biased judge
    # prefers the longer answer; every battle lists the candidate first (a pairwise_baseline arena).
    rng = np.random.default_rng(7)
    n = 1500
    base = rng.integers(100, 400, n).astype(float)
    padded = base * (1.0 + rng.uniform(0.0, 1.5, n))
    ratio = (padded - base) / (padded + base)
    p = 1.0 / (1.0 + np.exp(-6.0 * ratio))  # 50% at equal length
    battles = pd.DataFrame({"model_a": "padded", "model_b": "base", "question_id": np.arange(n) % 300,
                            "winner": np.where(rng.random(n) < p, "model_a", "model_b"),
                            "length_a": padded, "length_b": base})
    raw = rating.bradley_terry(battles)
    assert raw["padded"] - raw["base"] > 150
    fit = style_bradley_terry(battles, control="length")
    samples = bootstrap_style_bradley_terry(battles, control="length", rounds=200, seed=0, by="question")
    gap = samples.ratings["padded"] - samples.ratings["base"]
    lower, upper = np.percentile(gap, [2.5, 97.5])
    assert lower < 0 < upper  # no edge left
    assert abs(fit.ratings["padded"] - fit.ratings["base"]) < 60
    assert fit.coefficients["length"] > 0  # what length buys
    # centring the covariate (the references' way) puts the length advantage back in the ratings
    centred = style_bradley_terry(battles, control="length", centre=True)
    assert centred.ratings["padded"] - centred.ratings["base"] > 150


def swap(frame, rows):
    out = frame.copy()
    for x, y in [("model_a", "model_b")] + [(f"{f}_a", f"{f}_b") for f in FEATURES]:
        out.loc[rows, [x, y]] = frame.loc[rows, [y, x]].to_numpy()
    out.loc[rows, "winner"] = frame.loc[rows, "winner"].map({"model_a": "model_b", "model_b": "model_a", "tie": "tie"})
    return out


@pytest.mark.parametrize("markdown", ["density", "count"])
def test_listing_a_battle_the_other_way_round_changes_nothing(markdown):
    battles = simulate(style_effect=2.0)
    some = np.random.default_rng(2).random(len(battles)) < 0.4
    fit = style_bradley_terry(battles, markdown=markdown)
    swapped = style_bradley_terry(swap(battles, some), markdown=markdown)
    assert (fit.ratings - swapped.ratings).abs().max() < 1e-6
    assert (fit.coefficients - swapped.coefficients).abs().max() < 1e-8
    # with centring only swapping every battle at once is harmless
    every = np.ones(len(battles), dtype=bool)
    centred = style_bradley_terry(battles, markdown=markdown, centre=True)
    assert (centred.ratings - style_bradley_terry(swap(battles, every), markdown=markdown, centre=True).ratings
            ).abs().max() < 1e-6
    assert (centred.ratings - style_bradley_terry(swap(battles, some), markdown=markdown, centre=True).ratings
            ).abs().max() > 1e-3


def test_on_data_listed_both_ways_centring_makes_no_difference():
    battles = simulate(n=400, style_effect=1.0)
    both = pd.concat([battles, swap(battles, np.ones(len(battles), dtype=bool))], ignore_index=True)
    plain, centred = style_bradley_terry(both), style_bradley_terry(both, centre=True)
    assert (plain.ratings - centred.ratings).abs().max() < 1e-8
    assert (plain.coefficients - centred.coefficients).abs().max() < 1e-10


def test_anchoring_and_scale_follow_bradley_terry():
    battles = simulate(style_effect=1.0)
    mean_anchor = style_bradley_terry(battles, reg=0.0)
    anchored = style_bradley_terry(battles, reg=0.0, anchor="D", init=1500.0)
    assert mean_anchor.ratings.mean() == pytest.approx(1000.0)
    assert anchored.ratings["D"] == pytest.approx(1500.0)
    diffs = (mean_anchor.ratings - mean_anchor.ratings["A"]) - (anchored.ratings - anchored.ratings["A"])
    assert diffs.abs().max() < 1e-6
    natural = style_bradley_terry(battles, reg=0.0, scale=1.0, base=math.e)  # ratings in logits
    assert (natural.ratings - 1000.0 - (mean_anchor.ratings - 1000.0) * C).abs().max() < 1e-6
    pd.testing.assert_series_equal(natural.coefficients, mean_anchor.coefficients, atol=1e-8)


def test_the_prior_keeps_a_perfect_record_finite():
    battles = equal_answers(simulate(n=200))
    battles.loc[battles.model_a == "C", "winner"] = "model_a"
    battles.loc[battles.model_b == "C", "winner"] = "model_b"
    battles.loc[::3, "length_a"] += 50.0
    fit = style_bradley_terry(battles, control="length")
    bt = rating.bradley_terry(battles)
    assert np.isfinite(fit.ratings).all() and fit.ratings.idxmax() == "C"
    assert abs(fit.ratings["C"] - bt["C"]) < 100


def test_covariates_follow_each_reference_convention():
    frame = pd.DataFrame({"model_a": ["x", "x", "y"], "model_b": ["y", "y", "x"], "winner": ["tie"] * 3,
                          "length_a": [30.0, 10.0, 0.0], "length_b": [10.0, 10.0, 0.0],
                          "headers_a": [3.0, 0.0, 0.0], "headers_b": [0.0, 1.0, 0.0],
                          "list_items_a": [0.0] * 3, "list_items_b": [0.0] * 3,
                          "bold_a": [1.0, 1.0, 0.0], "bold_b": [1.0, 0.0, 0.0]})
    d = normalised_differences(frame, "style", "density")
    # length (a - b) / (a + b), 0 for two empty answers; markdown densities with arena-hard's + 1
    assert d["length"].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert d["headers"].tolist() == pytest.approx([0.1 / 1.1, -0.1 / 1.1, 0.0])
    assert d["bold"].tolist() == pytest.approx([(1 / 30 - 0.1) / (1 / 30 + 0.1 + 1), 0.1 / 1.1, 0.0])
    counts = normalised_differences(frame, "style", "count")  # FastChat: raw counts, + 1 for every feature
    assert counts["length"].tolist() == pytest.approx([20 / 41, 0.0, 0.0])
    assert counts["headers"].tolist() == pytest.approx([3 / 4, -1 / 2, 0.0])
    z, scales = style_covariates(frame, "style", "count", centre=True)
    assert scales["length"] == pytest.approx(np.std(counts["length"]))  # n, as np.std
    z, scales = style_covariates(frame, "style", "density", centre=True)
    assert scales["length"] == pytest.approx(np.std(d["length"], ddof=1))  # n - 1, as torch.std
    assert scales["list_items"] == 0 and (z["list_items"] == 0).all()  # constant: left out


def test_bootstrap_is_seeded_and_extends():
    battles = simulate(style_effect=1.0)
    long = bootstrap_style_bradley_terry(battles, rounds=40, seed=9, by="question")
    short = bootstrap_style_bradley_terry(battles, rounds=20, seed=9, by="question")
    pd.testing.assert_frame_equal(long.ratings.iloc[:20], short.ratings)
    pd.testing.assert_frame_equal(long.coefficients.iloc[:20], short.coefficients)
    assert list(long.coefficients.columns) == list(FEATURES)
    by_battle = bootstrap_style_bradley_terry(battles, rounds=200, seed=9, by="battle")
    fit = style_bradley_terry(battles)
    bounds = rating.confidence_intervals(by_battle.coefficients)
    assert (bounds["ci_lower"] < fit.coefficients).all() and (fit.coefficients < bounds["ci_upper"]).all()


def test_bad_inputs_name_the_problem():
    battles = simulate(n=50)
    with pytest.raises(ValueError, match="control must be one of none, length, style"):
        style_bradley_terry(battles, control="verbose")
    with pytest.raises(ValueError, match="bold_b column"):
        style_bradley_terry(battles.drop(columns=["bold_b"]))
    with pytest.raises(ValueError, match="length_a must be a finite number"):
        style_bradley_terry(battles.assign(length_a=-1.0), control="length")
    with pytest.raises(ValueError, match="anchor model 'Z'"):
        style_bradley_terry(battles, anchor="Z")
