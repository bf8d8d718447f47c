"""Why a gate failed: the battles behind it, from the verdicts already in hand (no judge call is made).

A failing ``max_drop`` gate lists the questions whose verdicts changed against the baseline run, for
the gate's model, worst first (a win that became a loss before a win that became a tie); a failing
``beats`` gate lists the battles the model lost against the other. For that, ``--arena-baseline-update``
stores each battle's verdict beside the baseline report, as ``<baseline stem>.verdicts.jsonl``
(``write_verdicts``): one small record per battle (item and question ids, models, verdict, the review
cache keys), written with the baseline CSV and only by whole runs, as that CSV is.

The public API (the HTML battle browser uses it too):

``gate_flips(arena, gate) -> list[Flip]``
    The evidence for one ``max_drop`` or ``beats`` gate of an ``ArenaSession`` whose verdicts are in
    (``[]`` for other gates), in the deterministic order the failure message shows them.
``run_flips(arena) -> dict[str, list[Flip]]``
    Gate item ID (``drop-tiny-a``) -> the flips of every failed max_drop/beats gate of the run so far:
    what ``<report stem>.flips.csv`` holds.

A ``Flip`` is plain data: ``item`` (``q017-A--vs--B``), ``question`` (``q017``, as the item shows it),
``turn`` (None unless judged per turn), ``model`` and ``opponent``, ``before`` and ``now`` (``win``,
``tie`` or ``loss`` for ``model``; ``before`` is ``""`` when the baseline run did not judge the battle),
``reason`` (the first line of the judge's reply now) and ``cache_key`` (the review cache key of the
reply, to find it in the review file).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, fields
from pathlib import Path

from .plan import Battle, gate_id
from .judging.review_records import match_key, replies_by_match
from .store import read_jsonl, write_atomic

SHOWN = 10  # flips named in a failure message; the CSV has them all
REASON_CHARS = 200
POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@dataclass(frozen=True)
class Flip:
    item: str
    question: str
    turn: int | None
    model: str
    opponent: str
    before: str
    now: str
    reason: str
    cache_key: str = ""

    @property
    def worse_by(self) -> float:
        """How much worse ``now`` is than ``before`` for the model: 1 for a win lost, 0.5 for a win tied."""
        return POINTS.get(self.before, 1.0) - POINTS[self.now]

    def line(self) -> str:
        turn = f" turn {self.turn}" if self.turn is not None else ""
        change = f"{self.before} -> {self.now}" if self.before else self.now
        return f"{self.question}{turn} vs {self.opponent}: {change}: {self.reason or '(no reason given)'}"


# -------------------------------------------------------------------------------------------------
# The public API


def gate_flips(arena, gate) -> list[Flip]:
    """The battles behind a max_drop or beats gate of ``arena`` (an ArenaSession), worst first."""
    if gate.kind == "beats":
        return lost_battles(arena.judgments(), gate.model, gate.beats, arena.config.review.review_file)
    if gate.kind == "drop":
        baseline = read_verdicts(verdicts_path(arena.baseline_report)) if arena.baseline_report else None
        return changed_verdicts(arena.judgments(), baseline or [], gate.model, arena.config.review.review_file)
    return []


def run_flips(arena) -> dict[str, list[Flip]]:
    """Gate item ID -> the flips of each failed max_drop or beats gate evaluated so far, in config
    order (whatever order the gate items ran in)."""
    found = getattr(arena, "flips", {})
    order = [gate_id(g) for g in arena.gates]
    return {key: found[key] for key in sorted(found, key=lambda k: order.index(k) if k in order else len(order))}


# -------------------------------------------------------------------------------------------------
# The baseline's verdicts


def verdicts_path(baseline_report: Path) -> Path:
    baseline_report = Path(baseline_report)
    return baseline_report.with_name(f"{baseline_report.stem}.verdicts.jsonl")


def verdict_records(judgments, review_file: Path | None = None) -> list[dict]:
    """One record per judged battle (pairwise modes; a scoring keeps its score), in plan order."""
    records, replies = [], _Replies(review_file)
    for judgment in _units(j for j in judgments if j.ok):
        if not judgment.ok:
            continue
        match = judgment.match
        record = {"item": match.id, "question_id": match.question.question_id}
        if match.question.question_set is not None:
            record["question_set"] = match.question.question_set
        if _turn(judgment) is not None:
            record["turn"] = _turn(judgment)
        if isinstance(match, Battle):
            record.update(model_a=match.model_a, model_b=match.model_b, win=judgment.winner)
        else:
            record.update(model=match.model, score=judgment.score)
        record["cache_keys"] = replies.of(judgment)[1]
        records.append(record)
    return records


def write_verdicts(path: Path, judgments, review_file: Path | None = None) -> None:
    """Replace the baseline's verdicts file in one step (``write_atomic``)."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in verdict_records(judgments, review_file))
    write_atomic(path, text)


