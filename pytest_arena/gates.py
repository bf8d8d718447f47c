"""Gates: thresholds on the ratings that fail the run, judged on confidence intervals, not points.

A gate on a point estimate flaps with judge noise. Threshold gates (``min_rating``, also spelt
``min_elo``: on the rating the table leads with, Bradley-Terry, not the online Elo column;
``min_win_rate``; ``min_score``) ask the CI's lower bound to reach the threshold: "at least this good, with 95%
confidence". Regression gates (``beats``, ``max_drop``) fail only when the loss is significant: the
whole CI lies beyond the allowed margin. A gate never passes for lack of data.

Each gate judges the rating its ``control`` names (``none``: raw Bradley-Terry; ``length`` or ``style``:
the style-controlled one, issue 24; by default ``rating_gen.style_control``), and its message names it.
It is judged the other way too (raw against controlled; a raw gate against ``length``): when the two
verdicts differ, ``GateResult.disagreement`` says so in one line, e.g. ``sft beats base only by length:
raw +84 [+31, +140], length-controlled -3 [-55, +49]``. Where the model's length and quality cannot be
told apart (its answer the longer in nearly every battle, a judge that rewards length), a controlled
regression gate passes only on evidence (:func:`_on_evidence_if_confounded`).
"""

from __future__ import annotations

import dataclasses
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
    control: str = "none"  # the control of the rating judged
    disagreement: str | None = None  # the one line saying raw and controlled disagree

    def properties(self) -> list[tuple[str, object]]:
        """The gate item's properties (JUnit XML shows them), wherever the gate is evaluated."""
        found: list[tuple[str, object]] = [("gate", self.message)]
        if self.value is not None:
            found += [("gate_value", round(self.value, 4)), ("gate_threshold", self.threshold)]
        if self.ci is not None:
            found.append(("gate_ci", f"{self.ci[0]:.4f} .. {self.ci[1]:.4f}"))
        if self.control != "none":
            found.append(("gate_control", self.control))
        if self.disagreement:
            found.append(("gate_disagreement", self.disagreement))
        return found


def evaluate_gate(gate: GateSpec, table, previous=None, evidence=None) -> GateResult:
    """``table`` is the session's RatingTable (None when nothing was judged); ``previous`` the baseline
    report for max_drop gates; ``evidence`` (``gate_evidence.RunEvidence``) pairs beats and max_drop by
    question. Judged under the gate's control, and the other way for the comparison."""
    control = gate.control or (table.control if table is not None else "none")
    result = _on_evidence_if_confounded(gate, table, judge_gate(gate, table, previous, control, evidence))
    if table is None or result.value is None or table.primary != "bt":
        return result
    if control != "none" and result.control == "none":
        # Never a raw verdict passed off as a controlled one: the gate says what it could not control.
        why = ("the answers' lengths are not known in this run (a battle whose answers it does not have)"
               if table.styled is None else "this gate has no controlled rating")
        result = dataclasses.replace(result, message=f"{result.message}\nnot {control}-controlled: {why}; "
                                                     "the raw rating was judged")
    if gate.kind == "beats" and result.control != "none":
        from .style_ratings import win_rate_line

        line = win_rate_line(table.styled, gate.model, gate.beats, table.spec)
        result = dataclasses.replace(result, message=f"{result.message}\n{line}") if line else result
    judged = result.control  # raw where the battles have no style columns
    other = "none" if judged != "none" else "length"
    if table.judged_control(other) != other:
        return result  # no style columns: nothing to compare with
    alternative = _on_evidence_if_confounded(gate, table, judge_gate(gate, table, previous, other, evidence))
    if alternative.value is None or alternative.control == judged or alternative.passed == result.passed:
        return result
    raw, controlled = (result, alternative) if judged == "none" else (alternative, result)
    line = disagreement_line(gate, raw, controlled)
    return dataclasses.replace(result, message=f"{result.message}\n{line}", disagreement=line)


