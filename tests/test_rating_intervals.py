"""Readable ratings (issue 16, items 7 and 8): every point of the rating CSV lies inside its own 95%
interval, and Bradley-Terry's weak prior keeps perfectly separated models finite without moving an
ordinary fit. Battles tables here are built like the session builds them (plan order: question by
question, each pair once), and the CSV is read back from disk, rounding included."""

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from support.judge_server import prompt_text

from pytest_arena import rating
from pytest_arena.config import RatingSpec
from pytest_arena.rating_table import (battle_table, format_table, markdown_summary, perfect_record_note, score_table,
                                 write_csv)

C = math.log(10.0) / 400.0
COLUMNS = ["model_a", "model_b", "winner", "weight", "question_id"]
RATED = {"Elo": ("Elo_Rating", "CI_Lower", "CI_Upper"), "BT": ("BT_Rating", "BT_CI_Lower", "BT_CI_Upper"),
         "baseline win rate": ("Baseline_Win_Rate", "Baseline_CI_Lower", "Baseline_CI_Upper")}


def plan_order_battles(outcome, models, questions, seed):
    """Every pair once per question, question by question (the session's plan order); ``outcome(q, a, b,
    rng)`` returns the winner of a against b on question q."""
    rng = np.random.default_rng(seed)
    rows = [(a, b, outcome(q, a, b, rng), 1.0, f"q{q:03d}")
            for q in range(questions) for i, a in enumerate(models) for b in models[i + 1:]]
    return pd.DataFrame(rows, columns=COLUMNS)


def late_bloomer(q, a, b, rng):
    """'late' is even with the others on the first 60 questions and wins all of the last 20: online Elo
    in plan order remembers mostly the end, the bootstrap rounds (questions in random order) do not."""
    if "late" in (a, b):
        if q >= 60:
            return "model_a" if a == "late" else "model_b"
        return rng.choice(["model_a", "model_b", "tie"], p=[0.35, 0.35, 0.3])
    return rng.choice(["model_a", "model_b", "tie"], p=[0.4, 0.3, 0.3])


def read_back(table, tmp_path):
    path = tmp_path / "rating.csv"
    write_csv(table.frame, path)
    return pd.read_csv(path).set_index("Model")


def assert_points_inside(csv):
    for name, (point, lower, upper) in RATED.items():
        if point not in csv.columns:
            continue
        rows = csv[csv[point].notna()]
        inside = (rows[lower] <= rows[point]) & (rows[point] <= rows[upper])
        assert inside.all(), (name, rows[[point, lower, upper]])


@pytest.mark.parametrize("by", ["question", "battle"])
def test_csv_points_lie_inside_their_intervals_when_elo_depends_on_the_order(tmp_path, by):
    models = ["early", "mid", "late"]
    battles = plan_order_battles(late_bloomer, models, 80, seed=3)
    spec = RatingSpec(bootstrap_rounds=300, seed=0, bootstrap_by=by)
    csv = read_back(battle_table(battles, models, spec), tmp_path)
    assert_points_inside(csv)
    # The case that matters: the online Elo of the plan order lies outside the bootstrap interval...
    samples = rating.bootstrap_elo(battles, rounds=300, seed=0, by=by)
    plan_order = rating.online_elo(battles)
    low, high = np.percentile(samples["late"], [2.5, 97.5])
    assert not low <= plan_order["late"] <= high, (plan_order["late"], low, high)
    # ...so the CSV reports the median of the same rounds (FastChat's way), not that value.
    for model in models:
        assert csv.loc[model, "Elo_Rating"] == pytest.approx(np.median(samples[model]), abs=0.006)
        assert csv.loc[model, "CI_Lower"] == pytest.approx(np.percentile(samples[model], 2.5), abs=0.006)
    # Bradley-Terry ignores the order: its point is the full-data fit, the same in any order.
    shuffled = battles.sample(frac=1.0, random_state=7)
    again = read_back(battle_table(shuffled, models, spec), tmp_path)
    assert (again["BT_Rating"] - csv["BT_Rating"]).abs().max() < 0.011


