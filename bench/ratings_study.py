"""Simulation studies of the ratings and the gates (too slow for the test suite).

    python bench/ratings_study.py            # default sizes (200 repetitions per cell): bench/README.md
    python bench/ratings_study.py --quick    # 40 repetitions per cell, a few minutes
    python bench/ratings_study.py --only paired            # studies 4 and 5 only
    python bench/ratings_study.py --only paired --cells "strong effect"   # one cell of study_cells.py
    python bench/ratings_study.py --only style             # study 6 (issue 24), 200 repetitions per cell

Seven studies, all seeded, all through the project's own code (``pytest_arena.rating``,
``rating_table.battle_table``, ``gates.evaluate_gate``):

1. Recovery -- Bradley-Terry on 20,000 simulated battles with known ratings (gaps 0/100/200), ties on.
2. CI coverage -- how often the 95% bootstrap interval holds the true value, resampling by battle and
   by question, with and without a per-question effect.
3. Gates -- false-alarm rate on no-change data and detection rate of a 100-Elo drop, for the
   ``beats``, ``min_elo`` and ``max_drop`` gates, on an 80-question, 3-model arena. The gates judge the
   Bradley-Terry columns of the report ("bt" rows). The "elo" rows show what gating on the online Elo
   columns would do: the same ``gates.evaluate_gate``, fed a table whose primary columns are the
   report's ``Elo_Rating, CI_Lower, CI_Upper`` and whose samples are ``rating.bootstrap_elo``'s rounds
   (before this, the "elo" rows silently measured Bradley-Terry again). Each run here draws its own
   question effects, as if the baseline and the candidate had answered different questions.
4. Paired gates (issue 25, ``_paired_study.py``) -- the same gates, before (unpaired, as 3) and after
   (``rating.paired_change`` / ``paired_difference``), on a baseline run and candidate runs that answer
   the *same* questions, in each cell of ``study_cells.py`` (how much of each question's effect the
   candidate keeps); with the detection rates ``rating.power`` predicts from the baseline run.
5. Stopping when decided -- the same runs judged in rounds with ``rating.decide``: false alarms,
   detection against the full run's, and the judge calls saved.
6. Length control (issue 24, ``_style_study.py``) -- ``beats`` and ``max_drop 0`` under
   ``style_control: none`` and ``length`` in every cell of ``study_cells.py``, the "verbose fine-tune"
   among them (a length-biased judge, a candidate that pads its answers): what control costs in power,
   and the false passes it prevents.
7. A drop of the rating max_drop judges (issue 25, ``_drop_study.py``) -- studies 4-6 move the sft - base
   gap by -100, which moves sft's own (mean-anchored) rating by about -67; here sft's own rating drops
   100 points, the paired and unpaired ``max_drop`` gates judged raw and length-controlled.

The simulation model
--------------------
A battle between ``a`` and ``b`` on question ``q`` has expected score for ``a``
``p = expit(c * (R_a - R_b) + u[q, a] - u[q, b])`` with ``c = ln(10) / 400`` and a per-(question,
model) effect ``u ~ N(0, tau^2)`` (logit units; ``tau = 0``: no question effect). The battle is a tie
with probability ``t = min(tie, 2 * min(p, 1 - p))``, else ``a`` wins with probability ``p - t / 2``,
so the expected score is exactly ``p``: the model in which "a tie is half a win" -- the one the
project's Bradley-Terry fit assumes -- is the true one.

With ``tau > 0`` the population quantity the fit estimates is not the latent gap (averaging the logistic
over the question effect flattens it). The "true" values below are the *population* Bradley-Terry
ratings: the fit to the exact expected scores of each pair, averaged over the question effect by
Gauss-Hermite quadrature, anchored the same way as the estimate. With ``tau = 0`` they are the latent
ratings themselves.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine  # bench/ is on sys.path when a script runs
from _simulation import (frame, latent_for_gap, population_ratings, random_design, round_robin_design,  # noqa: F401
                         simulate)
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _drop_study import study_drop  # noqa: E402  (imports pytest_arena too)
from _paired_study import study_paired  # noqa: E402
from _style_study import study_style  # noqa: E402
from study_cells import CELLS  # noqa: E402

from pytest_arena import gates, rating, rating_table  # noqa: E402
from pytest_arena.config import GateSpec, RatingSpec  # noqa: E402

C = math.log(10.0) / 400.0  # logit units per Elo point


# --------------------------------------------------------------------------------------------------
# Output


def rate(hits, n):
    """'p% +- se%' for a binomial rate."""
    p = hits / n
    return f"{100 * p:5.1f}% ± {100 * math.sqrt(max(p * (1 - p), 1e-12) / n):.1f}"


def print_table(header, rows):
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------------------------------
# 1. Recovery


def study_recovery(args, pool):
    print("\n1. Recovery: Bradley-Terry on 20,000 battles, 4 models, true gaps 0/100/200, anchor A = 1000")
    names = np.array(["A", "B", "C", "D"], dtype=object)
    latent = np.array([1000.0, 1000.0, 1100.0, 1200.0])
    tol = args.tolerance
    n = 20_000
    rng = np.random.default_rng([args.seed, 1])
    design = random_design(rng, 4, n, 500)
    battles = frame(names, *simulate(rng, latent, design, 500, 0.0, args.tie))
    fit = rating.bradley_terry(battles, anchor="A")
    ties = (battles["winner"] == "tie").mean()
    samples = rating.bootstrap_bradley_terry(battles, rounds=200, seed=args.seed, anchor="A")
    sd = samples.std()
    # Repeated data sets: the spread of the error, to show the tolerance is several standard errors.
    errors = []
    for r in range(args.recovery_reps):
        rng_r = np.random.default_rng([args.seed, 1, r])
        b = frame(names, *simulate(rng_r, latent, random_design(rng_r, 4, n, 500), 500, 0.0, args.tie))
        errors.append(rating.bradley_terry(b, anchor="A")[list(names)].to_numpy() - latent)
    errors = np.array(errors)
    rows = []
    for k, name in enumerate(names):
        err = float(fit[name]) - latent[k]
        verdict = "anchor" if name == "A" else ("PASS" if abs(err) <= tol else "FAIL")
        rows.append([name, f"{latent[k]:.0f}", f"{fit[name]:.1f}", f"{err:+.1f}", f"{sd[name]:.1f}",
                     f"{np.sqrt((errors[:, k] ** 2).mean()):.1f}", f"{np.abs(errors[:, k]).max():.1f}", verdict])
    print(f"   one data set: {n} battles, {100 * ties:.1f}% ties (tie model: half-win, tie rate {args.tie}); "
          f"tolerance ±{tol:g} Elo; RMSE and max |error| over {args.recovery_reps} further data sets")
    print_table(["model", "true", "fitted", "error", "boot SD", "RMSE", "max|err|", f"±{tol:g}"], rows)
    failed = any(r[-1] == "FAIL" for r in rows)
    # For the record: a model in which ties happen whatever the strengths (not what BT-with-half-wins
    # assumes) shrinks the gaps -- a property of "a tie is half a win", not of the fitting code.
    rng = np.random.default_rng([args.seed, 2])
    battles = frame(names, *simulate(rng, latent, random_design(rng, 4, n, 500), 500, 0.0, args.tie, "independent"))
    fit = rating.bradley_terry(battles, anchor="A")
    p = expit(C * (latent - 1000.0))
    expected = 1000.0 + np.log10((0.5 * args.tie + (1 - args.tie) * p) / (0.5 * args.tie + (1 - args.tie) * (1 - p))) * 400
    print(f"   (different tie model, ties at {args.tie:.0%} whatever the gap: fitted "
          + ", ".join(f"{nm} {fit[nm]:.1f}" for nm in names[1:])
          + "; expected from the shrinkage formula " + ", ".join(f"{e:.1f}" for e in expected[1:])
          + " -- gaps shrink by the tie rate: a property of counting a tie as half a win, not a fitting error)")
    return failed


# --------------------------------------------------------------------------------------------------
# 2. CI coverage


def _coverage_rep(job):
    """One data set of the coverage study: hits per (resampling, quantity), and the D-A CI width."""
    seed, tau, r, n, questions, rounds, tie, truth = job
    names = np.array(["A", "B", "C", "D"], dtype=object)
    latent = np.array([1000.0, 1000.0, 1100.0, 1200.0])
    rng = np.random.default_rng([seed, 3, int(tau * 1000), r])
    battles = frame(names, *simulate(rng, latent, random_design(rng, 4, n, questions), questions, tau, tie))
    true_diff = {"B-A": truth[1] - truth[0], "D-A": truth[3] - truth[0]}
    out = {}
    for by in ("battle", "question"):
        samples = rating.bootstrap_bradley_terry(battles, rounds=rounds, seed=r, by=by)
        ci = rating.confidence_intervals(samples)
        for key, k in (("A", 0), ("D", 3)):
            out[by, key] = int(ci.loc[names[k], "ci_lower"] <= truth[k] <= ci.loc[names[k], "ci_upper"])
        for key, (x, y) in (("B-A", ("B", "A")), ("D-A", ("D", "A"))):
            lo, hi = rating.confidence_intervals(rating.difference_samples(samples, x, y)).iloc[0]
            out[by, key] = int(lo <= true_diff[key] <= hi)
            if key == "D-A":
                out[by, "width"] = hi - lo
    return out


def _sum(results):
    total = {}
    for result in results:
        for key, value in result.items():
            total[key] = total.get(key, 0) + value
    return total


def study_coverage(args, pool):
    reps, n, questions, rounds = args.coverage_reps, 2000, 100, args.coverage_rounds
    print(f"\n2. Coverage of 95% bootstrap CIs (bootstrap_bradley_terry, {rounds} rounds): {reps} data sets "
          f"of {n} battles on {questions} questions (20 battles per question), 4 models A/B/C/D latent "
          f"1000/1000/1100/1200, mean anchoring, ties half-win (rate {args.tie}).")
    latent = np.array([1000.0, 1000.0, 1100.0, 1200.0])
    rows = []
    for tau in (0.0, args.tau):
        truth = population_ratings(latent, tau)
        hits = _sum(pool.map(_coverage_rep, [(args.seed, tau, r, n, questions, rounds, args.tie, truth)
                                             for r in range(reps)]))
        for by in ("battle", "question"):
            rows.append([f"{tau:g}", by, f"{truth[0]:.1f} / {truth[3]:.1f}", f"{truth[3] - truth[0]:.1f}",
                         rate(hits[by, "A"], reps), rate(hits[by, "D"], reps), rate(hits[by, "B-A"], reps),
                         rate(hits[by, "D-A"], reps), f"{hits[by, 'width'] / reps:.1f}"])
    print(f"   nominal coverage 95.0%; ± is the binomial standard error over {reps} data sets; tau is the SD of "
          "the per-(question, model) effect in logit units")
    print_table(["tau", "resample by", "true R_A / R_D", "true D-A", "cover R_A", "cover R_D", "cover B-A",
                 "cover D-A", "mean width D-A"], rows)


# --------------------------------------------------------------------------------------------------
# 3. Gates

GATE_NAMES = np.array(["base", "ref", "sft"], dtype=object)
BASE, REF, SFT = 0, 1, 2
# (rating the gates judge, bootstrap resampling): each both ways (by question is the default).
GATE_CONFIGS = (("bt", "battle"), ("bt", "question"), ("elo", "battle"), ("elo", "question"))
ELO_AS_PRIMARY = {"Elo_Rating": "BT_Rating", "CI_Lower": "BT_CI_Lower", "CI_Upper": "BT_CI_Upper"}


def gate_table(battles, models, spec, primary):
    """The report's table as the gates read it. For "elo", the report's online Elo columns and the Elo
    bootstrap rounds take the place of the Bradley-Terry ones (the gates always judge the primary
    columns), so the row measures a gate on Elo."""
    table = rating_table.battle_table(battles, models, spec)
    if primary == "bt":
        return table
    frame = table.frame.drop(columns=list(ELO_AS_PRIMARY.values())).rename(columns=ELO_AS_PRIMARY)
    samples = rating.bootstrap_elo(battles, k=spec.elo_k, rounds=spec.bootstrap_rounds, seed=spec.seed,
                                   by=spec.bootstrap_by)
    return rating_table.RatingTable(frame, samples, "bt")


def _gate_rep(job):
    """One repetition of the gate study: which gates failed, per configuration."""
    seed, tau, r, questions, rounds, tie, still, dropped, bars = job
    specs = {
        "beats": GateSpec("sft", beats="base", margin=0.0),
        "drop0": GateSpec("sft", max_drop=0.0),
        "drop15": GateSpec("sft", max_drop=15.0),
        "min_at": GateSpec("sft", min_elo=bars[0]),
        "min_below": GateSpec("sft", min_elo=bars[1]),
    }
    models = list(GATE_NAMES)
    rng = np.random.default_rng([seed, 4, int(tau * 1000), r])
    design = round_robin_design(3, questions)
    data = {k: frame(GATE_NAMES, *simulate(rng, lat, design, questions, tau, tie))
            for k, lat in (("prev", still), ("same", still), ("drop", dropped))}
    out = {}
    for primary, by in GATE_CONFIGS:
        spec = RatingSpec(metrics=(primary,), bootstrap_rounds=rounds, seed=r, bootstrap_by=by)
        tables = {k: gate_table(v, models, spec, primary) for k, v in data.items()}
        previous = tables["prev"].frame  # the previous report: an independent no-change run
        for case in ("same", "drop"):
            for gate in ("beats", "drop0", "drop15"):
                out[primary, by, gate, case] = int(not gates.evaluate_gate(specs[gate], tables[case], previous).passed)
        if primary == "bt":
            for gate in ("min_at", "min_below"):
                out[primary, by, gate, "same"] = int(not gates.evaluate_gate(specs[gate], tables["same"]).passed)
    return out


def study_gates(args, pool):
    reps, questions, rounds = args.gate_reps, 80, args.gate_rounds
    print(f"\n3. Gates through rating_table.battle_table + gates.evaluate_gate: {questions} questions, models base/ref/sft, "
          f"every pair judged once per question ({3 * questions} battles), ties half-win (rate {args.tie}), "
          f"{rounds} bootstrap rounds, {reps} repetitions per cell, all-pairs mode (mean anchoring).")
    print("   latent ratings: base 1000, ref 1100; sft = base (no change) or a drop that makes the population "
          "sft - base gap -100 BT points. A max_drop 'previous report' is an independent no-change run.")
    print("   Rates are of FAILED gates; ± is the binomial standard error.")
    rows = []
    for tau in (0.0, args.tau):
        still = np.array([1000.0, 1100.0, 1000.0])
        dropped = still.copy()
        dropped[SFT] = latent_for_gap(still, SFT, BASE, -100.0, tau)
        true_still, true_drop = population_ratings(still, tau), population_ratings(dropped, tau)
        # min_elo bars: at the no-change sft's true rating (the gate should pass only 2.5% of the time:
        # "at least this, with 95% confidence") and 100 below it (it should pass).
        bars = (round(float(true_still[SFT]), 2), round(float(true_still[SFT]) - 100.0, 2))
        counts = _sum(pool.map(_gate_rep, [(args.seed, tau, r, questions, rounds, args.tie, still, dropped, bars)
                                           for r in range(reps)]))
        for primary, by in GATE_CONFIGS:
            def f(*key):
                return rate(counts[(primary, by) + key], reps) if (primary, by) + key in counts else "-"
            rows.append([f"{tau:g}", primary, by, f("beats", "same"), f("beats", "drop"), f("drop0", "same"),
                         f("drop0", "drop"), f("drop15", "same"), f("drop15", "drop"), f("min_at", "same"),
                         f("min_below", "same")])
        print(f"   tau {tau:g}: population ratings base/ref/sft no change "
              + "/".join(f"{x:.1f}" for x in true_still) + ", after the drop "
              + "/".join(f"{x:.1f}" for x in true_drop)
              + f" (latent sft {dropped[SFT]:.1f}); so sft's own (mean-anchored) rating moves "
              + f"{true_drop[SFT] - true_still[SFT]:+.1f}; min_elo bars {bars[0]:g} (= true) and {bars[1]:g} (true - 100)")
    print("   nominal: beats / max_drop false alarm 2.5% (one-sided 95% CI); min_elo at the true value fails "
          "97.5% (passes 2.5%); a detection rate or a pass rate 100 above the bar is power, no nominal value.")
    print_table(["tau", "rating", "resample by", "beats: no change", "beats: -100",
                 "max_drop 0: no change", "max_drop 0: -100", "max_drop 15: no change", "max_drop 15: -100",
                 "min_elo=true: fails", "min_elo=true-100: fails"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about a minute)")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--tie", type=float, default=0.3, help="tie probability (capped so ties stay half-win)")
    parser.add_argument("--tau", type=float, default=0.7, help="SD of the per-(question, model) effect, logit units")
    parser.add_argument("--tolerance", type=float, default=15.0, help="recovery tolerance, Elo points")
    parser.add_argument("--only", choices=("recovery", "coverage", "gates", "paired", "style", "drop"), action="append")
    parser.add_argument("--gate-reps", type=int, help="repetitions per gate-study cell (default 200, --quick 40)")
    parser.add_argument("--paired-reps", type=int, help="repetitions per paired-study cell (default 200, --quick 40)")
    parser.add_argument("--paired-rounds", type=int, default=200, help="bootstrap rounds of the paired study's gates")
    parser.add_argument("--style-reps", type=int, help="repetitions per style-study cell (default 200, --quick 40)")
    parser.add_argument("--style-rounds", type=int, default=200, help="bootstrap rounds of the style study's gates")
    parser.add_argument("--round-size", type=int, default=10, help="questions per round of the sequential stop")
    parser.add_argument("--futility", type=float, default=rating.SequentialDesign().futility,
                        help="the sequential stop's futility budget (default: the product's)")
    parser.add_argument("--paired-control", choices=("none", "length", "style"), default="none",
                        help="the style control of studies 4 and 5's gates (lengths added where a cell has none)")
    parser.add_argument("--cells", choices=sorted(CELLS), action="append",
                        help="paired-study cells to run (default: every cell of study_cells.py)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes (results do not depend on it)")
    args = parser.parse_args(argv)
    args.recovery_reps = 10 if args.quick else 50
    args.coverage_reps = 40 if args.quick else 200
    args.coverage_rounds = 200
    args.gate_reps = args.gate_reps or (40 if args.quick else 200)
    args.gate_rounds = 200
    args.paired_reps = args.paired_reps or (40 if args.quick else 200)
    args.style_reps = args.style_reps or (40 if args.quick else 200)
    only = set(args.only or ("recovery", "coverage", "gates", "paired", "style", "drop"))
    print(f"pytest-arena ratings study ({'--quick' if args.quick else 'default sizes'}), seed {args.seed}")
    print(f"machine: {machine()}; numpy {np.__version__}, pandas {pd.__version__}; {args.jobs} worker processes", flush=True)
    prior = getattr(rating, "PRIOR_REG", None)
    print("rating code: Bradley-Terry " + (f"with the weak prior reg={prior:g}" if prior else
                                           "without a prior (reg 1e-6)")
          + f", from {Path(rating.__file__).resolve().parent.parent.parent}", flush=True)
    start = time.perf_counter()
    failed = False
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        studies = (("recovery", study_recovery), ("coverage", study_coverage), ("gates", study_gates),
                   ("paired", lambda a, p: study_paired(a, p, print_table)),
                   ("style", lambda a, p: study_style(a, p, print_table)),
                   ("drop", lambda a, p: study_drop(a, p, print_table)))
        for name, study in studies:
            if name in only:
                t = time.perf_counter()
                failed |= bool(study(args, pool))
                print(f"   ({name}: {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at the end "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
