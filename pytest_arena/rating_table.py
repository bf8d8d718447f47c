"""The rating table: built from the session's verdicts, written as CSV, shown to people.

The CSV keeps EvalScope's leading columns (``Model, Elo_Rating``) so existing dashboards read it,
then adds this project's: the bootstrap confidence interval, Bradley-Terry ratings when asked for,
the win/tie/loss record, and the win rate against the baseline in ``pairwise_baseline`` mode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import rating
from .config import RatingSpec
from .record_files import write_atomic
from .style_ratings import LC_COLUMNS, RATING_NAMES, SC_COLUMNS, add_controlled_columns, add_lc_columns, coefficient_line

ELO_COLUMNS = ["Model", "Elo_Rating", "CI_Lower", "CI_Upper"]
BT_COLUMNS = ["BT_Rating", "BT_CI_Lower", "BT_CI_Upper"]
RECORD_COLUMNS = ["Battles", "Wins", "Ties", "Losses", "Win_Rate"]
BASELINE_COLUMNS = ["Baseline_Win_Rate", "Baseline_CI_Lower", "Baseline_CI_Upper", "Baseline_Loss_Rate",
                    "Baseline_Tie_Rate"]
SCORE_COLUMNS = ["Model", "Score", "CI_Lower", "CI_Upper", "Questions"]
# The primary rating's (value, lower, upper) columns and its name in messages: the rating the table
# leads with and the gates judge. For battles it is Bradley-Terry, always: online Elo (EvalScope's
# column, still reported) depends on the order of the games; gated on it, a 100-point drop was caught
# about a quarter of the time in simulation, against >90% for BT (bench/ratings_study.py).
PRIMARY = {
    "bt": (("BT_Rating", "BT_CI_Lower", "BT_CI_Upper"), "BT rating"),
    "score": (("Score", "CI_Lower", "CI_Upper"), "mean score"),
}


@dataclass(frozen=True)
class RatingTable:
    frame: pd.DataFrame  # one row per model, best first (by the primary rating)
    samples: pd.DataFrame | None  # bootstrap samples of the primary rating: rounds x models
    primary: str  # "bt" (battles) or "score" (single mode)
    subset: bool = False  # rated on a -k/-m selection, not the whole arena
    # Style control (issue 24): the report's control (rating_gen.style_control), the battles with each
    # answer's style columns (None: no answers at hand), what they were rated with, and each control's
    # fit once made (a gate may ask for another control than the report's).
    control: str = "none"
    styled: pd.DataFrame | None = field(default=None, repr=False)
    spec: RatingSpec | None = field(default=None, repr=False)
    anchor: str | None = None
    notes: tuple[str, ...] = ()
    fits: dict = field(default_factory=dict, repr=False, compare=False)

    def row(self, model: str):
        rows = self.frame[self.frame["Model"] == model]
        return None if rows.empty else rows.iloc[0]

    @property
    def columns(self) -> tuple[str, str, str]:
        return PRIMARY[self.primary][0]

    @property
    def name(self) -> str:
        return PRIMARY[self.primary][1]

    def rating(self, model: str, control: str = "none") -> tuple[float, float, float] | None:
        """The model's primary rating and its 95% CI; under a style ``control``, its controlled rating
        (the raw one where the battles have no style columns: ``judged_control`` says which)."""
        row = self.row(model)
        if row is None:
            return None
        fit = self.fit(control)
        if fit is not None and model in fit.ratings.index:
            return fit.interval(model)
        return tuple(float(row[c]) for c in self.columns)

    def judged_control(self, control: str) -> str:
        """The control a gate asking for ``control`` gets: ``none`` when there is nothing to control on."""
        return control if control != "none" and self.primary == "bt" and self.styled is not None else "none"

    def fit(self, control: str):
        """The style-controlled fit (``style_ratings.ControlFit``) under ``control``, made once; None for
        ``none`` or without style columns."""
        control = self.judged_control(control)
        if control == "none":
            return None
        if control not in self.fits:
            from .style_ratings import control_fit

            self.fits[control] = control_fit(self.styled, control, self.spec or RatingSpec(), self.anchor)
        return self.fits[control]

    def samples_for(self, control: str) -> pd.DataFrame | None:
        """Bootstrap rounds (rounds x models) of the rating judged under ``control``."""
        fit = self.fit(control)
        return self.samples if fit is None else fit.samples

    def rating_name(self, control: str) -> str:
        return self.name if self.primary == "score" else RATING_NAMES[self.judged_control(control)]


def battles_frame(judgments) -> pd.DataFrame:
    """The games of the verdicts as the battles table the rating functions take, in plan order.

    A judgment counts one game, or two under swap_position's independent rule; a strong verdict
    may weigh more than one game.
    """
    rows = [
        (j.match.model_a, j.match.model_b, winner, weight, question_key(j.match.question))
        for j in judgments for winner, weight in j.games
    ]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "weight", "question_id"])


def question_key(question) -> str:
    """One hashable name per question of the run, for resampling by question."""
    return f"{question.question_set}/{question.question_id}" if question.question_set else str(question.question_id)


def scores_frame(judgments) -> pd.DataFrame:
    rows = [(j.match.model, question_key(j.match.question), j.score) for j in judgments]
    return pd.DataFrame(rows, columns=["model", "question_id", "score"])


def rating_table(judgments, models: list[str], spec: RatingSpec, baseline: str | None = None,
                 styles: pd.DataFrame | None = None) -> RatingTable:
    """``styles``: each answer's style (``rating.style_table``), for the style-controlled ratings."""
    if judgments and judgments[0].score is not None:
        return score_table(scores_frame(judgments), models, spec)
    return battle_table(battles_frame(judgments), models, spec, baseline, styles=styles)


