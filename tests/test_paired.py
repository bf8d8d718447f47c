"""Paired gates (issue 25): the paired bootstrap by question against brute force, the sandwich standard
error against refits, and the baseline's verdict records read back as battles. Every reference here is
computed from ``rating.bradley_terry`` refitted on explicitly built tables, not by the code under test."""

import itertools

import numpy as np
import pandas as pd
import pytest

from pytest_arena import rating
from pytest_arena.rating_table import question_key

COLUMNS = ["model_a", "model_b", "winner", "weight", "question_id"]


def arena_run(seed, questions=4, effects=None, shift=0.0, models=("base", "ref", "sft"), ties=0.3):
    """Every pair once per question; ``effects[q][m]`` (logits) shared between runs that pass the same."""
    rng = np.random.default_rng(seed)
    strength = {"base": 0.0, "ref": 0.4, "sft": shift}
    rows = []
    for q in range(questions):
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                x = strength[a] - strength[b]
                if effects is not None:
                    x += effects[q][models.index(a)] - effects[q][models.index(b)]
                p = 1.0 / (1.0 + np.exp(-x))
                tie = min(ties, 2 * min(p, 1 - p))
                draw = rng.random()
                winner = "model_a" if draw < p - tie / 2 else ("tie" if draw < p + tie / 2 else "model_b")
                rows.append((a, b, winner, 1.0, f"q{q}"))
    return pd.DataFrame(rows, columns=COLUMNS)


def resampled(run, drawn):
    """The naive resample: the rows of each drawn question, once per draw."""
    return pd.concat([run[run["question_id"] == q] for q in drawn], ignore_index=True)


def percentile(values, level=0.95):
    return np.quantile(values, [(1 - level) / 2, (1 + level) / 2])


# --------------------------------------------------------------------------------------------------
# The paired bootstrap against brute force


def test_every_resample_of_three_questions_matches_refitting_both_runs():
    """All 27 ordered draws of 3 questions: each round's paired difference equals Bradley-Terry refitted
    on the drawn questions' battles of each run, the same draw for both."""
    baseline = arena_run(1, questions=3)
    candidate = arena_run(2, questions=3, shift=-0.5)
    candidate.loc[0, "weight"] = 2.0  # a strong verdict: weights travel with their question
    ids = ["q0", "q1", "q2"]
    orders = list(itertools.product(ids, repeat=3))
    draws = np.array([[order.count(q) for q in ids] for order in orders])
    old, new = rating.paired_samples([baseline, candidate], draws=draws)
    for r, order in enumerate(orders):
        before = rating.bradley_terry(resampled(baseline, order))
        now = rating.bradley_terry(resampled(candidate, order))
        for model in ("base", "ref", "sft"):
            assert old.loc[r, model] == pytest.approx(before[model], abs=1e-6)
            assert new.loc[r, model] == pytest.approx(now[model], abs=1e-6)


def test_seeded_paired_change_equals_a_naive_loop():
    """paired_change's interval is the percentile interval of a plain loop: round r draws questions with
    SeedSequence(seed)'s r-th child, over the union of both runs' questions, and refits each run."""
    effects = np.random.default_rng(7).normal(0, 0.7, (4, 3))
    baseline = arena_run(3, effects=effects)
    candidate = arena_run(4, effects=effects, shift=-0.6)
    candidate = candidate[candidate["question_id"] != "q3"]  # a question only the baseline judged
    rounds, seed = 60, 11
    ids = list(dict.fromkeys(list(baseline["question_id"]) + list(candidate["question_id"])))
    differences = []
    for child in np.random.SeedSequence(seed).spawn(rounds):
        drawn = [ids[i] for i in np.random.default_rng(child).integers(0, len(ids), size=len(ids))]
        new_side, old_side = resampled(candidate, drawn), resampled(baseline, drawn)
        differences.append(rating.bradley_terry(new_side)["sft"] - rating.bradley_terry(old_side)["sft"]
                           if "sft" in set(new_side["model_a"]) | set(new_side["model_b"]) else np.nan)
    point = rating.bradley_terry(candidate)["sft"] - rating.bradley_terry(baseline)["sft"]
    low, high = np.nanquantile(differences, [0.025, 0.975])
    found = rating.paired_change(baseline, candidate, "sft", rounds=rounds, seed=seed)
    assert found.estimate == pytest.approx(point, abs=1e-9)
    assert found.ci_lower == pytest.approx(min(low, point), abs=1e-6)
    assert found.ci_upper == pytest.approx(max(high, point), abs=1e-6)
    assert (found.questions, found.shared, found.rounds) == (4, 3, rounds)


