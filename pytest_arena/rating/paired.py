"""Paired comparisons for the regression gates: the same questions, the same resample for both sides.

``max_drop`` compares a model's rating in this run with its rating in the stored baseline run;
``beats`` compares two models of this run. Both sides answered the same questions, and questions differ
a lot (some suit one model, some are hard for it): a question that helped the model in the baseline run
helps it again now. Resampling each side's questions independently, as two separate intervals do,
counts that question-to-question spread twice instead of letting it cancel.

**The method: a paired bootstrap by question** (Efron & Tibshirani 1993, *An Introduction to the
Bootstrap*, ch. 6 and 14: resample the experimental units, here questions, and keep every measurement of
a unit together). Each round draws one multiset of question ids, with replacement, from the union of the
questions either side judged, and refits Bradley-Terry on *each* side's battles of exactly those
questions: the rating difference of the round is ``R_candidate(model) - R_baseline(model)`` (or
``R(model) - R(other)`` for ``beats``). The interval is the 2.5/97.5 percentile interval of the rounds,
widened to reach the full-data difference (as the report's intervals, ``rating.rating_intervals``).

Why this and not a paired test on per-question outcomes (a sign test or a t-test on each question's
score change): the gates' thresholds are in rating points and the report shows Bradley-Terry ratings;
the paired bootstrap gives the interval of that very number, for any mode (all pairs, against a
baseline model), any battle weights and ties, and any anchoring, with the percentile method the report
already uses -- only the resampling is shared. A question judged by one side only still counts (it is
drawn for both; the other side simply has no battles there), so with no question in common the
interval is the unpaired bootstrap's. For one run, the draws are exactly
``bootstrap_bradley_terry(by="question")``'s for the same seed, whatever the report's ``bootstrap_by``.

The sequential gates need a standard error after every round without a bootstrap each time:
:func:`change_look`, :func:`difference_look` and :func:`rating_look` give the estimate and its
question-clustered sandwich standard error (:mod:`.influence`) on the questions judged so far.

Inputs are battles tables (see :mod:`pytest_arena.rating`) with a ``question_id`` column naming the
same question the same way on both sides; :func:`battles_from_verdicts` builds the baseline's from the
records of ``<baseline stem>.verdicts.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from .battles import _CELLS, WINNERS, _check_bootstrap, _check_scale, _code, _group, _key_parts, _round_generators
from .bootstrap import confidence_intervals
from .bradley_terry import PRIOR_REG, _check_anchor, _fit_logits, _logits_to_ratings, bradley_terry
from .influence import Influence, clustered_se, rating_influence
from .style_features import STYLE_FEATURES


@dataclass(frozen=True)
class PairedInterval:
    """A paired difference (rating points) and its interval."""

    estimate: float  # the full-data difference
    ci_lower: float
    ci_upper: float
    questions: int  # questions resampled (either side judged them)
    shared: int  # questions both sides judged: what the pairing works on
    rounds: int
    level: float = 0.95
    reference: float | None = None  # paired_change: the baseline side's full-data rating (the change's start)

    def below(self, bound: float) -> bool:
        """Significantly below ``bound``: the whole interval lies under it (how beats/max_drop fail)."""
        return self.ci_upper < bound


@dataclass(frozen=True)
class Look:
    """A gate's statistic after a round: the estimate on the questions judged so far and its standard error."""

    questions: int
    estimate: float
    se: float


# --------------------------------------------------------------------------------------------------
# The paired bootstrap