def test_points_lie_inside_intervals_with_a_baseline_and_without_bootstrap(tmp_path):
    models = ["base", "sft", "dpo"]
    strength = {"base": 0.0, "sft": 0.4, "dpo": -0.3}

    def judged(q, a, b, rng):
        p = 1 / (1 + math.exp(strength[b] - strength[a]))
        return rng.choice(["model_a", "tie", "model_b"], p=[0.8 * p, 0.2, 0.8 * (1 - p)])

    battles = plan_order_battles(judged, models, 40, seed=5)
    battles = battles[(battles["model_a"] == "base") | (battles["model_b"] == "base")].reset_index(drop=True)
    battles.loc[battles.index % 4 == 0, "weight"] = 3.0  # strong verdicts weigh more (arena-hard)
    csv = read_back(battle_table(battles, models, RatingSpec(bootstrap_rounds=200, seed=1), baseline="base"), tmp_path)
    assert csv["Baseline_Win_Rate"].notna().sum() == 2
    assert_points_inside(csv)
    # The win rate is EvalScope's (weighted wins over weighted games, a tie is no win), and so is its CI.
    for model in ("sft", "dpo"):
        mine = battles[(battles["model_a"] == model) | (battles["model_b"] == model)]
        won = (((mine["model_a"] == model) & (mine["winner"] == "model_a"))
               | ((mine["model_b"] == model) & (mine["winner"] == "model_b")))
        expected = (mine["weight"] * won).sum() / mine["weight"].sum()
        assert csv.loc[model, "Baseline_Win_Rate"] == pytest.approx(expected, abs=6e-5)
        assert (mine["winner"] == "tie").any()  # the case in which a half-win CI missed the point
    assert csv.loc["base", "BT_Rating"] == 1000.0  # anchored at the baseline
    none = read_back(battle_table(battles, models, RatingSpec(bootstrap_rounds=0, seed=1), baseline="base"), tmp_path)
    assert_points_inside(none)
    # Without rounds there is nothing to take a median of: Elo is the online Elo in plan order.
    plan_order = rating.online_elo(battles)
    assert (none["Elo_Rating"] - plan_order.reindex(none.index)).abs().max() < 0.006
    assert (none["CI_Lower"] == none["Elo_Rating"]).all()


def test_a_real_run_writes_every_point_inside_its_interval(arena_project):
    # A judge whose verdicts look arbitrary (a hash of its prompt): mixed records, order-dependent Elo.
    verdicts = ["[[A]]", "[[B]]", "[[C]]", "[[A]]"]
    arena_project.server.reply = lambda body: verdicts[hashlib.sha256(prompt_text(body).encode()).digest()[0] % 4]
    arena_project.write(arena_project.config(questions=10))
    arena_project.run().assert_outcomes(passed=30)
    csv = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert csv["Ties"].sum() > 0 and (csv["Wins"] > 0).all() and (csv["Losses"] > 0).all()
    assert_points_inside(csv)
    assert (csv["CI_Upper"] > csv["CI_Lower"]).all() and (csv["BT_CI_Upper"] > csv["BT_CI_Lower"]).all()


def test_score_table_mean_lies_inside_its_interval(tmp_path):
    rng = np.random.default_rng(2)
    # Skewed scores, and questions answered a different number of times (a ratio estimator).
    rows = [(m, f"q{q}", float(rng.choice([1, 2, 10], p=[0.6, 0.3, 0.1])))
            for m in ("a", "b") for q in range(12) for _ in range(1 + q % 3)]
    scores = pd.DataFrame(rows, columns=["model", "question_id", "score"])
    table = score_table(scores, ["a", "b"], RatingSpec(bootstrap_rounds=300, seed=0))
    csv = read_back(table, tmp_path)
    assert ((csv["CI_Lower"] <= csv["Score"]) & (csv["Score"] <= csv["CI_Upper"])).all(), csv
    expected = scores.groupby("model")["score"].mean()
    assert (csv["Score"] - expected.reindex(csv.index)).abs().max() < 0.0006