def test_one_run_draws_exactly_what_the_bootstrap_by_question_draws():
    run = arena_run(5, questions=30)
    (samples,) = rating.paired_samples([run], rounds=80, seed=3)
    reference = rating.bootstrap_bradley_terry(run, rounds=80, seed=3, by="question")
    np.testing.assert_allclose(samples.to_numpy(), reference.to_numpy(), atol=1e-8)
    found = rating.paired_difference(run, "sft", "base", rounds=80, seed=3)
    low, high = percentile(reference["sft"] - reference["base"])
    point = rating.bradley_terry(run)
    assert found.estimate == pytest.approx(point["sft"] - point["base"])
    assert (found.ci_lower, found.ci_upper) == pytest.approx((min(low, found.estimate), max(high, found.estimate)))


def test_pairing_narrows_the_interval_when_questions_keep_their_effects():
    """Shared per-question effects cancel in the paired difference: its interval is narrower than two
    runs' intervals combined (what the unpaired max_drop does), and the pairing is what narrows it."""
    effects = np.random.default_rng(8).normal(0, 1.5, (60, 3))
    baseline = arena_run(9, questions=60, effects=effects)
    candidate = arena_run(10, questions=60, effects=effects)
    paired = rating.paired_change(baseline, candidate, "sft", rounds=300, seed=1)
    one = rating.bootstrap_bradley_terry(baseline, rounds=300, seed=1, by="question")["sft"]
    two = rating.bootstrap_bradley_terry(candidate, rounds=300, seed=2, by="question")["sft"]
    unpaired = np.hypot(*(np.diff(percentile(s))[0] for s in (one, two)))
    assert paired.ci_upper - paired.ci_lower < 0.75 * unpaired
    # The same runs on different questions (ids renamed): nothing to pair, and the interval is about
    # the unpaired combination's.
    apart = candidate.assign(question_id=candidate["question_id"] + "-new")
    unshared = rating.paired_change(baseline, apart, "sft", rounds=300, seed=1)
    assert unshared.shared == 0 and unshared.questions == 120
    assert 0.8 * unpaired < unshared.ci_upper - unshared.ci_lower < 1.2 * unpaired


def test_below_is_the_gates_rule_and_missing_models_are_errors():
    interval = rating.PairedInterval(-30.0, -50.0, -10.0, 80, 80, 100)
    assert interval.below(0.0) and not interval.below(-15.0)
    baseline = arena_run(1)
    with pytest.raises(ValueError, match="baseline run has no battles of 'nobody'"):
        rating.paired_change(baseline, arena_run(2), "nobody", rounds=5)
    newcomer = arena_run(2, models=("base", "ref"))
    with pytest.raises(ValueError, match="candidate run has no battles of 'sft'"):
        rating.paired_change(baseline, newcomer, "sft", rounds=5)
    with pytest.raises(ValueError, match="draws must be"):
        rating.paired_samples([baseline], draws=np.ones((2, 3)))


# --------------------------------------------------------------------------------------------------
# The sandwich (each round's statistic) against refits


def test_influence_is_the_derivative_of_the_fit_in_each_questions_weight():
    """IF_q is d R / d w_q (all rows of question q weighted 1 + eps), centred over the questions:
    checked by refitting bradley_terry with the weights changed."""
    run = arena_run(12, questions=8, effects=np.random.default_rng(2).normal(0, 0.5, (8, 3)))
    for anchor in (None, "base"):
        fit = rating.rating_influence(run, anchor=anchor)
        base = rating.bradley_terry(run, anchor=anchor)
        eps = 1e-5
        rows = []
        for q in fit.values.index:
            heavier = run.assign(weight=np.where(run["question_id"] == q, 1.0 + eps, 1.0))
            rows.append((rating.bradley_terry(heavier, anchor=anchor) - base)[list(fit.values.columns)] / eps)
        numeric = pd.DataFrame(rows, index=fit.values.index)
        numeric -= numeric.mean()
        np.testing.assert_allclose(fit.values.to_numpy(), numeric.to_numpy(), atol=1e-3)
        assert fit.ratings.sort_index().to_numpy() == pytest.approx(base.sort_index().to_numpy())