def paired_samples(
    runs: Sequence[pd.DataFrame],
    rounds: int = 1000,
    seed: int = 0,
    anchor: str | None = None,
    reg: float = PRIOR_REG,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    draws: np.ndarray | None = None,
    control: str = "none",
) -> list[pd.DataFrame]:
    """Bootstrap rounds of Bradley-Terry on every run, each round drawing the same questions for all.

    The questions are the union of the runs' ``question_id`` values, in order of first appearance (the
    first run's, then the new ones of the next...); round ``r`` draws as many of them as there are, with
    replacement, from its own generator (``SeedSequence(seed)``'s r-th child, as every bootstrap here),
    and each run is refitted on its battles of the drawn questions. ``draws`` (rounds x questions, in
    that order: how often each question is drawn) replaces the seeded draws, e.g. to enumerate every
    resample of a small set. Returns, per run, rounds x models (its own models, sorted), NaN where a
    model has no battle in a round's draw.

    ``control`` ``"length"`` / ``"style"`` refits each run with the style-controlled fit instead
    (:func:`.style_bradley_terry`, its defaults: arena-hard's density, not centred), each run's covariates
    standardised once on its own full data, as :func:`.bootstrap_style_bradley_terry` does; the runs then
    need the ``length_a``/``length_b`` (and, for ``style``, markdown) columns. ``"none"`` is the raw fit.
    """
    if draws is None:
        _check_bootstrap(rounds, "question")
    c = _check_scale(scale, base)
    if not runs:
        raise ValueError("no runs to resample")
    coded = [_code(run) for run in runs]
    for run in coded:
        _check_anchor(anchor, run.models)
        if len(run.a) == 0:
            raise ValueError("no battles to resample")
        if "question_id" not in run.table.columns or run.table["question_id"].isna().any():
            raise ValueError("a paired bootstrap needs a question_id in every row")
    labels = pd.unique(pd.concat([run.table["question_id"] for run in coded], ignore_index=True))
    index = pd.Index(labels)
    q = len(index)
    if draws is not None:
        picks = np.asarray(draws, dtype=float)
        if picks.ndim != 2 or picks.shape[1] != q or (picks < 0).any():
            raise ValueError(f"draws must be rounds x {q} counts >= 0 (one column per question)")
    else:
        # How often each question is drawn in each round (rounds x questions): the one draw all runs share.
        picks = np.zeros((rounds, q))
        for r, generator in enumerate(_round_generators(seed, rounds)):
            picks[r] = np.bincount(generator.integers(0, q, size=q), minlength=q)
    if control != "none":
        return [_style_rounds(run.table, index.get_indexer(run.table["question_id"]), picks, control, c, init,
                              anchor, reg) for run in coded]
    return [_fit_rounds(run, index.get_indexer(run.table["question_id"]), picks, c, init, anchor, reg)
            for run in coded]