def _on_evidence_if_confounded(gate: GateSpec, table, result: GateResult) -> GateResult:
    """A controlled ``beats`` / ``max_drop`` pass where the model's length and quality move together.

    A regression gate gives the benefit of the doubt: it fails only on a significant loss. That is sound
    while the interval can see a loss. When the model's answer is the longer in nearly every battle and
    the judge rewards length (``style_ratings.length_confounding``), the controlled fit cannot tell
    length from quality, its interval widens, and the doubt is exactly what a padded fine-tune would
    pass on (bench/README.md section 6: 31% false passes at a 100-point drop). There the gate asks for
    evidence instead: its interval's lower bound must reach the threshold, and it says so."""
    if (result.control == "none" or gate.kind not in ("beats", "drop") or not result.passed or result.ci is None
            or table is None or result.threshold is None):
        return result
    from .style_ratings import length_confounding

    found = length_confounding(table.styled, table.fit(result.control), gate.model,
                               gate.beats if gate.kind == "beats" else None)
    if found is None:
        return result
    lower, threshold = result.ci[0], result.threshold
    what = "-margin" if gate.kind == "beats" else "minus the allowed drop"
    if lower >= threshold:
        line = (f"({found.describe()}: this {result.control}-controlled pass stands on evidence, the interval's "
                f"lower bound {lower:+.1f} reaching {what} {threshold:+g})")
        return dataclasses.replace(result, message=f"{result.message}\n{line}")
    line = (f"but {found.describe()}: no fit can tell its length from its quality here, so this "
            f"{result.control}-controlled gate passes only on evidence, and the interval's lower bound {lower:+.1f} "
            f"does not reach {what} {threshold:+g} (more questions narrow it; a length-blind judge or "
            "control: none judges the raw rating)")
    return dataclasses.replace(result, passed=False, message=f"{result.message}\n{line}")


def judge_gate(gate: GateSpec, table, previous, control: str, evidence=None) -> GateResult:
    """The gate judged on the rating ``control`` names (``table.judged_control``: raw without style columns)."""
    row = None if table is None else table.row(gate.model)
    if row is None:
        return GateResult(False, f"{gate.model}: no judged battles in this run, so the gate cannot pass")
    kind = gate.kind
    if kind in ("elo", "score"):
        key = GATE_KINDS[kind]  # the threshold's key in gates:, as the messages name it
        if (kind == "score") != (table.primary == "score"):
            wanted = "single mode (scores)" if kind == "score" else "a pairwise mode (ratings)"
            return GateResult(False, f"{gate.model}: a {key} gate needs {wanted}")
        point, lower, upper = table.rating(gate.model, control)
        result = _at_least(gate.model, table.rating_name(control), point, lower, upper, getattr(gate, key), key,
                           _extra(row), ".2f" if kind == "score" else ".1f")
        return dataclasses.replace(result, control=table.judged_control(control))
    if kind == "winrate" and table.judged_control(control) != "none" and "LC_Win_Rate" in table.frame.columns:
        if row["LC_Win_Rate"] != row["LC_Win_Rate"]:
            return GateResult(False, f"{gate.model}: no battles against a baseline (min_win_rate needs pairwise_baseline mode)")
        result = _at_least(gate.model, "length-controlled win rate vs baseline", float(row["LC_Win_Rate"]),
                           float(row["LC_CI_Lower"]), float(row["LC_CI_Upper"]), gate.min_win_rate, "min_win_rate",
                           _extra(row), ".3f")
        return dataclasses.replace(result, control="length")
    if kind == "winrate":
        if "Baseline_Win_Rate" not in table.frame.columns or row["Baseline_Win_Rate"] != row["Baseline_Win_Rate"]:
            return GateResult(False, f"{gate.model}: no battles against a baseline (min_win_rate needs pairwise_baseline mode)")
        return _at_least(gate.model, "win rate vs baseline", float(row["Baseline_Win_Rate"]),
                         float(row["Baseline_CI_Lower"]), float(row["Baseline_CI_Upper"]), gate.min_win_rate,
                         "min_win_rate", _extra(row), ".3f")
    if kind == "beats":
        unpaired = lambda: _beats(gate, table, control)  # noqa: E731
    else:
        unpaired = lambda: _max_drop(gate, table, previous, control)  # noqa: E731
    if evidence is None:
        return unpaired()
    from .gate_evidence import paired_gate

    return paired_gate(gate, table, evidence, control, unpaired)  # by question, where both sides allow


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


