"""``ArenaSession``: the state of one arena run, which the pytest plugin holds and delegates to.

It is plain Python: build it from a config, ``select`` what should run, ``prepare`` the answers and
judgments, then ask for ``judgment``s, ``gate_result``s and the outputs. Each job has its own room,
and the session only wires them together:

- ``plan.ArenaPlan``: the questions, participants, matches and gates (``plan.build_plan``: from the
  config, or in a rating-only run from the review file, whose verdicts it brings);
- ``validation``: every check, before anything loads (``check_plan`` here, ``preflight``,
  ``check_credentials``);
- ``arena_runner.ArenaRunner``: answers and judgments (backends from ``backends``);
- ``results.ArenaResults``: ratings, gate results and flips; ``run_outputs.RunOutputs``: the terminal
  lines and the files written, over the plan, the results and the facts of the run (``RunFacts``);
- ``distributed``: the process's role under pytest-xdist (``Alone`` otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import validation
from .arena_runner import ArenaRunner, Match
from .config import JUDGE_AGREEMENT, ArenaConfig, GateSpec, load_config
from .distributed import Alone
from .file_names import flips_file
from .generation.fingerprint import DigestMemo
from .judge_audit import configure_audit
from .judging.judgment import Judgment
from .matches import gate_id
from .plan import build_plan
from .results import ArenaResults


class ArenaSession:
    def __init__(self, config: ArenaConfig, *, cache_dir: Path | None = None, log: Callable[[str], None] = print,
                 baseline_report: Path | None = None, update_baseline: bool = False,
                 question_files: list[Path] | None = None, limit: int | None = None, audit_file: Path | None = None,
                 stop_when_decided: bool = False):
        self.config = config
        self.log = log
        self.limit = limit
        self.baseline_report = Path(baseline_report) if baseline_report else None
        self.update_baseline = update_baseline
        self.previous = None  # the baseline report's table, read in preflight
        self.cache_dir = Path(cache_dir) if cache_dir else None
        memo = DigestMemo(self.cache_dir / "fingerprints.json" if self.cache_dir else None)
        # Rating only (EvalScope's stage flags): the review file's verdicts make the plan, one match each.
        self.plan = build_plan(config, question_files, limit, memo, log)
        self.rating_only = self.plan.rating_only
        validation.check_plan(self.plan)
        self.audit = configure_audit(self.plan, audit_file, log)  # the judge audit's labels, checked now (or None)
        self.mode = self.plan.mode
        self.questions = self.plan.questions
        self.is_limited = self.plan.is_limited
        self.baseline = self.plan.baseline
        self.participants = self.plan.participants
        self.matches = self.plan.matches
        self.gates = list(self.plan.gates)
        self.runner = ArenaRunner(self.plan, Alone(), self.cache_dir, memo, log)
        self.results = ArenaResults(self.plan, self.runner)
        self._selected: list[Match] = list(self.matches)
        if (stop_when_decided or config.rating.stop_when_decided) and config.review.enable and not self.rating_only:
            from .early_stop import RoundJudging  # judged in rounds until every gate is decided

            self.runner.rounds = RoundJudging(self.plan, self.baseline_report, log)

    @classmethod
    def from_file(cls, path, *, results_dir=None, model_paths=None, batch=None, **kwargs) -> "ArenaSession":
        config = load_config(path, results_dir=results_dir, model_paths=model_paths,
                             questions_given=bool(kwargs.get("question_files")))
        if batch:  # --arena-batch: the judge's calls go through the provider's Batch API (batch_judging.py)
            from .batch_judging import with_batch_mode

            config = with_batch_mode(config, batch)
        return cls(config, **kwargs)

    # ---------------------------------------------------------------------------------------------
    # Before anything runs

    def preflight(self) -> None:
        """Every check that needs a library or a second look, but no model (``validation.preflight``)."""
        self.previous = validation.preflight(self.plan, self.baseline_report, self.update_baseline, self.log)
        if self.config.review.enable:
            from .budget import read_budget

            self.runner.budget = read_budget(self.config)  # a malformed ARENA_MAX_COST is a usage error now

    def check_credentials(self) -> None:
        validation.check_credentials(self.config)

    def select(self, matches: list[Match], gates: list[GateSpec]) -> None:
        """What this run does (pytest's selection after -k/-m/--lf): only these are generated for and
        judged, and the whole plan when a gate runs: a gate rates the arena, not what a run selected.

        Kept in plan (config) order, whatever order pytest or a plugin (pytest-randomly) runs the items
        in: the online Elo takes the battles in this order, so the ratings do not change with it."""
        in_plan = {m.id: i for i, m in enumerate(self.matches)}
        self._selected = sorted(matches, key=lambda m: in_plan[m.id])
        in_config = {gate_id(g): i for i, g in enumerate(self.config.gates)}
        self.gates = sorted(gates, key=lambda g: in_config.get(gate_id(g), len(in_config)))
        # (under xdist the workers judge the blocks of the selected items only)
        self.runner.judged = list(self.matches) if self.gates and self.role.whole_run_here else self._selected
        if self.runner.rounds is not None:
            self.runner.rounds.gates = self.gates
        self.role.selected(self._selected)

    @property
    def role(self):
        """This process's part in the run (``distributed``): alone, or an xdist worker or controller."""
        return self.runner.role

    @property
    def is_subset(self) -> bool:
        """A -k/-m selection or a --arena-limit run: it rates part of the arena only."""
        return len(self._selected) < len(self.matches) or self.is_limited

    @property
    def match_kind(self) -> str:
        return self.plan.match_kind

    def needed_models(self) -> list[str]:
        return self.runner.needed_models()

    def planned_calls(self) -> tuple[int, int | None]:
        """Judge calls the selection needs, and how many the review cache holds (None while answers are missing)."""
        return self.runner.planned_calls()

    def budget_line(self) -> str | None:
        """``--collect-only``'s judge budget estimate (budget.py); None without a budget or prices."""
        from .budget import collect_only_line

        return collect_only_line(self.runner)

    # ---------------------------------------------------------------------------------------------
    # Running (``arena_runner``)

    def prepare(self) -> None:
        self.runner.prepare()

    def prepare_run(self) -> None:
        self.runner.prepare_run(self._selected)

    def ready_for(self, item_id: str) -> None:
        self.runner.ready_for(item_id)

    @property
    def prepared(self) -> bool:
        return self.runner.prepared

    def judgment(self, match: Match) -> Judgment | None:
        return self.runner.judgment(match)

    def judgments(self) -> list[Judgment]:
        return self.runner.judgments()

    def not_judged(self, match: Match) -> str | None:
        """Why the match's round was never judged (every gate decided first), or None."""
        return self.runner.rounds.skip_reason(self.runner, match) if self.runner.rounds is not None else None

    @property
    def counters(self):
        """Judge calls, cache hits, failures and tokens of this run (None when nothing was judged)."""
        return self.role.counters(self.runner.judge)

    @property
    def models_loaded(self) -> list[str]:
        return self.runner.models_loaded

    @property
    def served_counters(self) -> dict:
        return self.runner.served_counters

    # ---------------------------------------------------------------------------------------------
    # Ratings, gates, report (``results``, ``run_outputs``)

    def ratings(self):
        """The rating table over this session's verdicts (None when nothing was judged)."""
        return self.results.ratings(subset=self.is_subset)

    def set_tables(self) -> dict:
        return self.results.set_tables()

    def gate_result(self, gate: GateSpec):
        """The gate's result; None in a process that does not evaluate gates (an xdist worker: the
        controller evaluates each over every worker's verdicts)."""
        if not self.role.evaluates_gates:
            return None
        if self.role.prepares:  # (the xdist controller has every verdict before its scheduler sends a gate)
            self.runner.await_all()
        if gate.kind == JUDGE_AGREEMENT:  # a gate on the judge, judged on the audit's labels (judge_audit.py)
            result = self.results.gate_results[gate_id(gate)] = self.audit.gate_result(gate, self.runner)
            return result
        flips_csv = flips_file(self.outputs().report_path())
        return self.results.gate_result(gate, self.ratings(), self.previous, self.baseline_report, flips_csv)

    @property
    def gate_results(self) -> dict:
        return self.results.gate_results

    def items_ran(self) -> tuple[int, int]:
        """How many selected matches had their item take its verdict, of how many: fewer when the run
        stopped early (-x, --maxfail, --sw) or an item did not run (an error in its setup, a skip)."""
        skipped = self.runner.rounds.not_judged(self.runner) if self.runner.rounds is not None else {}
        return sum(m.id in self.runner.reported or m.id in skipped for m in self._selected), len(self._selected)

    def outputs(self):
        """The run's outputs (``lines`` for the terminal, ``write`` for the files), over its plan, its
        results and the facts of the run."""
        from .run_outputs import RunFacts, RunOutputs

        facts = RunFacts(subset=self.is_subset, limit=self.limit, items_ran=self.items_ran(), gates=self.gates,
                         counters=self.counters, served=self.served_counters, models_loaded=self.models_loaded,
                         previous=self.previous, baseline_report=self.baseline_report,
                         update_baseline=self.update_baseline and not self.stopped_early,
                         audit=(lambda: self.audit.page_tables(self.runner)) if self.audit is not None else None,
                         notes=self._run_notes())
        return RunOutputs(self.plan, self.results, facts)

    def _run_notes(self) -> tuple:
        """The report's run notes (``run_outputs._write_run_notes``): where a run that stopped when decided stopped."""
        if not self.stopped_early:
            return ()
        from .early_stop import notes

        return notes(self.runner)

    @property
    def stopped_early(self) -> bool:
        """Every gate was decided before the last round (--arena-stop-when-decided): no baseline from it."""
        return self.runner.rounds is not None and self.runner.rounds.state(self.runner).stopped_early

    def write_outputs(self, stopped: str | None = None) -> list[str]:
        """Write the report (and the plot, the battle browser, the step summary, the updated baseline);
        say what was written. ``stopped``: why pytest stopped early, if it did."""
        written = self.outputs().write(stopped)
        if written and self.stopped_early:  # what the run judged, and no baseline from it (early_stop)
            from .early_stop import report_lines

            written = report_lines(self.runner, self.baseline_report if self.update_baseline else None) + written
        if written and self.audit is not None:  # the judge audit's table, CSV and page (judge_audit.py)
            written += self.audit.report(self.runner, self.outputs().report_path())
        return written

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()
        self.runner.close()
