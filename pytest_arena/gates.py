"""Gates: thresholds on the ratings that fail the run, judged on confidence intervals, not points.

A gate on a point estimate flaps with judge noise; asking the CI to clear the threshold makes a
failure mean "this model is worse with 95% confidence", which is what a CI pipeline should stop on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import GateSpec


@dataclass(frozen=True)
class GateResult:
    passed: bool
    message: str


def evaluate_gate(gate: GateSpec, table) -> GateResult:
    """``table`` is the session's RatingTable, or None when nothing was judged (which never passes)."""
    row = None if table is None else table.row(gate.model)
    if row is None:
        return GateResult(False, f"{gate.model}: no judged battles in this run, so the gate cannot pass")
    if gate.kind == "elo":
        return _min_elo(gate, row)
    return _beats(gate, table, row)


def _min_elo(gate: GateSpec, row) -> GateResult:
    lower = float(row.CI_Lower)
    passed = lower >= gate.min_elo
    relation = ">=" if passed else "<"
    return GateResult(
        passed,
        f"{gate.model}: Elo {row.Elo_Rating:.1f} (95% CI {row.CI_Lower:.1f} .. {row.CI_Upper:.1f}, "
        f"{row.Battles} battles); CI lower bound {lower:.1f} {relation} min_elo {gate.min_elo:g}",
    )


def _beats(gate: GateSpec, table, row) -> GateResult:
    from . import rating

    other = table.row(gate.beats)
    if other is None:
        return GateResult(False, f"{gate.beats}: no judged battles in this run, so '{gate.model} beats {gate.beats}' cannot pass")
    point = float(row.Elo_Rating) - float(other.Elo_Rating)
    if table.samples is not None:
        diff = rating.difference_samples(table.samples, gate.model, gate.beats)
        lower, upper = float(diff.quantile(0.025)), float(diff.quantile(0.975))
    else:
        lower = upper = point
    # Fail only when the whole interval lies below -margin: a significant loss, not judge noise.
    passed = upper >= -gate.margin
    verdict = "not significantly below" if passed else "significantly below"
    return GateResult(
        passed,
        f"{gate.model} - {gate.beats}: Elo difference {point:+.1f} (95% CI {lower:+.1f} .. {upper:+.1f}); "
        f"{verdict} -margin {-gate.margin:+g}",
    )
