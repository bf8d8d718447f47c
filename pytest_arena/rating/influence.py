"""How much each question (or battle) moves the Bradley-Terry ratings: the sandwich standard error.

The bootstrap (:mod:`.bootstrap`, :mod:`.paired`) is the project's interval; it costs hundreds of fits.
The sequential gates (:mod:`.sequential`) test after every round of questions and the power figures
(:mod:`.power`) extrapolate to other question counts, so they need a standard error from one fit: the
cluster-robust sandwich of the Bradley-Terry estimating equation. It is the first-order (infinitesimal
jackknife) version of the bootstrap by question: for a linear combination ``a`` of the ratings,
``sum_q (a . IF_q) ** 2`` is what the bootstrap variance tends to, and ``n / (n - 1)`` times it (CR1) is
the variance estimate used here.

The fit minimises ``sum_g w_g * loss_g(theta) + reg / 2 * |theta| ** 2``, so at the fit the per-question
score ``U_q = sum_{g in q} w_g (s_g - p_g) x_g`` (``x_g = e_a - e_b``) and the Hessian
``H = sum_g w_g p_g (1 - p_g) x_g x_g' + reg I`` give ``IF_q = J H^-1 (U_q - mean U)``, ``J`` the map from
logits to anchored ratings (mean at ``init``, or ``anchor`` at ``init``), in rating points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from .battles import _check_scale, _code, _group, _key_parts, _questions
from .bradley_terry import PRIOR_REG, _check_anchor, _fit_logits

CLUSTERS = ("question", "battle")


@dataclass(frozen=True)
class Influence:
    """A fit and each cluster's influence on it.

    ``ratings``: the Bradley-Terry ratings (as :func:`~.bradley_terry.bradley_terry` gives them), indexed
    by model name (sorted). ``values``: one row per cluster (question id, in order of first appearance,
    or battle row), one column per model: the cluster's centred influence on each rating, in points.
    """

    ratings: pd.Series
    values: pd.DataFrame

    @property
    def clusters(self) -> int:
        return len(self.values)

    def contrast(self, weights: dict[str, float]) -> pd.Series:
        """Per-cluster influence on ``sum(weights[m] * R_m)`` (e.g. ``{"a": 1, "b": -1}`` for R_a - R_b)."""
        missing = [m for m in weights if m not in self.values.columns]
        if missing:
            raise ValueError(f"no battles for model {missing[0]!r} (models: {', '.join(self.values.columns)})")
        out = sum(self.values[m] * w for m, w in weights.items())
        return pd.Series(out, index=self.values.index, dtype=float)


def rating_influence(
    battles: pd.DataFrame,
    by: str = "question",
    anchor: str | None = None,
    reg: float = PRIOR_REG,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
) -> Influence:
    """The fit of ``battles`` and each question's (``by="question"``) or battle row's (``"battle"``)
    influence on every rating (see the module docstring)."""
    if by not in CLUSTERS:
        raise ValueError(f"by must be one of {', '.join(CLUSTERS)}, got {by!r}")
    c = _check_scale(scale, base)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    coded = _code(battles)
    _check_anchor(anchor, coded.models)
    m, n = len(coded.models), len(coded.a)
    if n == 0:
        raise ValueError("no battles to rate")
    keys, _, weight, _, _ = _group(coded, by_weight=False)
    ga, gb, gs = _key_parts(keys, m)
    theta = _fit_logits(ga, gb, gs, weight[None, :], m, reg)[0]
    theta = np.nan_to_num(theta)  # a model whose every battle weighs 0 (as bradley_terry)
    p = expit(theta[coded.a] - theta[coded.b])
    residual = coded.weight * (coded.score - p)
    if by == "question":
        questions = _questions(coded.table)
        cluster, labels = questions.codes, pd.unique(coded.table["question_id"])
    else:
        cluster, labels = np.arange(n), coded.table.index
    k = len(labels)
    scores = np.zeros((k, m))
    np.add.at(scores, (cluster, coded.a), residual)
    np.add.at(scores, (cluster, coded.b), -residual)
    scores -= scores.mean(axis=0)
    curvature = coded.weight * p * (1.0 - p)
    hessian = np.zeros((m, m))
    np.add.at(hessian, (coded.a, coded.a), curvature)
    np.add.at(hessian, (coded.b, coded.b), curvature)
    np.add.at(hessian, (coded.a, coded.b), -curvature)
    np.add.at(hessian, (coded.b, coded.a), -curvature)
    hessian += reg * np.eye(m)
    if reg == 0:
        hessian += np.full((m, m), 1.0 / m)  # the free common shift, which no rating below depends on
    to_ratings = np.eye(m) - (np.full((m, m), 1.0 / m) if anchor is None
                              else np.outer(np.ones(m), np.eye(m)[coded.models.get_loc(anchor)]))
    influence = scores @ np.linalg.inv(hessian) @ to_ratings.T / c
    ratings = to_ratings @ theta / c + init
    return Influence(pd.Series(ratings, index=coded.models, name="rating"),
                     pd.DataFrame(influence, index=pd.Index(labels, name=by), columns=coded.models))


def clustered_se(values: pd.Series | np.ndarray, clusters: int | None = None) -> float:
    """The CR1 standard error from per-cluster influences: ``sqrt(n / (n - 1) * sum(IF ** 2))``.

    ``values`` are centred influences (as :class:`Influence` holds); ``clusters`` the count to correct
    for (default: their number). NaN with fewer than 2 clusters.
    """
    values = np.asarray(values, dtype=float)
    n = len(values) if clusters is None else clusters
    if n < 2:
        return float("nan")
    return float(np.sqrt(n / (n - 1) * np.sum(values ** 2)))
