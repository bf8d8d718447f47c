"""Win/tie/loss records and rates: no model of strength, only counts of real verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .battles import _A_WINS, _B_WINS, _TIE, _code


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
