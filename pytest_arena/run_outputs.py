"""What a finished run writes: the rating CSV, per-set CSV, plot, step summary and baseline.

A whole run (every selected battle's item ran and took its verdict) writes the report; a run that
stopped early (-x, --maxfail, --sw) or whose items did not all run writes the ``.subset`` report
instead, and says why in one line: the full report and the baseline hold whole runs only. A battle
whose judge call failed did run and was judged: its failure is its item's verdict, and the ratings
leave it out (as every judge error), so it does not make the run partial.
"""

from __future__ import annotations

import dataclasses
import os


def partial_reason(arena, stopped: str | None) -> str | None:
    """Why the run is not whole, in a few words; None for a whole run."""
    ran, total = arena.items_ran()
    if ran == total:
        return None
    return f"{stopped or 'not every item ran'}; {ran} of {total} {arena.match_kind} ran"


def write_outputs(arena, stopped: str | None = None) -> list[str]:
    table = arena.ratings()
    if table is None or not arena.config.rating.enable:
        return []
    from .report import markdown_summary, write_csv, write_plot

    partial = partial_reason(arena, stopped)
    if partial:
        table = dataclasses.replace(table, subset=True)
    path = arena.report_path(partial=partial is not None)
    write_csv(table.frame, path)
    if partial:
        written = [f"partial run ({partial}): report: {path}; the full report and the baseline are left as they were"]
    else:
        what = "a limited run (--arena-limit)" if arena.is_limited else "a subset run"
        written = [f"report: {path}" + (f" ({what}: the full report is left as it was)" if arena.is_subset else "")]
    written += _set_report(arena, path)
    plot = path.with_suffix(".png")
    if write_plot(table, plot):
        written.append(f"plot: {plot}")
    else:
        written.append("plot: pip install 'pytest-arena[plot]' (matplotlib) for a PNG of the ratings")
    if arena.update_baseline and arena.baseline_report is not None and not partial:
        if arena.is_subset:
            written.append(f"baseline: not updated from a subset run ({arena.baseline_report})")
        else:
            write_csv(table.frame, arena.baseline_report)
            written.append(f"baseline: updated {arena.baseline_report}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown_summary(table, _gates_in_order(arena), arena.previous))
        written.append("step summary: appended to $GITHUB_STEP_SUMMARY")
    return written


def _set_report(arena, path) -> list[str]:
    sets = arena.set_tables()
    if not sets:
        return []
    import pandas as pd

    from .report import write_csv

    by_set = pd.concat([t.frame.assign(Question_Set=name) for name, t in sets.items()], ignore_index=True)
    by_set = by_set[["Question_Set", *[c for c in by_set.columns if c != "Question_Set"]]]
    sets_path = path.with_name(f"{path.stem}.sets{path.suffix}")
    write_csv(by_set, sets_path)
    return [f"per-set report: {sets_path}"]


def _gates_in_order(arena) -> list[tuple[str, bool, str]]:
    """The gates' results in config order, whatever order the items ran in."""
    order = {arena.gate_id(g): i for i, g in enumerate(arena.gates)}
    results = sorted(arena.gate_results.items(), key=lambda pair: order.get(pair[0], len(order)))
    return [(gate_id, result.passed, result.message) for gate_id, result in results]
