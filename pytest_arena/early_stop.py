"""Stopping when decided (``--arena-stop-when-decided``, ``rating_gen.stop_when_decided``): the battles are
judged in rounds, and the judge is called no more once every gate is decided.

The rounds: the plan's questions in a seeded random order (``rating_gen.seed``), cut into about
``ROUNDS`` rounds; a round holds every battle of its questions. After each round every gate is tested
with a group-sequential test whose error rate holds under this optional stopping (``rating.sequential``:
error-spending boundaries, a non-binding futility bound whose budget is ``rating_gen.stop_power_cost``,
:func:`sequential_design`; a fixed-sample test repeated after every round would raise the false alarms).
A gate's first crossing decides it for good. Once every gate is decided the later rounds are not judged:
their items are skipped with the reason, never passed.

The decisions are a pure function of the plan, the rounds judged and their verdicts (:func:`replay`), so
every process reaches the same ones: the runner, to stop; the gates, to report; and under pytest-xdist
each worker (each judges every round; the review file's claims make each call paid once) and the
controller (over the verdicts its workers sent). A run that stopped early is a whole run of what it
judged, never a baseline: ``--arena-baseline-update`` leaves the baseline as it was.

At the last look of a run that judged every round, ``beats`` and ``max_drop`` are decided by the paired
bootstrap (``gate_evidence``'s test) at the level of the final boundary (about 95.5% instead of 95%): the
sandwich z-test there lost power against the full run's bootstrap where the power curve is steep.

Which gates take part: ``beats``, ``max_drop`` (with the baseline run's verdicts), ``min_rating``
(``min_elo``), each on the rating its ``control`` names -- raw Bradley-Terry, or under ``length`` /
``style`` (the default is ``length``) the style-controlled fit, its looks the sandwich of that fit
(``rating.paired.style_influence``; why that is sound with the boundaries is said there) and its last
look the controlled paired bootstrap -- and ``min_win_rate`` / ``min_score`` on the mean over the
questions judged of the model's win rate against the baseline model / its score (``min_win_rate``
only with ``control: none``: under control it judges AlpacaEval's GLM, which has no look here). A
controlled ``max_drop`` needs the answers' lengths in the baseline's verdicts (stored since this
change). Any other gate (``judge_agreement``) makes the run judge every round (one line says which,
why, and the way out) and is judged at the end by its usual test.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .file_names import verdicts_file
from .gates import GateResult
from .matches import gate_id

ROUNDS = 8  # the plan in about this many rounds (the study: 80 questions, rounds of 10)
TESTED = {"beats": "regression", "drop": "regression", "elo": "threshold", "winrate": "threshold", "score": "threshold"}


@dataclass(frozen=True)
class SequentialResult(GateResult):
    """A gate decided by the sequential test; its JUnit properties say after how many battles."""

    decided_after: str = ""  # "24 of 48 battles"

    def properties(self) -> list[tuple[str, object]]:
        return super().properties() + [("decided_after", self.decided_after)]


@dataclass(frozen=True)
class StopState:
    """Where the rounds stand: the judged ones (a prefix), each gate's decision over them."""

    judged_rounds: int
    total_rounds: int
    battles_judged: int
    battles_total: int
    decisions: dict  # gate id -> (rating.Decision, round index of its deciding look or None, its estimate)
    testable: bool  # every gate is tested round by round

    @property
    def every_gate_decided(self) -> bool:
        return self.testable and bool(self.decisions) and all(d[0].decided for d in self.decisions.values())

    @property
    def stopped_early(self) -> bool:
        return self.every_gate_decided and self.judged_rounds < self.total_rounds

    def line(self) -> str:
        return f"decided after {self.battles_judged} of {self.battles_total} battles"


