"""Study 7 of ``ratings_study.py`` (issue 25): ``max_drop`` at a drop of the rating it judges.

Studies 4 and 5 move the candidate's population sft - base *gap* by -100; under mean anchoring that
moves sft's own rating, the number ``max_drop`` judges, by only about -67 (``Cell.true_change``). Here
each cell's candidate instead drops sft's own population rating by ``DROP`` points (the gap solved for
it, per cell, by bisection on ``true_change``), on the same 80 questions as its baseline run, and the
paired and unpaired ``max_drop`` gates are judged as in study 4, raw and length-controlled.
"""

from __future__ import annotations

import zlib

import numpy as np
from _simulation import answer_lengths
from _style_study import _with_lengths
from study_cells import CELLS, GATE_NAMES

from pytest_arena import gates, rating, rating_table
from pytest_arena.config import GateSpec, RatingSpec

DROP = 100.0
GATES = {"max_drop 0": 0.0, "max_drop 15": 15.0}
CONTROLS = ("none", "length")


def gap_for_drop(cell, drop: float = DROP) -> float:
    """The sft - base gap whose candidate moves sft's own population rating by ``-drop``."""
    low, high = -4.0 * drop, 0.0  # true_change is increasing in the gap, 0 at 0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cell.true_change(middle) < -drop else (low, middle)
    return (low + high) / 2


def _rep(job):
    name, seed, r, questions, rounds, tie, gap = job
    rng = np.random.default_rng([seed, 7, zlib.crc32(name.encode()), r])
    baseline, (candidate,) = CELLS[name].simulate(rng, questions, (gap,), tie)
    if "length_a" not in baseline.columns:
        lengths = answer_lengths(np.random.default_rng([seed, 7, 1, r]), questions, len(GATE_NAMES))
        baseline, candidate = _with_lengths(baseline, lengths), _with_lengths(candidate, lengths)
    out = {}
    for control in CONTROLS:
        spec = RatingSpec(metrics=("bt",), bootstrap_rounds=rounds, seed=r, bootstrap_by="question",
                          style_control=control)
        models = list(GATE_NAMES)
        previous = rating_table.battle_table(baseline, models, spec).frame
        table = rating_table.battle_table(candidate, models, spec)
        change = rating.paired_change(baseline, candidate, "sft", rounds=rounds, seed=r, control=control)
        for gate, allowed in GATES.items():
            unpaired = gates.evaluate_gate(GateSpec("sft", max_drop=allowed, control=control), table, previous)
            out[control, "before", gate] = int(not unpaired.passed)
            out[control, "after", gate] = int(change.below(-allowed))
    return out


def study_drop(args, pool, print_table):
    reps, questions, rounds = args.paired_reps, 80, args.paired_rounds
    names = args.cells or list(CELLS)
    print(f"\n7. max_drop at a {DROP:g}-point drop of sft's own rating (issue 25), {questions} questions, "
          f"{rounds} bootstrap rounds by question, {reps} repetitions per cell; before (unpaired) -> after (paired), "
          "rates of FAILED gates, ± the binomial SE of 'after'.")
    rows = []
    for name in names:
        gap = gap_for_drop(CELLS[name])
        counts: dict = {}
        for result in pool.map(_rep, [(name, args.seed, r, questions, rounds, args.tie, gap) for r in range(reps)]):
            for key, value in result.items():
                counts[key] = counts.get(key, 0) + value
        row = [name, f"{gap:+.1f}"]
        for control in CONTROLS:
            for gate in GATES:
                before, after = counts[control, "before", gate] / reps, counts[control, "after", gate] / reps
                se = np.sqrt(max(after * (1 - after), 1e-12) / reps)
                row.append(f"{100 * before:.1f}% -> {100 * after:.1f}% ± {100 * se:.1f}")
        rows.append(row)
    print_table(["cell", "gap for it"] + [f"{gate} ({control})" for control in CONTROLS for gate in GATES], rows)
