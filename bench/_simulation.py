"""The simulation model of the ratings study (``ratings_study.py``; its docstring describes it).

Shared by the studies and by the cells of the paired and sequential studies (``study_cells.py``):
one battles table per call, the designs, and the population ("true") Bradley-Terry ratings.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.special import expit

C = math.log(10.0) / 400.0  # logit units per Elo point


# --------------------------------------------------------------------------------------------------
# Simulation


def simulate(rng, latent, pairs, questions, tau, tie, tie_model="half-win", effects=None, lengths=None,
             length_bias=0.0):
    """One battles table. ``latent``: ratings (array, model order = ``names`` of the caller);
    ``pairs``: (a index, b index, question index) per battle, before the position is randomised.
    ``tie_model="half-win"``: ties keep the expected score at p (see the module docstring);
    ``"independent"``: a tie with probability ``tie`` whatever the strengths, the rest split by p.
    ``effects``: the per-(question, model) effects u (questions x models, logit units) when the caller
    holds them (two runs on the same questions share them); else drawn here with SD ``tau``.
    ``lengths`` (questions x models) with ``length_bias`` g: a judge that favours the longer answer, its
    logit shifted by ``g * (L_a - L_b) / (L_a + L_b)`` (issue 24's verbose fine-tune); 0: length-blind."""
    a, b, q = pairs
    swap = rng.random(len(a)) < 0.5  # the judge sees the pair in a random order
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    if effects is not None:
        u = effects
    else:
        u = rng.normal(0.0, tau, size=(questions, len(latent))) if tau > 0 else np.zeros((questions, len(latent)))
    logit = C * (latent[a] - latent[b]) + u[q, a] - u[q, b]
    if lengths is not None and length_bias:
        logit = logit + length_bias * (lengths[q, a] - lengths[q, b]) / (lengths[q, a] + lengths[q, b])
    p = expit(logit)
    draw = rng.random(len(a))
    if tie_model == "half-win":
        t = np.minimum(tie, 2.0 * np.minimum(p, 1.0 - p))
        a_wins, tied = draw < p - t / 2, draw < p + t / 2
    else:
        a_wins, tied = draw < (1.0 - tie) * p, draw < (1.0 - tie) * p + tie
    winner = np.where(a_wins, "model_a", np.where(tied, "tie", "model_b"))
    return a, b, winner, q


def frame(names, a, b, winner, q, lengths=None):
    """A battles table; with ``lengths`` (questions x models) also each answer's ``length_a``/``length_b``."""
    table = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner, "question_id": q,
                          "weight": 1.0})
    if lengths is not None:
        table["length_a"], table["length_b"] = lengths[q, a], lengths[q, b]
    return table


def answer_lengths(rng, questions, models, sigma=0.3, median=200.0):
    """Answer lengths per (question, model): log-normal around ``median`` tokens, the same for every model."""
    return np.round(median * np.exp(rng.normal(0.0, sigma, size=(questions, models))))


def random_design(rng, m, n, questions):
    """n battles, each on a random question between a random pair (all pairs equally likely)."""
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    return a, b, rng.integers(0, questions, n)


def round_robin_design(m, questions):
    """Every pair once on every question, question by question (the CI use: each pair judged once)."""
    pairs = list(combinations(range(m), 2))
    a = np.tile([x for x, _ in pairs], questions)
    b = np.tile([y for _, y in pairs], questions)
    return a, b, np.repeat(np.arange(questions), len(pairs))


# --------------------------------------------------------------------------------------------------
# Population ("true") ratings, written here independently of pytest_arena.rating

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def population_ratings(latent, tau, anchor=None):
    """Bradley-Terry ratings (Elo points) fitted to the exact expected scores of a design in which all
    pairs are equally frequent, the question effect averaged out; anchored like the project: model
    index ``anchor`` at 1000, else the mean at 1000."""
    latent = np.asarray(latent, dtype=float)
    m = len(latent)
    pairs = list(combinations(range(m), 2))
    ia = np.array([x for x, _ in pairs])
    ib = np.array([y for _, y in pairs])
    x = C * (latent[ia] - latent[ib])
    if tau > 0:
        score = expit(x[:, None] + math.sqrt(2.0) * tau * _NODES[None, :]) @ _WEIGHTS
    else:
        score = expit(x)
    theta = np.zeros(m)
    for _ in range(100):  # Newton on the (concave) expected log-likelihood, the mean held at 0
        p = expit(theta[ia] - theta[ib])
        grad = np.zeros(m)
        np.add.at(grad, ia, score - p)
        np.add.at(grad, ib, p - score)
        hess = np.zeros((m, m))
        v = p * (1 - p)
        np.add.at(hess, (ia, ia), v)
        np.add.at(hess, (ib, ib), v)
        np.add.at(hess, (ia, ib), -v)
        np.add.at(hess, (ib, ia), -v)
        step = np.linalg.solve(hess + np.full((m, m), 1.0 / m), grad)
        theta += step
        if np.abs(step).max() < 1e-14:
            break
    ratings = theta / C
    centre = ratings[anchor] if anchor is not None else ratings.mean()
    return ratings - centre + 1000.0


def latent_for_gap(latent, moved, other, gap, tau):
    """The latent rating of model ``moved`` that makes its population gap to ``other`` equal ``gap``."""
    if tau == 0:
        return latent[other] + gap
    lo, hi = sorted((latent[other], latent[other] + 4 * gap))
    for _ in range(100):
        mid = (lo + hi) / 2
        trial = latent.copy()
        trial[moved] = mid
        r = population_ratings(trial, tau)
        if r[moved] - r[other] < gap:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
