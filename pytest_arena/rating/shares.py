"""Shares with honest intervals when the units are clustered (labels of one question are not independent).

Wilson's score interval at the effective sample size ``n / deff``, ``deff`` Kish's design effect of the
clusters (the linearised variance of the ratio estimator over clusters against the binomial variance),
never below 1. At a share of 0 or 1 it keeps its width, where a percentile bootstrap collapses to a
point; it needs no seed. Used by the judge audit (:mod:`.agreement`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm


@dataclass(frozen=True)
class Rate:
    """A share and its interval: ``hits`` of ``total`` (NaN estimate and bounds when ``total`` is 0)."""

    hits: int
    total: int
    estimate: float
    ci_lower: float
    ci_upper: float
    design_effect: float = 1.0  # of clustering by question; the interval is Wilson's at total / design_effect





def wilson_interval(share: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a binomial share observed on ``n`` trials (``n`` may be fractional:
    an effective sample size). NaN for ``n`` 0."""
    if n <= 0:
        return math.nan, math.nan
    z = float(norm.ppf((1 + level) / 2))
    z2n = z * z / n
    centre = (share + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(share * (1 - share) / n + z2n / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def design_effect(hits, clusters) -> float:
    """Kish's design effect of a share under clustering: the linearised variance of the ratio estimator
    sum(hits) / n over clusters, ``C / (C - 1) * sum_c (y_c - p * m_c)^2 / n^2``, against the binomial
    ``p (1 - p) / n``; at least 1 (and 1 when it cannot be measured: fewer than two clusters, or a share
    of 0 or 1, where every cluster is alike)."""
    hits = np.asarray(hits, dtype=float)
    n = hits.size
    codes, _ = pd.factorize(pd.Series(list(clusters), dtype=object), sort=False)
    count = codes.max() + 1 if n else 0
    p = hits.mean() if n else math.nan
    if count < 2 or not 0 < p < 1:
        return 1.0
    y, m = np.bincount(codes, hits, minlength=count), np.bincount(codes, minlength=count)
    variance = count / (count - 1) * float(np.sum((y - p * m) ** 2)) / n ** 2
    return max(1.0, variance / (p * (1 - p) / n))


def clustered_rate(hits, clusters, level: float = 0.95) -> Rate:
    """The share of ``hits`` (booleans) with Wilson's interval at the effective sample size n / deff."""
    hits = np.asarray(hits, dtype=bool)
    n = int(hits.size)
    if n == 0:
        return Rate(0, 0, math.nan, math.nan, math.nan)
    k = int(hits.sum())
    deff = design_effect(hits, clusters)
    lo, hi = wilson_interval(k / n, n / deff, level)
    return Rate(k, n, k / n, float(lo), float(hi), float(deff))
