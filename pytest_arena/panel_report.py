"""A panel of judges in the report (issue 26): each judge's own ratings beside the panel's (the same
rating as the report, over that judge's verdicts alone) in a small terminal table and
``<report stem>.judges.csv``, and how the judges agree with each other (pairwise Cohen's kappa, with and
without ties, ``rating.agreement.pairwise_kappa``). Nothing for a run with one judge."""

from __future__ import annotations

import math
from pathlib import Path

from .file_names import judges_file
from .matches import Scoring

PANEL = "panel"


def member_judgments(judgments) -> dict[str, list]:
    """Judge name -> that judge's judgments of the panel's matches (those it gave a verdict on)."""
    found: dict[str, list] = {}
    for judgment in judgments:
        for name, member in judgment.panel:
            found.setdefault(name, [])
            if member.ok:
                found[name].append(member)
    return found


def judges_frame(plan, judgments):
    """One row per judge (``panel`` first) and model: the rating with its 95% interval, and the games."""
    import pandas as pd

    from .rating_table import rating_table

    rating, models = plan.config.rating, list(plan.participants)
    rows = []
    by_judge = {PANEL: [j for j in judgments if j.ok], **member_judgments(judgments)}
    for name, verdicts in by_judge.items():
        if not verdicts:
            continue
        table = rating_table(verdicts, models, rating, baseline=plan.baseline)
        rated, lower, upper = table.columns
        for record in table.frame.to_dict("records"):
            rows.append({"judge": name, "model": record["Model"], "rating": record[rated],
                         "ci_lower": record[lower], "ci_upper": record[upper],
                         "verdicts": len(verdicts), "rating_kind": table.primary})
    return pd.DataFrame(rows, columns=["judge", "model", "rating", "ci_lower", "ci_upper", "verdicts", "rating_kind"])


def verdicts_frame(judgments):
    """Each judge's verdict on each battle (and turn), as ``rating.agreement`` takes them."""
    import pandas as pd

    from .rating_table import question_key

    rows = []
    for judgment in judgments:
        for name, member in judgment.panel:
            parts = member.turns or (member,)
            for part in parts:
                if part.ok and part.winner is not None:
                    match = judgment.match
                    rows.append({"judge": name, "question_id": question_key(match.question), "model_a": match.model_a,
                                 "model_b": match.model_b, "turn": part.turn, "winner": part.winner})
    frame = pd.DataFrame(rows, columns=["judge", "question_id", "model_a", "model_b", "turn", "winner"])
    frame["turn"] = pd.Series([row["turn"] for row in rows], dtype=object)  # None stays None, not NaN
    return frame


def panel_lines(plan, judgments, report_path: Path) -> list[str]:
    """Write ``<report stem>.judges.csv``; the terminal's lines (which name it). None for one judge."""
    review = plan.config.review
    panelled = [j for j in judgments if j.panel]
    if not review.panel or not panelled:
        return []
    from .rating_table import write_csv

    frame = judges_frame(plan, panelled)
    path = judges_file(report_path)
    write_csv(frame, path)
    names = [spec.model for spec in review.panel]
    rule = "mean of the scores" if review.panel_rule == "mean" else "majority of the verdicts (no majority: a tie)"
    lines = [f"judge panel: {len(names)} judges ({', '.join(names)}), the battles' verdict is the {rule}; "
             f"each judge's ratings (95% CI):"]
    models = list(dict.fromkeys(frame["model"]))
    header = ["model", *[n for n in [PANEL, *names] if n in set(frame["judge"])]]
    cells = {(r["judge"], r["model"]): _rating(r) for r in frame.to_dict("records")}
    rows = [header] + [[model, *[cells.get((judge, model), "-") for judge in header[1:]]] for model in models]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if not isinstance(panelled[0].match, Scoring):
        lines += kappa_lines(panelled, plan.config.rating)
    return lines + [f"judge panel: {path}"]


def kappa_lines(judgments, rating) -> list[str]:
    """The judges' agreement with each other, every two of them, with ties and without."""
    from .rating import pairwise_kappa

    verdicts = verdicts_frame(judgments)
    if verdicts.empty:
        return []
    lines = ["judges among themselves (Cohen's kappa and agreement, 95% CI; with ties | without ties):"]
    both = [pairwise_kappa(verdicts, ties=ties, rounds=rating.bootstrap_rounds, seed=rating.seed)
            for ties in (True, False)]
    for with_ties, without in zip(both[0].to_dict("records"), both[1].to_dict("records")):
        lines.append(f"  {with_ties['judge_1']} ~ {with_ties['judge_2']}: {_pair(with_ties)} | {_pair(without)}")
    return lines


def _pair(row: dict) -> str:
    if not row["matches"]:
        return "no battles"
    kappa = "-" if math.isnan(row["kappa"]) else \
        f"{row['kappa']:.2f} ({row['kappa_ci_lower']:.2f} .. {row['kappa_ci_upper']:.2f})"
    return (f"kappa {kappa}, agreement {row['agreement']:.1%} ({row['agreement_ci_lower']:.1%} .. "
            f"{row['agreement_ci_upper']:.1%}) over {row['matches']}")


def _rating(row: dict) -> str:
    digits = 0 if row["rating_kind"] == "bt" else 2  # (Bradley-Terry on the Elo scale; scores of 1 to 10)
    return f"{row['rating']:.{digits}f} ({row['ci_lower']:.{digits}f} .. {row['ci_upper']:.{digits}f})"