class RoundJudging:
    """The rounds of one run, and the sequential decisions over them (the runner holds one)."""

    def __init__(self, plan, baseline_report: Path | None, log: Callable[[str], None]):
        self.plan = plan
        self.baseline_report = baseline_report
        self.log = log
        self.gates: list = list(plan.gates)  # the selected gates (session.select)
        self.released: set[str] = set()  # matches whose round is sent to the judge
        self._baseline = None
        self._cache: tuple | None = None  # (key, StopState, not-judged reasons)
        self._rounds: tuple | None = None  # (key, rounds)

    # ---------------------------------------------------------------------------------------------
    # The rounds

    def rounds(self, matches) -> list[list]:
        """``matches`` by round, plan order within a round (made once per selection: items ask often)."""
        key = (id(matches), len(matches))
        if self._rounds is None or self._rounds[0] != key:
            self._rounds = (key, self._cut(matches))
        return self._rounds[1]

    def _cut(self, matches) -> list[list]:
        from .rating import round_schedule
        from .rating_table import question_key

        keys = list(dict.fromkeys(question_key(q) for q in self.plan.questions))
        size = max(1, math.ceil(len(keys) / ROUNDS))
        where = {key: i for i, part in enumerate(round_schedule(keys, size, seed=self.plan.config.rating.seed))
                 for key in part}
        found: list[list] = [[] for _ in range(max(where.values(), default=-1) + 1)]
        for match in matches:
            found[where[question_key(match.question)]].append(match)
        return [part for part in found if part]

    def why_not(self) -> str | None:
        """Why this run cannot stop early (it then judges every round); None when it can."""
        if not self.gates:
            return "no gate is selected"
        for gate in self.gates:
            reason = self._untested(gate)
            if reason:
                return f"gate {gate_id(gate)} {reason}"
        return None

    def _untested(self, gate) -> str | None:
        if gate.kind not in TESTED:
            return f"({gate.kind}) is not tested round by round (leave it out with -k to stop early)"
        control = gate_control(self.plan, gate)
        if gate.kind == "winrate" and control != "none":
            return (f"judges the {control}-controlled win rate, which is not tested round by round (give the gate "
                    "control: none to stop early)")
        if gate.kind == "drop" and self.baseline() is None:
            return ("has no baseline verdicts to compare with round by round (the next --arena-baseline-update "
                    "stores them)")
        if gate.kind == "drop" and control != "none" and "length_a" not in self.baseline().columns:
            return (f"is judged under {control} control and the baseline verdicts have no answer lengths (the next "
                    "--arena-baseline-update stores them; or give the gate control: none)")
        return None

    def baseline(self):
        """The baseline run's battles (None: no --arena-baseline, or no verdicts file beside it)."""
        if self._baseline is None and self.baseline_report is not None:
            from .flips import read_verdicts
            from .rating import battles_from_verdicts

            records = read_verdicts(verdicts_file(self.baseline_report))
            self._baseline = None if records is None else battles_from_verdicts(records)
        return self._baseline

    # ---------------------------------------------------------------------------------------------
    # Judging round by round (the runner's preparation)

    def judge(self, runner) -> None:
        """Send the rounds one by one, waiting for each, until every gate is decided."""
        rounds = self.rounds(runner.judged)
        reason = self.why_not()
        if reason:
            self.log(f"stop when decided: {reason}; every battle is judged")
            rounds = [[m for part in rounds for m in part]]
        for number, part in enumerate(rounds, start=1):
            self.released.update(m.id for m in part)
            runner.catch_up()
            for match in part:
                future = runner.futures.get(match.id)
                if future is not None:
                    future.exception()  # waits; a judgment's error is its item's to report
            if reason:
                return
            state = self.state(runner)
            if state.stopped_early:
                self.log(f"stop when decided: every gate is decided after round {number} of {len(rounds)}: "
                         f"{state.line()}; the rest are not judged")
                return

    def allows(self, match) -> bool:
        return match.id in self.released

    # ---------------------------------------------------------------------------------------------
    # The decisions

    def state(self, runner) -> StopState:
        """The decisions over the rounds judged so far (those with verdicts in ``runner``)."""
        key = (runner.changes, len(runner.futures), tuple(gate_id(g) for g in self.gates))
        if self._cache is None or self._cache[0] != key:
            state = self._replay(runner)
            self._cache = (key, state, self._skipped(state, runner))
        return self._cache[1]

    def _replay(self, runner) -> StopState:
        rounds = self.rounds(runner.judged)
        judged = 0
        while judged < len(rounds) and any(m.id in runner.futures for m in rounds[judged]):
            judged += 1
        total = sum(len(part) for part in rounds)
        count = sum(len(part) for part in rounds[:judged])
        testable = self.why_not() is None
        decisions = replay(self.plan, self.gates, rounds[:judged], runner.finished, self.baseline(),
                           final=judged == len(rounds)) if testable else {}
        return StopState(judged, len(rounds), count, total, decisions, testable)

    def not_judged(self, runner) -> dict[str, str]:
        """Match id -> why it was not judged (empty unless the run stopped early)."""
        self.state(runner)
        return self._cache[2]

    def _skipped(self, state: StopState, runner) -> dict[str, str]:
        if not state.stopped_early:
            return {}
        reason = (f"not judged: every gate was decided after {state.battles_judged} of {state.battles_total} "
                  "battles (--arena-stop-when-decided)")
        return {m.id: reason for part in self.rounds(runner.judged)[state.judged_rounds:] for m in part}

    def skip_reason(self, runner, match) -> str | None:
        """Why ``match``'s item is skipped (None: it was judged). Its item asking counts as its item
        having run: a battle skipped because every gate was decided does not make the run partial."""
        reason = self.not_judged(runner).get(match.id)
        if reason is not None:
            runner.reported.add(match.id)
        return reason

    def gate_result(self, gate, runner) -> GateResult | None:
        """The gate's sequential result (None: the run is not tested round by round, or the gate is not
        decided: its usual test judges it)."""
        state = self.state(runner)
        found = state.decisions.get(gate_id(gate))
        if found is None or not found[0].decided:
            return None
        decision, look_round, estimate = found
        rounds = self.rounds(runner.judged)
        battles = sum(len(part) for part in rounds[:look_round + 1]) if look_round is not None else state.battles_judged
        return sequential_result(gate, decision, estimate, f"{battles} of {state.battles_total} battles",
                                 gate_control(self.plan, gate))