def read_verdicts(path: Path) -> list[dict] | None:
    """The baseline's verdict records; None when there is no such file (a baseline written before
    verdicts were stored) or it cannot be read."""
    if not Path(path).is_file():
        return None
    try:
        return read_jsonl(path)
    except (OSError, ValueError):
        return None


# -------------------------------------------------------------------------------------------------
# The flips


def changed_verdicts(judgments, baseline: list[dict], model: str, review_file: Path | None = None) -> list[Flip]:
    """The battles of ``model`` whose verdict differs from the baseline run's, worst first, then in
    plan order (a battle the baseline did not judge is left out: nothing changed, it is new)."""
    before = {}
    for record in baseline:
        if "win" in record and model in (record.get("model_a"), record.get("model_b")):
            outcome = _outcome(record["win"], record["model_a"], record["model_b"], model)
            if outcome is not None:
                before[_record_key(record)] = outcome
    found = []
    for judgment in _battles_of(judgments, model):
        match = judgment.match
        now = _outcome(judgment.winner, match.model_a, match.model_b, model)
        was = before.get(_match_key(judgment))
        if now is not None and was is not None and was != now:
            found.append((judgment, was, now))
    flips = _as_flips(found, model, review_file)
    # Worst first; ``sorted`` keeps plan order among equals, so the order never changes between runs.
    return sorted(flips, key=lambda flip: -flip.worse_by)


def lost_battles(judgments, model: str, other: str, review_file: Path | None = None) -> list[Flip]:
    """The battles ``model`` lost against ``other`` in this run, in plan order."""
    found = [(j, "", "loss") for j in _battles_of(judgments, model)
             if other in j.match.models and _outcome(j.winner, j.match.model_a, j.match.model_b, model) == "loss"]
    return _as_flips(found, model, review_file)


def _battles_of(judgments, model: str) -> list:
    """The model's judged battles, one judgment per turn where they were judged per turn."""
    return [j for j in _units(judgments) if j.ok and isinstance(j.match, Battle) and model in j.match.models]


def _units(judgments):
    """Each judgment, or its turns' judgments when judged per turn (judge_turns each): a flip is per
    question and turn."""
    return [part for judgment in judgments for part in (getattr(judgment, "turns", ()) or (judgment,))]


def _as_flips(found: list[tuple], model: str, review_file: Path | None) -> list[Flip]:
    replies = _Replies(review_file)
    flips = []
    for judgment, was, now in found:
        match = judgment.match
        opponent = match.model_b if match.model_a == model else match.model_a
        text, keys = replies.of(judgment)
        flips.append(Flip(item=match.id, question=match.label, turn=_turn(judgment), model=model,
                          opponent=opponent, before=was, now=now, reason=first_line(text),
                          cache_key=keys[0] if keys else ""))
    return flips


def _outcome(win: str | None, model_a: str, model_b: str, model: str) -> str | None:
    """A battle's verdict as ``model`` lived it: win, tie or loss (None: no verdict)."""
    if win == "tie":
        return "tie"
    if win not in ("model_a", "model_b"):
        return None
    winner = model_a if win == "model_a" else model_b
    return "win" if winner == model else "loss"


def _turn(judgment) -> int | None:
    return getattr(judgment, "turn", None)  # set when battles are judged per turn


def _match_key(judgment) -> tuple:
    # The side each model was shown on does not matter: the verdict is read for the gate's model.
    question = judgment.match.question
    return (question.question_set, question.question_id, _turn(judgment), frozenset(judgment.match.models))


