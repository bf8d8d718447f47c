"""Ratings for an arena: small pure functions over a table of battles.

A *battles* table is a pandas DataFrame with one row per judged game:

``model_a``, ``model_b``
    the two models (str, different from each other);
``winner``
    ``"model_a"``, ``"model_b"`` or ``"tie"`` -- nothing else;
``question_id``
    any hashable; only needed to resample by question;
``weight``
    optional float >= 0, default 1.0: how many games the row counts for (an arena-hard strong verdict
    may count 2; a swap_position ``independent`` rule gives two rows of weight 1).

Judge errors and unparseable verdicts are not battles. Callers drop them (and report them) before
anything here runs; :func:`validate_battles` refuses any other ``winner`` so that they cannot be counted
by accident.

Every function takes the table and returns a new Series or DataFrame; nothing is cached and nothing
random happens without a seed. Bootstrap round ``r`` draws only from its own generator, spawned from
``numpy.random.SeedSequence(seed)``, so a run of 100 rounds equals the first 100 rounds of a run of
1000, and the fast paths (:func:`bootstrap_elo`, :func:`bootstrap_bradley_terry` with
``by="question"``) draw exactly the resamples that the reference :func:`bootstrap` draws.

Ratings use the logistic (Elo) scale: ``P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale))``, a tie
counting as half a win for each side.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

WINNERS = ("model_a", "model_b", "tie")
RESAMPLING = ("battle", "question")

# Outcome codes used internally: the score of model_a is _SCORES[code].
_A_WINS, _TIE, _B_WINS = 0, 1, 2
_SCORES = np.array([1.0, 0.5, 0.0])

# Memory caps (number of float64 cells) for the vectorised bootstraps; results never depend on them.
_CELLS = 1 << 22


# --------------------------------------------------------------------------------------------------
# Input checking and encoding


def validate_battles(battles: pd.DataFrame) -> pd.DataFrame:
    """Check a battles table and return a copy whose ``weight`` column is float (1.0 where absent).

    Raises ``ValueError`` naming the problem: a missing column, a ``winner`` outside
    ``model_a``/``model_b``/``tie`` (for example ``"error"``), a missing or non-string model name, a
    model playing itself, or a weight that is negative or not finite.
    """
    if not isinstance(battles, pd.DataFrame):
        raise TypeError(f"battles must be a pandas DataFrame, got {type(battles).__name__}")
    missing = [c for c in ("model_a", "model_b", "winner") if c not in battles.columns]
    if missing:
        raise ValueError(f"battles table lacks column(s) {', '.join(missing)}")
    bad = ~battles["winner"].isin(WINNERS)
    if bad.any():
        found = battles.loc[bad, "winner"].astype(object).value_counts(dropna=False)
        listed = ", ".join(f"{value!r} ({n}x)" for value, n in found.items())
        raise ValueError(
            f"winner must be one of {', '.join(WINNERS)}; found {listed}. "
            "Drop judge errors and parse failures before rating."
        )
    for column in ("model_a", "model_b"):
        odd = [x for x in pd.unique(battles[column]) if not isinstance(x, str)]
        if odd:
            raise ValueError(f"{column} must hold model names (str), found {odd[0]!r}")
    same = (battles["model_a"] == battles["model_b"]).to_numpy(dtype=bool)
    if same.any():
        raise ValueError(f"a model cannot battle itself: {battles['model_a'].to_numpy()[same][0]!r} "
                         f"(row {battles.index[same][0]!r})")
    out = battles.copy()
    if "weight" in out.columns:
        weight = pd.to_numeric(out["weight"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if not np.all(np.isfinite(weight) & (weight >= 0)):
            raise ValueError("weight must be a finite number >= 0 in every row")
        out["weight"] = weight
    else:
        out["weight"] = 1.0
    return out


@dataclass(frozen=True)
class _Coded:
    """A validated battles table as arrays: model indices into ``models`` (sorted names)."""

    models: pd.Index
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    table: pd.DataFrame

    @property
    def score(self) -> np.ndarray:
        return _SCORES[self.outcome]


def _code(battles: pd.DataFrame) -> _Coded:
    table = validate_battles(battles)
    codes_a, names_a = pd.factorize(table["model_a"])
    codes_b, names_b = pd.factorize(table["model_b"])
    models = pd.Index(sorted(set(names_a) | set(names_b)), dtype=object, name="model")
    codes_w, winners = pd.factorize(table["winner"])
    outcome = np.array([{"model_a": _A_WINS, "tie": _TIE, "model_b": _B_WINS}[w] for w in winners], dtype=np.int64)
    return _Coded(
        models=models,
        a=models.get_indexer(names_a).astype(np.int64)[codes_a],
        b=models.get_indexer(names_b).astype(np.int64)[codes_b],
        outcome=outcome[codes_w],
        weight=table["weight"].to_numpy(dtype=float),
        table=table,
    )


def _check_scale(scale: float, base: float) -> float:
    """Natural-log units per rating point: R * c is the logit scale."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    return math.log(base) / scale


