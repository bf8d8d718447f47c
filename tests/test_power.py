"""How many questions do I need? (issue 25): the analytic figures of rating.power against their
formula, the bootstrap, and a small seeded simulation of the gate they describe."""

import math

import numpy as np
import pytest
from scipy.stats import norm
from test_paired import arena_run

from pytest_arena import rating

Z = norm.isf(0.025) + norm.isf(0.2)  # one-sided 2.5% test, 80% power


def test_detectable_drop_and_questions_needed_follow_the_normal_formula():
    assert rating.detectable_drop(10.0, 15.0) == pytest.approx(15.0 + Z * 10.0)
    z90 = norm.isf(0.05) + norm.isf(0.1)
    assert rating.detectable_drop(10.0, 0.0, power=0.9, alpha=0.05) == pytest.approx(z90 * 10.0)
    # A drop of 2 standard errors (at 80 questions) above the allowed one needs (Z / 2)^2 * 80 questions.
    assert rating.questions_needed(10.0, 80, 35.0, 15.0) == math.ceil(80 * (Z * 10.0 / 20.0) ** 2)
    # At the detectable drop, the question count is the current one (up to rounding up).
    drop = rating.detectable_drop(12.0, 0.0)
    assert rating.questions_needed(12.0, 80, drop, 0.0) in (80, 81)
    assert rating.questions_needed(12.0, 80, 10.0, 15.0) is None  # within the allowed drop: never
    with pytest.raises(ValueError, match="power"):
        rating.detectable_drop(1.0, 0.0, power=1.0)


def test_figures_come_from_the_baseline_runs_spread_and_scale_with_the_questions():
    effects = np.random.default_rng(1).normal(0, 1.0, (80, 3))
    baseline = arena_run(2, questions=80, effects=effects)
    carried, fresh = rating.max_drop_power(baseline, "sft", 15.0, drop=60.0)
    assert (carried.assumption, fresh.assumption) == ("carried over", "not carried over")
    (samples,) = rating.paired_samples([baseline], rounds=600, seed=3)
    # Not carried over: the change of two independent runs on new questions, sqrt(2) x one run's SD.
    assert fresh.se == pytest.approx(math.sqrt(2) * samples["sft"].std(), rel=0.15)
    # With strong per-question effects, the bound for a candidate that keeps them is lower (the
    # battles of a question no longer vary together).
    assert carried.se < 0.9 * fresh.se
    assert fresh.detectable == pytest.approx(15.0 + Z * fresh.se)
    assert fresh.needed == rating.questions_needed(fresh.se, 80, 60.0, 15.0)
    # At four times the questions, half the standard error.
    (quadruple, _) = rating.max_drop_power(baseline, "sft", 15.0, questions=320)
    assert quadruple.se == pytest.approx(carried.se / 2)
    (beats,) = rating.beats_power(baseline, "sft", "base", margin=10.0)
    difference = rating.bradley_terry(baseline)
    assert beats.se == pytest.approx((samples["sft"] - samples["base"]).std(), rel=0.15)
    # Counted from the baseline's difference: the gate allows it to fall by difference + margin.
    allowed = difference["sft"] - difference["base"] + 10.0
    assert beats.detectable == pytest.approx(allowed + Z * beats.se)
    assert "at 80 questions a drop of" in beats.line() and "beats base (margin 10)" in beats.line()
    with pytest.raises(ValueError, match="no battles of 'nobody'"):
        rating.max_drop_power(baseline, "nobody", 0.0)


def test_the_predicted_power_is_what_the_beats_gate_gets():
    """A small seeded simulation (about 2 s): runs in which sft trails base by the gap that beats_power
    says is caught 80% of the time; the paired beats gate catches it about that often."""
    template = arena_run(100, questions=40)
    (figure,) = rating.beats_power(template, "sft", "base", margin=0.0)
    # The true gap caught 80% of the time is -(margin + Z se) (``detectable`` counts the drop from the
    # template's own, noisy, difference). arena_run's gap is in logits: 400 / ln 10 points each.
    fit = rating.bradley_terry(template)
    assert figure.detectable - Z * figure.se == pytest.approx(fit["sft"] - fit["base"])
    shift = -Z * figure.se / (400 / math.log(10))
    caught = 0
    runs = 80
    for seed in range(runs):
        run = arena_run(1000 + seed, questions=40, shift=shift)
        caught += rating.paired_difference(run, "sft", "base", rounds=200, seed=seed).below(0.0)
    assert caught / runs == pytest.approx(0.8, abs=3 * math.sqrt(0.16 / runs) + 0.05)