def test_looks_estimate_on_the_questions_so_far_and_their_error_matches_the_bootstrap():
    effects = np.random.default_rng(13).normal(0, 0.7, (80, 3))
    baseline = arena_run(14, questions=80, effects=effects)
    candidate = arena_run(15, questions=80, effects=effects, shift=-0.4)
    so_far = candidate[candidate["question_id"].isin([f"q{i}" for i in range(40)])]
    look = rating.change_look(baseline, so_far, "sft")
    same_questions = baseline[baseline["question_id"].isin(set(so_far["question_id"]))]
    assert look.questions == 40
    change = rating.bradley_terry(so_far)["sft"] - rating.bradley_terry(same_questions)["sft"]
    assert look.estimate == pytest.approx(change)
    old, new = rating.paired_samples([same_questions, so_far], rounds=600, seed=4)
    assert look.se == pytest.approx(float((new["sft"] - old["sft"]).std()), rel=0.15)
    beats = rating.difference_look(candidate, "sft", "base")
    (samples,) = rating.paired_samples([candidate], rounds=600, seed=5)
    assert beats.se == pytest.approx(float((samples["sft"] - samples["base"]).std()), rel=0.15)
    assert rating.rating_look(candidate, "ref").estimate == pytest.approx(rating.bradley_terry(candidate)["ref"])
    mean = rating.mean_look([1.0, 0.5, 0.0, 1.0])
    assert (mean.questions, mean.estimate) == (4, 0.625)
    assert mean.se == pytest.approx(np.std([1.0, 0.5, 0.0, 1.0], ddof=1) / 2)


# --------------------------------------------------------------------------------------------------
# The baseline's verdicts as battles


def test_verdict_records_become_the_battles_this_run_would_have():
    class Question:
        def __init__(self, question_id, question_set):
            self.question_id, self.question_set = question_id, question_set

    records = [
        {"item": "q1-a--vs--b", "question_id": 1, "model_a": "a", "model_b": "b", "win": "model_a",
         "cache_keys": ["k"]},
        {"item": "x", "question_id": 2, "question_set": "math", "model_a": "b", "model_b": "a", "win": "tie"},
        {"item": "y", "question_id": 81, "turn": 2, "model_a": "a", "model_b": "b", "win": "model_b"},
        {"item": "z", "question_id": 3, "model_a": "a", "model_b": "b", "win": "model_a",
         "games": [["model_a", 1.0], ["tie", 1.0]]},  # swap_position, independent rule
        {"item": "s", "question_id": 4, "model": "a", "score": 7.0},  # a scoring: not a battle
        {"item": "e", "question_id": 5, "model_a": "a", "model_b": "b", "win": None},
    ]
    battles = rating.battles_from_verdicts(records)
    assert battles.to_dict("records") == [
        {"model_a": "a", "model_b": "b", "winner": "model_a", "weight": 1.0, "question_id": "1"},
        {"model_a": "b", "model_b": "a", "winner": "tie", "weight": 1.0, "question_id": "math/2"},
        {"model_a": "a", "model_b": "b", "winner": "model_b", "weight": 1.0, "question_id": "81"},
        {"model_a": "a", "model_b": "b", "winner": "model_a", "weight": 1.0, "question_id": "3"},
        {"model_a": "a", "model_b": "b", "winner": "tie", "weight": 1.0, "question_id": "3"},
    ]
    # The key the run's own battles carry (report.battles_frame), so both sides name a question alike.
    assert question_key(Question(2, "math")) == "math/2" and question_key(Question(1, None)) == "1"
    rating.validate_battles(battles)  # a battles table the rating functions accept
