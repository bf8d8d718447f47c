"""Style-controlled Bradley-Terry: the ratings with what length and markdown buy taken out.

The model (arena-hard-auto v2's ``show_result.py::print_leaderboard_with_style_features``, Chatbot
Arena's ``fit_contextual_bt`` in FastChat's ``fastchat/serve/monitor/rating_systems.py``) is a logistic
regression over battles on the model indicators plus style covariates:

    P(a beats b) = expit(c * (R_a - R_b) + sum_k gamma_k * z_k),     c = ln(base) / scale,

a tie counting as half a win each way (both references fit the tie as the label 0.5), ``weight``
multiplying a row's log-likelihood (a row of weight 3 is three rows: arena-hard repeats a strong verdict
three times). ``R`` are the style-controlled ratings, on the scale and anchor of :func:`.bradley_terry`
(``anchor`` at ``init``, else mean ``init``) with the same weak prior ``reg`` (here on every
coefficient); ``gamma`` is what one unit of each covariate buys, in logits.

**Covariates**, from the per-answer features ``<feature>_a`` / ``<feature>_b`` of each battle
(:mod:`.style_features`): ``control="length"`` uses the length only, ``control="style"`` the length and
the three markdown features (headers, list items, bold). Each is a normalised difference between the
two answers, then divided by its standard deviation over the battles:

* ``markdown="density"`` (the default, arena-hard-auto): length ``(a - b) / (a + b)`` (0 when both are
  0); each markdown feature as a density (count per length unit), ``(a - b) / (a + b + 1)`` -- the
  ``+ 1`` is arena-hard's and makes the value 0 when neither answer has any; standard deviations with
  ``n - 1`` (``torch.std``).
* ``markdown="count"`` (FastChat's ``preprocess_for_style``): raw counts and the length alike,
  ``(a - b) / (a + b + 1)`` (its ``add_one``); standard deviations with ``n`` (``np.std``).

**Centring.** Both references also subtract each covariate's mean (``centre=True`` does so). Then the
ratings are the preference at the *average* style difference of the data, not at equal style, and they
change when a battle's two sides are listed the other way round: when every battle lists the candidate
first and its answers are always longer (a two-model ``beats`` gate on a padded fine-tune), the mean
absorbs exactly the length advantage the control is meant to remove. The default ``centre=False``
divides by the standard deviation about zero instead, so the ratings are the preference at equal style
and do not depend on which side a battle lists first; on data listed both ways equally (swapped pairs),
the two coincide exactly. Covariates are standardised once on the full data, as both references do, so
a bootstrap round's coefficients keep the units of the full fit. A covariate that is constant (0 in
every battle: equal answers) is left out and its coefficient reported as 0, so data without style
differences give exactly :func:`.bradley_terry`'s ratings, and the bootstrap its samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ._logistic import fit_logistic
from .battles import (_CELLS, _check_bootstrap, _check_scale, _code, _group, _questions, _ranked, _round_generators,
                      _samples_frame)
from .bradley_terry import PRIOR_REG, _check_anchor, _logits_to_ratings, bootstrap_bradley_terry, bradley_terry
from .style_features import STYLE_FEATURES

CONTROLS = ("none", "length", "style")
MARKDOWN = ("density", "count")
COVARIATES = {"none": (), "length": ("length",), "style": STYLE_FEATURES}
_DDOF = {"density": 1, "count": 0}


@dataclass(frozen=True)
class StyleFit:
    """A style-controlled fit: ``ratings`` (as :func:`.bradley_terry`, highest first), ``coefficients``
    (gamma per covariate, logits per standard deviation; 0 for a covariate left out) and ``scales`` (each
    covariate's standard deviation, the unit of its coefficient; 0 where it was left out)."""

    ratings: pd.Series
    coefficients: pd.Series
    scales: pd.Series
    logit_per_point: float

    @property
    def coefficient_points(self) -> pd.Series:
        """The coefficients in rating points: what one standard deviation of each covariate is worth."""
        return self.coefficients / self.logit_per_point


@dataclass(frozen=True)
class StyleSamples:
    """Bootstrap rounds: ``ratings`` (rounds x models, as :func:`.bootstrap_bradley_terry`) and
    ``coefficients`` (rounds x covariates, logits)."""

    ratings: pd.DataFrame
    coefficients: pd.DataFrame


def _check_options(control: str, markdown: str) -> None:
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {', '.join(CONTROLS)}, got {control!r}")
    if markdown not in MARKDOWN:
        raise ValueError(f"markdown must be one of {', '.join(MARKDOWN)}, got {markdown!r}")


def _feature_values(battles: pd.DataFrame, feature: str) -> tuple[np.ndarray, np.ndarray]:
    values = []
    for side in ("a", "b"):
        column = f"{feature}_{side}"
        if column not in battles.columns:
            raise ValueError(f"style control needs a {column} column (see rating.style_features.add_style_columns)")
        v = pd.to_numeric(battles[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if not np.all(np.isfinite(v) & (v >= 0)):
            raise ValueError(f"{column} must be a finite number >= 0 in every row")
        values.append(v)
    return values[0], values[1]


def _ratio(a: np.ndarray, b: np.ndarray, add: float) -> np.ndarray:
    total = a + b + add
    return np.divide(a - b, total, out=np.zeros_like(a), where=total > 0)


def normalised_differences(battles: pd.DataFrame, control: str = "style", markdown: str = "density") -> pd.DataFrame:
    """Each battle's normalised style differences (a minus b), before standardising; one column per covariate."""
    _check_options(control, markdown)
    columns = {}
    length_a, length_b = _feature_values(battles, "length") if control != "none" else (None, None)
    for feature in COVARIATES[control]:
        if feature == "length":
            columns[feature] = _ratio(length_a, length_b, 0.0 if markdown == "density" else 1.0)
            continue
        a, b = _feature_values(battles, feature)
        if markdown == "density":
            a = np.divide(a, length_a, out=np.zeros_like(a), where=length_a > 0)
            b = np.divide(b, length_b, out=np.zeros_like(b), where=length_b > 0)
        columns[feature] = _ratio(a, b, 1.0)
    return pd.DataFrame(columns, index=battles.index, columns=list(COVARIATES[control]))


def style_covariates(
    battles: pd.DataFrame, control: str = "style", markdown: str = "density", centre: bool = False
) -> tuple[pd.DataFrame, pd.Series]:
    """The standardised covariates of each battle and each covariate's standard deviation.

    Weights count as repeated rows. A covariate whose standard deviation is 0 (up to rounding) is all 0.
    """
    table = battles if "weight" in battles.columns else battles.assign(weight=1.0)
    diffs = normalised_differences(table, control, markdown)
    weight = pd.to_numeric(table["weight"], errors="coerce").to_numpy(dtype=float)
    total = weight.sum()
    dof = total - _DDOF[markdown]
    z, scales = {}, {}
    for name in diffs.columns:
        d = diffs[name].to_numpy(dtype=float)
        mean = (weight @ d) / total if centre and total > 0 else 0.0
        spread = np.sqrt(max(weight @ (d - mean) ** 2, 0.0) / dof) if dof > 0 else 0.0
        if not spread > 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0))):
            spread = 0.0
        scales[name] = spread
        z[name] = (d - mean) / spread if spread else np.zeros_like(d)
    return (pd.DataFrame(z, index=battles.index, columns=list(diffs.columns)),
            pd.Series(scales, index=list(diffs.columns), dtype=float, name="scale"))


