"""Reference boundaries for the sequential gates (tests/test_sequential.py), from gsDesign's integration.

    python -m venv /tmp/gsref && /tmp/gsref/bin/pip install gsdesign==0.1.5 scipy
    /tmp/gsref/bin/python bench/sequential_reference.py

Source: the PyPI package ``gsdesign`` 0.1.5 (Nan Xiao), a port of the numerical integration of the R
package gsDesign (Anderson et al.; Jennison & Turnbull 2000, ch. 19): ``gridpts`` (Simpson's rule on
gsDesign's canonical grid), ``h1`` and ``hupdate`` (the density of the Z statistic on the continuation
region, carried from one analysis to the next). This script does not import pytest_arena: it finds each
boundary with those routines and scipy's root finder, as gsDesign's ``gsDesign(test.type=...)`` does
with its C code -- a second, independent implementation of the recursion in ``rating/sequential.py``
(a trapezoid rule on a uniform grid of the score process). What it prints is pasted into the tests.

Cases (one-sided alpha = 0.025, the tests' and the project's default):

1. O'Brien-Fleming-type spending (Lan-DeMets), 5 equally spaced looks: the textbook efficacy
   boundaries (gsDesign and rpact give 4.877, 3.357, 2.680, 2.290, 2.031).
2. Hwang-Shih-DeCani spending, gamma = -6, looks at 20, 30, ..., 80 of 80 questions (the study's).
3. The project's default design on that schedule: non-binding futility from beta spending
   ``0.05 * t ** 1.5`` under the drift ``z_0.975 + z_0.9`` (the effect the full run detects 90% of the
   time), and the design's chance of an early or final "significant" decision at drift 0 and at the
   design drift.
"""

from __future__ import annotations

import math

import numpy as np
from gsdesign import h1, hupdate
from scipy.optimize import brentq
from scipy.stats import norm

R = 32  # gsDesign's default grid size parameter is 18; finer here, for a reference
ALPHA = 0.025
INF = 40.0  # "no boundary" (gsDesign uses 20 for that)


def obf(t: float) -> float:
    return 2.0 * norm.sf(norm.isf(ALPHA / 2.0) / math.sqrt(t))


def hsd(gamma: float):
    return lambda t: ALPHA * (1.0 - math.exp(-gamma * t)) / (1.0 - math.exp(-gamma))


def _density(theta, info, a, b, previous):
    """gsDesign's grid and weighted density of Z at this analysis on (a, b), given the previous one."""
    if previous is None:
        return h1(r=R, theta=theta, info=info, a=a, b=b)
    gm, theta_prev, info_prev = previous
    return hupdate(r=R, theta=theta, info=info, a=a, b=b, theta_prev=theta_prev, info_prev=info_prev, gm1=gm)


def _mass(theta, info, a, b, previous) -> float:
    return float(np.sum(_density(theta, info, a, b, previous)[2]))


def efficacy_boundaries(times, spend):
    """Upper boundaries ignoring any futility boundary (non-binding), spending ``spend(t)``; the last
    look spends all of alpha."""
    bounds, previous, spent = [], None, 0.0
    for k, t in enumerate(times):
        goal = ALPHA if k == len(times) - 1 else spend(t)
        c = brentq(lambda z: _mass(0.0, t, z, INF, previous) - (goal - spent), -10.0, 10.0, xtol=1e-10)
        spent = goal
        bounds.append(c)
        previous = (_density(0.0, t, -INF, c, previous), 0.0, t)
    return bounds


def futility_boundaries(times, upper, drift, futility, rho):
    """Lower boundaries spending ``futility * t ** rho`` under ``drift``, given the upper ones; they
    meet the upper boundary at the last look."""
    lower, previous, spent = [], None, 0.0
    for k, t in enumerate(times):
        if k == len(times) - 1:
            lower.append(upper[k])
            break
        goal = futility * t ** rho
        excess = lambda z: _mass(drift, t, -INF, z, previous) - (goal - spent)  # noqa: E731
        z = brentq(excess, -10.0, upper[k], xtol=1e-10) if excess(upper[k]) > 0 else upper[k]
        spent = goal
        lower.append(z)
        previous = (_density(drift, t, z, upper[k], previous), drift, t)
    return lower


def crossing(times, upper, lower, drift) -> float:
    """P(the upper boundary is crossed before the lower one, or at the last look) under ``drift``."""
    total, previous = 0.0, None
    for k, t in enumerate(times):
        total += _mass(drift, t, upper[k], INF, previous)
        if k < len(times) - 1:
            previous = (_density(drift, t, lower[k], upper[k], previous), drift, t)
    return total


def main():
    five = [0.2, 0.4, 0.6, 0.8, 1.0]
    print("1. OBF-type, 5 equal looks: efficacy", [round(x, 4) for x in efficacy_boundaries(five, obf)])
    study = [k / 80 for k in range(20, 81, 10)]
    upper = efficacy_boundaries(study, hsd(-6.0))
    print("2. HSD(-6), looks at 20..80 of 80: efficacy", [round(x, 4) for x in upper])
    drift = norm.isf(ALPHA) + norm.isf(0.1)
    lower = futility_boundaries(study, upper, drift, 0.05, 1.5)
    print("3. default design, futility", [round(x, 4) for x in lower])
    print(f"   P(significant) at drift 0: {crossing(study, upper, lower, 0.0):.5f} (at most alpha: the "
          f"futility boundary only lowers it); at the design drift {drift:.4f}: "
          f"{crossing(study, upper, lower, drift):.4f} (fixed test: 0.9000)")
    print(f"   without the futility boundary, drift 0: {crossing(study, upper, [-INF] * len(study), 0.0):.5f}")


if __name__ == "__main__":
    main()
