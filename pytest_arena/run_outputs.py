"""The run's outputs: everything a finished run shows and writes, in one place.

``RunOutputs(plan, results, facts).lines(written)`` are the terminal summary's lines (the rating table,
one per question set, the judge's and each API candidate's counters, the models loaded, what was
written); ``write(stopped)`` writes the rating CSV (the report), per-set CSV, plot, battle browser,
step summary and baseline. It takes what it shows as arguments: the plan, the results (ratings, gates,
flips, judgments) and the facts of the run (``RunFacts``), never the session.

A whole run (every selected battle's item ran and took its verdict) writes the report; a run that
stopped early (-x, --maxfail, --sw) or whose items did not all run writes the ``.subset`` report
instead, and says why in one line: the full report and the baseline hold whole runs only. A battle
whose judge call failed did run and was judged: its failure is its item's verdict, and the ratings
leave it out (as every judge error), so it does not make the run partial.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .evalscope.stages import stage_line
from .file_names import (flips_file, plot_file, run_notes_file, sets_report, style_notes_file, subset_report,
                         turns_report, verdicts_file)


@dataclass(frozen=True)
class RunFacts:
    """What the report writer needs to know of the run besides its plan and its results."""

    subset: bool  # a -k/-m selection or a --arena-limit run: part of the arena only
    limit: int | None  # --arena-limit
    items_ran: tuple[int, int]  # selected matches whose item took its verdict, of how many
    gates: list  # the selected gates, in config order
    counters: object | None  # the judge's (None: nothing judged)
    served: dict  # API candidates' counters
    models_loaded: list[str]
    previous: object | None = None  # the --arena-baseline report's table
    baseline_report: Path | None = None
    update_baseline: bool = False
    audit: object | None = None  # the judge audit's tables for the page, when called (judge_audit.py)
    notes: tuple = ()  # (note, value) pairs of the run as a whole, e.g. where it stopped when decided


class RunOutputs:
    """Everything a finished run shows (``lines``) and writes (``write``), from its plan, its results and
    the facts of the run."""

    def __init__(self, plan, results, run: RunFacts):
        self.plan = plan
        self.results = results
        self.run = run
        self.config = plan.config

    def ratings(self):
        return self.results.ratings(subset=self.run.subset)

    def judge_bias(self):
        """The judge's position and length bias and the self-preference warnings (``judge_bias``)."""
        from .judge_bias import judge_bias

        self.ratings()  # (the table made once brings the answers' styles)
        styles = self.results.styles
        lengths = None if styles is None else styles["length"].to_dict()
        judge = self.config.review.judge
        if self.config.review.panel:  # (read from every judge's replies: the panel's bias)
            judge = dataclasses.replace(judge, model="panel")
        return judge_bias(self.results.judgments(), lengths, judge, self.config.models)

    # ---------------------------------------------------------------------------------------------
    # The terminal

    def lines(self, written: list[str]) -> list[str]:
        """The terminal summary's lines (the plugin puts them under an ``arena`` section)."""
        from .rating_table import format_table

        plan, run, lines = self.plan, self.run, []
        table = self.ratings()
        if table is not None and self.config.rating.enable:  # (reviews only: no ratings shown)
            lines += format_table(table, run.previous)
            for name, set_table in self.results.set_tables().items():
                lines.append(f"question set {name}:")
                lines += [f"  {line}" for line in format_table(set_table)]
            lines += _turn_lines(self.results.turn_table())  # judge_turns each: turn 1, turn 2, the average
            lines += _metric_lines(self)  # rating_gen.metrics: EvalScope's tables
        elif table is None and self.config.review.enable:
            lines.append("no judged battles: no ratings and no report")
        stage = stage_line(self.config, plan.rating_only)  # answers, reviews or rating only: said, never silent
        if stage:
            lines.append(stage)
        if plan.is_limited:
            lines.append(f"limited run: the first {run.limit} questions of each question set")
        if run.counters is not None:
            lines += judge_summary(run.counters, summary_judge(self.config.review))
        if self.config.review.enable and table is not None and table.primary == "bt":
            lines += self.judge_bias().lines()
        lines += [result.disagreement for result in self.results.gate_results.values()
                  if getattr(result, "disagreement", None)]
        lines += [served_summary(name, served_counters) for name, served_counters in run.served.items()]
        asked = any(c.requests for c in run.served.values())
        loaded = ", ".join(run.models_loaded) or ("none" if asked else "none (all answers cached)")
        if not plan.rating_only:  # (rating only loads nothing and reads no answer)
            lines.append(f"models loaded: {loaded}")
        return lines + list(written)

    # ---------------------------------------------------------------------------------------------
    # The files

    def partial_reason(self, stopped: str | None) -> str | None:
        """Why the run is not whole, in a few words; None for a whole run."""
        ran, total = self.run.items_ran
        if ran == total:
            return None
        return f"{stopped or 'not every item ran'}; {ran} of {total} {self.plan.match_kind} ran"

    def report_path(self, partial: bool = False) -> Path:
        """The rating CSV this run writes: the report, or for part of the arena its ``.subset`` report."""
        path = self.config.rating.report_file
        return subset_report(path) if self.run.subset or partial else path

    def write(self, stopped: str | None = None) -> list[str]:
        """Write the report, per-set report, plot, baseline and step summary; say what was written."""
        run = self.run
        table = self.ratings()
        if table is None:
            return []
        if not self.config.rating.enable:  # reviews only: the review file is the result
            return [f"reviews: {self.config.review.review_file}"]
        from .rating_table import markdown_summary, write_csv, write_plot

        partial = self.partial_reason(stopped)
        if partial:
            table = dataclasses.replace(table, subset=True)
        path = self.report_path(partial=partial is not None)
        write_csv(table.frame, path)
        if partial:
            written = [f"partial run ({partial}): report: {path}; the full report and the baseline are left as they were"]
        else:
            what = "a limited run (--arena-limit)" if self.plan.is_limited else "a subset run"
            written = [f"report: {path}" + (f" ({what}: the full report is left as it was)" if run.subset else "")]
        written += self._write_sets(path)
        written += _write_metric_tables(self, path)
        written += _write_turns(self.results.turn_table(), path)
        written += self._write_flips(path)
        written += _write_style_notes(table, path)
        written += _write_run_notes(run.notes, path)
        written += _panel_lines(self, path)  # a panel of judges: each judge's ratings (panel_report)
        plot = plot_file(path)
        plotted = write_plot(table, plot)
        if plotted:
            written.append(f"plot: {plot}")
        else:
            written.append("plot: pip install 'pytest-arena[plot]' (matplotlib) for a PNG of the ratings")
        written.append(self._write_page(path, table, plot if plotted else None, partial))
        if run.update_baseline and run.baseline_report is not None and not partial:
            written += self._write_baseline(table)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown_summary(table, self.results.gates_in_order(run.gates), run.previous))
            written.append("step summary: appended to $GITHUB_STEP_SUMMARY")
        return written

    def _write_baseline(self, table) -> list[str]:
        baseline = self.run.baseline_report
        if self.run.subset:
            return [f"baseline: not updated from a subset run ({baseline})"]
        from .flips import write_verdicts
        from .rating_table import write_csv

        # The verdicts first: whoever reads the new baseline CSV finds the verdicts that made it.
        verdicts = verdicts_file(baseline)
        write_verdicts(verdicts, self.results.judgments(), self.results.styles)  # styles: controlled paired gates
        write_csv(table.frame, baseline)
        return [f"baseline: updated {baseline}", f"baseline verdicts: {verdicts}"]

    def _write_flips(self, path) -> list[str]:
        from .flips import write_flips_csv

        flips_path = flips_file(path)
        return [f"flips: {flips_path}"] if write_flips_csv(flips_path, self.results.flips_in_order(self.run.gates)) else []

    def _write_page(self, path, table, plot, partial: str | None) -> str:
        """The battle browser beside the report (``battle_browser``): a partial run's beside its subset report."""
        from .battle_browser import write_page

        page = write_page(self, path, table, plot=plot, partial=partial)
        return f"battle browser: {page}"

    def _write_sets(self, path) -> list[str]:
        sets = self.results.set_tables()
        if not sets:
            return []
        import pandas as pd

        from .rating_table import write_csv

        by_set = pd.concat([t.frame.assign(Question_Set=name) for name, t in sets.items()], ignore_index=True)
        by_set = by_set[["Question_Set", *[c for c in by_set.columns if c != "Question_Set"]]]
        sets_path = sets_report(path)
        write_csv(by_set, sets_path)
        return [f"per-set report: {sets_path}"]