# -------------------------------------------------------------------------------------------------
# Pure: the looks and decisions over the rounds judged


def replay(plan, gates, rounds: list[list], finished, baseline, final: bool) -> dict:
    """Gate id -> (Decision, round index of its deciding look, its estimate) over ``rounds`` (the judged prefix);
    ``finished(match)`` gives a match's judgment (None: none)."""
    from .flips import verdict_records
    from .rating import battles_from_verdicts, decide

    design = sequential_design(plan)
    total = len(plan.questions)
    looks: dict[str, list] = {gate_id(g): [] for g in gates}
    at_round: dict[str, list[int]] = {gate_id(g): [] for g in gates}
    controls = {gate_id(g): gate_control(plan, g) for g in gates}
    styled = any(c != "none" for c in controls.values())
    judgments: list = []
    so_far = None
    for index, part in enumerate(rounds):
        judgments += [j for m in part if (j := finished(m)) is not None and j.ok]
        so_far = battles_from_verdicts(verdict_records(judgments, _styles(plan, judgments) if styled else None))
        anchor = plan.baseline if plan.baseline in set(so_far["model_a"]) | set(so_far["model_b"]) else None
        for gate in gates:
            look = _look(gate, so_far, baseline, anchor, judgments, plan.baseline, controls[gate_id(gate)])
            if look is not None:
                looks[gate_id(gate)].append(look)
                at_round[gate_id(gate)].append(index)
    decisions = {}
    for gate in gates:
        key = gate_id(gate)
        decision = decide(looks[key], total, _threshold(gate), TESTED[gate.kind], final=final, design=design)
        deciding = next(((look, r) for look, r in zip(looks[key], at_round[key])
                         if look.questions == decision.questions), (None, None))
        estimate = deciding[0].estimate if deciding[0] is not None else None
        if _confounded_pass(gate, decision, so_far, controls[key]):
            # No early pass, and no final one here, for a model whose length and quality move together: the
            # usual test at the end asks such a pass for evidence (gates._on_evidence_if_confounded).
            decision = dataclasses.replace(decision, state="undecided", reason=f"undecided: {gate.model}'s answers "
                                           "are on one side of the other's in length nearly everywhere")
        elif final and decision.decided and gate.kind in ("beats", "drop") and looks[key] \
                and decision.questions == looks[key][-1].questions and so_far is not None:
            decision, estimate = _final_paired(plan, gate, decision, estimate, so_far, baseline, controls[key])
        decisions[key] = (decision, deciding[1], estimate)
    return decisions


