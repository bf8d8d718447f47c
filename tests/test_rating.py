"""Tests for pytest_arena.rating: every number here is computed independently of the module."""

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_arena import rating


def table(rows, weights=None, questions=None):
    frame = pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])
    frame["question_id"] = range(len(frame)) if questions is None else questions
    if weights is not None:
        frame["weight"] = weights
    return frame


def simulate(true, n, seed, tie_rate=0.0, questions=100, weights=None):
    """Battles drawn from the Bradley-Terry model with ratings ``true`` (dict name -> rating)."""
    rng = np.random.default_rng(seed)
    names = np.array(list(true))
    values = np.array([true[x] for x in names], dtype=float)
    i = rng.integers(0, len(names), n)
    j = (i + rng.integers(1, len(names), n)) % len(names)
    p_a = 1.0 / (1.0 + 10.0 ** ((values[j] - values[i]) / 400.0))
    u = rng.random(n)
    decisive = 1.0 - tie_rate
    winner = np.where(u < tie_rate, "tie", np.where(u < tie_rate + decisive * p_a, "model_a", "model_b"))
    frame = pd.DataFrame({
        "model_a": names[i], "model_b": names[j], "winner": winner,
        "question_id": rng.integers(0, questions, n),
    })
    if weights is not None:
        frame["weight"] = rng.choice(weights, n)
    return frame


def zermelo(battles, tol=1e-15, max_iter=200_000):
    """Plain Bradley-Terry MLE by the MM (Zermelo) iteration, ties as half a win, weights as counts."""
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    pos = {name: k for k, name in enumerate(names)}
    m = len(names)
    wins = np.zeros(m)
    games = np.zeros((m, m))
    weights = battles["weight"] if "weight" in battles else [1.0] * len(battles)
    for a, b, winner, w in zip(battles["model_a"], battles["model_b"], battles["winner"], weights):
        s = {"model_a": 1.0, "tie": 0.5, "model_b": 0.0}[winner]
        i, j = pos[a], pos[b]
        wins[i] += w * s
        wins[j] += w * (1 - s)
        games[i, j] += w
        games[j, i] += w
    strength = np.ones(m)
    for _ in range(max_iter):
        denominator = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = wins / denominator
        new /= np.exp(np.mean(np.log(new)))
        if np.max(np.abs(new / strength - 1)) < tol:
            strength = new
            break
        strength = new
    points = 400 * np.log10(strength)
    return pd.Series(points - points.mean() + 1000, index=names)


# ------------------------------------------------------------------------------------------------
# validate_battles


def test_validate_rejects_error_winner_and_names_it():
    battles = table([("A", "B", "model_a"), ("A", "B", "error"), ("B", "A", "error")])
    with pytest.raises(ValueError, match=r"'error' \(2x\)"):
        rating.validate_battles(battles)


@pytest.mark.parametrize("winner", [None, "A", "model_a ", "[[A]]", 1])
def test_validate_rejects_any_other_winner(winner):
    battles = table([("A", "B", "tie"), ("A", "B", winner)])
    with pytest.raises(ValueError, match="winner must be one of"):
        rating.validate_battles(battles)


def test_validate_rejects_missing_column_self_battle_and_bad_weight():
    with pytest.raises(ValueError, match="winner"):
        rating.validate_battles(pd.DataFrame({"model_a": ["A"], "model_b": ["B"]}))
    with pytest.raises(ValueError, match="battle itself"):
        rating.validate_battles(table([("A", "A", "tie")]))
    with pytest.raises(ValueError, match="str"):
        rating.validate_battles(table([(None, "A", "tie")]))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight"):
            rating.validate_battles(table([("A", "B", "tie")], weights=[bad]))
    with pytest.raises(TypeError):
        rating.validate_battles([("A", "B", "tie")])


def test_validate_fills_weight_without_touching_input():
    battles = table([("A", "B", "tie"), ("B", "C", "model_b")])
    checked = rating.validate_battles(battles)
    assert checked["weight"].tolist() == [1.0, 1.0]
    assert "weight" not in battles.columns
    weighted = rating.validate_battles(table([("A", "B", "tie")], weights=[2]))
    assert weighted["weight"].dtype == float and weighted["weight"].iloc[0] == 2.0