@dataclass(frozen=True)
class _Problem:
    """Battles as unique design rows: ``inverse`` maps each battle to its row of ``design``."""

    coded: object
    design: np.ndarray
    score: np.ndarray
    inverse: np.ndarray
    used: list
    names: list
    scales: pd.Series


def _problem(battles, control, markdown, centre) -> _Problem:
    coded = _code(battles)
    z, scales = style_covariates(coded.table, control, markdown, centre)
    used = [name for name in z.columns if scales[name] > 0]
    m, n = len(coded.models), len(coded.a)
    rows = np.zeros((n, m + len(used) + 1))
    rows[np.arange(n), coded.a] = 1.0
    rows[np.arange(n), coded.b] = -1.0
    rows[:, m:-1] = z[used].to_numpy(dtype=float)
    rows[:, -1] = coded.score
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)  # battles alike in everything fit as one
    return _Problem(coded, unique[:, :-1], unique[:, -1], inverse.reshape(-1), used, list(z.columns), scales)


def _solve(problem: _Problem, weights: np.ndarray, reg: float, c: float, init: float, anchor, missing=np.nan):
    """Ratings (rounds x models) and coefficients (rounds x covariates) for group weights (rounds x groups).

    A model without games in a round is held at logit 0 and reported as ``missing`` there (NaN in a
    bootstrap round; the full fit keeps the 0, as :func:`.bradley_terry` does)."""
    m = len(problem.coded.models)
    k = len(problem.used)
    model_rows = problem.design[:, :m]
    played = (weights @ np.abs(model_rows)) > 0
    pinned = np.concatenate([~played, np.zeros((len(weights), k), dtype=bool)], axis=1)
    penalty = reg * np.eye(m + k)
    extra = None
    if reg == 0:
        extra = np.zeros((m + k, m + k))
        extra[:m, :m] = 1.0 / m  # the common shift of the logits, which no battle sees
    beta = fit_logistic(problem.design, problem.score, weights, penalty, extra, pinned)
    theta = beta[:, :m]
    theta[~played] = missing
    ratings = _logits_to_ratings(theta, c, init, problem.coded.models, anchor)
    coefficients = np.zeros((len(weights), len(problem.names)))
    for j, name in enumerate(problem.used):
        coefficients[:, problem.names.index(name)] = beta[:, m + j]
    return ratings, coefficients


