"""The paired gates (gate_evidence, through gates.evaluate_gate): the interval a max_drop or beats gate
judges is the paired bootstrap by question, checked against a plain loop that refits Bradley-Terry on
explicitly resampled tables; and where pairing is impossible the gate falls back, saying so once."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_arena import rating
from pytest_arena.config import GateSpec, RatingSpec
from pytest_arena.gate_evidence import RunEvidence
from pytest_arena.gates import evaluate_gate
from pytest_arena.rating_table import battle_table

MODELS = ["base", "ref", "sft"]
ROUNDS, SEED = 60, 5


def arena_run(seed, effects, shift=0.0, questions=6):
    rng = np.random.default_rng(seed)
    strength = {"base": 0.0, "ref": 0.4, "sft": shift}
    rows = []
    for q in range(questions):
        for i, a in enumerate(MODELS):
            for b in MODELS[i + 1:]:
                x = strength[a] - strength[b] + effects[q][MODELS.index(a)] - effects[q][MODELS.index(b)]
                p = 1.0 / (1.0 + np.exp(-x))
                draw = rng.random()
                winner = "model_a" if draw < p - 0.1 else ("tie" if draw < p + 0.1 else "model_b")
                rows.append((a, b, winner, 1.0, f"q{q}"))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id"])


def naive_interval(runs, statistic):
    """Round r draws the questions with SeedSequence(SEED)'s r-th child, the same draw for every run."""
    ids = list(dict.fromkeys(q for run in runs for q in run["question_id"]))
    values = []
    for child in np.random.SeedSequence(SEED).spawn(ROUNDS):
        drawn = [ids[i] for i in np.random.default_rng(child).integers(0, len(ids), size=len(ids))]
        sides = [pd.concat([run[run["question_id"] == q] for q in drawn], ignore_index=True) for run in runs]
        values.append(statistic(*[rating.bradley_terry(side) for side in sides]))
    return np.quantile(values, [0.025, 0.975])


def table_of(run):
    return battle_table(run, MODELS, RatingSpec(metrics=("bt",), bootstrap_rounds=ROUNDS, seed=SEED, style_control="none"))


def evidence(candidate, baseline, report=Path("baseline.csv"), rounds=ROUNDS):
    return RunEvidence(candidate, baseline, report, None, rounds, SEED)


@pytest.fixture
def runs():
    effects = np.random.default_rng(3).normal(0, 0.8, (6, 3))
    return arena_run(1, effects), arena_run(2, effects, shift=-0.7)


def test_max_drop_judges_the_paired_interval_of_the_change(runs):
    baseline, candidate = runs
    gate = GateSpec(model="sft", max_drop=5)
    result = evaluate_gate(gate, table_of(candidate), pd.DataFrame({"Model": MODELS}), evidence(candidate, baseline))
    low, high = naive_interval([baseline, candidate], lambda old, new: new["sft"] - old["sft"])
    point = rating.bradley_terry(candidate)["sft"] - rating.bradley_terry(baseline)["sft"]
    assert result.value == pytest.approx(point)
    assert result.ci == pytest.approx((min(low, point), max(high, point)), abs=1e-6)
    assert result.passed == (result.ci[1] >= -5)
    assert "paired 95% CI" in result.message and "6 of 6 questions paired" in result.message


def test_beats_judges_the_paired_interval_of_the_difference(runs):
    _, candidate = runs
    # bootstrap_by battle in the report: the gate still resamples questions, both models with one draw.
    table = battle_table(candidate, MODELS, RatingSpec(metrics=("bt",), bootstrap_rounds=ROUNDS, seed=SEED,
                                                       bootstrap_by="battle", style_control="none"))
    result = evaluate_gate(GateSpec(model="sft", beats="base", margin=0), table, None, evidence(candidate, None, None))
    low, high = naive_interval([candidate], lambda fit: fit["sft"] - fit["base"])
    assert result.ci == pytest.approx((min(low, result.value), max(high, result.value)), abs=1e-6)
    assert result.passed == (result.ci[1] >= 0)