def test_rating_functions_validate_their_input():
    bad = table([("A", "B", "model_a"), ("A", "B", "error")])
    for function in (rating.online_elo, rating.bradley_terry, rating.record_counts, rating.win_rate_matrix,
                     rating.battle_counts):
        with pytest.raises(ValueError, match="winner"):
            function(bad)


# ------------------------------------------------------------------------------------------------
# online Elo


def test_online_elo_matches_hand_arithmetic():
    battles = table([("A", "B", "model_a"), ("B", "C", "tie"), ("C", "A", "model_a")])
    got = rating.online_elo(battles, k=32)
    assert got["A"] == pytest.approx(999.22986, abs=1e-4)
    assert got["B"] == pytest.approx(984.73631, abs=1e-4)
    assert got["C"] == pytest.approx(1016.03383, abs=1e-4)
    first_two = rating.online_elo(battles.iloc[:2], k=32)
    assert first_two["A"] == 1016.0
    assert first_two["B"] == pytest.approx(984 + 32 * (0.5 - 1 / (1 + 10 ** (16 / 400))), abs=1e-12)
    assert first_two["C"] == pytest.approx(999.26369, abs=1e-4)
    assert list(got.index) == ["C", "A", "B"]
    assert got.sum() == pytest.approx(3000.0, abs=1e-9)


def test_online_elo_scale_base_k_and_init():
    battles = table([("A", "B", "model_b")])
    got = rating.online_elo(battles, k=10, scale=200, base=math.e, init=1500)
    assert got["B"] == pytest.approx(1505.0) and got["A"] == pytest.approx(1495.0)
    two = rating.online_elo(table([("A", "B", "model_b"), ("A", "B", "model_b")]), k=10, scale=200, base=math.e)
    expected_b = 1005 + 10 * (1 - 1 / (1 + math.exp(-10 / 200)))
    assert two["B"] == pytest.approx(expected_b, abs=1e-12)
    with pytest.raises(ValueError):
        rating.online_elo(battles, scale=0)
    with pytest.raises(ValueError):
        rating.online_elo(battles, base=1)


def test_online_elo_ties():
    even = rating.online_elo(table([("A", "B", "tie")]))
    assert even["A"] == 1000.0 and even["B"] == 1000.0
    uneven = rating.online_elo(table([("A", "B", "model_a"), ("A", "B", "tie")]))
    gain = 32 * (0.5 - 1 / (1 + 10 ** (32 / 400)))
    assert gain > 0
    assert uneven["B"] == pytest.approx(984 + gain, abs=1e-12)
    assert uneven["A"] == pytest.approx(1016 - gain, abs=1e-12)


def test_online_elo_weight_scales_the_update():
    one = table([("A", "B", "model_a"), ("B", "C", "tie"), ("C", "A", "model_b")])
    doubled = one.assign(weight=2.0)
    half_k = rating.online_elo(doubled, k=16)
    pd.testing.assert_series_equal(half_k, rating.online_elo(one, k=32), check_exact=False, rtol=0, atol=1e-12)
    single = rating.online_elo(table([("A", "B", "model_a")], weights=[2.0]))
    repeated = rating.online_elo(table([("A", "B", "model_a"), ("A", "B", "model_a")]))
    assert single["A"] == 1032.0 and single["B"] == 968.0
    second_gain = 32 * (1 - 1 / (1 + 10 ** (-32 / 400)))
    assert repeated["A"] == pytest.approx(1016 + second_gain, abs=1e-12)
    assert 0 < single["A"] - repeated["A"] < 2.0
    zero = rating.online_elo(one.assign(weight=0.0))
    assert (zero == 1000.0).all() and set(zero.index) == {"A", "B", "C"}


def test_online_elo_follows_row_order_and_is_deterministic():
    battles = simulate({"A": 1000, "B": 1100, "C": 1200}, 300, seed=5)
    first = rating.online_elo(battles)
    pd.testing.assert_series_equal(first, rating.online_elo(battles.copy()), check_exact=True)
    reversed_order = rating.online_elo(battles.iloc[::-1])
    assert (first - reversed_order.reindex(first.index)).abs().max() > 0.1
    assert list(first.index) == list(first.sort_values(ascending=False).index)
    assert first.mean() == pytest.approx(1000.0, abs=1e-9)