def _group_weights(problem: _Problem, row_weights: np.ndarray) -> np.ndarray:
    n = len(problem.inverse)
    to_groups = sparse.csr_matrix((np.ones(n), (np.arange(n), problem.inverse)), shape=(n, len(problem.score)))
    return np.asarray((to_groups.T @ row_weights.T).T)


def style_bradley_terry(
    battles: pd.DataFrame,
    control: str = "style",
    markdown: str = "density",
    centre: bool = False,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: str | None = None,
    reg: float = PRIOR_REG,
) -> StyleFit:
    """Style-controlled Bradley-Terry ratings and what each covariate buys (see the module docstring).

    ``control="none"`` is :func:`.bradley_terry` itself, with no coefficients. The battles table needs
    ``length_a``/``length_b`` for ``length`` and also ``headers``, ``list_items`` and ``bold`` (``_a``,
    ``_b``) for ``style``.
    """
    _check_options(control, markdown)
    c = _check_scale(scale, base)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    if control == "none":
        ratings = bradley_terry(battles, scale=scale, base=base, init=init, anchor=anchor, reg=reg)
        empty = pd.Series([], dtype=float, name="coefficient")
        return StyleFit(ratings, empty, empty.rename("scale"), c)
    problem = _problem(battles, control, markdown, centre)
    models = problem.coded.models
    _check_anchor(anchor, models)
    if not len(models):
        raise ValueError("no battles to rate")
    weights = _group_weights(problem, problem.coded.weight[None, :])
    ratings, coefficients = _solve(problem, weights, reg, c, init, anchor, missing=0.0)
    return StyleFit(_ranked(ratings[0], models),
                    pd.Series(coefficients[0], index=problem.names, name="coefficient"),
                    problem.scales, c)


def bootstrap_style_bradley_terry(
    battles: pd.DataFrame,
    control: str = "style",
    rounds: int = 1000,
    seed: int = 0,
    by: str = "battle",
    markdown: str = "density",
    centre: bool = False,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: str | None = None,
    reg: float = PRIOR_REG,
) -> StyleSamples:
    """Bootstrap of :func:`style_bradley_terry`, resampling as :func:`.bootstrap_bradley_terry` does.

    Round r draws from the generator :func:`.bootstrap_bradley_terry` gives round r, with the same first
    draw: ``by="battle"`` the multinomial counts over its (a, b, outcome, weight) groups, each group's
    count then spread over the group's battles uniformly (one more draw, so every battle is drawn with
    probability 1/n, as rows drawn with replacement); ``by="question"`` the same question ids. Where the
    covariates are the same within each group (none at all: equal answers), every round equals
    :func:`.bootstrap_bradley_terry`'s. ``control="none"`` is that function, with no coefficients.
    """
    _check_options(control, markdown)
    _check_bootstrap(rounds, by)
    c = _check_scale(scale, base)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    if control == "none":
        samples = bootstrap_bradley_terry(battles, rounds=rounds, seed=seed, by=by, scale=scale, base=base,
                                          init=init, anchor=anchor, reg=reg)
        return StyleSamples(samples, pd.DataFrame(index=samples.index))
    problem = _problem(battles, control, markdown, centre)
    coded = problem.coded
    _check_anchor(anchor, coded.models)
    n = len(coded.a)
    if n == 0:
        raise ValueError("no battles to resample")
    generators = _round_generators(seed, rounds)
    questions = _questions(coded.table) if by == "question" else None
    ratings = np.empty((rounds, len(coded.models)))
    coefficients = np.empty((rounds, len(problem.names)))
    chunk = max(1, _CELLS // max(n, len(problem.score) * (len(coded.models) + len(problem.used))))
    for start in range(0, rounds, chunk):
        block = generators[start:start + chunk]
        if questions is None:
            row_counts = _battle_draws(coded, block)
        else:
            picks = np.stack([np.bincount(g.integers(0, questions.count, size=questions.count),
                                          minlength=questions.count) for g in block])
            row_counts = picks[:, questions.codes]
        weights = _group_weights(problem, row_counts * coded.weight[None, :])
        sl = slice(start, start + len(block))
        ratings[sl], coefficients[sl] = _solve(problem, weights, reg, c, init, anchor)
    frame = _samples_frame(ratings, coded.models)
    return StyleSamples(frame, pd.DataFrame(coefficients, index=frame.index, columns=problem.names))


def _battle_draws(coded, generators) -> np.ndarray:
    """How many times each battle is drawn in each round (rounds x battles)."""
    n = len(coded.a)
    _, inverse, _, group_rows, _ = _group(coded, by_weight=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.cumsum(group_rows) - group_rows
    pvals = group_rows / n
    out = np.zeros((len(generators), n))
    for r, g in enumerate(generators):
        counts = g.multinomial(n, pvals)  # exactly bootstrap_bradley_terry's draw for this round
        group = np.repeat(np.arange(len(group_rows)), counts)
        offset = np.floor(g.random(len(group)) * group_rows[group]).astype(np.int64)
        out[r] = np.bincount(order[starts[group] + offset], minlength=n)
    return out
