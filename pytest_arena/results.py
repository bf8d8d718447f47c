"""What the run's verdicts add up to: the rating table (and one per question set, and per turn), the
gates' results, and the battles behind a failed gate (flips). Computed from the runner's finished
judgments; the run's outputs (``run_outputs``) show and write them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import GateSpec
from .matches import gate_id
from .plan import ArenaPlan


class ArenaResults:
    def __init__(self, plan: ArenaPlan, runner):
        self.plan = plan
        self.runner = runner
        self.gate_results: dict[str, object] = {}  # gate ID -> GateResult, in the order they were judged
        self.flips: dict[str, list] = {}  # failed max_drop/beats gate ID -> its evidence (flips.py)
        self._ratings = None
        self._ratings_at = -1  # the runner's ``changes`` when the table was made
        self.styles = None  # each answer's style (answer_styles), from the latest table: flips' length ratios

    def judgments(self) -> list:
        """The finished judgments of the run, in plan order."""
        return self.runner.judgments()

    def outcomes(self):
        """Each match judged in this run, in plan order, with its judgment (None: reviews off) or the
        error its judging raised: ``(match, judgment, error)``."""
        self._read_written_answers(self.runner.judged)
        for match in self.runner.judged:
            future = self.runner.futures.get(match.id)
            if future is None or not future.done() or future.cancelled():
                continue  # not judged in this run (a partial run stopped before it)
            failure = future.exception()
            yield match, (None if failure is not None else future.result()), failure

    def ratings(self, subset: bool):
        """The rating table over the verdicts so far (None when nothing was judged)."""
        if self._ratings is None or self._ratings_at != self.runner.changes:
            table = self._table([j for j in self.judgments() if j.ok])
            if table is None:
                return None
            self._ratings, self._ratings_at = dataclasses.replace(table, subset=subset), self.runner.changes
        return self._ratings

    def set_tables(self) -> dict:
        """Ratings per question set, when named sets take part (--arena-questions)."""
        if not self.plan.question_files:
            return {}
        verdicts = [j for j in self.judgments() if j.ok]
        tables = {}
        for name in dict.fromkeys(q.question_set for q in self.plan.questions):
            table = self._table([j for j in verdicts if j.match.question.question_set == name])
            if table is not None:
                tables[name] = table
        return tables

    def turn_table(self):
        """The per-turn tables (``turn_tables``) over the verdicts so far; None unless judged per turn."""
        if self.plan.config.review.judge_turns != "each":
            return None
        from .turn_tables import turn_frame

        return turn_frame(self.judgments(), baseline=self.plan.baseline)

    def _table(self, verdicts: list):
        if not verdicts:
            return None
        from .answer_styles import answer_styles
        from .rating_table import rating_table

        self._read_written_answers([j.match for j in verdicts])
        # The answers' styles always ride along (a gate may ask for a control the report does not use).
        styles = answer_styles(verdicts, self.plan.participants) if verdicts[0].score is None else None
        if styles is not None:
            self.styles = styles
        return rating_table(verdicts, list(self.plan.participants), self.plan.config.rating, baseline=self.plan.baseline,
                            styles=styles)

    def _read_written_answers(self, matches) -> None:
        """An xdist controller generated nothing: its participants hold only the answers that existed when
        the run was planned, until the ones the workers wrote are read from the answer files (the cache; no
        model loads). The answers' lengths (style control) and the battle browser need them."""
        missing: dict[str, dict] = {}  # model -> its unanswered questions, by question key
        for match in matches:
            for name in match.models:
                source = self.plan.participants.get(name)
                if source is not None and source.generates and source.get(match.question) is None:
                    missing.setdefault(name, {})[match.question.key] = match.question
        for name, questions in missing.items():
            self.plan.participants[name].load_cached(list(questions.values()))

    def gate_result(self, gate: GateSpec, table, previous, baseline_report: Path | None, flips_csv: Path):
        """The gate's result; a failed max_drop or beats gate's message names the battles behind it
        (kept in ``flips`` for the CSV ``flips_csv`` and the battle browser)."""
        from .flips import explain
        from .gates import evaluate_gate

        from .gate_evidence import run_evidence

        rounds = self.runner.rounds  # judged in rounds: the sequential decision is the gate's (early_stop)
        result = (rounds.gate_result(gate, self.runner) if rounds is not None else None) or evaluate_gate(
            gate, table, previous, run_evidence(self.plan, [j for j in self.judgments() if j.ok], baseline_report,
                                             self.styles))
        self.gate_results[gate_id(gate)] = result
        lengths = None if self.styles is None else self.styles["length"].to_dict()
        explained, flips = explain(gate, result, self.judgments(), previous, baseline_report, flips_csv, lengths)
        self.flips.pop(gate_id(gate), None)  # (a gate evaluated again: its latest result counts)
        if flips is not None:
            self.flips[gate_id(gate)] = flips
        return explained

    def gates_in_order(self, gates: list[GateSpec]) -> list[tuple[str, bool, str]]:
        """The gates' results in config order, whatever order the items ran in."""
        order = {gate_id(g): i for i, g in enumerate(gates)}
        results = sorted(self.gate_results.items(), key=lambda pair: order.get(pair[0], len(order)))
        return [(key, result.passed, result.message) for key, result in results]

    def flips_in_order(self, gates: list[GateSpec]) -> dict[str, list]:
        """Gate item ID -> the flips of each failed max_drop or beats gate evaluated so far, in config
        order (whatever order the gate items ran in)."""
        order = [gate_id(g) for g in gates]
        return {key: self.flips[key] for key in sorted(self.flips, key=lambda k: order.index(k) if k in order else len(order))}
