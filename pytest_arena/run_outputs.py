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

from .evalscope.stages import stage_line


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
        if table is not None and arena.config.rating.enable:  # (reviews only: no ratings shown)
            lines += format_table(table, arena.previous)
            for name, set_table in arena.set_tables().items():
                lines.append(f"question set {name}:")
                lines += [f"  {line}" for line in format_table(set_table)]
            lines += _turn_lines(arena.results.turn_table())  # judge_turns each: turn 1, turn 2, the average
            lines += _metric_lines(arena)  # rating_gen.metrics: EvalScope's tables
        elif table is None and arena.config.review.enable:
            lines.append("no judged battles: no ratings and no report")
        stage = stage_line(arena.config, arena.rating_only)  # answers, reviews or rating only: said, never silent
        if stage:
            lines.append(stage)
        if arena.is_limited:
            lines.append(f"limited run: the first {arena.limit} questions of each question set")
        counters = arena.counters
        if counters is not None:
            lines += judge_summary(counters, arena.config.review.judge)
        served = arena.served_counters
        lines += [served_summary(name, served_counters) for name, served_counters in served.items()]
        asked = any(c.requests for c in served.values())
        loaded = ", ".join(arena.models_loaded) or ("none" if asked else "none (all answers cached)")
        if not arena.rating_only:  # (rating only loads nothing and reads no answer)
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
        if table is None:
            return []
        if not arena.config.rating.enable:  # reviews only: the review file is the result
            return [f"reviews: {arena.config.review.review_file}"]
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
        written += _write_metric_tables(self.arena, path)
        written += _write_turns(arena.results.turn_table(), path)
        written += self._write_flips(path)
        plot = path.with_suffix(".png")
        plotted = write_plot(table, plot)
        if plotted:
            written.append(f"plot: {plot}")
        else:
            written.append("plot: pip install 'pytest-arena[plot]' (matplotlib) for a PNG of the ratings")
        written.append(self._write_page(path, table, plot if plotted else None, partial))
        if arena.update_baseline and arena.baseline_report is not None and not partial:
            if arena.is_subset:
                written.append(f"baseline: not updated from a subset run ({arena.baseline_report})")
            else:
                from .flips import verdicts_path, write_verdicts

                # The verdicts first: whoever reads the new baseline CSV finds the verdicts that made it.
                verdicts = verdicts_path(arena.baseline_report)
                write_verdicts(verdicts, arena.judgments(), arena.config.review.review_file)
                write_csv(table.frame, arena.baseline_report)
                written += [f"baseline: updated {arena.baseline_report}", f"baseline verdicts: {verdicts}"]
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown_summary(table, arena.results.gates_in_order(arena.gates), arena.previous))
            written.append("step summary: appended to $GITHUB_STEP_SUMMARY")
        return written

    def _write_flips(self, path) -> list[str]:
        from .flips import flips_csv_path, run_flips, write_flips_csv

        flips_path = flips_csv_path(path)
        return [f"flips: {flips_path}"] if write_flips_csv(flips_path, run_flips(self.arena)) else []

    def _write_page(self, path, table, plot, partial: str | None) -> str:
        """The battle browser beside the report (``html_report``): a partial run's beside its subset report."""
        from .html_report import write_page

        page = write_page(self.arena, path, table, plot=plot, partial=partial)
        return f"battle browser: {page}"

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


def _metric_tables(arena) -> dict:
    """``rating_gen.metrics``' tables (evalscope/tables.py), over the run's judgments."""
    from .evalscope.tables import metric_tables

    return metric_tables(arena.config, arena.judgments(), arena.baseline or arena.config.rating.baseline_model)


def _metric_lines(arena) -> list[str]:
    from .evalscope.tables import table_lines

    return table_lines(_metric_tables(arena))


def _write_metric_tables(arena, report_path) -> list[str]:
    from .evalscope.tables import write_tables

    return write_tables(_metric_tables(arena), report_path)


def _turn_lines(frame) -> list[str]:
    from .turn_tables import turn_lines

    return turn_lines(frame)


def _write_turns(frame, report_path) -> list[str]:
    """The per-turn tables beside the report (``<report>.turns.csv``), when the arena was judged per turn."""
    from .paths import turns_report
    from .turn_tables import write_turn_csv

    return write_turn_csv(frame, turns_report(report_path))


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
    if counters.truncated:  # once per run: a reply cut short may have lost its verdict, or its reasons
        lines.append(f"WARNING: {counters.truncated} of {counters.calls} judge replies ended at max_tokens "
                     f"({spec.max_tokens}; finish_reason length): raise reviews_gen.reviewer.args.max_tokens")
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
