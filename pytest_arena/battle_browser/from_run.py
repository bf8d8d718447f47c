"""The battle browser's data, read from a finished run's outputs (plan, results, facts): the battles it
judged, in plan order, with their answers, verdicts and the judge's replies, and the tables the terminal
shows."""

from __future__ import annotations

import base64
from pathlib import Path

from .collect import PageData


def run_data(outputs, table, *, plot: Path | None = None, partial: str | None = None) -> dict:
    """Everything the page shows about a run (its ``RunOutputs``: plan, results, facts), as JSON-ready data."""
    plan, results, run = outputs.plan, outputs.results, outputs.run
    page = PageData(list(plan.participants))
    _add_battles(page, plan, results)
    data = page.to_dict()
    data.update(
        title=f"pytest-arena: {plan.config.path.name}",
        mode=plan.mode,
        run=_run_kind(plan, run, partial),
        ratings=table_data(table, run.previous),
        sets=[dict(table_data(t), name=name) for name, t in results.set_tables().items()],
        plot=plot_uri(plot),
        gates=[{"id": gate, "passed": passed, "message": message}
               for gate, passed, message in results.gates_in_order(run.gates)],
        flips=flip_tables(results.flips_in_order(run.gates)),
        judge_bias=_judge_bias(outputs, table),
        audit=run.audit() if run.audit is not None else [],  # the judge audit: figures, disagreements
    )
    return data


def _judge_bias(outputs, table) -> list[str]:
    """The judge's position and length bias and self-preference warnings (``judge_bias``), as lines."""
    if table is None or table.primary != "bt":
        return []
    return outputs.judge_bias().lines()


def _add_battles(page: PageData, plan, results) -> None:
    for match, judgment, failure in results.outcomes():
        answers = [_turns(plan.participants[name], match.question) for name in match.models]
        if failure is not None:
            page.add(match, match.label, answers, failure=f"{type(failure).__name__}: {failure}")
        elif judgment is not None:
            page.add(match, match.label, answers, judgment)


def _turns(answers, question):
    """A participant's answer turns to a question (None when it has none)."""
    answer = answers.get(question)
    return None if answer is None else answer.turns


def _run_kind(plan, run, partial: str | None) -> dict:
    if partial:
        return {"kind": "partial", "note": f"partial run ({partial}): only the battles judged before it stopped"}
    if plan.is_limited:
        return {"kind": "limited", "note": f"limited run: the first {run.limit} questions of each question set"}
    if run.subset:
        return {"kind": "subset", "note": "subset run: the battles this run selected, not the whole arena"}
    return {"kind": "whole", "note": ""}


FLIP_COLUMNS = ("item", "question", "turn", "opponent", "before", "now", "reason")


def flip_tables(flips_by_gate: dict) -> list[dict]:
    """The failed gates' flips (the battles behind each), one table per gate."""
    tables = []
    for gate, flips in flips_by_gate.items():
        rows = [["" if getattr(f, c) is None else str(getattr(f, c)) for c in FLIP_COLUMNS] for f in flips]
        tables.append({"title": f"gate {gate}: {len(rows)} battles", "header": list(FLIP_COLUMNS), "rows": rows,
                       "link": 0})
    return tables


def table_data(table, previous=None) -> dict:
    """The rating table as the terminal shows it: header, rows, and the notes under it."""
    from ..rating_table import format_table, table_rows

    header, rows = table_rows(table, previous)
    notes = format_table(table, previous)[1 + len(rows):]
    return {"name": table.name, "header": header, "rows": rows, "notes": notes}


def plot_uri(plot: Path | None) -> str | None:
    """The plot inline, as a data: URI (the page loads nothing)."""
    if plot is None or not Path(plot).is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(plot).read_bytes()).decode("ascii")