def test_rating_intervals_centre_and_widen():
    samples = pd.DataFrame({"x": np.linspace(10.0, 20.0, 101), "y": np.linspace(0.0, 1.0, 101), "z": np.nan})
    estimate = pd.Series({"x": 5.0, "y": 0.5, "z": 3.0})
    around = rating.rating_intervals(samples, estimate)
    # x's estimate lies below every round: the percentile interval is widened down to it, never narrowed.
    assert around.loc["x"].tolist() == [5.0, 5.0, pytest.approx(np.percentile(samples["x"], 97.5))]
    assert around.loc["y", "ci_lower"] == pytest.approx(0.025) and around.loc["y", "ci_upper"] == pytest.approx(0.975)
    assert around.loc["z"].tolist() == [3.0, 3.0, 3.0]  # no finite round: the point, no width
    median = rating.rating_intervals(samples, estimate, centre="median")
    assert median.loc["x", "rating"] == pytest.approx(15.0) and median.loc["x", "ci_lower"] == pytest.approx(10.25)
    assert median.loc["z", "rating"] == 3.0
    with pytest.raises(ValueError, match="centre"):
        rating.rating_intervals(samples, estimate, centre="mean")


# ------------------------------------------------------------------------------------------------
# Separation: finite, readable, and said so


def sweep(winner, loser, n):
    return plan_order_battles(lambda q, a, b, rng: "model_a" if a == winner else "model_b", [winner, loser], n, seed=0)


def test_a_perfect_record_gets_finite_readable_ratings_and_intervals(tmp_path):
    # The case: one model lost all 40 of its battles (20 questions, 3 models).
    def judged(q, a, b, rng):
        if "bad" in (a, b):
            return "model_b" if a == "bad" else "model_a"
        return rng.choice(["model_a", "model_b", "tie"], p=[0.5, 0.3, 0.2])

    models = ["good", "fair", "bad"]
    battles = plan_order_battles(judged, models, 20, seed=1)
    table = battle_table(battles, models, RatingSpec(bootstrap_rounds=300, seed=0))
    csv = read_back(table, tmp_path)
    assert csv.loc["bad", "Losses"] == 40 and csv.loc["bad", "Wins"] == 0
    numbers = csv[["Elo_Rating", "CI_Lower", "CI_Upper", "BT_Rating", "BT_CI_Lower", "BT_CI_Upper"]]
    assert np.isfinite(numbers.to_numpy()).all()
    assert numbers.to_numpy().min() > 300 and numbers.to_numpy().max() < 1700, numbers  # was -885 .. 2261
    assert_points_inside(csv)
    assert csv.loc["bad", "BT_Rating"] < csv.loc["fair", "BT_CI_Lower"]  # the order is what the data show
    note = perfect_record_note(table)
    assert note.startswith("note: bad lost every battle: the data put no limit on the gap")
    assert f"weak prior (SD {rating.prior_sd():.0f} points around the mean)" in note and "only bound" not in note
    assert note in format_table(table) and note in markdown_summary(table, [])


