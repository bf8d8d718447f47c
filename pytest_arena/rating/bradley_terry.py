"""Bradley-Terry ratings by maximum likelihood, and their fast bootstrap over outcome counts."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from ._logistic import backtrack
from .battles import (_CELLS, _check_bootstrap, _check_scale, _code, _group, _key_parts, _questions, _ranked,
                      _round_generators, _samples_frame)

# The default prior: ``reg / 2 * sum(theta ** 2)`` on the logit scale, a Gaussian prior of SD 2 logits
# (347 points on the Elo scale) around the mean rating. 0.25 is the curvature of one tie against an
# average opponent, so the prior weighs about as much as one such game per model: a perfect record gets
# a finite, readable gap that grows with the record (40-0 between two models: 746 points), while a fit
# without separation moves by less than a point once models have played a few hundred games (100k
# battles: 0.015, bench/ratings_speed.py; an 80-question, 3-model arena: 0.3-0.6, bench/README.md).
PRIOR_REG = 0.25


def prior_sd(reg: float = PRIOR_REG, scale: float = 400.0, base: float = 10.0) -> float:
    """The standard deviation of the ratings' prior, in rating points (347 for the defaults)."""
    return 1.0 / (math.sqrt(reg) * _check_scale(scale, base))


def _fit_logits(ga, gb, gs, weights: np.ndarray, n_models: int, reg: float) -> np.ndarray:
    """Bradley-Terry logits for each row of ``weights`` (rounds x groups), by damped Newton steps.

    Group g is a game between models ``ga[g]`` and ``gb[g]`` in which ``ga[g]`` scored ``gs[g]``,
    counted ``weights[r, g]`` times in round r. Each round minimises the convex
    ``sum_g w * (s * softplus(-d) + (1 - s) * softplus(d)) + reg / 2 * |theta|^2`` with
    ``d = theta[a] - theta[b]``. The gradient and Hessian are exact, all rounds are solved together
    (batched 10x10 solves for 10 models), and each step backtracks until the objective decreases.
    A model without games in a round is pinned at 0 (the caller reports it as missing).
    """
    rounds, groups = weights.shape
    m = n_models
    cols = np.arange(groups)
    incidence = sparse.csr_matrix(
        (np.r_[np.ones(groups), -np.ones(groups)], (np.r_[cols, cols], np.r_[ga, gb])), shape=(groups, m)
    )
    inc_t = incidence.T.tocsr()
    absolute_t = abs(inc_t)
    curvature_t = sparse.csr_matrix(
        (np.tile([1.0, 1.0, -1.0, -1.0], groups),
         (np.repeat(cols, 4), np.stack([ga * m + ga, gb * m + gb, ga * m + gb, gb * m + ga], 1).reshape(-1))),
        shape=(groups, m * m),
    ).T.tocsr()
    played = (absolute_t @ weights.T).T > 0
    ridge = reg * np.eye(m)
    if reg == 0:
        ridge = ridge + np.full((m, m), 1.0 / m)  # fixes the free common shift; the gradient never moves it

    def objective(theta, w):
        d = theta[:, ga] - theta[:, gb]
        loss = w * (gs * np.logaddexp(0.0, -d) + (1.0 - gs) * np.logaddexp(0.0, d))
        return loss.sum(axis=1) + 0.5 * reg * np.einsum("ij,ij->i", theta, theta)

    theta = np.zeros((rounds, m))
    value = objective(theta, weights)
    active = np.arange(rounds)
    for _ in range(200):
        th, w = theta[active], weights[active]
        d = th[:, ga] - th[:, gb]
        p = expit(d)
        grad = -(inc_t @ (w * (gs - p)).T).T + reg * th
        hess = (curvature_t @ (w * p * (1.0 - p)).T).T.reshape(-1, m, m) + ridge
        idx = np.arange(m)
        hess[:, idx, idx] += ~played[active]
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        decrement = np.einsum("ij,ij->i", grad, step)
        new, new_value, t, small, failed = backtrack(th, step, decrement, value[active],
                                                     lambda rows, params, w=w: objective(params, w[rows]))
        keep = ~failed
        theta[active[keep]] = new[keep]
        value[active[keep]] = new_value[keep]
        moved = np.abs(t[:, None] * step).max(axis=1)
        done = small | failed | (moved < 1e-11)
        active = active[~done]
        if not len(active):
            break
    theta[~played] = np.nan
    return theta


def _logits_to_ratings(theta: np.ndarray, c: float, init: float, models: pd.Index, anchor: str | None):
    ratings = theta / c
    if anchor is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a round in which every battle weighs 0
            centre = np.nanmean(ratings, axis=1, keepdims=True)
    else:
        centre = ratings[:, [models.get_loc(anchor)]]
    return ratings - centre + init


