"""Weighted logistic regression with soft labels, many bootstrap rounds at once, by damped Newton steps.

The shared solver of :mod:`.style_control` and :mod:`.length_control`. Row g of the design has the
label ``score[g]`` in [0, 1] (a tie is 0.5: half a win, as everywhere in :mod:`pytest_arena.rating`)
and weighs ``weights[r, g]`` in round r. Each round minimises the convex

    sum_g w * (s * softplus(-eta) + (1 - s) * softplus(eta)) + 1/2 * beta' Q beta,   eta = X beta,

with exact gradients and Hessians (batched small solves, as :func:`.bradley_terry._fit_logits`), each
step backtracking until the objective decreases.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .battles import _CELLS


def _objective(beta, design, score, weights, penalty):
    eta = np.einsum("rgp,rp->rg", design, beta) if design.ndim == 3 else beta @ design.T
    loss = weights * (score * np.logaddexp(0.0, -eta) + (1.0 - score) * np.logaddexp(0.0, eta))
    return loss.sum(axis=1) + 0.5 * np.einsum("rp,pq,rq->r", beta, penalty, beta), eta


def backtrack(start, step, decrement, value, objective_of):
    """One damped Newton step per round: halve each round's step until its objective falls by Armijo's
    margin (at most 60 halvings). ``objective_of(rows, params)`` is the objective of those rounds (a
    boolean mask, or every round) at ``params``. Returns the new parameters and objective values, the step
    sizes taken, the rounds whose Newton decrement was already negligible, and those that found no
    decrease (kept where they were). Shared with :func:`.bradley_terry._fit_logits`."""
    every = np.ones(len(start), dtype=bool)
    new = start - step
    new_value = objective_of(every, new)
    small = decrement <= 1e-12
    t = np.ones(len(start))
    failed = np.zeros(len(start), dtype=bool)
    for _ in range(60):
        bad = ~small & ~(new_value <= value - 1e-4 * t * decrement)
        if not bad.any():
            break
        t[bad] *= 0.5
        new[bad] = start[bad] - t[bad, None] * step[bad]
        new_value[bad] = objective_of(bad, new[bad])
    else:
        failed = bad
    return new, new_value, t, small, failed


def fit_logistic(
    design: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray,
    penalty: np.ndarray,
    hessian_extra: np.ndarray | None = None,
    pinned: np.ndarray | None = None,
    max_iter: int = 200,
) -> np.ndarray:
    """Coefficients ``(rounds, P)`` for each row of ``weights``.

    ``design`` is ``(G, P)`` shared by every round, or ``(rounds, G, P)``. ``penalty`` ``(P, P)`` is the
    quadratic prior, part of the objective. ``hessian_extra`` ``(P, P)`` is added to the Newton system
    only: it fixes a direction the objective does not depend on (the common shift of Bradley-Terry
    logits when there is no prior), which the gradient never moves, so the optimum is unchanged.
    ``pinned`` ``(rounds, P)`` marks coefficients held at 0 (a model without games in a round).
    """
    rounds, groups = weights.shape
    p = design.shape[-1]
    out = np.zeros((rounds, p))
    extra = np.zeros((p, p)) if hessian_extra is None else hessian_extra
    pinned = np.zeros((rounds, p), dtype=bool) if pinned is None else pinned
    per_round = design.ndim == 3
    chunk = max(1, _CELLS // max(1, groups * p))
    for start in range(0, rounds, chunk):
        sl = slice(start, start + chunk)
        block = design[sl] if per_round else design
        out[sl] = _newton(block, score, weights[sl], penalty, extra, pinned[sl], max_iter)
    return out


def _newton(design, score, weights, penalty, extra, pinned, max_iter):
    rounds = weights.shape[0]
    p = design.shape[-1]
    beta = np.zeros((rounds, p))
    value, _ = _objective(beta, design, score, weights, penalty)
    active = np.arange(rounds)
    idx = np.arange(p)
    for _ in range(max_iter):
        b, w, pin = beta[active], weights[active], pinned[active]
        x = design[active] if design.ndim == 3 else design
        _, eta = _objective(b, x, score, w, penalty)
        prob = expit(eta)
        residual = w * (prob - score)
        curvature = w * prob * (1.0 - prob)
        if x.ndim == 3:
            grad = np.einsum("rgp,rg->rp", x, residual)
            hess = np.matmul(np.swapaxes(x, 1, 2) * curvature[:, None, :], x)
        else:
            grad = residual @ x
            hess = np.matmul(x.T[None, :, :] * curvature[:, None, :], x)  # batched BLAS, not einsum
        grad = grad + b @ penalty
        grad[pin] = 0.0
        hess = hess + penalty + extra
        hess[:, idx, idx] += pin
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        decrement = np.einsum("rp,rp->r", grad, step)

        def objective_of(rows, params, x=x, w=w):
            return _objective(params, x[rows] if x.ndim == 3 else x, score, w[rows], penalty)[0]

        new, new_value, t, small, failed = backtrack(b, step, decrement, value[active], objective_of)
        keep = ~failed
        beta[active[keep]] = new[keep]
        value[active[keep]] = new_value[keep]
        moved = np.abs(t[:, None] * step).max(axis=1) if p else np.zeros(len(active))
        done = small | failed | (moved < 1e-11)
        active = active[~done]
        if not len(active):
            break
    return beta
