"""Gates: thresholds on the ratings that fail the run, judged on confidence intervals, not points.

A gate on a point estimate flaps with judge noise. Threshold gates (``min_rating``, also spelt
``min_elo``: on the rating the table leads with, Bradley-Terry, not the online Elo column;
``min_win_rate``; ``min_score``) ask the CI's lower bound to reach the threshold: "at least this good, with 95%
confidence". Regression gates (``beats``, ``max_drop``) fail only when the loss is significant: the
whole CI lies beyond the allowed margin. A gate never passes for lack of data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import GATE_KINDS, GateSpec


@dataclass(frozen=True)
class GateResult:
    passed: bool
    message: str
    value: float | None = None  # the number the gate judged, for JUnit properties
    ci: tuple[float, float] | None = None
    threshold: float | None = None

    def properties(self) -> list[tuple[str, object]]:
        """The gate item's properties (JUnit XML shows them), wherever the gate is evaluated."""
        found: list[tuple[str, object]] = [("gate", self.message)]
        if self.value is not None:
            found += [("gate_value", round(self.value, 4)), ("gate_threshold", self.threshold)]
        if self.ci is not None:
            found.append(("gate_ci", f"{self.ci[0]:.4f} .. {self.ci[1]:.4f}"))
        return found


def evaluate_gate(gate: GateSpec, table, previous=None) -> GateResult:
    """``table`` is the session's RatingTable (None when nothing was judged); ``previous`` the baseline
    report for max_drop gates."""
    row = None if table is None else table.row(gate.model)
    if row is None:
        return GateResult(False, f"{gate.model}: no judged battles in this run, so the gate cannot pass")
    kind = gate.kind
    if kind in ("elo", "score"):
        key = GATE_KINDS[kind]  # the threshold's key in gates:, as the messages name it
        if (kind == "score") != (table.primary == "score"):
            wanted = "single mode (scores)" if kind == "score" else "a pairwise mode (ratings)"
            return GateResult(False, f"{gate.model}: a {key} gate needs {wanted}")
        point, lower, upper = table.rating(gate.model)
        return _at_least(gate.model, table.name, point, lower, upper, getattr(gate, key), key, _extra(row),
                         ".2f" if kind == "score" else ".1f")
    if kind == "winrate":
        if "Baseline_Win_Rate" not in table.frame.columns or row["Baseline_Win_Rate"] != row["Baseline_Win_Rate"]:
            return GateResult(False, f"{gate.model}: no battles against a baseline (min_win_rate needs pairwise_baseline mode)")
        return _at_least(gate.model, "win rate vs baseline", float(row["Baseline_Win_Rate"]),
                         float(row["Baseline_CI_Lower"]), float(row["Baseline_CI_Upper"]), gate.min_win_rate,
                         "min_win_rate", _extra(row), ".3f")
    if kind == "beats":
        return _beats(gate, table)
    return _max_drop(gate, table, previous)


def _extra(row) -> str:
    return f", {row['Battles']} battles" if "Battles" in row.index else f", {row['Questions']} questions"


def _at_least(model, name, point, lower, upper, threshold, key, extra, fmt) -> GateResult:
    passed = lower >= threshold
    relation = ">=" if passed else "<"
    return GateResult(
        passed,
        f"{model}: {name} {point:{fmt}} (95% CI {lower:{fmt}} .. {upper:{fmt}}{extra}); "
        f"CI lower bound {lower:{fmt}} {relation} {key} {threshold:g}",
        value=point, ci=(lower, upper), threshold=threshold,
    )


def _beats(gate: GateSpec, table) -> GateResult:
    from . import rating

    other = table.rating(gate.beats)
    if other is None:
        return GateResult(False, f"{gate.beats}: no judged battles in this run, so '{gate.model} beats {gate.beats}' cannot pass")
    if table.primary == "score":
        return GateResult(False, f"{gate.model}: a beats gate needs a pairwise mode (ratings)")
    point = table.rating(gate.model)[0] - other[0]
    if table.samples is not None:
        # The same 95% percentile interval as the table's, on the rounds' paired differences.
        interval = rating.confidence_intervals(rating.difference_samples(table.samples, gate.model, gate.beats))
        lower, upper = float(interval["ci_lower"].iloc[0]), float(interval["ci_upper"].iloc[0])
    else:
        lower = upper = point
    # Fail only when the whole interval lies below -margin: a significant loss, not judge noise.
    passed = upper >= -gate.margin
    verdict = "not significantly below" if passed else "significantly below"
    return GateResult(
        passed,
        f"{gate.model} - {gate.beats}: {table.name} difference {point:+.1f} (95% CI {lower:+.1f} .. {upper:+.1f}); "
        f"{verdict} -margin {0.0 - gate.margin:+g}",
        value=point, ci=(lower, upper), threshold=-gate.margin,
    )


def _max_drop(gate: GateSpec, table, previous) -> GateResult:
    from .rating_table import previous_half_width, previous_value

    if previous is None:
        return GateResult(False, f"{gate.model}: max_drop needs a baseline report (--arena-baseline PATH)")
    before = previous_value(previous, table, gate.model)
    if before is None:
        return GateResult(False, f"{gate.model}: the baseline report has no {table.name} for this model, "
                                 "so max_drop cannot pass")
    point, lower, upper = table.rating(gate.model)
    # Both runs are noisy: the change's standard error combines this run's CI with the baseline
    # report's (taking a stored point as exact raised false alarms to ~10% at max_drop 0).
    before_half_width = previous_half_width(previous, table, gate.model)
    half_width = math.hypot((upper - lower) / 2, before_half_width)
    change = point - before
    low, high = change - half_width, change + half_width
    passed = high >= -gate.max_drop
    verdict = "not significantly more" if passed else "significantly more"
    return GateResult(
        passed,
        f"{gate.model}: {table.name} {point:.1f} (95% CI {lower:.1f} .. {upper:.1f}) against {before:.1f} in the "
        f"baseline report: change {change:+.1f} (95% CI {low:+.1f} .. {high:+.1f}), {verdict} than the allowed "
        f"drop of {gate.max_drop:g}",
        value=change, ci=(low, high), threshold=-gate.max_drop,
    )
