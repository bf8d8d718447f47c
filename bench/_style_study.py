"""Study 6 of ``ratings_study.py`` (issue 24): the gates under length control, before (``style_control:
none``) and after (``length``), in every cell of ``study_cells.py``.

Each repetition of a cell draws a baseline run and one candidate run per case (no change, a 100- and a
200-point drop of the sft - base population gap) on the same 80 questions, and judges the ``beats`` and
``max_drop 0`` gates through ``rating_table.battle_table`` + ``gates.evaluate_gate`` under each control
(the baseline run's table, under the same control, is the previous report). Cells whose tables carry no
answer lengths (the built-in ones) get log-normal lengths, the same distribution for every model, from a
generator of their own: their judge never saw a length, so what control costs there is pure power.
The "verbose fine-tune" cell's judge favours the longer answer and its candidate pads its answers;
"verbose, blind judge" pads the same answers before a judge that ignores length.
"""

from __future__ import annotations

import zlib

import numpy as np
from _simulation import answer_lengths
from study_cells import CELLS, GAPS, GATE_NAMES

from pytest_arena import gates, rating_table
from pytest_arena.config import GateSpec, RatingSpec

GATES = {"beats": GateSpec("sft", beats="base", margin=0.0), "max_drop 0": GateSpec("sft", max_drop=0.0)}
CONTROLS = ("none", "length")
CASES = {0.0: "no change", -100.0: "-100", -200.0: "-200"}


def _with_lengths(table, lengths):
    index = {name: i for i, name in enumerate(GATE_NAMES)}
    q = table["question_id"].to_numpy()
    a = np.array([index[m] for m in table["model_a"]])
    b = np.array([index[m] for m in table["model_b"]])
    return table.assign(length_a=lengths[q, a], length_b=lengths[q, b])


def _rep(job):
    name, seed, r, questions, rounds, tie = job
    rng = np.random.default_rng([seed, 6, zlib.crc32(name.encode()), r])
    baseline, candidates = CELLS[name].simulate(rng, questions, GAPS, tie)
    if "length_a" not in baseline.columns:
        lengths = answer_lengths(np.random.default_rng([seed, 6, 1, r]), questions, len(GATE_NAMES))
        baseline, candidates = _with_lengths(baseline, lengths), [_with_lengths(c, lengths) for c in candidates]
    models = list(GATE_NAMES)
    out = {}
    for control in CONTROLS:
        spec = RatingSpec(metrics=("bt",), bootstrap_rounds=rounds, seed=r, bootstrap_by="question",
                          style_control=control)
        previous = rating_table.battle_table(baseline, models, spec).frame
        for gap, candidate in zip(GAPS, candidates):
            table = rating_table.battle_table(candidate, models, spec)
            for gate, gate_spec in GATES.items():
                result = gates.evaluate_gate(gate_spec, table, previous)
                out[control, gate, gap] = int(not result.passed)
                if control == "length":  # the one-line disagreement a user would read
                    out["line", gate, gap] = int(result.disagreement is not None)
                    # a controlled pass asked for evidence (gates._on_evidence_if_confounded)
                    out["evidence", gate, gap] = int("on evidence" in result.message)
    return out


def _sum(results):
    total = {}
    for result in results:
        for key, value in result.items():
            total[key] = total.get(key, 0) + value
    return total


def _pct(hits, n):
    p = hits / n
    return f"{100 * p:5.1f}% ± {100 * np.sqrt(max(p * (1 - p), 1e-12) / n):.1f}"


def study_style(args, pool, print_table):
    reps, questions, rounds = args.style_reps, 80, args.style_rounds
    names = args.cells or list(CELLS)
    print(f"\n6. Length control (issue 24): beats and max_drop 0 under style_control none (before) and length "
          f"(after), {questions} questions, base/ref/sft each pair once per question, {rounds} bootstrap rounds by "
          f"question, {reps} repetitions per cell. Rates are of FAILED gates; ± is the binomial standard error.")
    for name in names:
        print(f"   {name}: {CELLS[name].about}")
    rows = []
    for name in names:
        counts = _sum(pool.map(_rep, [(name, args.seed, r, questions, rounds, args.tie) for r in range(reps)]))
        for control in CONTROLS:
            rows.append([name, control] + [_pct(counts[control, gate, gap], reps) for gate in GATES for gap in GAPS])
        rows.append([name, "line shown"] + [_pct(counts["line", gate, gap], reps) for gate in GATES for gap in GAPS])
        rows.append([name, "evidence asked"] + [_pct(counts["evidence", gate, gap], reps) for gate in GATES
                                                for gap in GAPS])
    print_table(["cell", "control"] + [f"{gate}: {CASES[gap]}" for gate in GATES for gap in GAPS], rows)
    print("   nominal: no change fails 2.5%; a drop's row is power (the verbose fine-tune's false passes are 100% "
          "minus it); 'line shown': the gate's raw and length-controlled verdicts disagreed; 'evidence asked': the "
          "model's length and quality were confounded, so a controlled pass had to clear its threshold")
