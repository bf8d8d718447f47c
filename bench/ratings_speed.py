"""Speed and correctness of the rating code at CI-job scale.

    python bench/ratings_speed.py            # the figures in bench/README.md
    python bench/ratings_speed.py --quick    # 1 timing each instead of best of 3, 200 bootstrap rounds

100,000 simulated battles among 10 models (30% ties, 1,000 questions):

* time ``rating.bradley_terry`` and ``rating.bootstrap_bradley_terry`` with 1,000 rounds (best of 3),
  by battle and by question; ``rating.online_elo`` once; ``rating.bootstrap_elo`` with 1,000 rounds on
  10,000 battles (its loop runs over battle positions, so it is timed at a tenth of the size);
* compare ``bradley_terry`` with two reference fits written here, independently of the project: a
  direct maximisation of the full per-battle log-likelihood (100,000 rows, not de-duplicated; ties as
  half wins) by ``scipy.optimize.minimize``, and the MM (Zermelo) iteration; the goal is a maximum
  difference under 0.5 Elo points;
* measure how far the default weak prior (``rating.PRIOR_REG``) moves the fit from the plain maximum
  likelihood (``reg=0``) on these 100,000 battles -- the goal is under 1 Elo point -- and what it gives a
  perfect record instead of an infinite gap;
* compare the bootstrap's standard deviations with the sandwich (robust) standard errors of the
  reference fit -- a second, independent account of the same uncertainty.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine  # bench/ is on sys.path when a script runs
from scipy.optimize import minimize
from scipy.special import expit, log_expit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_arena import rating  # noqa: E402

C = math.log(10.0) / 400.0


def simulate(seed, n, m=10, questions=1000, tie=0.3):
    """Battles with expected score expit(c (R_a - R_b)) for a; ties keep that expectation (half-win)."""
    rng = np.random.default_rng(seed)
    names = np.array([f"model-{k:02d}" for k in range(m)], dtype=object)
    true = np.sort(rng.uniform(800.0, 1250.0, m))[::-1]
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = expit(C * (true[a] - true[b]))
    t = np.minimum(tie, 2 * np.minimum(p, 1 - p))
    draw = rng.random(n)
    winner = np.where(draw < p - t / 2, "model_a", np.where(draw < p + t / 2, "tie", "model_b"))
    battles = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner,
                            "question_id": rng.integers(0, questions, n)})
    return battles, pd.Series(true, index=names)


# --------------------------------------------------------------------------------------------------
# Reference fits, written without pytest_arena


def _arrays(battles):
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    pos = {x: k for k, x in enumerate(names)}
    a = battles["model_a"].map(pos).to_numpy()
    b = battles["model_b"].map(pos).to_numpy()
    s = battles["winner"].map({"model_a": 1.0, "tie": 0.5, "model_b": 0.0}).to_numpy()
    return names, a, b, s


def reference_scipy(battles):
    """Maximise sum_i [s_i log sigma(d_i) + (1 - s_i) log sigma(-d_i)], d_i = theta_a - theta_b, over every
    battle row; theta[0] fixed at 0, then shifted to mean 1000 Elo."""
    names, a, b, s = _arrays(battles)
    m = len(names)

    def nll(free):
        theta = np.r_[0.0, free]
        d = theta[a] - theta[b]
        value = -(s * log_expit(d) + (1 - s) * log_expit(-d)).sum()
        r = s - expit(d)  # d(-loglik)/d(d) = -(s - sigma(d))
        grad = -(np.bincount(a, r, minlength=m) - np.bincount(b, r, minlength=m))
        return value, grad[1:]

    result = minimize(nll, np.zeros(m - 1), jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 1000})
    theta = np.r_[0.0, result.x]
    elo = theta / C
    return pd.Series(elo - elo.mean() + 1000.0, index=names), result, theta, (a, b, s)


def reference_mm(battles, tol=1e-13, max_iter=100_000):
    """Zermelo / MM: gamma_i <- W_i / sum_j n_ij / (gamma_i + gamma_j), ties as half wins."""
    names, a, b, s = _arrays(battles)
    m = len(names)
    wins = np.bincount(a, s, minlength=m) + np.bincount(b, 1 - s, minlength=m)
    games = np.zeros((m, m))
    np.add.at(games, (a, b), 1.0)
    games = games + games.T
    gamma = np.ones(m)
    for it in range(max_iter):
        new = wins / (games / (gamma[:, None] + gamma[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        if np.abs(np.log(new) - np.log(gamma)).max() < tol:
            gamma = new
            break
        gamma = new
    elo = np.log(gamma) / C
    return pd.Series(elo - elo.mean() + 1000.0, index=names), it + 1


def sandwich_se(theta, a, b, s, m):
    """Robust standard errors (Elo points) of mean-anchored ratings: H^+ J H^+ on the sum-zero subspace."""
    d = theta[a] - theta[b]
    p = expit(d)
    e = np.zeros((len(a), m))
    e[np.arange(len(a)), a] = 1.0
    e[np.arange(len(a)), b] = -1.0
    h = (e * (p * (1 - p))[:, None]).T @ e
    g = e * (s - p)[:, None]
    j = g.T @ g
    h_plus = np.linalg.pinv(h)
    cov = h_plus @ j @ h_plus
    return np.sqrt(np.diag(cov)) / C


# --------------------------------------------------------------------------------------------------


def best_of(repeats, fn):
    """Best wall-clock time and best CPU time (this process) of ``repeats`` runs, and the last value.
    CPU time is the steadier figure on a shared machine."""
    wall, cpu, value = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return (min(wall), min(cpu)), value


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    repeats, rounds = (1, 200) if args.quick else (3, 1000)
    print(f"pytest-arena rating speed ({'--quick' if args.quick else 'default sizes'}), seed {args.seed}")
    print(f"machine: {machine()}; numpy {np.__version__}, pandas {pd.__version__}; load average at start {load()}", flush=True)

    battles, true = simulate(args.seed, 100_000)
    small, _ = simulate(args.seed + 1, 10_000)
    print(f"data: {len(battles):,} battles, {len(true)} models (true ratings {true.min():.0f}..{true.max():.0f}), "
          f"{(battles['winner'] == 'tie').mean():.1%} ties, {battles['question_id'].nunique()} questions")

    rows = []
    t, fit = best_of(repeats, lambda: rating.bradley_terry(battles))
    rows.append(["bradley_terry", "100,000", "-", t])
    t, samples = best_of(repeats, lambda: rating.bootstrap_bradley_terry(battles, rounds=rounds, seed=1))
    rows.append(["bootstrap_bradley_terry, by battle", "100,000", rounds, t])
    t, samples_q = best_of(repeats, lambda: rating.bootstrap_bradley_terry(battles, rounds=rounds, seed=1, by="question"))
    rows.append(["bootstrap_bradley_terry, by question", "100,000", rounds, t])
    t, _ = best_of(1, lambda: rating.online_elo(battles))
    rows.append(["online_elo (1 run)", "100,000", "-", t])
    t, _ = best_of(repeats, lambda: rating.bootstrap_elo(small, rounds=rounds, seed=1))
    rows.append(["bootstrap_elo, by battle", "10,000", rounds, t])
    print(f"\ntimings (best of {repeats}; wall clock, and CPU time of this process):")
    width = max(len(r[0]) for r in rows)
    print(f"  {'function':<{width}}  {'battles':>8}  {'rounds':>6}  {'wall s':>8}  {'CPU s':>8}")
    for name, n, r, (wall, cpu) in rows:
        print(f"  {name:<{width}}  {n:>8}  {str(r):>6}  {wall:8.3f}  {cpu:8.3f}")

    print("\nagreement with reference fits written in this script (mean-anchored, Elo points):", flush=True)
    t0 = time.perf_counter()
    ref, result, theta, (a, b, s) = reference_scipy(battles)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    mm, iterations = reference_mm(battles)
    t_mm = time.perf_counter() - t0
    plain = rating.bradley_terry(battles, reg=0.0)
    names = list(ref.index)
    diff_scipy = (fit[names] - ref).abs().max()
    diff_mm = (fit[names] - mm).abs().max()
    print(f"  scipy BFGS on 100,000 per-battle rows: {result.nit} iterations, {t_ref:.2f} s, "
          f"max |gradient| {np.abs(result.jac).max():.1e} at the end")
    print(f"  MM (Zermelo): {iterations} iterations, {t_mm:.2f} s")
    print(f"  max |bradley_terry - scipy reference| = {diff_scipy:.2e} Elo   (goal < 0.5: "
          f"{'PASS' if diff_scipy < 0.5 else 'FAIL'})")
    print(f"  max |bradley_terry - MM reference|    = {diff_mm:.2e} Elo   (goal < 0.5: {'PASS' if diff_mm < 0.5 else 'FAIL'})")
    print(f"  max |bradley_terry(reg=0) - scipy|    = {(plain[names] - ref).abs().max():.2e} Elo; "
          f"scipy vs MM {(ref - mm).abs().max():.2e}")
    print(f"  max |fit - true rating| = {(fit[names] - (true[names] - true.mean() + 1000)).abs().max():.1f} Elo "
          "(sampling error, for scale)")
    prior_shift = (fit[names] - plain[names]).abs().max()
    print(f"\nthe weak prior (reg={rating.PRIOR_REG:g}, SD {rating.prior_sd():.0f} Elo around the mean) against the "
          f"plain MLE (reg=0) on {len(battles):,} battles:")
    print(f"  max |bradley_terry() - bradley_terry(reg=0)| = {prior_shift:.4f} Elo   (goal < 1: "
          f"{'PASS' if prior_shift < 1 else 'FAIL'})")
    for n in (18, 40, 400):
        sweep = pd.DataFrame({"model_a": ["x"] * n, "model_b": ["y"] * n, "winner": ["model_a"] * n})
        gap = rating.bradley_terry(sweep).diff(-1).iloc[0]
        print(f"  a {n}-0 record between two models: gap {gap:.1f} Elo (the MLE has none: it is infinite)")

    se = pd.Series(sandwich_se(theta, a, b, s, len(names)), index=names)
    sd_b, sd_q = samples[names].std(), samples_q[names].std()
    ci = rating.confidence_intervals(samples)
    half = ((ci["ci_upper"] - ci["ci_lower"]) / 2)[names]
    print(f"\nbootstrap vs sandwich standard errors (Elo points), {rounds} rounds:")
    print(f"  sandwich SE: {se.min():.2f}..{se.max():.2f}; bootstrap SD by battle / sandwich SE: "
          f"{(sd_b / se).min():.3f}..{(sd_b / se).max():.3f}; by question / sandwich SE: "
          f"{(sd_q / se).min():.3f}..{(sd_q / se).max():.3f} (questions carry no effect here, so ~1 is right)")
    print(f"  95% percentile CI half-width / (1.96 sandwich SE): {(half / (1.96 * se)).min():.3f}.."
          f"{(half / (1.96 * se)).max():.3f}")
    print(f"\nload average at the end {load()}")
    return 0 if max(diff_scipy, diff_mm) < 0.5 and prior_shift < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