def test_without_the_baseline_verdicts_the_unpaired_test_says_so_once(runs):
    baseline, candidate = runs
    table = table_of(candidate)
    point = float(table.rating("sft")[0])
    previous = pd.DataFrame({"Model": ["sft"], "BT_Rating": [point], "BT_CI_Lower": [point - 30],
                             "BT_CI_Upper": [point + 30]})
    gate = GateSpec(model="sft", max_drop=5)
    result = evaluate_gate(gate, table, previous, evidence(candidate, None))
    assert result.passed and "in the baseline report: change +0.0" in result.message  # today's unpaired test
    assert result.message.count("\n") == 1 and result.message.endswith(
        "(unpaired test: no per-battle verdicts beside the baseline report (baseline.verdicts.jsonl is missing); "
        "the next --arena-baseline-update stores them)")
    # No interval to pair (bootstrap_rounds 0): unpaired, one line; no evidence at all: unpaired, silent.
    assert evaluate_gate(gate, table, previous, evidence(candidate, baseline, rounds=0)).message.endswith(
        "(unpaired test: bootstrap_rounds is 0, so there is no interval to pair)")
    assert "\n" not in evaluate_gate(gate, table, previous).message
    # A side without the model: unpaired, and the reason.
    missing = evaluate_gate(gate, table, previous, evidence(candidate, baseline[baseline["model_a"] != "sft"]
                                                            [lambda f: f["model_b"] != "sft"]))
    assert missing.message.endswith("(unpaired test: the baseline run has no battles of 'sft')")


# --------------------------------------------------------------------------------------------------
# Under length control (the default): both sides refitted with the controlled fit, on the same draw


def with_lengths(run, seed, padded=None, factor=1.0):
    """Each answer a length (the same for a model on a question within a run); ``padded``'s times ``factor``."""
    rng = np.random.default_rng(seed)
    lengths = {(m, q): float(rng.integers(40, 400)) * (factor if m == padded else 1.0)
               for m in MODELS for q in run["question_id"].unique()}
    return run.assign(length_a=[lengths[m, q] for m, q in zip(run["model_a"], run["question_id"])],
                      length_b=[lengths[m, q] for m, q in zip(run["model_b"], run["question_id"])])


def naive_controlled(runs, statistic, rounds=40, seed=SEED):
    """The same seeded question draws as naive_interval; each resampled side refitted with the
    length-controlled fit, no prior (so the covariate's standardisation, full data or resample, cannot
    move the ratings: only the prior sees its scale)."""
    ids = list(dict.fromkeys(q for run in runs for q in run["question_id"]))
    values = []
    for child in np.random.SeedSequence(seed).spawn(rounds):
        drawn = [ids[i] for i in np.random.default_rng(child).integers(0, len(ids), size=len(ids))]
        sides = [pd.concat([run[run["question_id"] == q] for q in drawn], ignore_index=True) for run in runs]
        values.append(statistic(*[rating.style_bradley_terry(side, control="length", reg=0.0).ratings
                                  for side in sides]))
    return np.quantile(values, [0.025, 0.975])


@pytest.fixture
def styled_runs():
    effects = np.random.default_rng(4).normal(0, 0.5, (12, 3))
    baseline = with_lengths(arena_run(11, effects, questions=12), 21)
    return baseline, with_lengths(arena_run(12, effects, shift=-0.5, questions=12), 21, padded="sft", factor=1.5)


def test_controlled_paired_change_is_the_brute_force_loop(styled_runs):
    baseline, candidate = styled_runs
    iv = rating.paired_change(baseline, candidate, "sft", rounds=40, seed=SEED, reg=0.0, control="length")
    low, high = naive_controlled([baseline, candidate], lambda old, new: new["sft"] - old["sft"])
    point = (rating.style_bradley_terry(candidate, control="length", reg=0.0).ratings["sft"]
             - rating.style_bradley_terry(baseline, control="length", reg=0.0).ratings["sft"])
    assert iv.estimate == pytest.approx(point)
    assert (iv.ci_lower, iv.ci_upper) == pytest.approx((min(low, point), max(high, point)), abs=1e-6)
    raw = rating.paired_change(baseline, candidate, "sft", rounds=40, seed=SEED, reg=0.0)
    assert abs(raw.estimate - iv.estimate) > 1.0  # the control changed the number judged


