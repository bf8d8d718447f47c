"""The judge audit shown and written: the terminal table (every figure with its 95% interval, for all
labels, per category and per turn) and ``<report stem>.audit.csv`` (``rating.agreement.audit_table``'s
rows, a ``by`` column saying which grouping a row belongs to), over ``judge_audit.AuditVerdicts``."""

from __future__ import annotations

import math
from pathlib import Path

from .file_names import audit_file


def audit_frame(verdicts):
    """Every judge's figures: the ``all`` row, then one per category, then one per turn."""
    import pandas as pd

    from .rating import audit_table

    table = verdicts.table()
    if table.empty:
        return None
    rating = verdicts.run.plan.config.rating
    args = dict(rounds=rating.bootstrap_rounds, seed=rating.seed)
    by_category = audit_table(table, verdicts.run.labels, by="category", **args)
    by_category.insert(1, "by", ["all" if g == "all" else "category" for g in by_category["group"]])
    by_turn = audit_table(table, verdicts.run.labels, by="turn", **args)
    by_turn = by_turn[by_turn["group"] != "all"]
    by_turn.insert(1, "by", "turn")
    return pd.concat([by_category, by_turn], ignore_index=True)


def audit_lines(verdicts, frame, path: Path) -> list[str]:
    """The terminal's lines: what was audited, the table, and the annotators' own agreement."""
    from .rating import label_agreement

    run = verdicts.run
    judge = judge_name(run.plan.config.review)
    if run.plan.config.review.panel:  # a panel: its judges' figures and the panel's, side by side
        judge += f" of {len(run.plan.config.review.panel)} judges"
    questions = len({label.question_id for label in run.labels})
    counters = run.judge.counters if run.judge is not None else None
    asked = (f"{verdicts.asked} asked for the audit: {counters.calls} calls, {counters.cached} from cache, "
             f"{counters.failed} failed" if counters is not None else "none asked for the audit")
    lines = [f"judge audit: {judge} against {len(run.labels)} labels on {questions} questions ({run.path}); "
             f"{verdicts.lent} labelled pairs judged by the arena's battles, {asked}"]
    if verdicts.failed():
        lines.append(f"WARNING: the judge gave no verdict on {verdicts.failed()} labelled pairs; "
                     "their labels count nowhere")
    if frame is None:
        return lines + ["judge audit: no verdict met a label, so there are no figures"]
    header, rows = figure_rows(frame)
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("(shares with their 95% interval; agreement as FastChat's compute_agreement.py: with ties, "
                 "and without ties where neither side said tie)")
    for ties in (True, False):
        human = label_agreement(run.labels, ties=ties)
        if human.total:
            lines.append(f"annotators among themselves ({'with' if ties else 'without'} ties, labels of one pair): "
                         f"{_rate(human.estimate, human.ci_lower, human.ci_upper)} over {human.total} pairs of labels")
    return lines + [f"judge audit: {path}"]


def figure_rows(frame) -> tuple[list[str], list[list[str]]]:
    """The figures as text cells: a share or kappa with its interval, "-" where undefined. A turn grouping
    with one group only (every label about the whole conversation) repeats ``all``: left out."""
    several = frame["judge"].nunique() > 1  # a panel's judges and the panel, side by side
    header = ["judge"] * several + ["group", "labels", "agreement", "without ties", "kappa", "position consistency",
                                    "longer: judge", "longer: labels"]
    records = frame.to_dict("records")
    one_turn = sum(r["by"] == "turn" for r in records) == frame["judge"].nunique()
    rows = []
    for row in records:
        if row["by"] == "turn" and one_turn:
            continue
        group = row["group"] if row["by"] != "turn" else f"turn {row['group']}"
        rows.append([row["judge"]] * several + [
            group, str(row["labels"]), _share(row, "agreement"), _share(row, "agreement_no_ties"), _kappa(row, "kappa"),
            _share(row, "position_consistency"), _share(row, "longer_judge"), _share(row, "longer_labels")])
    return header, rows


DISAGREEMENT_COLUMNS = ["item", "question", "turn", "category", "annotator", "model A", "model B", "label", "judge",
                        "judge's reason", "answer A", "answer B"]
SHOWN = 600  # characters of an answer or reply in the page's disagreements table (the battle has them whole)


def page_tables(verdicts) -> list[dict]:
    """The battle browser's audit section: the figures, then every label the judge disagreed with, with
    both answers and the end of the judge's replies; a battle of the arena links to it."""
    from .rating.agreement import compare

    run = verdicts.run
    frame = audit_frame(verdicts)
    if frame is None:
        return [{"title": f"no verdict met a label of {run.path.name}", "header": [], "rows": []}]
    header, rows = figure_rows(frame)
    judge = judge_name(run.plan.config.review)
    tables = [{"title": f"{judge} against {len(run.labels)} labels of {run.path.name} "
                        "(shares with their 95% interval)", "header": header, "rows": rows}]
    compared = compare(verdicts.table(), run.labels)
    compared = compared[compared["judge"] == judge]  # (a panel: the panel's disagreements, with every judge's reply)
    rows = []
    for row in compared[compared["verdict"] != compared["label"]].itertuples(index=False):
        judgment = verdicts.owners[row.verdict_id]
        names = {"model_a": row.model_a, "model_b": row.model_b, "tie": "tie"}
        answers = [_clip(answer_text(run.answer(row.question_id, m, row.turn), row.turn))
                   for m in (row.model_a, row.model_b)]
        reason = " | ".join(_clip(" ".join(r.text.split()), end=True) for r in judgment.replies if r.text)
        label = row.label_winner if row.label_winner.startswith("tie") else names[row.label]  # tie (bothbad) as is
        rows.append([judgment.match.id, str(row.question_id), "" if row.turn is None else str(row.turn),
                     str(row.category or ""), row.annotator, row.model_a, row.model_b, label, names[row.verdict],
                     reason, *answers])
    tables.append({"title": f"disagreements: {len(rows)} of {len(compared)} labels", "header": DISAGREEMENT_COLUMNS,
                   "rows": rows, "link": 0})
    return tables


def judge_name(review) -> str:
    """The audited judge's name in the figures: its model's, or ``panel`` for a panel of judges."""
    return "panel" if review.panel else review.judge.model


def answer_text(answer, turn) -> str:
    """The text an answer is measured and shown by: the judged turn's, or the whole conversation's."""
    if answer is None:
        return ""
    return answer.turns[-1] if turn is not None else "\n\n".join(answer.turns)


def _clip(text: str, end: bool = False) -> str:
    if len(text) <= SHOWN:
        return text
    return "..." + text[-SHOWN:] if end else text[:SHOWN] + "..."


def write_audit(verdicts, report_path: Path) -> list[str]:
    """The CSV beside the report, then the terminal's lines (which name it)."""
    from .rating_table import write_csv

    frame = audit_frame(verdicts)
    path = audit_file(report_path)
    if frame is not None:
        write_csv(frame, path)
    return audit_lines(verdicts, frame, path)


def _share(row: dict, name: str) -> str:
    return _rate(row[name], row[f"{name}_ci_lower"], row[f"{name}_ci_upper"])


def _rate(value, lower, upper) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.1%} ({lower:.1%} .. {upper:.1%})"


def _kappa(row: dict, name: str) -> str:
    value = row[name]
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f} ({row[f'{name}_ci_lower']:.2f} .. {row[f'{name}_ci_upper']:.2f})"
