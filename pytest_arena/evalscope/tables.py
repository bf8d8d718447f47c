"""``rating_gen.metrics``' tables as EvalScope's ``RatingEvaluate`` computes them, written beside the
report (``elo_rating.csv`` -> ``elo_rating.elo.csv``, ``elo_rating.pairwise.csv``, ``elo_rating.score.csv``)
and shown in the terminal summary. The report itself stays this project's table (Bradley-Terry first).

- ``elo``: ``Model, Elo_Rating``: online Elo over the run's battles in their order (init 1000, base 10,
  scale 400, K ``rating_gen.elo_k``: EvalScope's 32 unless set; a tie half a win), best first, rounded
  to 1 decimal as EvalScope rounds it.
- ``pairwise``: ``model, win, loss, tie, win_rate, loss_rate, tie_rate`` with ``win_rate = win / (win +
  loss + tie)``, one count per battle (swap_position's two orders combined, a disagreement a tie),
  against the baseline only when there is one (its own row left out), best win rate first; then
  ``unknown``: battles without a verdict, which EvalScope counts as won by model_b and we leave out.
- ``score`` (single mode): ``model, score``, the mean score, best first; then ``unknown``: answers
  without a score, which EvalScope counts as -1 and we leave out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..rating_table import battles_frame, best_first, write_csv
from ..file_names import METRIC_TABLES, metric_file


def metric_tables(config, judgments: list, baseline: str | None) -> dict[str, pd.DataFrame]:
    """The tables ``rating_gen.metrics`` asks for that fit the mode (``score`` in single mode, the
    others with battles), over the run's judgments in plan order (failed ones too: they are counted
    as unknown)."""
    single = config.review.judge.mode == "single"
    tables = {}
    for metric in METRIC_TABLES:
        if metric not in config.rating.metrics or (metric == "score") != single:
            continue
        table = TABLES[metric](judgments, config, baseline)
        if table is not None:
            tables[metric] = table
    return tables


def elo_table(judgments: list, config, baseline=None) -> pd.DataFrame | None:
    from .. import rating

    verdicts = [j for j in judgments if j.ok and j.games]
    if not verdicts:
        return None
    elo = rating.online_elo(battles_frame(verdicts), k=config.rating.elo_k)
    frame = pd.DataFrame({"Model": list(elo.index), "Elo_Rating": [round(float(v), 1) for v in elo]})
    return best_first(frame, "Elo_Rating", "Model")


def pairwise_table(judgments: list, config, baseline: str | None) -> pd.DataFrame | None:
    counts: dict[str, list[int]] = {}  # model -> [win, loss, tie, unknown]
    for judgment in judgments:
        a, b = judgment.match.model_a, judgment.match.model_b
        if baseline is not None and baseline not in (a, b):
            continue  # EvalScope: every battle should have the baseline in it
        row_a, row_b = counts.setdefault(a, [0, 0, 0, 0]), counts.setdefault(b, [0, 0, 0, 0])
        if not judgment.ok or judgment.winner is None:
            row_a[3] += 1
            row_b[3] += 1
        elif judgment.winner == "tie":
            row_a[2] += 1
            row_b[2] += 1
        else:
            won, lost = (row_a, row_b) if judgment.winner == "model_a" else (row_b, row_a)
            won[0] += 1
            lost[1] += 1
    counts.pop(baseline, None)
    if not counts:
        return None
    frame = pd.DataFrame([[m, *c] for m, c in counts.items()], columns=["model", "win", "loss", "tie", "unknown"])
    games = frame["win"] + frame["loss"] + frame["tie"]
    for column in ("win", "loss", "tie"):
        frame[f"{column}_rate"] = frame[column] / games.where(games > 0)
    frame = frame[["model", "win", "loss", "tie", "win_rate", "loss_rate", "tie_rate", "unknown"]]
    return best_first(frame, "win_rate", "model")


def score_table(judgments: list, config, baseline=None) -> pd.DataFrame | None:
    scores: dict[str, list[float]] = {}
    unknown: dict[str, int] = {}
    for judgment in judgments:
        model = judgment.match.model
        scores.setdefault(model, [])
        unknown[model] = unknown.get(model, 0) + (not judgment.ok or judgment.score is None)
        if judgment.ok and judgment.score is not None:
            scores[model].append(judgment.score)
    if not scores:
        return None
    frame = pd.DataFrame({"model": list(scores),
                          "score": [sum(s) / len(s) if s else float("nan") for s in scores.values()],
                          "unknown": [unknown[m] for m in scores]})
    return best_first(frame, "score", "model")


TABLES = {"elo": elo_table, "pairwise": pairwise_table, "score": score_table}


def write_tables(tables: dict[str, pd.DataFrame], report_path: Path) -> list[str]:
    """Write each table beside the report; say where."""
    written = []
    for metric, table in tables.items():
        path = metric_file(report_path, metric)
        write_csv(table, path)
        written.append(f"{metric} table (EvalScope's): {path}")
    return written


def table_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The tables for the terminal summary."""
    lines = []
    for metric, table in tables.items():
        lines.append(f"rating_gen.metrics {metric} (EvalScope's table):")
        shown = "{:.1f}" if metric == "elo" else "{:.4f}"
        text = table.to_string(index=False, float_format=shown.format, na_rep="-")
        lines += [f"  {line.rstrip()}" for line in text.splitlines()]
    return lines