def battle_table(battles: pd.DataFrame, models: list[str], spec: RatingSpec, baseline: str | None = None,
                 styles: pd.DataFrame | None = None) -> RatingTable:
    """Ratings from a battles table: Elo (EvalScope's column) and Bradley-Terry (the primary rating),
    each with its bootstrap CI, the record, and the win rate against the baseline when there is one.
    Under ``spec.style_control`` (and style columns, from ``styles`` or already in ``battles``) also the
    style-controlled ratings beside the raw ones, and in pairwise_baseline mode the length-controlled
    win rate; with ``none`` the table is exactly the raw one."""
    rounds, seed, by = spec.bootstrap_rounds, spec.seed, spec.bootstrap_by
    elo = rating.online_elo(battles, k=spec.elo_k)
    rated = [m for m in models if m in elo.index]
    columns: dict[str, list] = {"Model": rated}
    elo_samples = rating.bootstrap_elo(battles, k=spec.elo_k, rounds=rounds, seed=seed, by=by) if rounds else None
    _add_rating(columns, rated, elo, elo_samples, ELO_COLUMNS[1:], centre="median")
    anchor = baseline if baseline in rated else None
    bt = rating.bradley_terry(battles, anchor=anchor)
    bt_samples = rating.bootstrap_bradley_terry(battles, rounds=rounds, seed=seed, by=by, anchor=anchor) if rounds else None
    _add_rating(columns, rated, bt, bt_samples, BT_COLUMNS)
    counts = rating.record_counts(battles)
    for column in RECORD_COLUMNS:
        values = counts.loc[rated, column.lower()]
        columns[column] = [round(float(v), 4) for v in values] if column == "Win_Rate" else [game_count(v) for v in values]
    if baseline is not None and baseline in rated:
        _add_baseline_rates(columns, rated, battles, baseline, spec)
    styled = _styled(battles, styles)
    table = RatingTable(None, bt_samples, "bt", control=spec.style_control, styled=styled, spec=spec, anchor=anchor)
    notes = []
    fit = table.fit(spec.style_control)
    if fit is not None:
        add_controlled_columns(columns, rated, fit)
        if baseline is not None and baseline in rated:
            lc_note = add_lc_columns(columns, rated, styled, baseline, spec)
            notes.append(f"length-controlled win rate (AlpacaEval 2's GLM, vs {baseline}): {lc_note}")
        notes.insert(0, coefficient_line(fit))
    elif spec.style_control != "none":
        notes.append(f"{spec.style_control} control: the answers of these battles are not at hand, so the "
                     "ratings are raw (no BT_Rating_SC)")
    frame = pd.DataFrame(columns)
    if fit is not None:  # the controlled rating beside the raw one
        order = [*ELO_COLUMNS, *BT_COLUMNS, *SC_COLUMNS]
        frame = frame[[c for c in order if c in frame.columns] + [c for c in frame.columns if c not in order]]
    return dataclasses.replace(table, frame=best_first(frame, PRIMARY["bt"][0][0]), notes=tuple(notes))