def _check_anchor(anchor: str | None, models: pd.Index) -> None:
    if anchor is not None and anchor not in models:
        raise ValueError(f"anchor model {anchor!r} has no battles (models: {', '.join(models)})")


def bradley_terry(
    battles: pd.DataFrame,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: str | None = None,
    reg: float = PRIOR_REG,
) -> pd.Series:
    """Bradley-Terry ratings by maximum likelihood; order of rows does not matter.

    Model: ``P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale))``; a tie is half a win each way;
    ``weight`` multiplies a row's log-likelihood. The fit runs on the de-duplicated outcome counts
    (:func:`battle_counts`), so 100k battles among 10 models is a 10-parameter problem on at most 270
    rows. ``reg`` adds ``reg / 2 * sum(theta ** 2)`` on the logit scale, a weak Gaussian prior around
    the mean rating (the default :data:`PRIOR_REG`: SD 2 logits, about one virtual tie per model
    against an average opponent). It keeps ratings finite and readable when a model won or lost every
    game or the comparison graph is split -- the data give such a gap no upper bound, so its size comes
    from the prior meeting the record and grows with it -- and moves a fit without separation by less
    than a rating point once each model has played a few hundred games (by a small fraction of the
    interval's width before that). ``reg=0`` is the plain MLE
    (FastChat's and arena-hard's), for data where it exists. Ratings are shifted so that ``anchor``
    sits at ``init`` or, with no anchor, so that their mean is ``init``. Returns ratings of every model,
    highest first.
    """
    c = _check_scale(scale, base)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    coded = _code(battles)
    _check_anchor(anchor, coded.models)
    m = len(coded.models)
    if m == 0:
        return _ranked(np.array([]), coded.models)
    keys, _, weight, _, _ = _group(coded, by_weight=False)
    ga, gb, gs = _key_parts(keys, m)
    theta = _fit_logits(ga, gb, gs, weight[None, :], m, reg)
    theta[np.isnan(theta)] = 0.0  # a model whose every battle has weight 0
    return _ranked(_logits_to_ratings(theta, c, init, coded.models, anchor)[0], coded.models)


def bootstrap_bradley_terry(
    battles: pd.DataFrame,
    rounds: int = 1000,
    seed: int = 0,
    by: str = "battle",
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: str | None = None,
    reg: float = PRIOR_REG,
) -> pd.DataFrame:
    """Fast bootstrap of :func:`bradley_terry`: reweights the outcome counts, never builds tables.

    ``by="battle"``: each round draws multinomial counts over the de-duplicated (a, b, outcome, weight)
    groups -- the same distribution as drawing rows with replacement, though not the same draws as
    :func:`bootstrap`. ``by="question"``: each round draws question_ids exactly as :func:`bootstrap`
    does and adds up the counts of the drawn questions, so it reproduces the reference resamples.
    All rounds are then fitted together. Rows = rounds, columns = models (sorted by name); a model
    with no games in a round is NaN there, and so is the whole round if ``anchor`` has none.
    """
    _check_bootstrap(rounds, by)
    c = _check_scale(scale, base)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    coded = _code(battles)
    _check_anchor(anchor, coded.models)
    n, m = len(coded.a), len(coded.models)
    if n == 0:
        raise ValueError("no battles to resample")
    keys, inverse, weight, row_counts, unit = _group(coded, by_weight=True)
    ga, gb, gs = _key_parts(keys, m)
    generators = _round_generators(seed, rounds)
    out = np.empty((rounds, m))
    if by == "battle":
        pvals = row_counts / n
        chunk = max(1, _CELLS // max(len(keys), m * m))
        for start in range(0, rounds, chunk):
            block = generators[start:start + chunk]
            counts = np.stack([g.multinomial(n, pvals) for g in block]).astype(float)
            theta = _fit_logits(ga, gb, gs, counts * unit, m, reg)
            out[start:start + len(block)] = _logits_to_ratings(theta, c, init, coded.models, anchor)
    else:
        questions = _questions(coded.table)
        q = questions.count
        per_question = sparse.csr_matrix(
            (coded.weight, (questions.codes, inverse)), shape=(q, len(keys))
        ).T.tocsr()  # groups x questions
        chunk = max(1, _CELLS // max(q, len(keys), m * m))
        for start in range(0, rounds, chunk):
            block = generators[start:start + chunk]
            picks = np.stack([np.bincount(g.integers(0, q, size=q), minlength=q) for g in block])
            weights = (per_question @ picks.T.astype(float)).T
            theta = _fit_logits(ga, gb, gs, np.ascontiguousarray(weights), m, reg)
            out[start:start + len(block)] = _logits_to_ratings(theta, c, init, coded.models, anchor)
    return _samples_frame(out, coded.models)