def test_online_elo_rates_every_model_and_handles_empty():
    got = rating.online_elo(table([("A", "B", "model_a"), ("C", "D", "tie")]))
    assert set(got.index) == {"A", "B", "C", "D"}
    assert got["C"] == got["D"] == 1000.0
    empty = rating.online_elo(table([]))
    assert len(empty) == 0


# ------------------------------------------------------------------------------------------------
# Bradley-Terry


TRUE = {"A": 1000.0, "B": 1000.0, "C": 1100.0, "D": 1200.0}


def test_bradley_terry_recovers_simulated_ratings():
    battles = simulate(TRUE, 20_000, seed=11)
    got = rating.bradley_terry(battles, anchor="A")
    for name, value in TRUE.items():
        assert abs(got[name] - value) < 15, (name, got[name], value)
    assert got["D"] > got["C"] > max(got["A"], got["B"])


def test_bradley_terry_agrees_with_zermelo():
    true = {"A": 1000, "B": 1040, "C": 1100, "D": 950, "E": 1210}
    battles = simulate(true, 3000, seed=3, tie_rate=0.2, weights=[1.0, 2.0])
    reference = zermelo(battles)
    plain = rating.bradley_terry(battles, reg=0).reindex(reference.index)
    default = rating.bradley_terry(battles).reindex(reference.index)
    assert (plain - reference).abs().max() < 1e-6
    assert (default - reference).abs().max() < 0.5


def test_bradley_terry_anchor_and_mean():
    battles = simulate(TRUE, 4000, seed=2, tie_rate=0.1)
    free = rating.bradley_terry(battles)
    assert free.mean() == pytest.approx(1000.0, abs=1e-9)
    anchored = rating.bradley_terry(battles, anchor="C")
    assert anchored["C"] == pytest.approx(1000.0, abs=1e-9)
    shift = (anchored - free.reindex(anchored.index))
    assert shift.max() - shift.min() < 1e-9
    assert abs(shift.iloc[0]) > 1.0
    moved = rating.bradley_terry(battles, init=1500)
    assert moved.mean() == pytest.approx(1500.0, abs=1e-9)
    with pytest.raises(ValueError, match="anchor"):
        rating.bradley_terry(battles, anchor="Z")


def test_bradley_terry_ignores_row_order_and_sides():
    battles = simulate(TRUE, 5000, seed=4, tie_rate=0.15)
    got = rating.bradley_terry(battles)
    shuffled = rating.bradley_terry(battles.sample(frac=1.0, random_state=1))
    assert (got - shuffled.reindex(got.index)).abs().max() < 1e-9
    flipped = battles.rename(columns={"model_a": "model_b", "model_b": "model_a"})
    flipped["winner"] = flipped["winner"].map({"model_a": "model_b", "model_b": "model_a", "tie": "tie"})
    swapped = rating.bradley_terry(flipped)
    assert (got - swapped.reindex(got.index)).abs().max() < 1e-9


def test_bradley_terry_weight_counts_as_repeated_games():
    battles = simulate(TRUE, 800, seed=8, tie_rate=0.1)
    doubled = pd.concat([battles, battles.iloc[:100]], ignore_index=True)
    weighted = battles.assign(weight=[2.0] * 100 + [1.0] * (len(battles) - 100))
    a = rating.bradley_terry(doubled)
    b = rating.bradley_terry(weighted)
    assert (a - b.reindex(a.index)).abs().max() < 1e-9
    assert (a - rating.bradley_terry(battles).reindex(a.index)).abs().max() > 0.01


def test_bradley_terry_scale_and_base():
    battles = simulate(TRUE, 3000, seed=6)
    elo = rating.bradley_terry(battles)
    natural = rating.bradley_terry(battles, scale=1.0, base=math.e, init=0.0)
    converted = (elo - 1000) * math.log(10) / 400
    assert (natural.reindex(elo.index) - converted).abs().max() < 1e-9


def test_bradley_terry_stays_finite_when_a_model_wins_everything():
    battles = table([("A", "B", "model_a")] * 5 + [("C", "A", "model_b")] * 5
                    + [("B", "C", "model_a"), ("B", "C", "model_b"), ("C", "B", "tie")])
    got = rating.bradley_terry(battles)
    assert np.isfinite(got).all()
    assert got.index[0] == "A"
    assert got["A"] - got["B"] > 500
    split = table([("A", "B", "model_a"), ("A", "B", "model_b"), ("C", "D", "tie")])
    apart = rating.bradley_terry(split)
    assert np.isfinite(apart).all() and apart.mean() == pytest.approx(1000.0)


