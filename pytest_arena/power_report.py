"""``--arena-power[=DROP]``: what the regression gates can detect, from the stored baseline run's verdicts,
before anyone pays for a run. Nothing is judged and no model loads.

For each ``max_drop`` and ``beats`` gate: the smallest drop caught with 80% power at this config's question
count (one-sided 2.5%: the tail of the gates' 95% intervals), and with ``=DROP`` the questions that drop
needs. The figures are ``rating.power``'s normal approximation from the question-clustered standard error
of the baseline run; ``max_drop`` gives two (the candidate keeps the baseline's per-question effects, an
upper bound for a fine-tune; or it has a profile of its own). They are for the full run: stopping when
decided costs a few points of power (bench/README.md section 5).
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import ArenaConfigError

OPTION = "--arena-power"


def print_power(session, config) -> bool:
    """Under --arena-power, print the power lines on pytest's terminal and say so (the plugin then
    exits); False otherwise. ``config`` is pytest's, only asked questions."""
    raw = config.getoption("arena_power")
    if raw is None:
        return False
    writer = config.get_terminal_writer()
    for line in power_lines(session.plan, session.baseline_report, raw):
        writer.line(line)
    return True


def named_drop(raw: str) -> float | None:
    """``--arena-power``'s value: None (no drop named) or a drop in rating points > 0."""
    if raw is None or raw == "":
        return None
    try:
        drop = float(raw)
    except ValueError:
        drop = math.nan
    if not (math.isfinite(drop) and drop > 0):
        raise ArenaConfigError(OPTION, "", f"expected a drop in rating points (a number > 0), got {raw!r}")
    return drop


def power_lines(plan, baseline_report: Path | None, raw_drop: str, power: float = 0.8) -> list[str]:
    """The lines ``--arena-power`` prints; ArenaConfigError when there is nothing to compute them from."""
    from .file_names import verdicts_file
    from .flips import read_verdicts
    from .matches import gate_id
    from .rating import battles_from_verdicts, beats_power, max_drop_power

    drop = named_drop(raw_drop)
    if baseline_report is None:
        raise ArenaConfigError(OPTION, "", "needs --arena-baseline PATH: the figures come from the baseline run's verdicts")
    verdicts = verdicts_file(baseline_report)
    records = read_verdicts(verdicts)
    baseline = None if records is None else battles_from_verdicts(records)
    if baseline is None or baseline.empty:
        raise ArenaConfigError(verdicts, "", "no per-battle verdicts to compute the power from (a baseline run "
                                             "with --arena-baseline-update stores them)")
    questions = len(plan.questions)
    rated = set(baseline["model_a"]) | set(baseline["model_b"])
    anchor = plan.baseline if plan.baseline in rated else None
    lines = [f"power of the gates, from {verdicts} ({baseline['question_id'].nunique()} questions judged there), "
             f"for this config's {questions} questions; {power:.0%} power, one-sided 2.5% (the gates' 95% intervals):"]
    for gate in plan.gates:
        name = gate_id(gate)
        try:
            if gate.kind == "drop":
                rows = max_drop_power(baseline, gate.model, gate.max_drop, drop, questions=questions, power=power,
                                      anchor=anchor)
            elif gate.kind == "beats":
                rows = beats_power(baseline, gate.model, gate.beats, gate.margin, drop, questions=questions,
                                   power=power, anchor=anchor)
            else:
                lines.append(f"  {name}: not a regression gate (the power is for beats and max_drop)")
                continue
        except (ValueError, KeyError) as exc:
            lines.append(f"  {name}: cannot say: {exc}")
            continue
        lines += [f"  {name}: {row.line()}" for row in rows]
    if len(lines) == 1:
        lines.append("  no gate in this config")
    return lines