def _panel_lines(outputs: RunOutputs, report_path) -> list[str]:
    from .panel_report import panel_lines

    return panel_lines(outputs.plan, outputs.results.judgments(), report_path)


def _write_style_notes(table, report_path) -> list[str]:
    """What the covariates of the report's style control buy (``rating.style.csv``); nothing under ``none``."""
    fit = table.fit(table.control) if table.primary == "bt" else None
    if fit is None:
        style_notes_file(report_path).unlink(missing_ok=True)  # stale from a controlled run (ours: paths reserved it)
        return []
    from .rating_table import write_csv
    from .style_ratings import notes_frame

    path = style_notes_file(report_path)
    write_csv(notes_frame(fit), path)
    return [f"style control notes: {path}"]


def _write_run_notes(notes, report_path) -> list[str]:
    """What a reader of the report must know of the run as a whole (``rating.notes.csv``: ``Note``,
    ``Value``), e.g. ``stopped when decided``: ``decided after 120 of 240 battles (4 of 8 rounds)``."""
    if not notes:
        run_notes_file(report_path).unlink(missing_ok=True)  # stale from a run that stopped early (reserved: ours)
        return []
    import pandas as pd

    from .rating_table import write_csv

    path = run_notes_file(report_path)
    write_csv(pd.DataFrame(list(notes), columns=["Note", "Value"]), path)
    return [f"run notes: {path}"]


