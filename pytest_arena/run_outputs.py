"""The report writer: everything a finished run shows and writes, in one place.

``RunReport(session).lines(written)`` are the terminal summary's lines (the rating table, one per
question set, the judge's and each API candidate's counters, the models loaded, what was written);
``write(stopped)`` writes the rating CSV, per-set CSV, plot, step summary and baseline.

A whole run (every selected battle's item ran and took its verdict) writes the report; a run that
stopped early (-x, --maxfail, --sw) or whose items did not all run writes the ``.subset`` report
instead, and says why in one line: the full report and the baseline hold whole runs only. A battle
whose judge call failed did run and was judged: its failure is its item's verdict, and the ratings
leave it out (as every judge error), so it does not make the run partial.
"""

from __future__ import annotations

import dataclasses
import os


class RunReport:
    def __init__(self, arena):
        self.arena = arena  # the ArenaSession

    # ---------------------------------------------------------------------------------------------
    # The terminal

    def lines(self, written: list[str]) -> list[str]:
        """The terminal summary's lines (the plugin puts them under an ``arena`` section)."""
        from .report import format_table

        arena, lines = self.arena, []
        table = arena.ratings()
        if table is not None:
            lines += format_table(table, arena.previous)
            for name, set_table in arena.set_tables().items():
                lines.append(f"question set {name}:")
                lines += [f"  {line}" for line in format_table(set_table)]
        elif arena.config.review.enable:
            lines.append("no judged battles: no ratings and no report")
        if arena.is_limited:
            lines.append(f"limited run: the first {arena.limit} questions of each question set")
        counters = arena.counters
        if counters is not None:
            lines += judge_summary(counters, arena.config.review.judge)
        served = arena.served_counters
        lines += [served_summary(name, served_counters) for name, served_counters in served.items()]
        asked = any(c.requests for c in served.values())
        loaded = ", ".join(arena.models_loaded) or ("none" if asked else "none (all answers cached)")
        lines.append(f"models loaded: {loaded}")
        return lines + list(written)

    # ---------------------------------------------------------------------------------------------
    # The files

    def partial_reason(self, stopped: str | None) -> str | None:
        """Why the run is not whole, in a few words; None for a whole run."""
        ran, total = self.arena.items_ran()
        if ran == total:
            return None
        return f"{stopped or 'not every item ran'}; {ran} of {total} {self.arena.match_kind} ran"

    def write(self, stopped: str | None = None) -> list[str]:
        """Write the report, per-set report, plot, baseline and step summary; say what was written."""
        arena = self.arena
        table = arena.ratings()
        if table is None or not arena.config.rating.enable:
            return []
        from .report import markdown_summary, write_csv, write_plot

        partial = self.partial_reason(stopped)
        if partial:
            table = dataclasses.replace(table, subset=True)
        path = arena.report_path(partial=partial is not None)
        write_csv(table.frame, path)
        if partial:
            written = [f"partial run ({partial}): report: {path}; the full report and the baseline are left as they were"]
        else:
            what = "a limited run (--arena-limit)" if arena.is_limited else "a subset run"
            written = [f"report: {path}" + (f" ({what}: the full report is left as it was)" if arena.is_subset else "")]
        written += self._write_sets(path)
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
                handle.write(markdown_summary(table, arena.results.gates_in_order(arena.gates), arena.previous))
            written.append("step summary: appended to $GITHUB_STEP_SUMMARY")
        return written

    def _write_sets(self, path) -> list[str]:
        sets = self.arena.set_tables()
        if not sets:
            return []
        import pandas as pd

        from .report import write_csv

        by_set = pd.concat([t.frame.assign(Question_Set=name) for name, t in sets.items()], ignore_index=True)
        by_set = by_set[["Question_Set", *[c for c in by_set.columns if c != "Question_Set"]]]
        sets_path = path.with_name(f"{path.stem}.sets{path.suffix}")
        write_csv(by_set, sets_path)
        return [f"per-set report: {sets_path}"]


def judge_summary(counters, spec) -> list[str]:
    """The judge's lines: calls, cache hits, failures, tokens, cost, and position consistency."""
    lines = [
        f"judge: {counters.calls} calls, {counters.cached} from cache, {counters.failed} failed"
        + (f", {counters.reasked} re-asked" if counters.reasked else "")
        + (f", {counters.truncated} cut off at max_tokens" if counters.truncated else "")
        + f"; {counters.prompt_tokens} prompt + {counters.completion_tokens} completion tokens"
    ]
    cost = counters.cost(spec)
    if cost is not None:
        lines[0] += f"; cost {cost:.4f}"
    if counters.swapped_pairs:
        share = counters.consistent_pairs / counters.swapped_pairs
        lines.append(f"position consistency: {share:.1%} of {counters.swapped_pairs} swapped pairs agree")
    return lines


def served_summary(name: str, counters) -> str:
    """The line for one API candidate (its ``ServedCounters``)."""
    return (f"candidate {name} (API): {counters.requests} requests, {counters.answered} answers received, "
            f"{counters.cached} from cache, {counters.failed} failed"
            + (f", {counters.truncated} cut off at max_tokens" if counters.truncated else "")
            + f"; {counters.prompt_tokens} prompt + {counters.completion_tokens} completion tokens")
