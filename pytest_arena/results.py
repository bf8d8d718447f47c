"""What the run's verdicts add up to: the rating table (and one per question set), and the gates'
results. Computed from the runner's finished judgments; the report writer (``run_outputs``) shows
and writes them."""

from __future__ import annotations

import dataclasses

from .config import GateSpec
from .plan import ArenaPlan, gate_id


class ArenaResults:
    def __init__(self, plan: ArenaPlan, runner):
        self.plan = plan
        self.runner = runner
        self.gate_results: dict[str, object] = {}  # gate ID -> GateResult, in the order they were judged
        self._ratings = None
        self._ratings_at = -1  # the runner's ``changes`` when the table was made

    def ratings(self, subset: bool):
        """The rating table over the verdicts so far (None when nothing was judged)."""
        if self._ratings is None or self._ratings_at != self.runner.changes:
            table = self._table([j for j in self.runner.judgments() if j.ok])
            if table is None:
                return None
            self._ratings, self._ratings_at = dataclasses.replace(table, subset=subset), self.runner.changes
        return self._ratings

    def set_tables(self) -> dict:
        """Ratings per question set, when named sets take part (--arena-questions)."""
        if not self.plan.question_files:
            return {}
        verdicts = [j for j in self.runner.judgments() if j.ok]
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

        return turn_frame(self.runner.judgments(), baseline=self.plan.baseline)

    def _table(self, verdicts: list):
        if not verdicts:
            return None
        from .report import rating_table

        return rating_table(verdicts, list(self.plan.participants), self.plan.config.rating, baseline=self.plan.baseline)

    def gate_result(self, gate: GateSpec, table, previous):
        from .gates import evaluate_gate

        result = evaluate_gate(gate, table, previous)
        self.gate_results[gate_id(gate)] = result
        return result

    def gates_in_order(self, gates: list[GateSpec]) -> list[tuple[str, bool, str]]:
        """The gates' results in config order, whatever order the items ran in."""
        order = {gate_id(g): i for i, g in enumerate(gates)}
        results = sorted(self.gate_results.items(), key=lambda pair: order.get(pair[0], len(order)))
        return [(key, result.passed, result.message) for key, result in results]