def test_battle_counts_deduplicates_and_preserves_the_fit():
    battles = simulate(TRUE, 3000, seed=9, tie_rate=0.2, weights=[1.0, 2.0])
    counts = rating.battle_counts(battles)
    assert len(counts) <= 4 * 3 * 3
    assert not counts.duplicated(["model_a", "model_b", "winner"]).any()
    assert counts["rows"].sum() == len(battles)
    assert counts["weight"].sum() == pytest.approx(battles["weight"].sum())
    some = counts.query("model_a == 'A' and model_b == 'D' and winner == 'tie'")
    expected = battles.query("model_a == 'A' and model_b == 'D' and winner == 'tie'")
    assert some["rows"].item() == len(expected) and some["weight"].item() == expected["weight"].sum()
    full = rating.bradley_terry(battles)
    assert (full - rating.bradley_terry(counts).reindex(full.index)).abs().max() < 1e-9


# ------------------------------------------------------------------------------------------------
# bootstrap


SMALL = simulate(TRUE, 600, seed=21, tie_rate=0.1, questions=40)


def test_bootstrap_is_deterministic_per_seed():
    first = rating.bootstrap(SMALL, rating.bradley_terry, rounds=15, seed=1)
    again = rating.bootstrap(SMALL, rating.bradley_terry, rounds=15, seed=1)
    other = rating.bootstrap(SMALL, rating.bradley_terry, rounds=15, seed=2)
    pd.testing.assert_frame_equal(first, again)
    assert (first - other).abs().max().max() > 1.0
    assert first.shape == (15, 4) and list(first.columns) == ["A", "B", "C", "D"]
    assert first.index.name == "round"
    prefix = rating.bootstrap(SMALL, rating.bradley_terry, rounds=6, seed=1)
    pd.testing.assert_frame_equal(prefix, first.iloc[:6])


@pytest.mark.parametrize("fast", [rating.bootstrap_elo, rating.bootstrap_bradley_terry])
@pytest.mark.parametrize("by", ["battle", "question"])
def test_fast_bootstraps_are_deterministic_per_seed(fast, by):
    first = fast(SMALL, rounds=30, seed=7, by=by)
    pd.testing.assert_frame_equal(first, fast(SMALL, rounds=30, seed=7, by=by))
    other = fast(SMALL, rounds=30, seed=8, by=by)
    assert (first - other).abs().max().max() > 1.0
    pd.testing.assert_frame_equal(fast(SMALL, rounds=10, seed=7, by=by), first.iloc[:10])
    assert first.notna().all().all()


@pytest.mark.parametrize("by", ["battle", "question"])
def test_bootstrap_elo_equals_reference(by):
    battles = SMALL.assign(weight=np.where(np.arange(len(SMALL)) % 3 == 0, 2.0, 1.0))
    fast = rating.bootstrap_elo(battles, rounds=12, seed=3, by=by, k=16)
    slow = rating.bootstrap(battles, lambda b: rating.online_elo(b, k=16), rounds=12, seed=3, by=by)
    assert np.allclose(fast.to_numpy(), slow.to_numpy(), rtol=0, atol=1e-8)
    assert fast.std().min() > 1.0


def test_bootstrap_bradley_terry_by_question_equals_reference():
    fast = rating.bootstrap_bradley_terry(SMALL, rounds=12, seed=4, by="question", anchor="A")
    slow = rating.bootstrap(SMALL, lambda b: rating.bradley_terry(b, anchor="A"), rounds=12, seed=4, by="question")
    assert np.allclose(fast.to_numpy(), slow.to_numpy(), rtol=0, atol=1e-6)
    assert (fast["A"] == 1000.0).all() and fast["D"].std() > 1.0