def sequential_design(plan):
    """The gates' sequential design: the package's, with ``rating_gen.stop_power_cost`` as its futility budget."""
    from .rating import SequentialDesign

    cost = plan.config.rating.stop_power_cost
    return SequentialDesign() if cost is None else SequentialDesign(futility=cost)


def _confounded_pass(gate, decision, battles, control: str) -> bool:
    """A controlled beats / max_drop pass whose model's answer is on one side of the other's in length in
    at least ``style_ratings.CONFOUNDED_SHARE`` of the battles so far (the judge's length coefficient,
    which would need a bootstrap per look, is left to the final test)."""
    if decision.state != "passed" or control == "none" or gate.kind not in ("beats", "drop") or battles is None:
        return False
    from .style_ratings import CONFOUNDED_SHARE, length_side

    return length_side(battles, gate.model, gate.beats if gate.kind == "beats" else None)[1] >= CONFOUNDED_SHARE


def gate_control(plan, gate) -> str:
    """The control a gate judges under (its own, else rating_gen.style_control); scores have none."""
    if gate.kind == "score":
        return "none"
    return gate.control or plan.config.rating.style_control


def _styles(plan, judgments):
    """Each judged answer's style (``answer_styles``; None when an answer is not at hand: no controlled look)."""
    from .answer_styles import answer_styles

    return answer_styles(judgments, plan.participants) if judgments and judgments[0].score is None else None


def _threshold(gate) -> float:
    # (0.0 - x, not -x: a margin of 0 reads "+0", not "-0")
    return {"beats": lambda: 0.0 - gate.margin, "drop": lambda: 0.0 - gate.max_drop, "elo": lambda: gate.min_elo,
            "winrate": lambda: gate.min_win_rate, "score": lambda: gate.min_score}[gate.kind]()


def _look(gate, battles, baseline, anchor, judgments, baseline_model, control="none"):
    from .rating import change_look, difference_look, mean_look, rating_look

    if control != "none" and gate.kind in ("beats", "drop", "elo") and (
            "length_a" not in battles.columns or (gate.kind == "drop" and "length_a" not in baseline.columns)):
        return None  # the answers' styles are not at hand: no controlled look (the usual test judges it)
    try:
        if gate.kind in ("winrate", "score"):
            return mean_look(_per_question(gate, battles, judgments, baseline_model))
        if gate.kind == "beats":
            return difference_look(battles, gate.model, gate.beats, anchor, control=control)
        if gate.kind == "drop":
            return change_look(baseline, battles, gate.model, _anchor_in(anchor, baseline), control=control)
        return rating_look(battles, gate.model, anchor, control=control)
    except (ValueError, KeyError):
        return None  # the model has no battle yet: no look this round (the gate stays undecided)


def _per_question(gate, battles, judgments, baseline_model) -> list[float]:
    """min_win_rate: the model's win rate against the baseline model on each question judged (wins over
    games, a tie no win, as the report counts); min_score: its mean score on each question."""
    from .rating_table import question_key

    if gate.kind == "score":
        by_question: dict = {}
        for j in judgments:
            if j.score is not None and getattr(j.match, "model", None) == gate.model:
                by_question.setdefault(question_key(j.match.question), []).append(j.score)
        return [sum(v) / len(v) for v in by_question.values()]
    pair = battles[((battles["model_a"] == gate.model) & (battles["model_b"] == baseline_model))
                   | ((battles["model_b"] == gate.model) & (battles["model_a"] == baseline_model))]
    won = ((pair["winner"] == "model_a") & (pair["model_a"] == gate.model)) | (
        (pair["winner"] == "model_b") & (pair["model_b"] == gate.model))
    frame = pair.assign(won=won * pair["weight"])
    totals = frame.groupby("question_id", sort=False)[["won", "weight"]].sum()
    return list(totals["won"] / totals["weight"])