def _beats(gate: GateSpec, table, control: str = "none") -> GateResult:
    from . import rating

    other = table.rating(gate.beats, control)
    if other is None:
        return GateResult(False, f"{gate.beats}: no judged battles in this run, so '{gate.model} beats {gate.beats}' cannot pass")
    if table.primary == "score":
        return GateResult(False, f"{gate.model}: a beats gate needs a pairwise mode (ratings)")
    point = table.rating(gate.model, control)[0] - other[0]
    samples = table.samples_for(control)
    if samples is not None:
        # The same 95% percentile interval as the table's, on the rounds' paired differences.
        interval = rating.confidence_intervals(rating.difference_samples(samples, gate.model, gate.beats))
        lower, upper = float(interval["ci_lower"].iloc[0]), float(interval["ci_upper"].iloc[0])
    else:
        lower = upper = point
    # Fail only when the whole interval lies below -margin: a significant loss, not judge noise.
    passed = upper >= -gate.margin
    verdict = "not significantly below" if passed else "significantly below"
    return GateResult(
        passed,
        f"{gate.model} - {gate.beats}: {table.rating_name(control)} difference {point:+.1f} (95% CI {lower:+.1f} .. "
        f"{upper:+.1f}); {verdict} -margin {0.0 - gate.margin:+g}",
        value=point, ci=(lower, upper), threshold=-gate.margin, control=table.judged_control(control),
    )


def _max_drop(gate: GateSpec, table, previous, control: str = "none") -> GateResult:
    from .rating_table import previous_half_width, previous_value

    name = table.rating_name(control)
    if previous is None:
        return GateResult(False, f"{gate.model}: max_drop needs a baseline report (--arena-baseline PATH)")
    before = previous_value(previous, table, gate.model, control)
    if before is None:
        return GateResult(False, f"{gate.model}: the baseline report has no {name} for this model, "
                                 "so max_drop cannot pass" + (" (BT_Rating_SC: refresh the baseline with "
                                 "--arena-baseline-update under this control)" if name != table.name else ""))
    point, lower, upper = table.rating(gate.model, control)
    # Both runs are noisy: the change's standard error combines this run's CI with the baseline
    # report's (taking a stored point as exact raised false alarms to ~10% at max_drop 0).
    before_half_width = previous_half_width(previous, table, gate.model, control)
    half_width = math.hypot((upper - lower) / 2, before_half_width)
    change = point - before
    low, high = change - half_width, change + half_width
    passed = high >= -gate.max_drop
    verdict = "not significantly more" if passed else "significantly more"
    return GateResult(
        passed,
        f"{gate.model}: {name} {point:.1f} (95% CI {lower:.1f} .. {upper:.1f}) against {before:.1f} in the "
        f"baseline report: change {change:+.1f} (95% CI {low:+.1f} .. {high:+.1f}), {verdict} than the allowed "
        f"drop of {gate.max_drop:g}",
        value=change, ci=(low, high), threshold=-gate.max_drop, control=table.judged_control(control),
    )


# What a gate's model does "only by length" when raw and controlled disagree: (raw passes, raw fails).
_ONLY_BY = {
    "beats": ("{model} beats {beats} only by {word}", "{model} loses to {beats} only by {word}"),
    "drop": ("{model} keeps its rating only by {word}", "{model} drops only by {word}"),
    "elo": ("{model} reaches min_rating {threshold:g} only by {word}", "{model} misses min_rating {threshold:g} only by {word}"),
    "winrate": ("{model} reaches min_win_rate {threshold:g} only by {word}",
                "{model} misses min_win_rate {threshold:g} only by {word}"),
}


def disagreement_line(gate: GateSpec, raw: GateResult, controlled: GateResult) -> str:
    """``sft beats base only by length: raw +84 [+31, +140], length-controlled -3 [-55, +49]``."""
    from .style_ratings import CONTROL_WORDS

    word = CONTROL_WORDS[controlled.control]
    passed, failed = _ONLY_BY[gate.kind]
    threshold = -raw.threshold if gate.kind == "beats" and raw.threshold else (raw.threshold or 0.0)
    head = (passed if raw.passed else failed).format(model=gate.model, beats=gate.beats, word=word, threshold=threshold)
    return f"{head}: raw {_figure(gate, raw)}, {word}-controlled {_figure(gate, controlled)}"


def _figure(gate: GateSpec, result: GateResult) -> str:
    if gate.kind == "winrate":
        return f"{result.value:.1%} [{result.ci[0]:.1%}, {result.ci[1]:.1%}]"
    sign = "+" if gate.kind in ("beats", "drop") else ""
    return f"{result.value:{sign}.0f} [{result.ci[0]:{sign}.0f}, {result.ci[1]:{sign}.0f}]"
