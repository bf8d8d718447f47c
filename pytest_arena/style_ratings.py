"""The report's style-controlled ratings (issue 24): what ``rating_gen.style_control`` and a gate's
``control`` judge, built from the battles table with each answer's style columns (``answer_styles``).

``control_fit(battles, control, spec, anchor)`` is the style-controlled Bradley-Terry fit
(``rating.style_bradley_terry``, arena-hard-auto's markdown density, not centred: see
``rating/style_control.py``) with its bootstrap, resampled as the raw ratings are (same seed, same
``bootstrap_by``), and the covariates' coefficients in rating points with their 95% intervals. The
length-controlled win rate against a baseline (AlpacaEval 2's GLM, ``rating.length_controlled_win_rate``)
goes beside the raw one in ``pairwise_baseline`` mode. Nothing here runs unless a control is asked for,
so with ``style_control: none`` the report is what it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import rating

SC_COLUMNS = ["BT_Rating_SC", "BT_SC_CI_Lower", "BT_SC_CI_Upper"]
LC_COLUMNS = ["LC_Win_Rate", "LC_CI_Lower", "LC_CI_Upper"]
# How a message names the rating judged under each control.
RATING_NAMES = {"none": "BT rating", "length": "length-controlled BT rating", "style": "style-controlled BT rating"}
# The short word of the "only by ..." line (the raw and the controlled verdicts disagree).
CONTROL_WORDS = {"length": "length", "style": "style"}
COVARIATE_NAMES = {"length": "length ratio", "headers": "headers", "list_items": "list items", "bold": "bold"}


@dataclass(frozen=True)
class ControlFit:
    """One control's ratings: ``ratings`` (the full-data fit), ``samples`` (bootstrap rounds x models,
    None without rounds), ``coefficients`` (rows per covariate: ``points``, ``ci_lower``, ``ci_upper``:
    what one standard deviation of the covariate buys, in rating points) and the ``length_unit``."""

    control: str
    ratings: pd.Series
    samples: pd.DataFrame | None
    coefficients: pd.DataFrame
    length_unit: str

    def interval(self, model: str) -> tuple[float, float, float]:
        """The model's controlled rating and its 95% interval (the point inside it)."""
        point = self.ratings[[model]]
        if self.samples is None:
            value = float(point.iloc[0])
            return value, value, value
        summary = rating.rating_intervals(self.samples[[model]], point)
        return tuple(float(summary.loc[model, c]) for c in ("rating", "ci_lower", "ci_upper"))


def has_styles(battles: pd.DataFrame) -> bool:
    return "length_a" in battles.columns and "length_b" in battles.columns


def control_fit(battles: pd.DataFrame, control: str, spec, anchor: str | None) -> ControlFit:
    """The style-controlled fit of ``battles`` (which carry the style columns) under ``control``."""
    fit = rating.style_bradley_terry(battles, control=control, anchor=anchor)
    samples = None
    rows = []
    if spec.bootstrap_rounds:
        boot = rating.bootstrap_style_bradley_terry(battles, control=control, rounds=spec.bootstrap_rounds,
                                                    seed=spec.seed, by=spec.bootstrap_by, anchor=anchor)
        samples = boot.ratings
        intervals = rating.confidence_intervals(boot.coefficients / fit.logit_per_point)
    points = fit.coefficient_points
    for name in points.index:
        point = float(points[name])
        lower, upper = (point, point) if samples is None else (float(intervals.loc[name, "ci_lower"]),
                                                               float(intervals.loc[name, "ci_upper"]))
        rows.append({"covariate": name, "points": point, "ci_lower": min(lower, point), "ci_upper": max(upper, point),
                     "scale": float(fit.scales.get(name, 0.0))})
    coefficients = pd.DataFrame(rows, columns=["covariate", "points", "ci_lower", "ci_upper", "scale"])
    unit = str(battles["length_unit"].iat[0]) if "length_unit" in battles.columns and len(battles) else "characters"
    return ControlFit(control, fit.ratings, samples, coefficients.set_index("covariate"), unit)


def add_controlled_columns(columns: dict, rated: list[str], fit: ControlFit) -> None:
    """``BT_Rating_SC`` and its 95% interval, for every rated model (rounded as the raw columns)."""
    for model in rated:
        for name, value in zip(SC_COLUMNS, fit.interval(model)):
            columns.setdefault(name, []).append(round(value, 2))


def add_lc_columns(columns: dict, rated: list[str], battles: pd.DataFrame, baseline: str, spec) -> str | None:
    """AlpacaEval 2's length-controlled win rate of each model against ``baseline`` (fractions, as
    ``Baseline_Win_Rate``); returns the note on the difficulty term (dropped on small sets)."""
    notes = []
    for name in LC_COLUMNS:
        columns[name] = []
    for model in rated:
        if model == baseline:
            for name in LC_COLUMNS:
                columns[name].append(None)
            continue
        lc = rating.length_controlled_win_rate(battles, model, baseline, rounds=spec.bootstrap_rounds,
                                               seed=spec.seed, by=spec.bootstrap_by)
        for name, value in zip(LC_COLUMNS, (lc.win_rate, lc.ci_lower, lc.ci_upper)):
            columns[name].append(round(value / 100.0, 4))
        notes.append(lc.note)
    kept = list(dict.fromkeys(n for n in notes if n))
    return "; ".join(kept) if kept else None


