"""The reference bootstrap, which wraps any rating method, and summaries of bootstrap samples."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from .battles import _check_bootstrap, _code, _questions, _round_generators, _samples_frame


def bootstrap(
    battles: pd.DataFrame,
    rate: Callable[[pd.DataFrame], pd.Series],
    rounds: int = 1000,
    seed: int = 0,
    by: str = "battle",
) -> pd.DataFrame:
    """Reference bootstrap: apply ``rate`` to ``rounds`` resampled tables.

    ``by="battle"`` draws as many rows as the table has, with replacement, in drawn order;
    ``by="question"`` draws as many question_ids as there are, with replacement, and takes all rows of
    each drawn question (in table order), so a question's battles stay together. Returns one row per
    round and one column per model (sorted by name); a model absent from a resample is NaN there.
    """
    _check_bootstrap(rounds, by)
    coded = _code(battles)
    table = coded.table.reset_index(drop=True)
    n = len(table)
    if n == 0:
        raise ValueError("no battles to resample")
    questions = _questions(table) if by == "question" else None
    results = []
    for rng in _round_generators(seed, rounds):
        if questions is None:
            rows = rng.integers(0, n, size=n)
        else:
            rows = questions.rows(rng.integers(0, questions.count, size=questions.count))
        results.append(rate(table.iloc[rows].reset_index(drop=True)))
    values = pd.DataFrame([s.to_dict() for s in results], columns=coded.models).to_numpy(dtype=float)
    return _samples_frame(values.reshape(rounds, len(coded.models)), coded.models)


def confidence_intervals(samples: pd.DataFrame | pd.Series, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals of bootstrap samples, one row per column of ``samples``.

    Columns ``ci_lower`` and ``ci_upper`` are the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
    (2.5% and 97.5% for 0.95, linear interpolation, NaN rounds skipped; NaN if there are none).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    if isinstance(samples, pd.Series):
        samples = samples.to_frame()
    lo, hi = (1 - level) / 2, (1 + level) / 2
    values = samples.to_numpy(dtype=float)
    if len(values):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column that is NaN in every round
            bounds = np.nanquantile(values, [lo, hi], axis=0)
    else:
        bounds = np.full((2, values.shape[1]), np.nan)
    index = pd.Index(samples.columns, name="model")
    return pd.DataFrame({"ci_lower": bounds[0], "ci_upper": bounds[1]}, index=index)


def rating_intervals(
    samples: pd.DataFrame, estimate: pd.Series, level: float = 0.95, centre: str = "estimate"
) -> pd.DataFrame:
    """Each model's reported rating and 95% interval, the rating inside its interval by construction.

    ``centre="estimate"``: the rating is ``estimate`` (the full-data fit, e.g. Bradley-Terry) and the
    interval is the percentile interval of ``samples``, widened where needed to reach it (a percentile
    interval can miss the full-data estimate when the bootstrap distribution is skewed, e.g. near a
    perfect record; widening never narrows it). ``centre="median"``: the rating is the samples' median
    and the interval their percentiles -- FastChat's way of reporting online Elo, whose full-data value
    depends on the order of the battles and can sit outside the bootstrap interval. A model with no
    finite sample keeps ``estimate`` with a zero-width interval. Columns ``rating``, ``ci_lower``,
    ``ci_upper``; index ``estimate``'s.
    """
    if centre not in ("estimate", "median"):
        raise ValueError(f"centre must be 'estimate' or 'median', got {centre!r}")
    intervals = confidence_intervals(samples, level=level).reindex(estimate.index)
    point = estimate.astype(float)
    if centre == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column that is NaN in every round
            median = pd.Series(np.nanmedian(samples.to_numpy(dtype=float), axis=0), index=samples.columns)
        point = median.reindex(point.index).fillna(point)
    lower = np.fmin(intervals["ci_lower"].fillna(point), point)
    upper = np.fmax(intervals["ci_upper"].fillna(point), point)
    return pd.DataFrame({"rating": point, "ci_lower": lower, "ci_upper": upper}, index=estimate.index)


def difference_samples(samples: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Per-round ``R_a - R_b`` from joint bootstrap samples (same rounds), for "a beats b" checks."""
    for model in (a, b):
        if model not in samples.columns:
            raise ValueError(f"no bootstrap samples for model {model!r}")
    return (samples[a] - samples[b]).rename(f"{a} - {b}")
