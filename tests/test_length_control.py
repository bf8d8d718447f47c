"""Tests for pytest_arena.rating.length_control: AlpacaEval 2's length-controlled win rate."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_arena.rating.length_control import length_controlled_win_rate, question_difficulty

DATA = Path(__file__).parent / "data"
BASELINE = "baseline-model"

# Printed by `/tmp/ae/bin/python bench/length_control_reference.py` (the real alpaca_eval 0.6.6,
# get_length_controlled_winrate): LC win rate with the GLMs length_controlled_minimal (no difficulty
# term) and length_controlled_noreg (with tests/data/length_control_difficulty.csv), and the raw win rate.
REFERENCE = {
    "verbose-model": {"minimal": 60.651, "noreg": 61.908, "raw": 68.750},
    "better-model": {"minimal": 50.000, "noreg": 56.402, "raw": 55.000},
}


def reference_battles(model):
    """The annotations of one model, as battles: output_2 (the model) against output_1 (the baseline),
    lengths in characters as alpaca_eval measures them, question_id = the annotation's position."""
    annotations = pd.DataFrame(json.loads((DATA / "length_control_annotations.json").read_text()))
    rows = annotations[annotations["generator_2"] == model].reset_index(drop=True)
    return pd.DataFrame({
        "model_a": rows["generator_2"], "model_b": rows["generator_1"],
        "winner": rows["preference"].map({2.0: "model_a", 1.0: "model_b", 1.5: "tie"}),
        "question_id": rows.index, "length_a": rows["output_2"].str.len(), "length_b": rows["output_1"].str.len(),
    })


def reference_difficulty():
    return pd.read_csv(DATA / "length_control_difficulty.csv").set_index("index")["instruction_difficulty"]


@pytest.mark.parametrize("model", list(REFERENCE))
@pytest.mark.parametrize("glm", ["minimal", "noreg"])
def test_alpaca_eval_estimator_matches_the_package(model, glm):
    difficulty = reference_difficulty() if glm == "noreg" else None
    result = length_controlled_win_rate(reference_battles(model), model, BASELINE, difficulty=difficulty,
                                        rounds=0, fit="alpaca_eval")
    assert result.win_rate == pytest.approx(REFERENCE[model][glm], abs=0.5)
    assert result.raw_win_rate == pytest.approx(REFERENCE[model]["raw"], abs=1e-9)
    assert result.difficulty_used == (glm == "noreg")


def test_maximum_likelihood_matches_where_the_package_barely_penalises():
    # verbose-model: alpaca_eval's cross-validation picked C = 21.5 (minimal) and 21.5 (noreg): a weak penalty
    for glm, difficulty in (("minimal", None), ("noreg", reference_difficulty())):
        result = length_controlled_win_rate(reference_battles("verbose-model"), "verbose-model", BASELINE,
                                            difficulty=difficulty, rounds=0)
        assert result.win_rate == pytest.approx(REFERENCE["verbose-model"][glm], abs=0.5)
    # better-model without the difficulty term: the package's search zeroes every coefficient (LC exactly
    # 50); the maximum likelihood keeps what the data say, with an interval wide enough to hold 50
    result = length_controlled_win_rate(reference_battles("better-model"), "better-model", BASELINE,
                                        difficulty=None, rounds=300, seed=4)
    assert result.win_rate > 52.0
    assert result.ci_lower < 50.0 < result.ci_upper
    shrunk = length_controlled_win_rate(reference_battles("better-model"), "better-model", BASELINE,
                                        difficulty=None, rounds=0, fit="alpaca_eval")
    assert shrunk.l1_c == pytest.approx(1e-4) and (shrunk.coefficients == 0).all()


def padded_battles(n=600, seed=3, quality=0.0, baseline_first=False):
    """An equally good model that pads its answers by 0-150%, judged by a judge that likes length."""
    rng = np.random.default_rng(seed)
    base = rng.integers(100, 500, n).astype(float)
    padded = base * (1.0 + rng.uniform(0.0, 1.5, n))
    delta = base - padded
    p = 1.0 / (1.0 + np.exp(-(quality - 2.0 * np.tanh(delta / delta.std(ddof=1)))))
    won = rng.random(n) < p
    frame = pd.DataFrame({"model_a": "padded", "model_b": "base", "winner": np.where(won, "model_a", "model_b"),
                          "question_id": np.arange(n), "length_a": padded, "length_b": base})
    if baseline_first:
        frame = frame.assign(model_a="base", model_b="padded", length_a=base, length_b=padded,
                             winner=np.where(won, "model_b", "model_a"))
    return frame


