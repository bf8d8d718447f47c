"""Studies 4 and 5 of ``ratings_study.py`` (issue 25): paired gates, before and after, and stopping when
decided -- on the same simulated runs, in every cell of ``study_cells.py``.

Each repetition of a cell draws a baseline run and one candidate run per case (no change, a 100- and a
200-point drop of the sft - base population gap), all on the same 80 questions, and judges:

- *before*: today's unpaired gates, ``gates.evaluate_gate`` on ``rating_table.battle_table`` of the candidate
  run, the baseline run's table as the previous report (bootstrap by question, the default);
- *after*: the paired gates, ``rating.paired_change`` (max_drop) and ``rating.paired_difference``
  (beats), with the same number of bootstrap rounds;
- *sequential*: questions in rounds of ``--round-size`` in a seeded random order
  (``rating.round_schedule``), after each round ``rating.change_look`` / ``difference_look`` and
  ``rating.decide`` per gate (defaults of ``rating.SequentialDesign``); each gate's first decision is
  kept, a run with all three gates stops when the last is decided;
- *predicted*: ``rating.beats_power`` / ``max_drop_power`` on the baseline run, the detection rate they
  predict at the cell's true change (raw Bradley-Terry's sandwich, whatever the control).

``--paired-control length`` (or ``style``) runs the same under a style control, the package's default:
*before* is the unpaired controlled gate (``battle_table`` under that ``style_control``), *after* the
controlled paired bootstrap (``paired_change`` / ``paired_difference`` with ``control``), the looks the
controlled fit's sandwich. Cells without answer lengths get ``_simulation.answer_lengths`` (log-normal,
the same distribution for every model, a generator of their own, the same lengths in both runs): their
judge never saw a length, so what the control costs there is pure power.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from _simulation import answer_lengths
from scipy.stats import norm
from _style_study import _with_lengths
from study_cells import CELLS, GAPS, GATE_NAMES

from pytest_arena import gates, rating, rating_table
from pytest_arena.config import GateSpec, RatingSpec

GATES = {  # name -> (GateSpec for the unpaired gate, threshold of the paired/sequential test)
    "beats": (GateSpec("sft", beats="base", margin=0.0), -0.0),
    "max_drop 0": (GateSpec("sft", max_drop=0.0), -0.0),
    "max_drop 15": (GateSpec("sft", max_drop=15.0), -15.0),
}
CASES = {0.0: "no change", -100.0: "-100", -200.0: "-200"}


def _rep(job):
    name, seed, r, questions, rounds, tie, round_size, control, futility = job
    cell = CELLS[name]
    # Seeded by the cell's name, so that adding a cell leaves the others' draws (and figures) as they were.
    rng = np.random.default_rng([seed, 5, zlib.crc32(name.encode()), r])
    baseline, candidates = cell.simulate(rng, questions, GAPS, tie)
    if control != "none" and "length_a" not in baseline.columns:
        lengths = answer_lengths(np.random.default_rng([seed, 5, 1, r]), questions, len(GATE_NAMES))
        baseline, candidates = _with_lengths(baseline, lengths), [_with_lengths(c, lengths) for c in candidates]
    models = list(GATE_NAMES)
    spec = RatingSpec(metrics=("bt",), bootstrap_rounds=rounds, seed=r, bootstrap_by="question", style_control=control)
    previous = rating_table.battle_table(baseline, models, spec).frame
    out = {}
    for gap, candidate in zip(GAPS, candidates):
        table = rating_table.battle_table(candidate, models, spec)
        change = rating.paired_change(baseline, candidate, "sft", rounds=rounds, seed=r, control=control)
        difference = rating.paired_difference(candidate, "sft", "base", rounds=rounds, seed=r, control=control)
        for gate, (gate_spec, threshold) in GATES.items():
            out["before", gate, gap] = int(not gates.evaluate_gate(gate_spec, table, previous).passed)
            paired = difference if gate == "beats" else change
            out["after", gate, gap] = int(paired.below(threshold))
        out.update(_sequential(baseline, candidate, questions, round_size, r, gap, control, futility))
    z = norm.isf(0.025)
    (beats,) = rating.beats_power(baseline, "sft", "base", 0.0)
    carried, fresh = rating.max_drop_power(baseline, "sft", 0.0)
    for gap in GAPS[1:]:
        out["predicted", "beats", gap] = norm.cdf(-gap / beats.se - z)
        change = -cell.true_change(gap)
        out["predicted", "carried", gap] = norm.cdf(change / carried.se - z)
        out["predicted", "fresh", gap] = norm.cdf(change / fresh.se - z)
    return out


def _sequential(baseline, candidate, questions, round_size, seed, gap, control="none", futility=0.05):
    """Each gate's first decision and the questions judged by then; the run of all three gates stops at
    the last of them. ``futility``: the design's futility budget (``--futility``; the product's is the default)."""
    design = rating.SequentialDesign(futility=futility)
    schedule = rating.round_schedule(sorted(candidate["question_id"].unique()), round_size, seed=seed)
    looks = {gate: [] for gate in GATES}
    decided = {}
    asked = []
    for k, round_questions in enumerate(schedule):
        asked += round_questions
        if len(asked) < rating.SequentialDesign().min_questions:
            continue
        so_far = candidate[candidate["question_id"].isin(asked)]
        final = k == len(schedule) - 1
        for gate, (_, threshold) in GATES.items():
            if gate in decided:
                continue
            look = (rating.difference_look(so_far, "sft", "base", control=control) if gate == "beats"
                    else rating.change_look(baseline, so_far, "sft", control=control))
            looks[gate].append(look)
            decision = rating.decide(looks[gate], questions, threshold, final=final, design=design)
            if decision.decided:
                decided[gate] = decision
        if len(decided) == len(GATES):
            break
    out = {}
    for gate, decision in decided.items():
        out["seq", gate, gap] = int(decision.state == "failed")
        out["seqp", gate, gap] = int(_final_paired(gate, decision, baseline, candidate, questions, seed, control=control))
        out["seq_q", gate, gap] = decision.questions
        out["seq_q2", gate, gap] = decision.questions ** 2
    last = max(d.questions for d in decided.values())
    out["seq_q", "all three", gap], out["seq_q2", "all three", gap] = last, last ** 2
    return out


def _final_paired(gate, decision, baseline, candidate, questions, seed, rounds=200, control="none"):
    """Failed, under the product's rule for the last look of a whole run (``early_stop._final_paired``): a
    beats/max_drop gate still undecided there is decided by the paired bootstrap at the level of the
    final efficacy boundary (1 - 2 sf(c_K), about 95.5%) instead of the sandwich z against c_K."""
    if decision.questions < questions:
        return decision.state == "failed"  # decided at an earlier look: the rule does not apply
    level = 1.0 - 2.0 * float(norm.sf(decision.efficacy))
    threshold = GATES[gate][1]
    if gate == "beats":
        iv = rating.paired_difference(candidate, "sft", "base", rounds=rounds, seed=seed, level=level, control=control)
    else:
        iv = rating.paired_change(baseline, candidate, "sft", rounds=rounds, seed=seed, level=level, control=control)
    return iv.below(threshold)


def _sum(results):
    total = {}
    for result in results:
        for key, value in result.items():
            total[key] = total.get(key, 0) + value
    return total


def _pct(hits, n):
    p = hits / n
    return f"{100 * p:.1f}% ± {100 * math.sqrt(max(p * (1 - p), 1e-12) / n):.1f}"


def study_paired(args, pool, print_table):
    reps, questions, rounds = args.paired_reps, 80, args.paired_rounds
    control = getattr(args, "paired_control", "none")
    names = args.cells or list(CELLS)
    print(f"\n4. Paired gates, before and after: {questions} questions, base/ref/sft, each pair once per question "
          f"({3 * questions} battles per run), ties half-win (rate {args.tie}), {rounds} bootstrap rounds, {reps} "
          "repetitions per cell; the baseline run and the candidate run answer the same questions; style control "
          f"{control}" + (" (both sides refitted with the controlled fit)" if control != "none" else "") + ".")
    for name in names:
        print(f"   cell '{name}': {CELLS[name].about}")
    print("   Rates of FAILED gates, before (unpaired, gates.evaluate_gate) -> after (paired); ± binomial SE.")
    results = {}
    for name in names:
        jobs = [(name, args.seed, r, questions, rounds, args.tie, args.round_size, control, args.futility)
                for r in range(reps)]
        results[name] = _sum(pool.map(_rep, jobs))
    header, rows = ["cell"], []
    for gate in GATES:
        header += [f"{gate}: {CASES[g]}" for g in GAPS]
    for name in names:
        c = results[name]
        rows.append([name] + [f"{_pct(c['before', gate, g], reps)} -> {_pct(c['after', gate, g], reps)}"
                              for gate in GATES for g in GAPS])
    print_table(header, rows)
    print("   sft's own (mean-anchored) rating moves " + "; ".join(
        f"{name}: " + ", ".join(f"{CELLS[name].true_change(g):+.1f}" for g in GAPS[1:]) for name in names)
          + " for the -100 / -200 gap drops.")
    print("   Predicted detection (power.py, from each baseline run, mean over repetitions) against observed, "
          "paired gates:")
    rows = []
    for name in names:
        c = results[name]
        for g in GAPS[1:]:
            rows.append([name, CASES[g], f"{100 * c['predicted', 'beats', g] / reps:.1f}%",
                         _pct(c["after", "beats", g], reps), f"{100 * c['predicted', 'carried', g] / reps:.1f}%",
                         f"{100 * c['predicted', 'fresh', g] / reps:.1f}%", _pct(c["after", "max_drop 0", g], reps)])
    print_table(["cell", "case", "beats: predicted", "beats: observed", "max_drop 0: predicted, carried over",
                 "predicted, not carried over", "max_drop 0: observed"], rows)
    _sequential_table(results, names, reps, questions, print_table, args.round_size, args.futility)


def _sequential_table(results, names, reps, questions, print_table, round_size, futility):
    print(f"\n5. Stopping when decided, the same runs: rounds of {round_size} questions in a seeded random order, "
          f"tested from {rating.SequentialDesign().min_questions} questions on (rating.decide, futility budget "
          f"{futility:g}); "
          "rate of FAILED gates, sequential (full paired run in brackets, same repetitions), and judge calls "
          f"saved: mean share of the {3 * questions} battles not judged (± SE), and how many.")
    rows = []
    for name in names:
        c = results[name]
        for gate in (*GATES, "all three"):
            row = [name, gate]
            for g in GAPS:
                if gate == "all three":
                    row.append("-")
                    continue
                seq, seqp, full = c["seq", gate, g], c["seqp", gate, g], c["after", gate, g]
                row.append(f"{_pct(seq, reps)} -> {_pct(seqp, reps)} [{100 * full / reps:.1f}%]"
                           + ("" if g == 0 else f" {100 * (seq - full) / reps:+.1f} -> {100 * (seqp - full) / reps:+.1f}"))
            for g in GAPS:
                judged = c["seq_q", gate, g] / reps
                sd = math.sqrt(max(c["seq_q2", gate, g] / reps - judged ** 2, 0.0))
                row.append(f"{100 * (1 - judged / questions):.1f}% ± {100 * sd / questions / math.sqrt(reps):.1f} "
                           f"({3 * (questions - judged):.0f})")
            rows.append(row)
    print_table(["cell", "gate"] + [f"fails: {CASES[g]}" for g in GAPS] + [f"saved: {CASES[g]}" for g in GAPS], rows)
    print("   '+x' after a detection rate: sequential minus full run, in points. 'a -> b': the last look decided by "
          "the sandwich z-test -> by the paired bootstrap at the final boundary's level (early_stop.py). 'all three': "
          "one run holding the three gates, which stops when the last is decided.")