def _check_bootstrap(rounds: int, by: str) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    if by not in RESAMPLING:
        raise ValueError(f"by must be one of {', '.join(RESAMPLING)}, got {by!r}")


def _round_generators(seed: int, rounds: int) -> list[np.random.Generator]:
    """One independent generator per bootstrap round, spawned from ``SeedSequence(seed)``."""
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(rounds)]


def _ranked(values: np.ndarray, models: pd.Index) -> pd.Series:
    series = pd.Series(np.asarray(values, dtype=float), index=models, name="rating")
    return series.sort_values(ascending=False, kind="stable")


def _samples_frame(values: np.ndarray, models: pd.Index) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=models.copy())
    frame.index.name = "round"
    return frame


@dataclass(frozen=True)
class _Questions:
    """Rows grouped by question: ``order[starts[q]:starts[q] + sizes[q]]`` are question q's rows."""

    codes: np.ndarray
    order: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray

    @property
    def count(self) -> int:
        return len(self.sizes)

    def rows(self, picked: np.ndarray) -> np.ndarray:
        """Row positions of the picked questions, in picked order, each question's rows in table order."""
        sizes = self.sizes[picked]
        shift = np.repeat(self.starts[picked] - (np.cumsum(sizes) - sizes), sizes)
        return self.order[np.arange(int(sizes.sum())) + shift]


def _questions(table: pd.DataFrame, column: str = "question_id") -> _Questions:
    if column not in table.columns:
        raise ValueError(f"resampling by question needs a {column} column")
    codes, _ = pd.factorize(table[column], sort=False)
    if (codes < 0).any():
        raise ValueError(f"{column} is missing in some rows")
    sizes = np.bincount(codes)
    return _Questions(
        codes=codes.astype(np.int64),
        order=np.argsort(codes, kind="stable"),
        sizes=sizes,
        starts=np.cumsum(sizes) - sizes,
    )


# --------------------------------------------------------------------------------------------------
# Online Elo


def online_elo(
    battles: pd.DataFrame, k: float = 32.0, scale: float = 400.0, base: float = 10.0, init: float = 1000.0
) -> pd.Series:
    """Online Elo (LMSYS/EvalScope): every model starts at ``init``; rows are applied in table order.

    For each row, ``E_a = 1 / (1 + base ** ((R_b - R_a) / scale))`` and both ratings move by
    ``k * weight * (S_a - E_a)`` (``S_a`` = 1, 0.5 or 0), in opposite directions. A row of weight 2 is
    thus one update of twice the size -- close to, but not exactly, two identical games in a row (the
    second of which would see the first one's update). The result depends on row order, so sort the
    table by a stable key first. Returns ratings of every model, highest first.
    """
    _check_scale(scale, base)
    coded = _code(battles)
    ratings = [float(init)] * len(coded.models)
    for i, j, s, w in zip(coded.a.tolist(), coded.b.tolist(), coded.score.tolist(), coded.weight.tolist()):
        expected = 1.0 / (1.0 + base ** ((ratings[j] - ratings[i]) / scale))
        delta = k * w * (s - expected)
        ratings[i] += delta
        ratings[j] -= delta
    return _ranked(np.array(ratings), coded.models)