def test_a_model_that_wins_only_by_length_gets_about_half():
    result = length_controlled_win_rate(padded_battles(), "padded", "base", difficulty=None, rounds=300, seed=1)
    assert result.raw_win_rate > 70.0
    assert result.ci_lower < 50.0 < result.ci_upper
    assert abs(result.win_rate - 50.0) < 6.0
    assert result.coefficients["length"] < 0  # the longer (padded) answer: negative baseline-minus-model delta
    assert result.raw_ci_lower < result.raw_win_rate < result.raw_ci_upper
    better = length_controlled_win_rate(padded_battles(quality=1.0), "padded", "base", difficulty=None, rounds=0)
    assert better.win_rate > 65.0


def test_the_order_of_a_battle_does_not_matter():
    ours = length_controlled_win_rate(padded_battles(), "padded", "base", difficulty=None, rounds=50, seed=2)
    flipped = length_controlled_win_rate(padded_battles(baseline_first=True), "padded", "base", difficulty=None,
                                         rounds=50, seed=2)
    assert flipped.win_rate == pytest.approx(ours.win_rate, abs=1e-9)
    pd.testing.assert_frame_equal(flipped.samples, ours.samples)


def test_equal_lengths_give_the_raw_win_rate():
    battles = padded_battles().assign(length_a=lambda f: f["length_b"])
    result = length_controlled_win_rate(battles, "padded", "base", difficulty=None, rounds=0)
    assert result.length_sd == 0.0 and result.coefficients["length"] == 0.0
    assert result.win_rate == pytest.approx(result.raw_win_rate, abs=0.01)


def many_models(models=6, questions=150, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.5, questions)
    rows = []
    for k in range(models):
        quality = 0.3 * k - 0.6
        base = rng.integers(100, 500, questions).astype(float)
        own = base * np.exp(rng.normal(0.0, 0.4, questions))
        for q in range(questions):
            p = 1.0 / (1.0 + np.exp(-(quality + difficulty[q])))
            rows.append({"model_a": f"m{k}", "model_b": "base", "question_id": f"q{q}",
                         "winner": "model_a" if rng.random() < p else "model_b",
                         "length_a": own[q], "length_b": base[q]})
    return pd.DataFrame(rows), pd.Series(difficulty, index=[f"q{q}" for q in range(questions)])


def test_difficulty_is_estimated_from_many_models_and_dropped_otherwise():
    battles, truth = many_models()
    estimate = question_difficulty(battles, "base")
    assert np.corrcoef(estimate.reindex(truth.index), truth)[0, 1] > 0.8
    assert estimate.mean() == pytest.approx(0.0, abs=1e-9)
    used = length_controlled_win_rate(battles, "m3", "base", rounds=0)
    assert used.difficulty_used and "estimated" in used.note
    few = battles[battles["model_a"].isin(["m0", "m3"])]
    assert question_difficulty(few, "base") is None
    dropped = length_controlled_win_rate(few, "m3", "base", rounds=0)
    assert not dropped.difficulty_used and "difficulty term dropped" in dropped.note
    assert dropped.coefficients["difficulty"] == 0.0
    with pytest.raises(ValueError, match="no finite value for question 'q7'"):
        length_controlled_win_rate(few, "m3", "base", difficulty=truth.drop("q7"), rounds=0)


def test_bootstrap_is_seeded_and_resamples_questions_or_battles():
    battles = padded_battles(n=200)
    one = length_controlled_win_rate(battles, "padded", "base", difficulty=None, rounds=40, seed=5)
    two = length_controlled_win_rate(battles, "padded", "base", difficulty=None, rounds=40, seed=5)
    pd.testing.assert_frame_equal(one.samples, two.samples)
    # one battle per question: drawing questions is drawing battles, with the same draws
    other = length_controlled_win_rate(battles, "padded", "base", difficulty=None, rounds=40, seed=5, by="battle")
    pd.testing.assert_frame_equal(other.samples, one.samples)
    grouped = battles.assign(question_id=battles["question_id"] % 50)  # four battles per question now
    by_question = length_controlled_win_rate(grouped, "padded", "base", difficulty=None, rounds=40, seed=5)
    by_battle = length_controlled_win_rate(grouped, "padded", "base", difficulty=None, rounds=40, seed=5, by="battle")
    assert by_question.win_rate == pytest.approx(one.win_rate)  # no difficulty: questions do not enter the fit
    assert not np.allclose(by_battle.samples["lc"], by_question.samples["lc"])
    assert one.ci_lower <= one.win_rate <= one.ci_upper


def test_bad_inputs_name_the_problem():
    battles = padded_battles(n=20)
    with pytest.raises(ValueError, match="no battles between 'other' and 'base'"):
        length_controlled_win_rate(battles, "other", "base")
    with pytest.raises(ValueError, match="length_b column"):
        length_controlled_win_rate(battles.drop(columns=["length_b"]), "padded", "base")
    with pytest.raises(ValueError, match="fit must be one of mle, alpaca_eval"):
        length_controlled_win_rate(battles, "padded", "base", fit="liblinear")
    with pytest.raises(ValueError, match="difficulty must be"):
        length_controlled_win_rate(battles, "padded", "base", difficulty="yes")