def _anchor_in(anchor, baseline):
    rated = set(baseline["model_a"]) | set(baseline["model_b"])
    return anchor if anchor in rated else None


def _final_paired(plan, gate, decision, estimate, battles, baseline, control="none"):
    """The last look of a whole run, for beats/max_drop: the paired bootstrap at the final boundary's level."""
    from .rating import paired_change, paired_difference
    from .rating.sequential import _sf

    spec = plan.config.rating
    if decision.efficacy is None or not math.isfinite(decision.efficacy) or spec.bootstrap_rounds < 1:
        return decision, estimate
    level = 1.0 - 2.0 * float(_sf(decision.efficacy))
    anchor = plan.baseline if plan.baseline in set(battles["model_a"]) | set(battles["model_b"]) else None
    try:
        if gate.kind == "beats":
            iv = paired_difference(battles, gate.model, gate.beats, rounds=spec.bootstrap_rounds, seed=spec.seed,
                                   anchor=anchor, level=level, control=control)
        else:
            iv = paired_change(baseline, battles, gate.model, rounds=spec.bootstrap_rounds, seed=spec.seed,
                               anchor=_anchor_in(anchor, baseline), level=level, control=control)
    except ValueError:
        return decision, estimate
    threshold = _threshold(gate)
    state = "failed" if iv.below(threshold) else "passed"
    verdict = "significantly below" if state == "failed" else "not significantly below"
    kind = "paired" if control == "none" else f"paired, {control}-controlled"
    reason = (f"decided after {decision.questions} of {decision.total} questions: {iv.estimate:+.1f} ({kind} "
              f"{level:.1%} CI {iv.ci_lower:+.1f} .. {iv.ci_upper:+.1f}, the final boundary's level), {verdict} {threshold:+g}")
    return dataclasses.replace(decision, state=state, interval=(iv.ci_lower, iv.ci_upper), reason=reason), iv.estimate


def sequential_result(gate, decision, estimate, decided_after: str, control: str = "none") -> SequentialResult:
    """A decided gate as the gate items and reports show it."""
    from .style_ratings import RATING_NAMES

    name = RATING_NAMES[control]
    heads = {"beats": f"{gate.model} - {gate.beats}: {name} difference",
             "drop": f"{gate.model}: {name} change against the baseline run",
             "elo": f"{gate.model}: {name}", "winrate": f"{gate.model}: win rate vs the baseline model",
             "score": f"{gate.model}: mean score"}
    passed = decision.state == "passed"
    interval = decision.interval
    return SequentialResult(
        passed, f"{heads[gate.kind]}, sequential test ({decided_after}): {decision.reason}",
        value=estimate, ci=tuple(interval) if interval else None, threshold=_threshold(gate), decided_after=decided_after,
        control=control)


def notes(runner) -> tuple:
    """The run notes of a run that stopped when decided, for the CSV beside the report."""
    state = runner.rounds.state(runner)
    plan = runner.rounds.plan
    set_by = "the default" if plan.config.rating.stop_power_cost is None else "rating_gen.stop_power_cost"
    return (("stopped when decided", f"{state.line()} ({state.judged_rounds} of {state.total_rounds} rounds)"),
            ("not judged", f"{state.battles_total - state.battles_judged} battles (--arena-stop-when-decided)"),
            ("power cost", f"{sequential_design(plan).futility:g} ({set_by})"))


def report_lines(runner, baseline_kept: Path | None) -> list[str]:
    """What a run that stopped early says (terminal; also appended to the CI step summary): what it
    judged, and, under --arena-baseline-update, that the baseline was left as it was."""
    import os

    state = runner.rounds.state(runner)
    lines = [f"stopped when decided: {state.line()} ({state.judged_rounds} of {state.total_rounds} rounds); the other "
             f"{state.battles_total - state.battles_judged} were not judged (skipped, --arena-stop-when-decided)"]
    if baseline_kept is not None:
        lines.append(f"baseline: not updated from a run that stopped when decided ({baseline_kept})")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write("\n" + "\n\n".join(lines) + "\n")
    return lines