def _record_key(record: dict) -> tuple:
    return (record.get("question_set"), record.get("question_id"), record.get("turn"),
            frozenset((record.get("model_a"), record.get("model_b"))))


class _Replies:
    """A judgment's replies (their texts and review cache keys): from the judgment, or, for an xdist
    controller, which holds verdicts without replies, from the review file (read once, only if needed)."""

    def __init__(self, review_file: Path | None):
        self.review_file = review_file
        self._by_match: dict | None = None

    def of(self, judgment) -> tuple[str, list[str]]:
        """The first reply's text and every call's cache key."""
        if judgment.results:
            texts = [r.text for r in judgment.results if r.text]
            return (texts[0] if texts else ""), [r.call.key for r in judgment.results]
        return self._from_reviews(judgment)

    def _from_reviews(self, judgment) -> tuple[str, list[str]]:
        if self._by_match is None:
            try:
                self._by_match = replies_by_match(read_jsonl(self.review_file) if self.review_file else [])
            except (OSError, ValueError):
                self._by_match = {}
        replies = self._by_match.get(match_key(judgment.match), {}).get(judgment.turn, [])
        texts = [r["text"] for r in replies if r["text"]]
        return (texts[0] if texts else ""), [r["cache_key"] for r in replies if r["cache_key"]]


def first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= REASON_CHARS else line[:REASON_CHARS - 3] + "..."


# -------------------------------------------------------------------------------------------------
# What a failed gate shows, and the CSV


def evidence_lines(gate, flips: list[Flip], csv_path: Path, baseline_report: Path | None) -> list[str]:
    """The lines added to a failed gate's message (at most ``SHOWN`` flips)."""
    if gate.kind == "drop" and baseline_report is not None and read_verdicts(verdicts_path(baseline_report)) is None:
        return [(f"(no per-battle verdicts beside the baseline report: {verdicts_path(baseline_report).name} is "
                 "missing; the next --arena-baseline-update stores them)")]
    if not flips:
        what = "no battle's verdict changed against the baseline run" if gate.kind == "drop" else "no battle lost"
        return [f"({what})"]
    what = ("questions whose verdicts changed against the baseline run, worst first" if gate.kind == "drop"
            else f"battles {gate.model} lost against {gate.beats}")
    shown = f"the first {SHOWN} of {len(flips)}" if len(flips) > SHOWN else f"{len(flips)}"
    return [f"{what} ({shown}; all in {csv_path}):"] + [f"  {flip.line()}" for flip in flips[:SHOWN]]


def flips_csv_path(report_path: Path) -> Path:
    report_path = Path(report_path)
    return report_path.with_name(f"{report_path.stem}.flips.csv")


def write_flips_csv(path: Path, flips_by_gate: dict[str, list[Flip]]) -> bool:
    """Write every flip, one row each, with its gate; remove a stale file when there are none.
    Says whether a file was written."""
    path = Path(path)
    rows = [(gate, flip) for gate, flips in flips_by_gate.items() for flip in flips]
    if not rows:
        path.unlink(missing_ok=True)  # (ours: the paths check reserved it)
        return False
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f.name for f in fields(Flip)]
    writer.writerow(["gate", *names])
    for gate, flip in rows:
        writer.writerow([gate, *("" if getattr(flip, n) is None else getattr(flip, n) for n in names)])
    write_atomic(path, out.getvalue())
    return True


def explain(arena, gate, result):
    """A failed max_drop or beats gate's result with its evidence added to the message (and kept on
    ``arena.flips`` for the CSV and the HTML page); any other result as it is."""
    arena.flips.pop(gate_id(gate), None)  # (a gate evaluated again: its latest result counts)
    if result.passed or gate.kind not in ("drop", "beats") or (gate.kind == "drop" and arena.previous is None):
        return result  # (no baseline report at all: the message says so already)
    flips = gate_flips(arena, gate)
    arena.flips[gate_id(gate)] = flips
    lines = evidence_lines(gate, flips, flips_csv_path(arena.report_path()), arena.baseline_report)
    return dataclasses.replace(result, message="\n".join([result.message, *lines]))