def test_controlled_paired_difference_is_the_brute_force_loop(styled_runs):
    _, candidate = styled_runs
    iv = rating.paired_difference(candidate, "sft", "base", rounds=40, seed=SEED, reg=0.0, control="length")
    low, high = naive_controlled([candidate], lambda fit: fit["sft"] - fit["base"])
    assert (iv.ci_lower, iv.ci_upper) == pytest.approx((min(low, iv.estimate), max(high, iv.estimate)), abs=1e-6)


def controlled_table(run):
    return battle_table(run, MODELS, RatingSpec(metrics=("bt",), bootstrap_rounds=ROUNDS, seed=SEED,
                                                style_control="length"))


def test_a_length_controlled_gate_is_paired_and_says_so(styled_runs):
    baseline, candidate = styled_runs
    gate = GateSpec(model="sft", max_drop=5)
    result = evaluate_gate(gate, controlled_table(candidate), pd.DataFrame({"Model": MODELS}),
                           evidence(candidate, baseline))
    iv = rating.paired_change(baseline, candidate, "sft", rounds=ROUNDS, seed=SEED, control="length")
    assert result.control == "length" and result.value == pytest.approx(iv.estimate)
    assert result.ci == pytest.approx((iv.ci_lower, iv.ci_upper))
    assert "length-controlled BT rating" in result.message and "(paired, length-controlled 95% CI" in result.message
    beats = evaluate_gate(GateSpec(model="sft", beats="base", margin=0), controlled_table(candidate), None,
                          evidence(candidate, None, None))
    iv = rating.paired_difference(candidate, "sft", "base", rounds=ROUNDS, seed=SEED, control="length")
    assert beats.ci == pytest.approx((iv.ci_lower, iv.ci_upper))
    assert "(paired, length-controlled 95% CI" in beats.message


def test_a_baseline_without_stored_lengths_falls_back_with_one_line(styled_runs):
    baseline, candidate = styled_runs
    table = controlled_table(candidate)
    point = float(table.rating("sft", "length")[0])
    previous = pd.DataFrame({"Model": ["sft"], "BT_Rating": [point], "BT_CI_Lower": [point - 30],
                             "BT_CI_Upper": [point + 30], "BT_Rating_SC": [point], "BT_SC_CI_Lower": [point - 30],
                             "BT_SC_CI_Upper": [point + 30]})
    old = baseline.drop(columns=["length_a", "length_b"])  # a verdicts file from before lengths were stored
    result = evaluate_gate(GateSpec(model="sft", max_drop=5), table, previous, evidence(candidate, old))
    assert "(95% CI" in result.message and "paired" not in result.message.splitlines()[0]  # the unpaired test
    assert result.message.splitlines()[1] == (
        "(unpaired length-controlled test: baseline.verdicts.jsonl has no answer lengths (written before they were "
        "stored); the next --arena-baseline-update stores them)")


def padded_run(seed, bias, questions=40, factor=1.8, shift=0.0):
    """Every pair once per question; sft's answers ``factor`` times longer; a judge whose logit gains
    ``bias * (L_a - L_b) / (L_a + L_b)`` (0: length-blind). sft is as good as base (``shift`` 0)."""
    rng = np.random.default_rng(seed)
    strength = {"base": 0.0, "ref": 0.5, "sft": shift}
    lengths = np.round(200 * np.exp(rng.normal(0, 0.3, (questions, 3))))
    lengths[:, MODELS.index("sft")] *= factor
    rows = []
    for q in range(questions):
        for i, a in enumerate(MODELS):
            for b in MODELS[i + 1:]:
                la, lb = lengths[q, MODELS.index(a)], lengths[q, MODELS.index(b)]
                p = 1.0 / (1.0 + np.exp(-(strength[a] - strength[b] + bias * (la - lb) / (la + lb))))
                draw = rng.random()
                winner = "model_a" if draw < p - 0.1 else ("tie" if draw < p + 0.1 else "model_b")
                rows.append((a, b, winner, 1.0, f"q{q}", la, lb))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id", "length_a", "length_b"])