def test_fast_bootstraps_leave_absent_models_blank_like_reference():
    rare = table([("E", "A", "model_a"), ("B", "E", "model_a")], questions=[999, 999])
    battles = pd.concat([SMALL.iloc[:60], rare], ignore_index=True)
    for by in ("battle", "question"):
        fast = rating.bootstrap_elo(battles, rounds=20, seed=1, by=by)
        slow = rating.bootstrap(battles, rating.online_elo, rounds=20, seed=1, by=by)
        assert fast["E"].isna().any() and fast["E"].notna().any()
        assert fast.drop(columns="E").notna().all().all()
        assert np.allclose(fast, slow, rtol=0, atol=1e-8, equal_nan=True)
    fast = rating.bootstrap_bradley_terry(battles, rounds=20, seed=1, by="question")
    slow = rating.bootstrap(battles, rating.bradley_terry, rounds=20, seed=1, by="question")
    assert fast["E"].isna().any()
    assert np.allclose(fast, slow, rtol=0, atol=1e-6, equal_nan=True)
    plain = rating.bootstrap_bradley_terry(battles, rounds=20, seed=1, by="question", reg=0)
    # The plain MLE handles the absent model's rounds too: it matches a vanishing prior (the default
    # before the weak prior of issue 16; the default prior moves E, with 2 games, by up to ~25 points).
    vanishing = rating.bootstrap_bradley_terry(battles, rounds=20, seed=1, by="question", reg=1e-6)
    assert np.allclose(plain, vanishing, rtol=0, atol=0.01, equal_nan=True)
    assert ((fast - plain).abs().max() > 1.0).any()
    by_battle = rating.bootstrap_bradley_terry(battles, rounds=20, seed=1)
    assert by_battle["E"].isna().any() and by_battle.drop(columns="E").notna().all().all()


def test_bootstrap_bradley_terry_by_battle_matches_reference_distribution():
    fast = rating.bootstrap_bradley_terry(SMALL, rounds=200, seed=5)
    slow = rating.bootstrap(SMALL, rating.bradley_terry, rounds=200, seed=6)
    ratio = fast.std() / slow.std()
    assert ratio.between(0.75, 1.33).all(), ratio
    assert (fast.mean() - slow.mean()).abs().max() < 5.0
    assert (fast.std() > 5.0).all()


def test_bootstrap_bradley_terry_counts_weights():
    rows = [("A", "B", "model_a")] * 40 + [("A", "B", "model_b")] * 40 + [("B", "C", "tie")] * 20
    battles = table(rows, weights=[5.0] * 40 + [1.0] * 60)
    plain = rating.bradley_terry(battles, reg=0)  # the MLE, exact: 200 wins against 40 losses
    assert plain["A"] - plain["B"] == pytest.approx(400 * math.log10(5), abs=0.01)
    point = rating.bradley_terry(battles)  # the weak prior shrinks the gap a little, never more
    assert 0 < (plain["A"] - plain["B"]) - (point["A"] - point["B"]) < 2
    for by in ("battle", "question"):
        median = rating.bootstrap_bradley_terry(battles, rounds=200, seed=0, by=by).median()
        assert (median - point).abs().max() < 25, (by, median)


def test_confidence_intervals_contain_the_point_estimate():
    battles = simulate(TRUE, 4000, seed=13, tie_rate=0.1)
    point = rating.bradley_terry(battles)
    intervals = rating.confidence_intervals(rating.bootstrap_bradley_terry(battles, rounds=300, seed=0))
    joined = intervals.join(point)
    assert ((joined["ci_lower"] < joined["rating"]) & (joined["rating"] < joined["ci_upper"])).all(), joined
    width = joined["ci_upper"] - joined["ci_lower"]
    assert width.between(5, 80).all(), width


def test_by_question_resampling_keeps_questions_together():
    rows = []
    for q in range(12):
        rows += [("A", "B", "model_a", q, 0), ("B", "C", "tie", q, 1), ("C", "A", "model_b", q, 2)]
    battles = pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "question_id", "part"])
    seen = {"battle": [], "question": []}

    def spy(by):
        def rate(resample):
            seen[by].append(resample)
            return rating.online_elo(resample)
        return rate

    for by in seen:
        rating.bootstrap(battles, spy(by), rounds=8, seed=0, by=by)

    def grouped(resample):
        parts = resample["part"].tolist()
        ids = resample["question_id"].tolist()
        triples = len(parts) % 3 == 0 and all(
            parts[i:i + 3] == [0, 1, 2] and len(set(ids[i:i + 3])) == 1 for i in range(0, len(parts), 3)
        )
        return triples

    assert all(grouped(resample) for resample in seen["question"])
    assert all(len(resample) == 36 for resample in seen["question"])
    assert not all(grouped(resample) for resample in seen["battle"])
    assert len({tuple(r["question_id"]) for r in seen["question"]}) > 1


