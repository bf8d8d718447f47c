"""Battles tables: the checks every rating runs first, and their encoding as arrays.

A *battles* table is described in the package docstring (:mod:`pytest_arena.rating`). Everything here
is shared by the rating methods: ``validate_battles`` and the coding into model indices, the scale
and bootstrap argument checks, the per-round generators, the grouping of rows by question, and the
de-duplication of outcomes into counts (:func:`battle_counts`, so an expensive fit runs on a few
hundred rows instead of 100k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
# De-duplicated outcomes


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
