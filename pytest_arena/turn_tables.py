"""Per-turn tables of an arena judged turn by turn (``reviews_gen.judge_turns: each``), as FastChat's
``show_result`` prints MT-bench: turn 1, turn 2, and the average.

- single mode: each model's mean score per turn, and over every turn's score (FastChat's "Average");
- pairwise modes: each model's record per turn (wins, losses, ties and their rates, with FastChat's
  ``win_rate_adjusted``, a tie counting half a win), and over both turns' games together. In
  ``pairwise_baseline`` mode the baseline's own row is left out, as FastChat leaves it out.

A battle's games are counted as the ratings count them (swap_position's rule, strong verdicts' weight).
One frame holds every table, told apart by its ``Turn`` column ("1", "2", ..., "average"); it is printed
in the terminal summary and written beside the rating CSV (``<report>.turns.csv``). Only judgments
made per turn take part: with ``judge_turns: whole`` there is no table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .rating import record_counts
from .rating_table import battles_frame, best_first, game_count, write_csv

AVERAGE = "average"
SCORE_COLUMNS = ["Turn", "Model", "Score", "Scores"]
RECORD_COLUMNS = ["Turn", "Model", "Battles", "Wins", "Losses", "Ties", "Win_Rate", "Loss_Rate", "Tie_Rate",
                  "Win_Rate_Adjusted"]


def turn_frame(judgments, baseline: str | None = None) -> pd.DataFrame | None:
    """The per-turn tables over the successful judgments' turns; None when none was judged per turn."""
    parts = [part for judgment in judgments if judgment.ok for part in judgment.turns]
    if not parts:
        return None
    turns = sorted({part.turn for part in parts})
    groups = [(str(turn), [p for p in parts if p.turn == turn]) for turn in turns] + [(AVERAGE, parts)]
    if parts[0].score is not None:
        tables = [_scores(label, group) for label, group in groups]
    else:
        tables = [_records(label, group, baseline) for label, group in groups]
    return pd.concat(tables, ignore_index=True)


def _scores(label: str, parts) -> pd.DataFrame:
    """Mean score per model over the parts (FastChat: ``groupby("model").mean()``), best first."""
    frame = pd.DataFrame([(part.match.model, part.score) for part in parts], columns=["Model", "Score"])
    table = frame.groupby("Model", sort=True)["Score"].agg(["mean", "size"]).reset_index()
    table = pd.DataFrame({"Turn": label, "Model": table["Model"], "Score": table["mean"].round(4),
                          "Scores": table["size"].astype(int)}, columns=SCORE_COLUMNS)
    return best_first(table, "Score")


def _records(label: str, parts, baseline: str | None) -> pd.DataFrame:
    """Each model's weighted record over the parts' games, with FastChat's rates, best first."""
    counts = record_counts(battles_frame(parts))
    if baseline is not None:
        counts = counts[counts.index != baseline]
    games = counts["battles"]
    table = pd.DataFrame({
        "Turn": label,
        "Model": counts.index.astype(str),
        "Battles": games.map(game_count),
        "Wins": counts["wins"].map(game_count),
        "Losses": counts["losses"].map(game_count),
        "Ties": counts["ties"].map(game_count),
        "Win_Rate": (counts["wins"] / games).round(4),
        "Loss_Rate": (counts["losses"] / games).round(4),
        "Tie_Rate": (counts["ties"] / games).round(4),
        "Win_Rate_Adjusted": counts["win_rate"].round(4),
    }, columns=RECORD_COLUMNS).reset_index(drop=True)
    return best_first(table, "Win_Rate_Adjusted")


# ------------------------------------------------------------------------------------------------
# Shown and written


def turn_lines(frame: pd.DataFrame | None) -> list[str]:
    """The tables for the terminal summary: one block per turn, then the average."""
    if frame is None:
        return []
    scores = "Score" in frame.columns
    lines = ["per turn (judge_turns: each): " + ("mean score per model" if scores else
                                                 "win/loss/tie per model, a tie counting half in the adjusted rate")]
    for label, table in frame.groupby("Turn", sort=False):
        lines.append(f"turn {label}:" if label != AVERAGE else "average over the turns:")
        if scores:
            header = ["model", "score", "scores"]
            rows = [[r["Model"], f"{r['Score']:.3f}", str(r["Scores"])] for r in table.to_dict("records")]
        else:
            header = ["model", "battles", "W/L/T", "win rate", "loss rate", "adjusted"]
            rows = [[r["Model"], str(r["Battles"]), f"{r['Wins']}/{r['Losses']}/{r['Ties']}", f"{r['Win_Rate']:.1%}",
                     f"{r['Loss_Rate']:.1%}", f"{r['Win_Rate_Adjusted']:.1%}"] for r in table.to_dict("records")]
        lines += [f"  {line}" for line in _aligned(header, rows)]
    return lines


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


def write_turn_csv(frame: pd.DataFrame | None, path: Path) -> list[str]:
    """Write the tables to ``path`` (``file_names.turns_report`` of the report); say what was written."""
    if frame is None:
        return []
    write_csv(frame, path)
    return [f"per-turn report: {path}"]