def _styled(battles: pd.DataFrame, styles: pd.DataFrame | None) -> pd.DataFrame | None:
    """The battles with each answer's style columns (``<feature>_a``/``_b``, ``length_unit``); None
    when there are none."""
    from .style_ratings import has_styles

    if styles is None:
        return battles if has_styles(battles) else None
    try:
        styled = rating.add_style_columns(battles, styles)
    except ValueError:  # an answer without a style row: not every battle can be controlled
        return None
    return styled.assign(length_unit=str(styles["length_unit"].iat[0]) if len(styles) else "characters")


def _add_rating(columns: dict, rated: list[str], point: pd.Series, samples, names, centre: str = "estimate") -> None:
    """A rating's three columns, the point inside its interval (rating.rating_intervals): Bradley-Terry
    shows its full-data fit; online Elo, whose full-data value depends on the battle order, the median
    of its bootstrap rounds (FastChat's way). Without bootstrap rounds the interval is the point."""
    if samples is not None:
        summary = rating.rating_intervals(samples, point, centre=centre)
    else:
        summary = pd.DataFrame({"rating": point, "ci_lower": point, "ci_upper": point})
    for name, column in zip(names, ("rating", "ci_lower", "ci_upper")):
        columns[name] = [round(float(summary.loc[m, column]), 2) for m in rated]


def _add_baseline_rates(columns: dict, rated: list[str], battles: pd.DataFrame, baseline: str, spec: RatingSpec):
    """EvalScope's ``pairwise`` metric, without counting anything but real verdicts, plus a CI on the
    win rate (questions resampled) for min_win_rate gates: the same quantity as the point, weighted
    wins over weighted games (a tie is no win), so the point lies inside its interval."""
    rates = rating.pairwise_rates(battles, baseline)
    weight = battles["weight"] if "weight" in battles.columns else 1.0
    candidate_on_a = battles["model_b"] == baseline
    won = (candidate_on_a & (battles["winner"] == "model_a")) | (~candidate_on_a & (battles["winner"] == "model_b"))
    outcome = battles.assign(model=battles["model_a"].where(candidate_on_a, battles["model_b"]),
                             score=won.astype(float), weight=weight)
    outcome = outcome[(outcome["model_a"] == baseline) | (outcome["model_b"] == baseline)]
    intervals = rating.mean_scores(outcome[["model", "question_id", "score", "weight"]],
                                   rounds=max(spec.bootstrap_rounds, 1), seed=spec.seed)
    for column, source in zip(BASELINE_COLUMNS, ("win_rate", "ci_lower", "ci_upper", "loss_rate", "tie_rate")):
        table = intervals if source.startswith("ci_") else rates
        columns[column] = [round(float(table.loc[m, source]), 4) if m in table.index else None for m in rated]