def test_bootstrap_input_checks_and_zero_rounds():
    with pytest.raises(ValueError, match="by"):
        rating.bootstrap_elo(SMALL, rounds=2, by="model")
    with pytest.raises(ValueError, match="question_id"):
        rating.bootstrap_bradley_terry(SMALL.drop(columns="question_id"), rounds=2, by="question")
    with pytest.raises(ValueError, match="missing"):
        rating.bootstrap(SMALL.assign(question_id=[None] + [1] * (len(SMALL) - 1)), rating.online_elo,
                         rounds=2, by="question")
    with pytest.raises(ValueError, match="no battles"):
        rating.bootstrap_bradley_terry(table([]), rounds=2)
    with pytest.raises(ValueError, match="rounds"):
        rating.bootstrap_elo(SMALL, rounds=-1)
    for none in (rating.bootstrap_bradley_terry(SMALL, rounds=0), rating.bootstrap_elo(SMALL, rounds=0),
                 rating.bootstrap(SMALL, rating.online_elo, rounds=0, by="question")):
        assert none.shape == (0, 4) and list(none.columns) == ["A", "B", "C", "D"]
        assert rating.confidence_intervals(none).isna().all().all()


# ------------------------------------------------------------------------------------------------
# summaries


def test_confidence_intervals_are_percentiles():
    samples = pd.DataFrame({"X": np.arange(101.0), "Y": np.arange(101.0)[::-1] * 2})
    got = rating.confidence_intervals(samples)
    assert list(got.columns) == ["ci_lower", "ci_upper"] and list(got.index) == ["X", "Y"]
    assert got.loc["X"].tolist() == pytest.approx([2.5, 97.5])
    assert got.loc["Y"].tolist() == pytest.approx([5.0, 195.0])
    assert rating.confidence_intervals(samples, level=0.9).loc["X"].tolist() == pytest.approx([5.0, 95.0])
    with_gap = samples.assign(X=[np.nan] + list(range(1, 101)))
    assert rating.confidence_intervals(with_gap).loc["X", "ci_lower"] == pytest.approx(1 + 0.025 * 99)
    from_series = rating.confidence_intervals(samples["X"])
    assert from_series.loc["X", "ci_upper"] == pytest.approx(97.5)
    with pytest.raises(ValueError):
        rating.confidence_intervals(samples, level=1.0)


def test_difference_samples_are_paired():
    samples = pd.DataFrame({"X": [1.0, 5.0, 9.0], "Y": [0.5, 4.0, 10.0]})
    diff = rating.difference_samples(samples, "X", "Y")
    assert diff.tolist() == [0.5, 1.0, -1.0]
    assert diff.name == "X - Y"
    with pytest.raises(ValueError, match="Z"):
        rating.difference_samples(samples, "X", "Z")


RECORD = table(
    [("A", "B", "model_a"), ("A", "B", "tie"), ("C", "B", "model_b"), ("C", "A", "model_a")],
    weights=[1.0, 1.0, 2.0, 1.0],
)


def test_record_counts():
    got = rating.record_counts(RECORD)
    assert list(got.columns) == ["battles", "wins", "ties", "losses", "win_rate"]
    assert got.loc["A"].tolist() == pytest.approx([3, 1, 1, 1, 0.5])
    assert got.loc["B"].tolist() == pytest.approx([4, 2, 1, 1, 0.625])
    assert got.loc["C"].tolist() == pytest.approx([3, 1, 0, 2, 1 / 3])


def test_win_rate_matrix():
    got = rating.win_rate_matrix(RECORD)
    assert got.loc["A", "B"] == pytest.approx(0.75) and got.loc["B", "A"] == pytest.approx(0.25)
    assert got.loc["B", "C"] == 1.0 and got.loc["C", "B"] == 0.0
    assert got.loc["A", "C"] == 0.0 and got.loc["C", "A"] == 1.0
    assert np.isnan(np.diag(got.to_numpy())).all()
    apart = rating.win_rate_matrix(table([("A", "B", "tie"), ("C", "D", "model_a")]))
    assert np.isnan(apart.loc["A", "C"]) and apart.loc["C", "D"] == 1.0