# --------------------------------------------------------------------------------------------------
# Bradley-Terry


def battle_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """De-duplicate battles into one row per (model_a, model_b, winner).

    Columns ``model_a``, ``model_b``, ``winner``, ``weight`` (summed) and ``rows`` (how many battles).
    The result is itself a battles table: every order-free rating gives the same answer on it.
    """
    coded = _code(battles)
    keys, _, weight, rows, _ = _group(coded, by_weight=False)
    m = len(coded.models)
    return pd.DataFrame({
        "model_a": coded.models.to_numpy()[keys // (3 * m)],
        "model_b": coded.models.to_numpy()[keys // 3 % m],
        "winner": np.array(WINNERS, dtype=object)[[0, 2, 1]][keys % 3],
        "weight": weight,
        "rows": rows,
    })


def _group(coded: _Coded, by_weight: bool):
    """Group rows by (a, b, outcome[, weight value]).

    Returns sorted keys ``(a * M + b) * 3 + outcome``, each row's group, each group's summed weight
    and row count, and (``by_weight`` only, else None) the weight of one row of the group. Splitting
    by weight value lets a bootstrap resample rows exactly through their groups.
    """
    m = len(coded.models)
    key = (coded.a * m + coded.b) * 3 + coded.outcome
    unit = None
    if by_weight:
        wcode, wvalues = pd.factorize(coded.weight, sort=True)
        key = key * len(wvalues) + wcode
    keys, inverse = np.unique(key, return_inverse=True)
    weight = np.bincount(inverse, weights=coded.weight, minlength=len(keys))
    rows = np.bincount(inverse, minlength=len(keys))
    if by_weight:
        unit = np.asarray(wvalues, dtype=float)[keys % len(wvalues)]
        keys = keys // len(wvalues)
    return keys, inverse.reshape(-1), weight, rows, unit


def _key_parts(keys: np.ndarray, m: int):
    return keys // (3 * m), keys // 3 % m, _SCORES[keys % 3]


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
        new = th - step
        new_value = objective(new, w)
        small = decrement <= 1e-12
        t = np.ones(len(active))
        failed = np.zeros(len(active), dtype=bool)
        for _ in range(60):
            bad = ~small & ~(new_value <= value[active] - 1e-4 * t * decrement)
            if not bad.any():
                break
            t[bad] *= 0.5
            new[bad] = th[bad] - t[bad, None] * step[bad]
            new_value[bad] = objective(new[bad], w[bad])
        else:
            failed = bad
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
    reg: float = 1e-6,
) -> pd.Series:
    """Bradley-Terry ratings by maximum likelihood; order of rows does not matter.

    Model: ``P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale))``; a tie is half a win each way;
    ``weight`` multiplies a row's log-likelihood. The fit runs on the de-duplicated outcome counts
    (:func:`battle_counts`), so 100k battles among 10 models is a 10-parameter problem on at most 270
    rows. ``reg`` adds ``reg / 2 * sum(theta ** 2)`` on the logit scale (a very flat Gaussian prior):
    it keeps ratings finite when a model won or lost every game or the comparison graph is split,
    at the price of a shift far below 0.01 rating points in ordinary data. Such a model still gets a
    very large gap (thousands of points) -- the data give it no upper bound. ``reg=0`` is the plain
    MLE, for data where it exists. Ratings are shifted so that ``anchor`` sits at ``init`` or, with no
    anchor, so that their mean is ``init``. Returns ratings of every model, highest first.
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


# --------------------------------------------------------------------------------------------------
# Bootstrap


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


def bootstrap_bradley_terry(
    battles: pd.DataFrame,
    rounds: int = 1000,
    seed: int = 0,
    by: str = "battle",
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
    anchor: str | None = None,
    reg: float = 1e-6,
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


def bootstrap_elo(
    battles: pd.DataFrame,
    rounds: int = 1000,
    seed: int = 0,
    by: str = "battle",
    k: float = 32.0,
    scale: float = 400.0,
    base: float = 10.0,
    init: float = 1000.0,
) -> pd.DataFrame:
    """Fast bootstrap of :func:`online_elo`: all rounds advance together, one battle position at a time.

    Draws exactly the resamples of :func:`bootstrap` (same seed, same ``by``) and applies the same
    updates, so the result equals ``bootstrap(battles, online_elo, ...)`` up to rounding; the loop runs
    over battle positions, with numpy doing every round at once. Rows = rounds, columns = models
    (sorted by name); a model absent from a resample is NaN there.
    """
    _check_bootstrap(rounds, by)
    c = _check_scale(scale, base)
    coded = _code(battles)
    n, m = len(coded.a), len(coded.models)
    if n == 0:
        raise ValueError("no battles to resample")
    generators = _round_generators(seed, rounds)
    # Rows are handled through their (a, b, outcome, weight) group, so the per-round work gathers one
    # small integer per battle; the last group is padding (no battle: weight 0).
    keys, inverse, _, _, unit = _group(coded, by_weight=True)
    ga, gb, gs = _key_parts(keys, m)
    group = np.r_[inverse, len(keys)].astype(np.intp)
    gain = np.r_[k * c * unit, 0.0]  # in logit units (rating * c): du = k c w (S - expit(u_a - u_b))
    tables = (np.r_[ga, 0], np.r_[gb, 0], gain, gain * np.r_[gs, 0.0])
    out = np.empty((rounds, m))
    questions = _questions(coded.table) if by == "question" else None
    chunk = max(1, rounds) if questions is None else max(1, _CELLS // questions.count)
    for start in range(0, rounds, chunk):
        block = generators[start:start + chunk]
        source = _BattleDraws(block, n) if questions is None else _QuestionDraws(block, questions)
        out[start:start + len(block)] = _elo_rounds(source, group, tables, m, init * c) / c
    return _samples_frame(out, coded.models)


class _BattleDraws:
    """Row positions of each round's resample, drawn block by block (rng draws are chunk-invariant)."""

    def __init__(self, generators, n):
        self.generators, self.rounds, self.length, self.n = generators, len(generators), n, n

    def block(self, start, stop):
        out = np.empty((self.rounds, stop - start), dtype=np.int32 if self.n < 2**31 else np.int64)
        for i, g in enumerate(self.generators):
            out[i] = g.integers(0, self.n, size=stop - start)
        return out


class _QuestionDraws:
    """Row positions of each round's by-question resample; positions past a round's end give ``n``."""

    def __init__(self, generators, questions: _Questions):
        q = questions.count
        self.picked = np.stack([g.integers(0, q, size=q) for g in generators])
        self.rounds = len(generators)
        sizes = questions.sizes[self.picked]
        self.ends = np.cumsum(sizes, axis=1)
        self.firsts = questions.starts[self.picked] - (self.ends - sizes)
        self.length = int(self.ends[:, -1].max())
        self.stride = self.length + 1
        self.flat_ends = (self.ends + self.stride * np.arange(len(generators))[:, None]).reshape(-1)
        self.order = np.r_[questions.order, len(questions.codes)]
        self.q = q

    def block(self, start, stop):
        t = np.arange(start, stop)[None, :]
        r = np.arange(self.rounds)[:, None]
        j = np.searchsorted(self.flat_ends, t + self.stride * r, side="right") - r * self.q
        past = j >= self.q
        j = np.minimum(j, self.q - 1)
        slot = t + self.firsts[r, j]
        slot[past] = len(self.order) - 1
        return self.order[slot]


def _elo_rounds(source, group, tables, m, start_value) -> np.ndarray:
    """Online Elo in logit units for ``source.rounds`` resamples at once; returns rounds x models.

    ``group[row]`` names the row's group (the last one is padding); ``tables`` give each group's
    models a and b, gain ``k c w`` and gain times a's score.
    """
    ga, gb, gain, gain_score = tables
    rounds, groups = source.rounds, len(ga)
    ratings = np.full(rounds * m, start_value)
    played = np.zeros(rounds * groups, dtype=np.int64)
    offset = np.arange(rounds) * m
    width = min(source.length, max(256, 2 * _CELLS // rounds))
    for lo in range(0, source.length, width):
        drawn = group[source.block(lo, min(source.length, lo + width))]  # rounds x positions
        played += np.bincount((drawn + (np.arange(rounds) * groups)[:, None]).reshape(-1), minlength=len(played))
        drawn = np.ascontiguousarray(drawn.T)
        for sub in range(0, len(drawn), 256):
            part = drawn[sub:sub + 256]
            pairs = np.concatenate([ga[part] + offset, gb[part] + offset], axis=1)  # [a slots | b slots]
            kw, kws = gain[part], gain_score[part]
            for i in range(len(part)):
                slots = pairs[i]
                u = ratings[slots]
                ua, ub = u[:rounds], u[rounds:]
                d = expit(ua - ub)
                d *= kw[i]
                np.subtract(kws[i], d, out=d)  # k c w (S - E)
                ua += d
                ub -= d
                ratings[slots] = u
    played = played.reshape(rounds, groups)[:, :-1] > 0
    seen = np.zeros((rounds, m), dtype=bool)
    for model_of in (ga[:-1], gb[:-1]):
        seen |= (played.astype(np.int64) @ (model_of[:, None] == np.arange(m))) > 0
    ratings = ratings.reshape(rounds, m)
    ratings[~seen] = np.nan
    return ratings


# --------------------------------------------------------------------------------------------------
# Summaries of samples


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


def difference_samples(samples: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Per-round ``R_a - R_b`` from joint bootstrap samples (same rounds), for "a beats b" checks."""
    for model in (a, b):
        if model not in samples.columns:
            raise ValueError(f"no bootstrap samples for model {model!r}")
    return (samples[a] - samples[b]).rename(f"{a} - {b}")


# --------------------------------------------------------------------------------------------------
# Records and rates


def record_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """Per model (sorted by name): ``battles``, ``wins``, ``ties``, ``losses`` (weights summed) and
    ``win_rate = (wins + 0.5 * ties) / battles`` (NaN for a model whose battles all weigh 0)."""
    coded = _code(battles)
    m, w, o = len(coded.models), coded.weight, coded.outcome

    def per_model(on_a, on_b):
        return np.bincount(coded.a, w * on_a, minlength=m) + np.bincount(coded.b, w * on_b, minlength=m)

    wins = per_model(o == _A_WINS, o == _B_WINS)
    ties = per_model(o == _TIE, o == _TIE)
    losses = per_model(o == _B_WINS, o == _A_WINS)
    games = per_model(np.ones(len(o)), np.ones(len(o)))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, (wins + 0.5 * ties) / games, np.nan)
    return pd.DataFrame(
        {"battles": games, "wins": wins, "ties": ties, "losses": losses, "win_rate": rate}, index=coded.models
    )


def win_rate_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Square table: the row model's weighted score rate (ties half) against the column model.

    ``M.loc[x, y] + M.loc[y, x] == 1`` wherever x and y met; NaN where they never did (and on the
    diagonal). Models sorted by name.
    """
    coded = _code(battles)
    m, w, s = len(coded.models), coded.weight, coded.score
    ab, ba = coded.a * m + coded.b, coded.b * m + coded.a
    scored = np.bincount(ab, w * s, minlength=m * m) + np.bincount(ba, w * (1 - s), minlength=m * m)
    games = np.bincount(ab, w, minlength=m * m) + np.bincount(ba, w, minlength=m * m)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(games > 0, scored / games, np.nan).reshape(m, m)
    columns = coded.models.rename("opponent")
    return pd.DataFrame(rate, index=coded.models, columns=columns)


def pairwise_rates(battles: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """EvalScope's ``pairwise`` metric: each model's record against ``baseline`` only.

    One row per model that met the baseline (sorted by name): ``battles`` (weights summed),
    ``win_rate``, ``loss_rate``, ``tie_rate`` from that model's side; the three rates sum to 1. Only
    real verdicts are counted -- there is no "unknown" outcome to misfile.
    """
    coded = _code(battles)
    if baseline not in coded.models:
        raise ValueError(f"baseline model {baseline!r} has no battles")
    base = coded.models.get_loc(baseline)
    on_a, on_b = coded.a == base, coded.b == base
    keep = on_a | on_b
    opponent = np.where(on_a, coded.b, coded.a)[keep]
    # Outcome from the opponent's side: it is model_b when the baseline is model_a.
    outcome = np.where(on_a, 2 - coded.outcome, coded.outcome)[keep]
    w = coded.weight[keep]
    m = len(coded.models)
    games = np.bincount(opponent, w, minlength=m)
    frame = pd.DataFrame(
        {
            "battles": games,
            "win_rate": np.bincount(opponent, w * (outcome == _A_WINS), minlength=m),
            "loss_rate": np.bincount(opponent, w * (outcome == _B_WINS), minlength=m),
            "tie_rate": np.bincount(opponent, w * (outcome == _TIE), minlength=m),
        },
        index=coded.models,
    )
    met = np.zeros(m, dtype=bool)
    met[np.unique(opponent)] = True
    frame = frame[met]
    with np.errstate(invalid="ignore", divide="ignore"):
        for column in ("win_rate", "loss_rate", "tie_rate"):
            frame[column] = frame[column] / frame["battles"]
    return frame


# --------------------------------------------------------------------------------------------------
# Single-answer scores


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
    models = pd.Index(sorted(set(names)), dtype=object, name="model")
    model = models.get_indexer(names)
    questions = _questions(scores)
    q, m = questions.count, len(models)
    flat = model * q + questions.codes
    totals = np.bincount(flat, value, minlength=m * q).reshape(m, q)
    counts = np.bincount(flat, minlength=m * q).reshape(m, q).astype(float)
    return models, totals, counts


def mean_score_samples(scores: pd.DataFrame, rounds: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Bootstrap samples of each model's mean score, resampling questions (shared by all models).

    ``scores`` has columns ``model``, ``question_id``, ``score``. Each round draws as many question_ids
    as there are, with replacement, and averages each model's scores over the drawn questions (with
    their multiplicity), so rounds are paired across models and :func:`difference_samples` applies.
    Rows = rounds, columns = models (sorted by name); NaN where a model answered none of the drawn
    questions.
    """
    _check_bootstrap(rounds, "question")
    models, totals, counts = _score_table(scores)
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

    Columns ``mean``, ``ci_lower``, ``ci_upper``, ``scores`` (number of rows). See
    :func:`mean_score_samples` for the resampling.
    """
    models, totals, counts = _score_table(scores)
    samples = mean_score_samples(scores, rounds=rounds, seed=seed)
    frame = pd.DataFrame(
        {"mean": totals.sum(axis=1) / counts.sum(axis=1), "scores": counts.sum(axis=1).astype(int)}, index=models
    )
    intervals = confidence_intervals(samples, level=level)
    return frame.join(intervals)[["mean", "ci_lower", "ci_upper", "scores"]]