def score_table(scores: pd.DataFrame, models: list[str], spec: RatingSpec) -> RatingTable:
    summary = rating.mean_scores(scores, rounds=max(spec.bootstrap_rounds, 1), seed=spec.seed)
    rated = [m for m in models if m in summary.index]
    frame = pd.DataFrame(
        {
            "Model": rated,
            "Score": [round(float(summary.loc[m, "mean"]), 3) for m in rated],
            "CI_Lower": [round(float(summary.loc[m, "ci_lower"]), 3) for m in rated],
            "CI_Upper": [round(float(summary.loc[m, "ci_upper"]), 3) for m in rated],
            "Questions": [int(summary.loc[m, "scores"]) for m in rated],
        },
        columns=SCORE_COLUMNS,
    )
    return RatingTable(best_first(frame, "Score"), None, "score")


def best_first(frame: pd.DataFrame, column: str, name: str = "Model") -> pd.DataFrame:
    """Rows by ``column``, highest first (NaN last); the model name breaks exact ties, so the order
    never depends on the order the battles came in."""
    frame = frame.sort_values([column, name], ascending=[False, True], kind="mergesort", na_position="last")
    return frame.reset_index(drop=True)


def game_count(value) -> int | float:
    """Game counts are whole unless strong verdicts weigh more than one game."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 2)


# ------------------------------------------------------------------------------------------------
# Files


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def read_previous(path: Path) -> pd.DataFrame:
    """A previous report (for max_drop gates and the delta column); ValueError when unreadable."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the baseline report {path}: {exc}") from None
    if "Model" not in frame.columns:
        raise ValueError(f"the baseline report {path} has no Model column (expected a pytest-arena rating CSV)")
    return frame


def previous_columns(table: RatingTable, control: str = "none") -> tuple[str, str, str]:
    """The previous report's columns of the rating judged under ``control``: the controlled ones
    (``BT_Rating_SC``: the previous run's own rating_gen.style_control) or the primary ones."""
    return tuple(SC_COLUMNS) if table.judged_control(control) != "none" else table.columns


def previous_value(previous: pd.DataFrame | None, table: RatingTable, model: str, control: str = "none") -> float | None:
    """The model's primary rating in the previous report, if that report has it."""
    column = previous_columns(table, control)[0]
    if previous is None or column not in previous.columns:
        return None
    rows = previous[previous["Model"] == model]
    return None if rows.empty else float(rows.iloc[0][column])


def previous_half_width(previous: pd.DataFrame, table: RatingTable, model: str, control: str = "none") -> float:
    """Half the width of the model's 95% CI in the previous report (0 when it has none)."""
    _, lower, upper = previous_columns(table, control)
    if lower not in previous.columns or upper not in previous.columns:
        return 0.0
    rows = previous[previous["Model"] == model]
    if rows.empty:
        return 0.0
    width = (float(rows.iloc[0][upper]) - float(rows.iloc[0][lower])) / 2
    return width if width == width else 0.0  # NaN: no interval


def write_plot(table: RatingTable, path: Path) -> bool:
    """A PNG of the ratings with their CIs; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on CI machines
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    value, lower, upper = table.columns
    frame = table.frame.iloc[::-1]  # best at the top
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(frame) + 1.2))
    axes.errorbar(frame[value], frame["Model"],
                  xerr=[frame[value] - frame[lower], frame[upper] - frame[value]], fmt="o", capsize=4)
    axes.set_xlabel(f"{table.name} (95% CI)")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


# ------------------------------------------------------------------------------------------------
# For people


def table_rows(table: RatingTable, previous: pd.DataFrame | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the human table: rank, model, rating with its 95% CI, the record, and the
    change against the previous report when one is given."""
    value, lower, upper = table.columns
    precision = 2 if table.primary == "score" else 1
    header = ["rank", "model", table.name, "95% CI"]
    if table.primary == "score":
        header.append("questions")
    else:
        controlled = SC_COLUMNS[0] in table.frame.columns
        if controlled:
            header += [RATING_NAMES[table.control], "95% CI"]
        header += ["battles", "W/T/L", "win rate"]
        if "Baseline_Win_Rate" in table.frame.columns:
            header.append("vs baseline")
        if LC_COLUMNS[0] in table.frame.columns:
            header.append("LC vs baseline (95% CI)")
    if previous is not None:
        header.append("change")
    rows = []
    for rank, row in enumerate(table.frame.to_dict("records"), start=1):
        cells = [str(rank), row["Model"], f"{row[value]:.{precision}f}",
                 f"{row[lower]:.{precision}f} .. {row[upper]:.{precision}f}"]
        if table.primary == "score":
            cells.append(str(row["Questions"]))
        else:
            if controlled:
                point, low, high = (row[c] for c in SC_COLUMNS)
                cells += [f"{point:.1f}", f"{low:.1f} .. {high:.1f}"]
            cells += [str(row["Battles"]), f"{row['Wins']}/{row['Ties']}/{row['Losses']}", f"{row['Win_Rate']:.1%}"]
            if "Baseline_Win_Rate" in table.frame.columns:
                rate = row["Baseline_Win_Rate"]
                cells.append("baseline" if pd.isna(rate) else f"{rate:.1%}")
            if LC_COLUMNS[0] in table.frame.columns:
                rate, low, high = (row[c] for c in LC_COLUMNS)
                cells.append("baseline" if pd.isna(rate) else f"{rate:.1%} ({low:.1%} .. {high:.1%})")
        if previous is not None:
            before = previous_value(previous, table, row["Model"])
            cells.append("new" if before is None else f"{row[value] - before:+.{precision}f}")
        rows.append(cells)
    return header, rows