def test_pairwise_rates_against_baseline():
    got = rating.pairwise_rates(RECORD, baseline="B")
    assert list(got.index) == ["A", "C"]
    assert got.loc["A", ["battles", "win_rate", "loss_rate", "tie_rate"]].tolist() == pytest.approx([2, 0.5, 0, 0.5])
    assert got.loc["C", ["battles", "win_rate", "loss_rate", "tie_rate"]].tolist() == pytest.approx([2, 0, 1, 0])
    rates = got[["win_rate", "loss_rate", "tie_rate"]].sum(axis=1)
    assert np.allclose(rates, 1.0)
    versus_c = rating.pairwise_rates(RECORD.iloc[[0, 1, 3]], baseline="C")
    assert list(versus_c.index) == ["A"] and versus_c.loc["A", "loss_rate"] == 1.0
    with pytest.raises(ValueError, match="baseline"):
        rating.pairwise_rates(RECORD, baseline="Z")


def scores_table():
    rng = np.random.default_rng(0)
    base = rng.integers(1, 10, 30).astype(float)
    rows = [("X", q, s) for q, s in enumerate(base)] + [("Y", q, s + 1) for q, s in enumerate(base)]
    rows += [("Z", q, 5.0) for q in range(0, 30, 2)]
    return pd.DataFrame(rows, columns=["model", "question_id", "score"]), base


def test_mean_scores():
    scores, base = scores_table()
    got = rating.mean_scores(scores, rounds=300, seed=0)
    assert list(got.columns) == ["mean", "ci_lower", "ci_upper", "scores"]
    assert got.loc["X", "mean"] == pytest.approx(base.mean())
    assert got.loc["Y", "mean"] == pytest.approx(base.mean() + 1)
    assert got.loc["Z", "mean"] == 5.0 and got.loc["Z", "scores"] == 15
    assert (got["ci_lower"] <= got["mean"]).all() and (got["mean"] <= got["ci_upper"]).all()
    assert got.loc["X", "ci_upper"] - got.loc["X", "ci_lower"] > 0.5
    assert got.loc["Z", "ci_lower"] == got.loc["Z", "ci_upper"] == 5.0
    pd.testing.assert_frame_equal(got, rating.mean_scores(scores, rounds=300, seed=0))
    assert not got.equals(rating.mean_scores(scores, rounds=300, seed=1))


def test_mean_score_samples_are_paired_across_models():
    scores, _ = scores_table()
    samples = rating.mean_score_samples(scores, rounds=50, seed=3)
    assert samples.shape == (50, 3)
    assert np.allclose(rating.difference_samples(samples, "Y", "X"), 1.0)
    assert samples["X"].std() > 0.1


def test_mean_scores_rejects_unparsed_scores():
    scores, _ = scores_table()
    broken = scores.astype({"score": object})
    broken.loc[3, "score"] = None
    with pytest.raises(ValueError, match="finite"):
        rating.mean_scores(broken, rounds=10)
    with pytest.raises(ValueError, match="question_id"):
        rating.mean_scores(scores.drop(columns="question_id"), rounds=10)


def test_rating_module_does_not_import_pytest():
    modules = sorted(Path(rating.__file__).parent.glob("*.py"))  # the rating package, every module of it
    assert len(modules) > 1
    imported = set()
    for module in modules:
        tree = ast.parse(module.read_text())
        found = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        found |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert "pytest" not in found, module.name
        imported |= found
    assert {"numpy", "pandas", "scipy"} <= imported


def test_table_notes_a_perfect_record_whose_gap_has_no_finite_estimate():
    from pytest_arena.config import RatingSpec
    from pytest_arena.rating_table import format_table, markdown_summary

    spec = RatingSpec(metrics=("bt",), bootstrap_rounds=50, seed=0)
    swept = report_table(table([("good", "bad", "model_a")] * 6 + [("bad", "good", "model_b")] * 6), spec)
    note = format_table(swept)[-1]
    assert note.startswith("note: good won every battle and bad lost every battle")
    assert note in markdown_summary(swept, [])
    # One tie is enough for a finite maximum-likelihood gap: no note then.
    tied = report_table(table([("good", "bad", "model_a")] * 6 + [("bad", "good", "tie")]), spec)
    assert not format_table(tied)[-1].startswith("note:")


def report_table(battles, spec):
    from pytest_arena.rating_table import battle_table

    return battle_table(battles, ["good", "bad"], spec)