def test_a_padded_model_before_a_length_biased_judge_passes_a_controlled_gate_only_on_evidence():
    run = padded_run(7, bias=4.0)
    table = controlled_table(run)
    beats = GateSpec(model="sft", beats="base", margin=0)
    result = evaluate_gate(beats, table, None, evidence(run, None, None))
    paired = rating.paired_difference(run, "sft", "base", rounds=ROUNDS, seed=SEED, control="length")
    assert paired.ci_upper >= 0 > paired.ci_lower  # the benefit of the doubt would have passed it
    assert not result.passed
    [line] = [line for line in result.message.splitlines() if line.startswith("but sft's answer")]
    assert line.startswith("but sft's answer is the longer in ")
    assert "% of its 40 battles with base, and the judge rewards length (length ratio +" in line
    assert line.endswith(f"so this length-controlled gate passes only on evidence, and the interval's lower bound "
                         f"{paired.ci_lower:+.1f} does not reach -margin +0 (more questions narrow it; a length-blind "
                         "judge or control: none judges the raw rating)")
    assert result.disagreement.startswith("sft beats base only by length: raw +")  # the raw gate passes
    # A margin its interval clears: the pass stands, and says on what.
    wide = evaluate_gate(GateSpec(model="sft", beats="base", margin=400), table, None, evidence(run, None, None))
    assert wide.passed and "this length-controlled pass stands on evidence, the interval's lower bound" in wide.message
    # max_drop, in this run against every opponent, is asked the same.
    baseline = padded_run(8, bias=4.0, factor=1.0)
    drop = evaluate_gate(GateSpec(model="sft", max_drop=0), table, pd.DataFrame({"Model": MODELS}),
                         evidence(run, baseline))
    assert not drop.passed and "battles in this run, and the judge rewards length" in drop.message
    assert "does not reach minus the allowed drop +0" in drop.message
    # control: none is judged as before: the raw rating, no such line.
    raw = evaluate_gate(GateSpec(model="sft", beats="base", margin=0, control="none"), table, None,
                        evidence(run, None, None))
    assert raw.passed and "only on evidence" not in raw.message


def test_a_length_blind_judge_or_mixed_lengths_keep_the_benefit_of_the_doubt():
    blind = padded_run(0, bias=0.0)  # sft still longer everywhere, but the judge does not reward it
    table = controlled_table(blind)
    assert table.fit("length").coefficients.loc["length", "ci_lower"] < 0 < table.fit("length").coefficients.loc[
        "length", "ci_upper"]
    result = evaluate_gate(GateSpec(model="sft", beats="base", margin=0), table, None, evidence(blind, None, None))
    assert result.passed and "evidence" not in result.message
    penalising = padded_run(0, bias=-4.0)  # a judge that penalises length: the padding cost sft, bought nothing
    fit = controlled_table(penalising).fit("length").coefficients.loc["length"]
    assert fit["ci_upper"] < 0
    against = evaluate_gate(GateSpec(model="sft", beats="base", margin=0), controlled_table(penalising), None,
                            evidence(penalising, None, None))
    assert "evidence" not in against.message
    biased = padded_run(7, bias=4.0, factor=1.0)  # a length-biased judge, lengths alike: nothing confounded
    mixed = evaluate_gate(GateSpec(model="sft", beats="base", margin=0), controlled_table(biased), None,
                          evidence(biased, None, None))
    assert mixed.passed and "evidence" not in mixed.message



def test_stopping_when_decided_never_passes_a_confounded_controlled_gate_early():
    # early_stop asks the share alone at each look (the length coefficient's interval would need a
    # bootstrap per look); the usual test at the end asks the rest.
    from pytest_arena.early_stop import _confounded_pass
    from pytest_arena.rating.sequential import Decision

    passed, failed = Decision("passed", 20, 40), Decision("failed", 20, 40)
    padded, alike = padded_run(7, bias=0.0), padded_run(7, bias=0.0, factor=1.0)
    beats, drop = GateSpec(model="sft", beats="base", margin=0), GateSpec(model="sft", max_drop=0)
    assert _confounded_pass(beats, passed, padded, "length") and _confounded_pass(drop, passed, padded, "length")
    assert not _confounded_pass(beats, failed, padded, "length")  # a failure may still stop the run
    assert not _confounded_pass(beats, passed, padded, "none")  # raw ratings: nothing to confound
    assert not _confounded_pass(beats, passed, alike, "length")
