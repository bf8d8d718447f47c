"""Online Elo (LMSYS/EvalScope) and its fast bootstrap, which advances every round at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from .battles import (_CELLS, _check_bootstrap, _check_scale, _code, _group, _key_parts, _Questions, _questions,
                      _ranked, _round_generators, _samples_frame)


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