def format_table(table: RatingTable, previous: pd.DataFrame | None = None) -> list[str]:
    header, rows = table_rows(table, previous)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    note = perfect_record_note(table)
    return lines + ([note] if note else []) + [f"note: {n}" for n in table.notes]


def perfect_record_note(table: RatingTable) -> str | None:
    """A warning when a model won or lost every battle it played, without a tie.

    Maximum likelihood has no finite Bradley-Terry gap for it (any larger gap fits better). The fit's
    weak prior (rating.PRIOR_REG: ratings around their mean with SD 347 points, worth about one tie
    against an average opponent per model) holds the gap finite: its size is the prior meeting the
    record, and more battles with the same record widen it. The order is what the data show. When
    every bootstrap round saw the same record, the interval has no width: it shows no uncertainty
    about a size the data do not fix.
    """
    if table.primary == "score" or "Wins" not in table.frame.columns:
        return None
    frame = table.frame
    unbeaten = frame[(frame["Wins"] > 0) & (frame["Losses"] == 0) & (frame["Ties"] == 0)]
    winless = frame[(frame["Losses"] > 0) & (frame["Wins"] == 0) & (frame["Ties"] == 0)]
    if unbeaten.empty and winless.empty:
        return None
    parts = ([f"{', '.join(unbeaten['Model'])} won every battle"] if not unbeaten.empty else []) + \
            ([f"{', '.join(winless['Model'])} lost every battle"] if not winless.empty else [])
    note = (f"note: {' and '.join(parts)}: the data put no limit on the gap, so the BT ratings shown come from a "
            f"weak prior (SD {rating.prior_sd():.0f} points around the mean) meeting that record; read the order, "
            "not the size of the gap, which more such battles would widen")
    swept = pd.concat([unbeaten, winless])
    if table.samples is not None and (swept["BT_CI_Lower"] == swept["BT_CI_Upper"]).any():
        note += "; every bootstrap round saw the same record, so its interval has no width"
    return note


def markdown_summary(table: RatingTable, gates: list[tuple[str, bool, str]], previous=None) -> str:
    """The ratings and gate outcomes as Markdown, for a CI job's step summary."""
    header, rows = table_rows(table, previous)
    lines = ["## pytest-arena" + (" (subset run)" if table.subset else ""), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    notes = [n for n in [perfect_record_note(table), *(f"note: {n}" for n in table.notes)] if n]
    if notes:
        lines += ["", *notes]
    if gates:
        lines += ["", "| gate | result | detail |", "|---|---|---|"]
        lines += [f"| {gate_id} | {'passed' if passed else '**failed**'} | {message} |" for gate_id, passed, message in gates]
    return "\n".join(lines) + "\n"
