"""The battle browser's data, read from a finished run (``ArenaSession``): the battles it judged, in
plan order, with their answers and verdicts, and the tables the terminal shows."""

from __future__ import annotations

import base64
from pathlib import Path

from ..flips import run_flips
from ..store import read_jsonl
from ..judging.review_records import match_key, replies_by_match
from .collect import PageData


def run_data(arena, table, *, plot: Path | None = None, partial: str | None = None) -> dict:
    """Everything the page shows about this run, as JSON-ready data."""
    page = PageData(list(arena.participants))
    _add_battles(page, arena)
    data = page.to_dict()
    data.update(
        title=f"pytest-arena: {arena.config.path.name}",
        mode=arena.mode,
        run=_run_kind(arena, partial),
        ratings=table_data(table, arena.previous),
        sets=[dict(table_data(t), name=name) for name, t in arena.set_tables().items()],
        plot=plot_uri(plot),
        gates=[{"id": gate, "passed": passed, "message": message}
               for gate, passed, message in arena.results.gates_in_order(arena.gates)],
        flips=flip_tables(arena),
    )
    return data


def _add_battles(page: PageData, arena) -> None:
    runner, participants = arena.runner, arena.participants
    replies = None
    for match in runner.judged:
        future = runner.futures.get(match.id)
        if future is None or not future.done() or future.cancelled():
            continue  # not judged in this run (a partial run stopped before it)
        answers = [_turns(participants[name], match.question) for name in match.models]
        failure = future.exception()
        if failure is not None:
            page.add(match, match.label, answers, failure=f"{type(failure).__name__}: {failure}")
            continue
        judgment = future.result()
        if judgment is None:
            continue
        found = None
        if not judgment.results and judgment.ok:  # a verdict received from an xdist worker: replies on file
            if replies is None:
                replies = replies_by_match(read_jsonl(arena.config.review.review_file))
            found = [reply for turn in replies.get(match_key(match), {}).values() for reply in turn]
        page.add(match, match.label, answers, judgment, reply_records=found)


def _turns(answers, question):
    """A participant's answer turns to a question (None when it has none)."""
    answer = answers.get(question)
    return None if answer is None else answer.turns


def _run_kind(arena, partial: str | None) -> dict:
    if partial:
        return {"kind": "partial", "note": f"partial run ({partial}): only the battles judged before it stopped"}
    if arena.is_limited:
        return {"kind": "limited", "note": f"limited run: the first {arena.limit} questions of each question set"}
    if arena.is_subset:
        return {"kind": "subset", "note": "subset run: the battles this run selected, not the whole arena"}
    return {"kind": "whole", "note": ""}


FLIP_COLUMNS = ("item", "question", "turn", "opponent", "before", "now", "reason")


def flip_tables(arena) -> list[dict]:
    """The failed gates' flips (``flips.run_flips``, the battles behind each), one table per gate."""
    tables = []
    for gate, flips in run_flips(arena).items():
        rows = [["" if getattr(f, c) is None else str(getattr(f, c)) for c in FLIP_COLUMNS] for f in flips]
        tables.append({"title": f"gate {gate}: {len(rows)} battles", "header": list(FLIP_COLUMNS), "rows": rows,
                       "link": 0})
    return tables


def table_data(table, previous=None) -> dict:
    """The rating table as the terminal shows it: header, rows, and the notes under it."""
    from ..report import format_table, table_rows

    header, rows = table_rows(table, previous)
    notes = format_table(table, previous)[1 + len(rows):]
    return {"name": table.name, "header": header, "rows": rows, "notes": notes}


def plot_uri(plot: Path | None) -> str | None:
    """The plot inline, as a data: URI (the page loads nothing)."""
    if plot is None or not Path(plot).is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(plot).read_bytes()).decode("ascii")