def test_a_two_model_sweep_is_finite_grows_with_the_record_and_the_note_says_why_no_width():
    spec = RatingSpec(bootstrap_rounds=100, seed=0)
    gaps = {}
    for n in (18, 40, 400):
        table = battle_table(sweep("x", "y", n), ["x", "y"], spec)
        row = table.frame.set_index("Model")
        gaps[n] = row.loc["x", "BT_Rating"] - row.loc["y", "BT_Rating"]
        # Every round sees the same 100% record: no spread, and the note says so rather than hide it.
        assert row.loc["x", "BT_CI_Lower"] == row.loc["x", "BT_Rating"] == row.loc["x", "BT_CI_Upper"]
        assert perfect_record_note(table).endswith(
            "every bootstrap round saw the same record, so its interval has no width")
    assert 400 < gaps[18] < gaps[40] < gaps[400] < 1500, gaps  # finite, and more such battles widen it
    # The posterior mode of 40 wins and no loss between two models (logits +-d/2): the gap d solves
    # 40 * sigmoid(-d) = reg * d / 2; bisection here, independently of the fit.
    low, high = 0.0, 20.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if 40 / (1 + math.exp(mid)) > rating.PRIOR_REG * mid / 2 else (low, mid)
    assert gaps[40] == pytest.approx(low / C, abs=0.02)
    unrated = battle_table(sweep("x", "y", 18), ["x", "y"], RatingSpec(bootstrap_rounds=0, seed=0))
    assert "bootstrap" not in perfect_record_note(unrated)  # no rounds, nothing to say about them
    tie = pd.concat([sweep("x", "y", 18), pd.DataFrame([("x", "y", "tie", 1.0, "q999")], columns=COLUMNS)])
    assert perfect_record_note(battle_table(tie, ["x", "y"], spec)) is None


# ------------------------------------------------------------------------------------------------
# Without separation the prior changes nothing that matters


def simulate(true, n, seed, tie=0.25, questions=500):
    """Battles with expected score expit(c (R_a - R_b)) for a, ties as half a win, random pairs."""
    rng = np.random.default_rng(seed)
    names = np.array(list(true), dtype=object)
    values = np.array(list(true.values()), dtype=float)
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    p = 1 / (1 + np.exp(-C * (values[a] - values[b])))
    t = np.minimum(tie, 2 * np.minimum(p, 1 - p))
    draw = rng.random(n)
    winner = np.where(draw < p - t / 2, "model_a", np.where(draw < p + t / 2, "tie", "model_b"))
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner,
                         "question_id": rng.integers(0, questions, n)})


TRUE = {"m0": 850.0, "m1": 940.0, "m2": 1000.0, "m3": 1060.0, "m4": 1150.0, "m5": 1250.0}


def test_the_prior_moves_an_unseparated_fit_by_less_than_one_point():
    battles = simulate(TRUE, 10_000, seed=4)
    plain = rating.bradley_terry(battles, reg=0)
    default = rating.bradley_terry(battles)
    moved = (default - plain.reindex(default.index)).abs()
    assert 0 < moved.max() < 1.0, moved
    # It shrinks toward the mean, never past it: the spread is a little smaller, the order the same.
    assert default.std() < plain.std()
    assert list(default.index) == list(plain.sort_values(ascending=False).index)
    # The bootstrap uses the same prior: its rounds centre on the default fit.
    samples = rating.bootstrap_bradley_terry(battles, rounds=200, seed=1, by="question")
    assert (samples.median() - default.reindex(samples.columns)).abs().max() < 3.0


def test_the_default_fit_is_the_posterior_mode_of_the_documented_prior():
    battles = simulate(TRUE, 600, seed=9)
    fit = rating.bradley_terry(battles)
    theta = (fit - 1000.0) * C  # mean-anchored; the prior is centred on the mean
    s = battles["winner"].map({"model_a": 1.0, "tie": 0.5, "model_b": 0.0}).to_numpy()
    d = theta[battles["model_a"]].to_numpy() - theta[battles["model_b"]].to_numpy()
    residual = s - 1 / (1 + np.exp(-d))
    gradient = (pd.Series(residual).groupby(battles["model_a"].to_numpy()).sum()
                .sub(pd.Series(residual).groupby(battles["model_b"].to_numpy()).sum(), fill_value=0.0))
    gradient = gradient.reindex(theta.index) - rating.PRIOR_REG * theta
    assert gradient.abs().max() < 1e-6, gradient
    assert rating.prior_sd() == pytest.approx(1 / math.sqrt(rating.PRIOR_REG) / C)
