"""The rating table: built from the session's verdicts, written as CSV, printed for people.

The CSV keeps EvalScope's leading columns (``Model, Elo_Rating``) so existing dashboards read it,
then adds this project's: the bootstrap confidence interval and the win/tie/loss record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import rating
from .config import RatingSpec
from .store import write_atomic

COLUMNS = ["Model", "Elo_Rating", "CI_Lower", "CI_Upper", "Battles", "Wins", "Ties", "Losses", "Win_Rate"]


@dataclass(frozen=True)
class RatingTable:
    frame: pd.DataFrame  # one row per model, COLUMNS, best first
    samples: pd.DataFrame | None  # bootstrap ratings: one row per round, one column per model

    def row(self, model: str):
        rows = self.frame[self.frame["Model"] == model]
        return None if rows.empty else rows.iloc[0]


def battles_frame(judgments) -> pd.DataFrame:
    """Verdicts as the battles table the rating functions take, in plan order."""
    return pd.DataFrame(
        {
            "model_a": [j.battle.model_a for j in judgments],
            "model_b": [j.battle.model_b for j in judgments],
            "winner": [j.winner for j in judgments],
            "question_id": [j.battle.question.question_id for j in judgments],
        }
    )


def rating_table(judgments, models: list[str], spec: RatingSpec) -> RatingTable:
    battles = battles_frame(judgments)
    elo = rating.online_elo(battles, k=spec.elo_k)
    counts = rating.record_counts(battles)
    samples = None
    lower = upper = elo
    if spec.bootstrap_rounds > 0:
        samples = rating.bootstrap_elo(battles, k=spec.elo_k, rounds=spec.bootstrap_rounds, seed=spec.seed)
        intervals = rating.confidence_intervals(samples)
        lower, upper = intervals["ci_lower"], intervals["ci_upper"]
    rated = [m for m in models if m in elo.index]
    frame = pd.DataFrame(
        {
            "Model": rated,
            "Elo_Rating": [round(float(elo[m]), 2) for m in rated],
            "CI_Lower": [round(float(lower[m]), 2) for m in rated],
            "CI_Upper": [round(float(upper[m]), 2) for m in rated],
            "Battles": [int(counts.loc[m, "battles"]) for m in rated],
            "Wins": [int(counts.loc[m, "wins"]) for m in rated],
            "Ties": [int(counts.loc[m, "ties"]) for m in rated],
            "Losses": [int(counts.loc[m, "losses"]) for m in rated],
            "Win_Rate": [round(float(counts.loc[m, "win_rate"]), 4) for m in rated],
        },
        columns=COLUMNS,
    )
    # Best first; the model name breaks exact ties so the order never depends on dict order.
    frame = frame.sort_values(["Elo_Rating", "Model"], ascending=[False, True], kind="mergesort")
    return RatingTable(frame.reset_index(drop=True), samples)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def format_table(frame: pd.DataFrame) -> list[str]:
    """The terminal table: rank, model, rating with its 95% CI, battles and W/T/L."""
    header = ("rank", "model", "elo", "95% CI", "battles", "W/T/L", "win rate")
    rows = [
        (
            str(rank),
            row.Model,
            f"{row.Elo_Rating:.1f}",
            f"{row.CI_Lower:.1f} .. {row.CI_Upper:.1f}",
            str(row.Battles),
            f"{row.Wins}/{row.Ties}/{row.Losses}",
            f"{row.Win_Rate:.1%}",
        )
        for rank, row in enumerate(frame.itertuples(index=False), start=1)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