def _fit_rounds(run, question_codes, picks, c, init, anchor, reg) -> pd.DataFrame:
    """One run's ratings in each round: its games weighted by how often their question was drawn."""
    m = len(run.models)
    keys, inverse, _, _, _ = _group(run, by_weight=False)
    ga, gb, gs = _key_parts(keys, m)
    per_question = sparse.csr_matrix((run.weight, (question_codes, inverse)),
                                     shape=(picks.shape[1], len(keys))).T.tocsr()  # groups x questions
    out = np.empty((len(picks), m))
    chunk = max(1, _CELLS // max(picks.shape[1], len(keys), m * m))
    for start in range(0, len(picks), chunk):
        weights = np.ascontiguousarray((per_question @ picks[start:start + chunk].T).T)
        theta = _fit_logits(ga, gb, gs, weights, m, reg)
        out[start:start + len(weights)] = _logits_to_ratings(theta, c, init, run.models, anchor)
    frame = pd.DataFrame(out, columns=run.models.copy())
    frame.index.name = "round"
    return frame


def _style_rounds(table, question_codes, picks, control, c, init, anchor, reg) -> pd.DataFrame:
    """One run's style-controlled ratings in each round: its battles weighted by how often their
    question was drawn (the covariates' scales are the full data's, as in the controlled bootstrap)."""
    from .style_control import _group_weights, _problem, _solve

    problem = _problem(table, control, "density", False)
    _check_anchor(anchor, problem.coded.models)
    per_battle = problem.coded.weight[None, :]
    chunk = max(1, _CELLS // max(len(problem.inverse), len(problem.score) * (len(problem.coded.models) + 4)))
    out = np.empty((len(picks), len(problem.coded.models)))
    for start in range(0, len(picks), chunk):
        weights = _group_weights(problem, picks[start:start + chunk][:, question_codes] * per_battle)
        out[start:start + len(weights)], _ = _solve(problem, weights, reg, c, init, anchor)
    frame = pd.DataFrame(out, columns=problem.coded.models.copy())
    frame.index.name = "round"
    return frame


def _point(battles, control, anchor, reg) -> pd.Series:
    """A side's full-data rating: raw Bradley-Terry, or the fit under ``control``."""
    if control == "none":
        return bradley_terry(battles, anchor=anchor, reg=reg)
    from .style_control import style_bradley_terry

    return style_bradley_terry(battles, control=control, anchor=anchor, reg=reg).ratings


def _interval(estimate: float, rounds: pd.Series, questions: int, shared: int, level: float,
              reference: float | None = None) -> PairedInterval:
    bounds = confidence_intervals(rounds, level=level).iloc[0]
    lower, upper = float(bounds["ci_lower"]), float(bounds["ci_upper"])
    # Widened to reach the point, as the report's intervals are (a skewed bootstrap can miss it).
    lower = estimate if lower != lower else min(lower, estimate)
    upper = estimate if upper != upper else max(upper, estimate)
    return PairedInterval(estimate, lower, upper, questions, shared, len(rounds), level, reference)


def paired_change(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    model: str,
    rounds: int = 1000,
    seed: int = 0,
    anchor: str | None = None,
    level: float = 0.95,
    reg: float = PRIOR_REG,
    control: str = "none",
) -> PairedInterval:
    """``R_candidate(model) - R_baseline(model)`` with its paired bootstrap interval (for max_drop).

    Each side's rating is its own full-data fit (``bradley_terry(side, anchor=anchor)``, or under a style
    ``control`` ``style_bradley_terry``: both sides then need their style columns), as each run's
    report shows it; ``anchor`` (the baseline model of pairwise_baseline mode) must be in both.
    """
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        if model not in set(side["model_a"]) | set(side["model_b"]):
            raise ValueError(f"the {name} run has no battles of {model!r}")
    before = float(_point(baseline, control, anchor, reg)[model])
    now = float(_point(candidate, control, anchor, reg)[model])
    old, new = paired_samples([baseline, candidate], rounds=rounds, seed=seed, anchor=anchor, reg=reg,
                              control=control)
    questions = set(baseline["question_id"]) | set(candidate["question_id"])
    shared = set(baseline["question_id"]) & set(candidate["question_id"])
    return _interval(now - before, new[model] - old[model], len(questions), len(shared), level, before)


def paired_difference(
    battles: pd.DataFrame,
    model: str,
    other: str,
    rounds: int = 1000,
    seed: int = 0,
    anchor: str | None = None,
    level: float = 0.95,
    reg: float = PRIOR_REG,
    control: str = "none",
) -> PairedInterval:
    """``R(model) - R(other)`` within one run, questions resampled (for beats): both ratings of a round
    come from the same draw, whatever the report's ``bootstrap_by`` (under a style ``control``, the
    controlled fit's, as :func:`paired_change`)."""
    point = _point(battles, control, anchor, reg)
    for name in (model, other):
        if name not in point.index:
            raise ValueError(f"no battles of {name!r} in this run")
    (samples,) = paired_samples([battles], rounds=rounds, seed=seed, anchor=anchor, reg=reg, control=control)
    count = battles["question_id"].nunique()
    return _interval(float(point[model] - point[other]), samples[model] - samples[other], count, count, level)


# --------------------------------------------------------------------------------------------------
# The sequential gates' statistics (one fit each; see .influence)


# Under a style control the looks are the controlled fit's, with the sandwich of its estimating equation
# (style_influence). That is as sound with the group-sequential boundaries as the raw looks: what the
# error-spending design needs is that the standardised statistics of the successive looks behave as a
# Brownian motion in information time, which holds for the Wald statistic of any regular M-estimator
# fitted to accumulating independent clusters (Scharfstein, Tsiatis & Robins 1997, JASA 92:1342;
# Jennison & Turnbull 2000, ch. 11) -- a logistic regression with covariates as much as Bradley-Terry.
# The covariates are standardised again at each look; that rescales only their own coefficients (the
# model ratings move through the weak prior alone, by far less than a standard error).


def _influence(battles, control, anchor, reg) -> Influence:
    return rating_influence(battles, anchor=anchor, reg=reg) if control == "none" else \
        style_influence(battles, control, anchor=anchor, reg=reg)


def style_influence(battles: pd.DataFrame, control: str = "length", anchor: str | None = None,
                    reg: float = PRIOR_REG, scale: float = 400.0, base: float = 10.0,
                    init: float = 1000.0) -> Influence:
    """As :func:`.rating_influence` (by question) for the style-controlled fit (``style_bradley_terry``'s
    defaults): each question's centred influence on every controlled rating, from the score
    ``U_q = sum_{i in q} w_i (s_i - p_i) x_i`` and the Hessian of the full design (models and covariates)."""
    from ._logistic import fit_logistic
    from .style_control import _group_weights, _problem

    c = _check_scale(scale, base)
    problem = _problem(battles, control, "density", False)
    coded = problem.coded
    _check_anchor(anchor, coded.models)
    m, n = len(coded.models), len(coded.a)
    if n == 0:
        raise ValueError("no battles to rate")
    size = problem.design.shape[1]
    extra = None
    if reg == 0:
        extra = np.zeros((size, size))
        extra[:m, :m] = 1.0 / m  # the common shift of the logits, which no battle sees
    beta = fit_logistic(problem.design, problem.score, _group_weights(problem, coded.weight[None, :]),
                        reg * np.eye(size), extra)[0]
    rows = problem.design[problem.inverse]  # each battle's design row
    p = expit(rows @ beta)
    residual = coded.weight * (coded.score - p)
    codes, labels = pd.factorize(coded.table["question_id"], sort=False)
    scores = np.zeros((len(labels), size))
    np.add.at(scores, codes, residual[:, None] * rows)
    scores -= scores.mean(axis=0)
    hessian = (rows * (coded.weight * p * (1.0 - p))[:, None]).T @ rows + reg * np.eye(size)
    if extra is not None:
        hessian += extra
    to_ratings = np.eye(m) - (np.full((m, m), 1.0 / m) if anchor is None
                              else np.outer(np.ones(m), np.eye(m)[coded.models.get_loc(anchor)]))
    influence = (scores @ np.linalg.inv(hessian))[:, :m] @ to_ratings.T / c
    ratings = to_ratings @ beta[:m] / c + init
    return Influence(pd.Series(ratings, index=coded.models, name="rating"),
                     pd.DataFrame(influence, index=pd.Index(labels, name="question"), columns=coded.models))


def change_look(baseline: pd.DataFrame, candidate: pd.DataFrame, model: str, anchor: str | None = None,
                reg: float = PRIOR_REG, control: str = "none") -> Look:
    """max_drop after a round: the change of ``model`` on the questions the candidate has judged so far
    (the baseline restricted to the same questions) and its paired standard error (under a style
    ``control``: of the controlled fits, both sides with their style columns)."""
    asked = set(candidate["question_id"])
    before_side = baseline[baseline["question_id"].isin(asked)]
    if before_side.empty:
        raise ValueError("the baseline run judged none of the candidate's questions")
    old = _influence(before_side, control, anchor, reg)
    new = _influence(candidate, control, anchor, reg)
    for name, fit in (("baseline", old), ("candidate", new)):
        if model not in fit.ratings.index:
            raise ValueError(f"the {name} run has no battles of {model!r} on these questions")
    joined = pd.concat([new.values[model].rename("new"), old.values[model].rename("old")], axis=1).fillna(0.0)
    change = float(new.ratings[model] - old.ratings[model])
    return Look(len(joined), change, clustered_se(joined["new"] - joined["old"]))


def difference_look(battles: pd.DataFrame, model: str, other: str, anchor: str | None = None,
                    reg: float = PRIOR_REG, control: str = "none") -> Look:
    """beats after a round: ``R(model) - R(other)`` on the battles so far and its standard error."""
    fit = _influence(battles, control, anchor, reg)
    values = fit.contrast({model: 1.0, other: -1.0})
    return Look(fit.clusters, float(fit.ratings[model] - fit.ratings[other]), clustered_se(values))


def rating_look(battles: pd.DataFrame, model: str, anchor: str | None = None, reg: float = PRIOR_REG,
                control: str = "none") -> Look:
    """min_elo (min_rating) after a round: the model's rating so far and its standard error."""
    fit = _influence(battles, control, anchor, reg)
    return Look(fit.clusters, float(fit.ratings[model]), clustered_se(fit.contrast({model: 1.0})))


def mean_look(per_question: pd.Series | Sequence[float]) -> Look:
    """min_win_rate / min_score after a round: the mean of one value per question judged (the model's
    win rate or score on that question) and its standard error."""
    values = np.asarray(per_question, dtype=float)
    if len(values) == 0:
        raise ValueError("no questions judged")
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return Look(len(values), float(values.mean()), se)


# --------------------------------------------------------------------------------------------------
# The baseline run's verdicts as battles


def battles_from_verdicts(records: Sequence[dict]) -> pd.DataFrame:
    """A battles table from the records of ``<baseline stem>.verdicts.jsonl`` (``flips.verdict_records``).

    One row per record with a pairwise verdict (``win`` of ``model_a``/``model_b``/``tie``); a record
    that carries ``games`` (``[[winner, weight], ...]``, as ``Judgment.games``) gives those rows
    instead. Scorings and records without a verdict are left out. ``question_id`` is
    ``"<question_set>/<question_id>"`` when the record names a set, else ``str(question_id)`` -- the
    key ``rating_table.question_key`` gives this run's battles -- so both sides name a question alike; the
    turns of a question (judge_turns each) stay one question. Where every battle's record carries its
    answers' style (``length_a``/``length_b``..., ``length_unit``), those columns come along.
    """
    battles = [r for r in records if "model_a" in r and "model_b" in r]
    # The style columns (a controlled paired gate's covariates) only where every battle has them: a
    # verdicts file written before they were stored has none, and is then rated raw.
    styled = bool(battles) and all("length_a" in r and "length_b" in r for r in battles)
    extra = [f"{f}_{side}" for f in STYLE_FEATURES for side in ("a", "b")] + ["length_unit"] if styled else []
    if styled and not all(c in r for r in battles for c in extra):
        extra = ["length_a", "length_b", "length_unit"]  # (lengths only: enough for length control)
    rows = []
    for record in battles:
        games = record.get("games")
        pairs = [(w, float(x)) for w, x in games] if games else [(record.get("win"), 1.0)]
        key = (f"{record['question_set']}/{record['question_id']}" if record.get("question_set")
               else str(record.get("question_id")))
        style = tuple(record.get(c, "characters") for c in extra)
        rows += [(record["model_a"], record["model_b"], w, x, key, *style) for w, x in pairs if w in WINNERS]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id", *extra])
