"""EvalScope's arena, as its users run it: its three stages, its review files and its rating tables.

EvalScope (``run_arena.py -c cfg_arena.yaml``) runs ``answers_gen``, ``reviews_gen`` and ``rating_gen``
one after another, each switched on by its own ``enable`` flag. The rooms:

- ``stages``: which stages a config runs, and the line the summary says about it;
- ``reviews``: EvalScope review files (``model_a``, ``model_b``, ``win`` or ``win_1``/``win_2``, hub
  ids as names) read as rating input, and the rating-only run built from a review file;
- ``tables``: ``rating_gen.metrics``' tables (``elo``, ``pairwise``, ``score``) as EvalScope computes
  them, written beside the report.

This module itself imports nothing heavy: ``paths`` asks it for the files a run writes.
"""

from __future__ import annotations

from pathlib import Path

# rating_gen.metrics with a table of their own beside the report (``bt`` is the report itself).
METRIC_TABLES = ("elo", "pairwise", "score")


def metric_file(report_file: Path, metric: str) -> Path:
    """Where a metric's table goes: ``reports/elo_rating.csv`` -> ``reports/elo_rating.pairwise.csv``."""
    return report_file.with_name(f"{report_file.stem}.{metric}.csv")


def metric_files(report_file: Path, metrics) -> tuple[Path, ...]:
    """The metric tables a run may write beside the report and beside its subset report (-k runs)."""
    subset = report_file.with_name(f"{report_file.stem}.subset{report_file.suffix}")
    return tuple(metric_file(path, m) for path in (report_file, subset) for m in METRIC_TABLES if m in metrics)