def win_rate_line(battles: pd.DataFrame, model: str, other: str, spec) -> str | None:
    """A beats gate's pair as AlpacaEval 2 reads it: the length-controlled win rate of ``model`` against
    ``other`` on their own battles (None when they met in none)."""
    try:
        lc = rating.length_controlled_win_rate(battles, model, other, rounds=spec.bootstrap_rounds, seed=spec.seed,
                                               by=spec.bootstrap_by)
    except ValueError:  # no battles between the two
        return None
    line = (f"length-controlled win rate of {model} vs {other}: {lc.win_rate:.1f}% (95% CI {lc.ci_lower:.1f}% .. "
            f"{lc.ci_upper:.1f}%; raw {lc.raw_win_rate:.1f}%); {lc.note}")
    side, share, _ = length_side(battles, model, other)
    if share == 1.0:
        # The GLM's length term then explains the same thing as its model term: it cannot tell them apart.
        line += (f"; but {model}'s answer is the {side} in every battle with {other}, so this win rate cannot "
                 "separate length from quality: read the style-controlled rating")
    return line


# A gate's model whose answer is the longer (or the shorter) in at least this share of the battles its
# gate judges: its length and its quality then move together, and the controlled interval can no longer
# rule a drop out. bench/README.md section 6: where every model's answers share one length distribution
# the share stays within 0.40 .. 0.58 in 90% of runs; the verbose fine-tune's (1.8x longer): 0.87 .. 0.96.
CONFOUNDED_SHARE = 0.75


@dataclass(frozen=True)
class LengthConfounding:
    """A model whose answers are systematically longer (or shorter) than the other side's, judged by a
    judge whose length coefficient is significant: no fit can tell its length from its quality there."""

    model: str
    against: str  # "with base" / "in this run"
    side: str  # longer / shorter
    share: float  # of the battles judged, those in which the model's answer is on ``side``
    battles: int
    points: float  # the length coefficient (BT points per SD of the length covariate) and its 95% CI
    ci_lower: float
    ci_upper: float

    def describe(self) -> str:
        rewards = "rewards" if self.points > 0 else "penalises"  # (longer and rewarded, or shorter and penalised)
        return (f"{self.model}'s answer is the {self.side} in {self.share:.0%} of its {self.battles} battles "
                f"{self.against}, and the judge {rewards} length ({COVARIATE_NAMES['length']} "
                f"{self.points:+.1f} BT points per SD, 95% CI {self.ci_lower:+.1f} .. {self.ci_upper:+.1f})")


def length_confounding(battles: pd.DataFrame | None, fit: ControlFit | None, model: str,
                       other: str | None = None) -> LengthConfounding | None:
    """Whether ``model``'s length is confounded with its quality in ``battles`` (against ``other``, or
    every opponent when None) in the way a padded fine-tune exploits: its answer on one side of the
    other's in at least ``CONFOUNDED_SHARE`` of them, and the fit's length coefficient significant and
    rewarding that side (longer answers rewarded, or shorter ones). A length-blind judge leaves the raw
    rating sound, so a systematic length difference alone changes nothing."""
    if battles is None or fit is None or "length" not in fit.coefficients.index:
        return None
    coefficient = fit.coefficients.loc["length"]
    if coefficient["ci_lower"] <= 0 <= coefficient["ci_upper"]:
        return None
    side, share, count = length_side(battles, model, other)
    if share < CONFOUNDED_SHARE or (coefficient["points"] > 0) != (side == "longer"):
        # (the judge penalising what the model has more of pulls its raw rating down: not a pass it bought)
        return None
    against = f"with {other}" if other is not None else "in this run"
    return LengthConfounding(model, against, side, share, count, float(coefficient["points"]),
                             float(coefficient["ci_lower"]), float(coefficient["ci_upper"]))


def length_side(battles: pd.DataFrame, model: str, other: str | None = None) -> tuple[str, float, int]:
    """The side ``model``'s answer is on in most of its battles (against ``other``, or anyone): ``longer``
    or ``shorter``, the share of battles on it, and how many battles (0 and share 0 without lengths)."""
    if not has_styles(battles):
        return "longer", 0.0, 0
    mine, theirs = battles["model_a"] == model, battles["model_b"] == model
    if other is not None:
        mine, theirs = mine & (battles["model_b"] == other), theirs & (battles["model_a"] == other)
    judged = mine | theirs
    own = battles["length_a"].where(mine, battles["length_b"])[judged]
    opposite = battles["length_b"].where(mine, battles["length_a"])[judged]
    if own.empty:
        return "longer", 0.0, 0
    longer, shorter = float((own > opposite).mean()), float((own < opposite).mean())
    return ("longer", longer, len(own)) if longer >= shorter else ("shorter", shorter, len(own))


def coefficient_line(fit: ControlFit) -> str:
    """What the covariates buy, for the terminal and the notes file."""
    parts = []
    for name, row in fit.coefficients.iterrows():
        shown = COVARIATE_NAMES.get(name, name)
        if row["scale"] == 0:
            parts.append(f"{shown}: no difference between answers")
        else:
            parts.append(f"{shown} {row['points']:+.1f} [{row['ci_lower']:+.1f}, {row['ci_upper']:+.1f}]")
    return (f"{fit.control} control: what one SD of each covariate buys, in BT points (95% CI): " + ", ".join(parts)
            + f"; length in {fit.length_unit}")


def notes_frame(fit: ControlFit) -> pd.DataFrame:
    """The coefficients as the CSV beside the report (``file_names.style_notes``) holds them."""
    frame = fit.coefficients.reset_index()
    frame = frame.rename(columns={"covariate": "Covariate", "points": "Points", "ci_lower": "CI_Lower",
                                  "ci_upper": "CI_Upper", "scale": "SD"})
    frame["Points"] = frame["Points"].round(2)
    frame["CI_Lower"] = frame["CI_Lower"].round(2)
    frame["CI_Upper"] = frame["CI_Upper"].round(2)
    frame["SD"] = frame["SD"].round(4)
    return frame.assign(Control=fit.control, Length_Unit=fit.length_unit)