def _metric_tables(outputs: RunOutputs) -> dict:
    """``rating_gen.metrics``' tables (evalscope/tables.py), over the run's judgments."""
    from .evalscope.tables import metric_tables

    config = outputs.config
    return metric_tables(config, outputs.results.judgments(), outputs.plan.baseline or config.rating.baseline_model)


def _metric_lines(outputs: RunOutputs) -> list[str]:
    from .evalscope.tables import table_lines

    return table_lines(_metric_tables(outputs))


def _write_metric_tables(outputs: RunOutputs, report_path) -> list[str]:
    from .evalscope.tables import write_tables

    return write_tables(_metric_tables(outputs), report_path)


def _turn_lines(frame) -> list[str]:
    from .turn_tables import turn_lines

    return turn_lines(frame)


def _write_turns(frame, report_path) -> list[str]:
    """The per-turn tables beside the report (``<report>.turns.csv``), when the arena was judged per turn."""
    from .turn_tables import write_turn_csv

    return write_turn_csv(frame, turns_report(report_path))


def summary_judge(review):
    """The judge whose prices the summary's cost takes: a panel's judges at different prices have no one
    price for the calls added up, so no cost is stated (panel_report)."""
    prices = {(j.prompt_cost_per_1m, j.completion_cost_per_1m) for j in review.panel}
    if len(prices) > 1:
        return dataclasses.replace(review.judge, prompt_cost_per_1m=None, completion_cost_per_1m=None)
    return review.judge


def judge_summary(counters, spec) -> list[str]:
    """The judge's lines: calls, cache hits, failures, tokens, cost, and position consistency."""
    lines = [
        f"judge: {counters.calls} calls, {counters.cached} from cache, {counters.failed} failed"
        + (f", {counters.reasked} re-asked" if counters.reasked else "")
        + (f", {counters.batched} in provider batches" if getattr(counters, "batched", 0) else "")
        + (f", {counters.truncated} cut off at max_tokens" if counters.truncated else "")
        + f"; {counters.prompt_tokens} prompt + {counters.completion_tokens} completion tokens"
    ]
    cost = counters.cost(spec)
    answered = counters.calls - counters.failed  # (calls: the live ones; cache hits are counted apart)
    if cost is not None and answered > 0 and counters.prompt_tokens + counters.completion_tokens == 0:
        # Not "cost 0.0000": a server that sends no usage was paid all the same (max_cost, in spend.py,
        # counts each such call at its worst case).
        lines[0] += "; cost unknown: the server reported no token usage"
    elif cost is not None:
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
