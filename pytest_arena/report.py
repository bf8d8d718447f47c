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
SCORE_COLUMNS = ["Model", "Score", "CI_Lower", "CI_Upper", "Questions"]


@dataclass(frozen=True)
class RatingTable:
    frame: pd.DataFrame  # one row per model, best first: COLUMNS (pairwise) or SCORE_COLUMNS (single)
    samples: pd.DataFrame | None  # bootstrap ratings: one row per round, one column per model

    def row(self, model: str):
        rows = self.frame[self.frame["Model"] == model]
        return None if rows.empty else rows.iloc[0]

    @property
    def scored(self) -> bool:
        return "Score" in self.frame.columns


def battles_frame(judgments) -> pd.DataFrame:
    """The games of the verdicts as the battles table the rating functions take, in plan order.

    A judgment counts one game, or two under swap_position's independent rule; a strong verdict
    may weigh more than one game.
    """
    rows = [
        (j.match.model_a, j.match.model_b, winner, weight, j.match.question.question_id)
        for j in judgments for winner, weight in j.games
    ]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id"])


def scores_frame(judgments) -> pd.DataFrame:
    rows = [(j.match.model, j.match.question.question_id, j.score) for j in judgments]
    return pd.DataFrame(rows, columns=["model", "question_id", "score"])


def rating_table(judgments, models: list[str], spec: RatingSpec, baseline: str | None = None) -> RatingTable:
    if judgments and judgments[0].score is not None:
        return _score_table(judgments, models, spec)
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
            "Battles": [_count(counts.loc[m, "battles"]) for m in rated],
            "Wins": [_count(counts.loc[m, "wins"]) for m in rated],
            "Ties": [_count(counts.loc[m, "ties"]) for m in rated],
            "Losses": [_count(counts.loc[m, "losses"]) for m in rated],
            "Win_Rate": [round(float(counts.loc[m, "win_rate"]), 4) for m in rated],
        },
        columns=COLUMNS,
    )
    return RatingTable(_best_first(frame, "Elo_Rating"), samples)


def _score_table(judgments, models: list[str], spec: RatingSpec) -> RatingTable:
    scores = scores_frame(judgments)
    summary = rating.mean_scores(scores, rounds=max(spec.bootstrap_rounds, 1), seed=spec.seed)
    rated = [m for m in models if m in summary.index]
    frame = pd.DataFrame(
        {
            "Model": rated,
            "Score": [round(float(summary.loc[m, "mean"]), 3) for m in rated],
            "CI_Lower": [round(float(summary.loc[m, "ci_lower"]), 3) for m in rated],
            "CI_Upper": [round(float(summary.loc[m, "ci_upper"]), 3) for m in rated],
            "Questions": [int(summary.loc[m, "scores"]) for m in rated],
        },
        columns=SCORE_COLUMNS,
    )
    return RatingTable(_best_first(frame, "Score"), None)


def _best_first(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    # The model name breaks exact ties so the order never depends on dict order.
    frame = frame.sort_values([column, "Model"], ascending=[False, True], kind="mergesort")
    return frame.reset_index(drop=True)


def _count(value) -> int | float:
    """Game counts are whole unless strong verdicts weigh more than one game."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 2)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def format_table(frame: pd.DataFrame) -> list[str]:
    """The terminal table: rank, model, rating (or mean score) with its 95% CI, and the record."""
    if "Score" in frame.columns:
        header = ("rank", "model", "score", "95% CI", "questions")
        rows = [
            (str(rank), row.Model, f"{row.Score:.2f}", f"{row.CI_Lower:.2f} .. {row.CI_Upper:.2f}", str(row.Questions))
            for rank, row in enumerate(frame.itertuples(index=False), start=1)
        ]
    else:
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
