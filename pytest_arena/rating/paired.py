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

from .battles import _CELLS, WINNERS, _check_bootstrap, _check_scale, _code, _group, _key_parts, _round_generators
from .bootstrap import confidence_intervals
from .bradley_terry import PRIOR_REG, _check_anchor, _fit_logits, _logits_to_ratings, bradley_terry
from .influence import clustered_se, rating_influence


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
) -> list[pd.DataFrame]:
    """Bootstrap rounds of Bradley-Terry on every run, each round drawing the same questions for all.

    The questions are the union of the runs' ``question_id`` values, in order of first appearance (the
    first run's, then the new ones of the next...); round ``r`` draws as many of them as there are, with
    replacement, from its own generator (``SeedSequence(seed)``'s r-th child, as every bootstrap here),
    and each run is refitted on its battles of the drawn questions. ``draws`` (rounds x questions, in
    that order: how often each question is drawn) replaces the seeded draws, e.g. to enumerate every
    resample of a small set. Returns, per run, rounds x models (its own models, sorted), NaN where a
    model has no battle in a round's draw.
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


def _interval(estimate: float, rounds: pd.Series, questions: int, shared: int, level: float) -> PairedInterval:
    bounds = confidence_intervals(rounds, level=level).iloc[0]
    lower, upper = float(bounds["ci_lower"]), float(bounds["ci_upper"])
    # Widened to reach the point, as the report's intervals are (a skewed bootstrap can miss it).
    lower = estimate if lower != lower else min(lower, estimate)
    upper = estimate if upper != upper else max(upper, estimate)
    return PairedInterval(estimate, lower, upper, questions, shared, len(rounds), level)


def paired_change(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    model: str,
    rounds: int = 1000,
    seed: int = 0,
    anchor: str | None = None,
    level: float = 0.95,
    reg: float = PRIOR_REG,
) -> PairedInterval:
    """``R_candidate(model) - R_baseline(model)`` with its paired bootstrap interval (for max_drop).

    Each side's rating is its own full-data fit (``bradley_terry(side, anchor=anchor)``), as each run's
    report shows it; ``anchor`` (the baseline model of pairwise_baseline mode) must be in both.
    """
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        if model not in set(side["model_a"]) | set(side["model_b"]):
            raise ValueError(f"the {name} run has no battles of {model!r}")
    before = float(bradley_terry(baseline, anchor=anchor, reg=reg)[model])
    now = float(bradley_terry(candidate, anchor=anchor, reg=reg)[model])
    old, new = paired_samples([baseline, candidate], rounds=rounds, seed=seed, anchor=anchor, reg=reg)
    questions = set(baseline["question_id"]) | set(candidate["question_id"])
    shared = set(baseline["question_id"]) & set(candidate["question_id"])
    return _interval(now - before, new[model] - old[model], len(questions), len(shared), level)


def paired_difference(
    battles: pd.DataFrame,
    model: str,
    other: str,
    rounds: int = 1000,
    seed: int = 0,
    anchor: str | None = None,
    level: float = 0.95,
    reg: float = PRIOR_REG,
) -> PairedInterval:
    """``R(model) - R(other)`` within one run, questions resampled (for beats): both ratings of a round
    come from the same draw, whatever the report's ``bootstrap_by``."""
    point = bradley_terry(battles, anchor=anchor, reg=reg)
    for name in (model, other):
        if name not in point.index:
            raise ValueError(f"no battles of {name!r} in this run")
    (samples,) = paired_samples([battles], rounds=rounds, seed=seed, anchor=anchor, reg=reg)
    count = battles["question_id"].nunique()
    return _interval(float(point[model] - point[other]), samples[model] - samples[other], count, count, level)


# --------------------------------------------------------------------------------------------------
# The sequential gates' statistics (one fit each; see .influence)


def change_look(baseline: pd.DataFrame, candidate: pd.DataFrame, model: str, anchor: str | None = None,
                reg: float = PRIOR_REG) -> Look:
    """max_drop after a round: the change of ``model`` on the questions the candidate has judged so far
    (the baseline restricted to the same questions) and its paired standard error."""
    asked = set(candidate["question_id"])
    before_side = baseline[baseline["question_id"].isin(asked)]
    if before_side.empty:
        raise ValueError("the baseline run judged none of the candidate's questions")
    old = rating_influence(before_side, anchor=anchor, reg=reg)
    new = rating_influence(candidate, anchor=anchor, reg=reg)
    for name, fit in (("baseline", old), ("candidate", new)):
        if model not in fit.ratings.index:
            raise ValueError(f"the {name} run has no battles of {model!r} on these questions")
    joined = pd.concat([new.values[model].rename("new"), old.values[model].rename("old")], axis=1).fillna(0.0)
    change = float(new.ratings[model] - old.ratings[model])
    return Look(len(joined), change, clustered_se(joined["new"] - joined["old"]))


def difference_look(battles: pd.DataFrame, model: str, other: str, anchor: str | None = None,
                    reg: float = PRIOR_REG) -> Look:
    """beats after a round: ``R(model) - R(other)`` on the battles so far and its standard error."""
    fit = rating_influence(battles, anchor=anchor, reg=reg)
    values = fit.contrast({model: 1.0, other: -1.0})
    return Look(fit.clusters, float(fit.ratings[model] - fit.ratings[other]), clustered_se(values))


def rating_look(battles: pd.DataFrame, model: str, anchor: str | None = None, reg: float = PRIOR_REG) -> Look:
    """min_elo (min_rating) after a round: the model's rating so far and its standard error."""
    fit = rating_influence(battles, anchor=anchor, reg=reg)
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
    turns of a question (judge_turns each) stay one question.
    """
    rows = []
    for record in records:
        if "model_a" not in record or "model_b" not in record:
            continue
        games = record.get("games")
        pairs = [(w, float(x)) for w, x in games] if games else [(record.get("win"), 1.0)]
        key = (f"{record['question_set']}/{record['question_id']}" if record.get("question_set")
               else str(record.get("question_id")))
        rows += [(record["model_a"], record["model_b"], w, x, key) for w, x in pairs if w in WINNERS]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id"])
