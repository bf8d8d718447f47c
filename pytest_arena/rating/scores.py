"""Single-answer scores: each model's mean score with a bootstrap interval over questions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .battles import _CELLS, _check_bootstrap, _questions, _round_generators, _samples_frame
from .bootstrap import rating_intervals


def _score_table(scores: pd.DataFrame):
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in ("model", "question_id", "score") if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks column(s) {', '.join(missing)}")
    value = pd.to_numeric(scores["score"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(value).all():
        raise ValueError("score must be a finite number in every row; drop parse failures before rating")
    names = scores["model"].to_numpy(dtype=object)
    if not all(isinstance(x, str) for x in names):
        raise ValueError("model must hold model names (str)")
    weight = np.ones(len(value))
    if "weight" in scores.columns:
        weight = pd.to_numeric(scores["weight"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if not np.all(np.isfinite(weight) & (weight >= 0)):
            raise ValueError("weight must be a finite number >= 0 in every row")
    models = pd.Index(sorted(set(names)), dtype=object, name="model")
    model = models.get_indexer(names)
    questions = _questions(scores)
    q, m = questions.count, len(models)
    flat = model * q + questions.codes
    totals = np.bincount(flat, value * weight, minlength=m * q).reshape(m, q)
    counts = np.bincount(flat, weight, minlength=m * q).reshape(m, q)
    rows = np.bincount(model, minlength=m)
    return models, totals, counts, rows


def mean_score_samples(scores: pd.DataFrame, rounds: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Bootstrap samples of each model's mean score, resampling questions (shared by all models).

    ``scores`` has columns ``model``, ``question_id``, ``score`` and optionally ``weight`` (how many
    scores the row counts for; default 1). Each round draws as many question_ids as there are, with
    replacement, and averages each model's scores over the drawn questions (with their multiplicity),
    so rounds are paired across models and :func:`difference_samples` applies.
    Rows = rounds, columns = models (sorted by name); NaN where a model answered none of the drawn
    questions.
    """
    _check_bootstrap(rounds, "question")
    models, totals, counts, _ = _score_table(scores)
    q = totals.shape[1]
    if q == 0:
        raise ValueError("no scores to resample")
    out = np.empty((rounds, len(models)))
    generators = _round_generators(seed, rounds)
    chunk = max(1, _CELLS // q)
    for start in range(0, rounds, chunk):
        block = generators[start:start + chunk]
        picks = np.stack([np.bincount(g.integers(0, q, size=q), minlength=q) for g in block]).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + len(block)] = (picks @ totals.T) / (picks @ counts.T)
    return _samples_frame(out, models)


def mean_scores(scores: pd.DataFrame, rounds: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Mean score per model (sorted by name) with a bootstrap interval over questions.

    Columns ``mean`` (weighted by ``weight`` when given), ``ci_lower``, ``ci_upper``, ``scores`` (number
    of rows). See :func:`mean_score_samples` for the resampling; the interval is the percentile one,
    widened where needed so that it holds the mean (:func:`rating_intervals`).
    """
    models, totals, counts, rows = _score_table(scores)
    samples = mean_score_samples(scores, rounds=rounds, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = pd.Series(totals.sum(axis=1) / counts.sum(axis=1), index=models)
    frame = pd.DataFrame({"mean": mean, "scores": rows}, index=models)
    intervals = rating_intervals(samples, mean, level=level)[["ci_lower", "ci_upper"]]
    return frame.join(intervals)[["mean", "ci_lower", "ci_upper", "scores"]]
