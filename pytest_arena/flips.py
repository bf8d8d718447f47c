"""Why a gate failed: the battles behind it, from the verdicts already in hand (no judge call is made).

A failing ``max_drop`` gate lists the questions whose verdicts changed against the baseline run, for
the gate's model, worst first (a win that became a loss before a win that became a tie); a failing
``beats`` gate lists the battles the model lost against the other. For that, ``--arena-baseline-update``
stores each battle's verdict beside the baseline report, as ``<baseline stem>.verdicts.jsonl``
(``write_verdicts``): one small record per battle (item and question ids, models, verdict, the review
cache keys), written with the baseline CSV and only by whole runs, as that CSV is.

The public API:

``gate_flips(gate, judgments, baseline_report) -> list[Flip]``
    The evidence for one ``max_drop`` or ``beats`` gate over the run's judgments (``[]`` for other
    gates), in the deterministic order the failure message shows them.
``explain(gate, result, judgments, previous, baseline_report, flips_csv)``
    A failed gate's result with that evidence in its message, and the evidence (``results.ArenaResults``
    keeps it per gate: what ``<report stem>.flips.csv`` and the battle browser show).

A ``Flip`` is plain data: ``item`` (``q017-A--vs--B``), ``question`` (``q017``, as the item shows it),
``turn`` (None unless judged per turn), ``model`` and ``opponent``, ``before`` and ``now`` (``win``,
``tie`` or ``loss`` for ``model``; ``before`` is ``""`` when the baseline run did not judge the battle),
``reason`` (the first line of the judge's reply now), ``cache_key`` (the review cache key of the
reply, to find it in the review file) and ``length_ratio`` (the model's answer length over the
opponent's, None when the answers are not at hand: what a length-biased judge may have rewarded).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, fields
from pathlib import Path

from .file_names import verdicts_file
from .matches import Battle
from .record_files import read_jsonl, write_atomic

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
    length_ratio: float | None = None

    def with_ratio(self, ratio: float | None) -> "Flip":
        return dataclasses.replace(self, length_ratio=None if ratio is None else round(ratio, 3))

    @property
    def worse_by(self) -> float:
        """How much worse ``now`` is than ``before`` for the model: 1 for a win lost, 0.5 for a win tied."""
        return POINTS.get(self.before, 1.0) - POINTS[self.now]

    def line(self, show_ratio: bool = False) -> str:
        turn = f" turn {self.turn}" if self.turn is not None else ""
        change = f"{self.before} -> {self.now}" if self.before else self.now
        if show_ratio and self.length_ratio is not None:
            change += f" (length ratio {self.length_ratio:.2f})"
        return f"{self.question}{turn} vs {self.opponent}: {change}: {self.reason or '(no reason given)'}"


# -------------------------------------------------------------------------------------------------
# The public API


def gate_flips(gate, judgments, baseline_report: Path | None) -> list[Flip]:
    """The battles behind a max_drop or beats gate, worst first: ``judgments`` are the run's, and a
    max_drop gate compares them with the verdicts stored beside ``baseline_report``."""
    if gate.kind == "beats":
        return lost_battles(judgments, gate.model, gate.beats)
    if gate.kind == "drop":
        baseline = read_verdicts(verdicts_file(baseline_report)) if baseline_report else None
        return changed_verdicts(judgments, baseline or [], gate.model)
    return []


# -------------------------------------------------------------------------------------------------
# The baseline's verdicts


STYLE_KEYS = ("length", "headers", "list_items", "bold")  # rating.STYLE_FEATURES, without importing pandas here


def verdict_records(judgments, styles=None) -> list[dict]:
    """One record per judged battle (pairwise modes; a scoring keeps its score), in plan order.

    ``styles`` (``answer_styles``: each answer's length and markdown counts by (model, question key))
    adds ``length_a``/``length_b``, the markdown counts and ``length_unit`` to a battle's record where
    both answers have a style row: what a controlled paired gate refits the baseline run with."""
    from .rating_table import question_key

    rows = {} if styles is None else {key: dict(zip(styles.columns, values))
                                      for key, values in zip(styles.index, styles.itertuples(index=False))}
    records = []
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
            record["games"] = [list(game) for game in judgment.games]  # what a paired gate resamples (gate_evidence)
            sides = [rows.get((name, question_key(match.question))) for name in (match.model_a, match.model_b)]
            if sides[0] is not None and sides[1] is not None:
                for feature in STYLE_KEYS:
                    record[f"{feature}_a"], record[f"{feature}_b"] = (int(side[feature]) for side in sides)
                record["length_unit"] = str(sides[0]["length_unit"])
        else:
            record.update(model=match.model, score=judgment.score)
        record["cache_keys"] = _replies_of(judgment)[1]
        records.append(record)
    return records


def write_verdicts(path: Path, judgments, styles=None) -> None:
    """Replace the baseline's verdicts file in one step (``write_atomic``); ``styles`` as in ``verdict_records``."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in verdict_records(judgments, styles))
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


def changed_verdicts(judgments, baseline: list[dict], model: str) -> list[Flip]:
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
    flips = _as_flips(found, model)
    # Worst first; ``sorted`` keeps plan order among equals, so the order never changes between runs.
    return sorted(flips, key=lambda flip: -flip.worse_by)


def lost_battles(judgments, model: str, other: str) -> list[Flip]:
    """The battles ``model`` lost against ``other`` in this run, in plan order."""
    found = [(j, "", "loss") for j in _battles_of(judgments, model)
             if other in j.match.models and _outcome(j.winner, j.match.model_a, j.match.model_b, model) == "loss"]
    return _as_flips(found, model)


def _battles_of(judgments, model: str) -> list:
    """The model's judged battles, one judgment per turn where they were judged per turn."""
    return [j for j in _units(judgments) if j.ok and isinstance(j.match, Battle) and model in j.match.models]


def _units(judgments):
    """Each judgment, or its turns' judgments when judged per turn (judge_turns each): a flip is per
    question and turn."""
    return [part for judgment in judgments for part in (getattr(judgment, "turns", ()) or (judgment,))]


def _as_flips(found: list[tuple], model: str) -> list[Flip]:
    flips = []
    for judgment, was, now in found:
        match = judgment.match
        opponent = match.model_b if match.model_a == model else match.model_a
        text, keys = _replies_of(judgment)
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


def _replies_of(judgment) -> tuple[str, list[str]]:
    """A judgment's first reply text and every call's cache key (its replies travel with it, from an
    xdist worker too)."""
    replies = judgment.replies
    texts = [reply.text for reply in replies if reply.text]
    return (texts[0] if texts else ""), [reply.cache_key for reply in replies]


def first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= REASON_CHARS else line[:REASON_CHARS - 3] + "..."


# -------------------------------------------------------------------------------------------------
# What a failed gate shows, and the CSV


def evidence_lines(gate, flips: list[Flip], csv_path: Path, baseline_report: Path | None,
                   show_ratio: bool = False) -> list[str]:
    """The lines added to a failed gate's message (at most ``SHOWN`` flips)."""
    if gate.kind == "drop" and baseline_report is not None and read_verdicts(verdicts_file(baseline_report)) is None:
        return [(f"(no per-battle verdicts beside the baseline report: {verdicts_file(baseline_report).name} is "
                 "missing; the next --arena-baseline-update stores them)")]
    if not flips:
        what = "no battle's verdict changed against the baseline run" if gate.kind == "drop" else "no battle lost"
        return [f"({what})"]
    what = ("questions whose verdicts changed against the baseline run, worst first" if gate.kind == "drop"
            else f"battles {gate.model} lost against {gate.beats}")
    shown = f"the first {SHOWN} of {len(flips)}" if len(flips) > SHOWN else f"{len(flips)}"
    return [f"{what} ({shown}; all in {csv_path}):"] + [f"  {flip.line(show_ratio)}" for flip in flips[:SHOWN]]


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


def explain(gate, result, judgments, previous, baseline_report: Path | None, flips_csv: Path, lengths=None):
    """A failed max_drop or beats gate's result with its evidence added to the message, and that
    evidence (None for a gate that has none to show); any other result as it is. ``lengths``: each
    answer's length by (model, question key), for the flips' length ratios; the message shows them
    when the gate judged a style-controlled rating or its raw and controlled verdicts disagree."""
    if result.passed or gate.kind not in ("drop", "beats") or (gate.kind == "drop" and previous is None):
        return result, None  # (no baseline report at all: the message says so already)
    flips = gate_flips(gate, judgments, baseline_report)
    if lengths:
        from .rating_table import question_key

        keys = {j.match.id: question_key(j.match.question) for j in judgments}
        flips = [flip.with_ratio(length_ratio(flip, keys, lengths)) for flip in flips]
    show = bool(lengths) and (getattr(result, "control", "none") != "none" or bool(getattr(result, "disagreement", None)))
    lines = evidence_lines(gate, flips, flips_csv, baseline_report, show_ratio=show)
    if gate.kind == "beats" and not flips and getattr(result, "control", "none") != "none":
        lines = [f"(no battle lost: what failed is the {result.control}-controlled rating, the wins with their "
                 "length taken out)"]
    return dataclasses.replace(result, message="\n".join([result.message, *lines])), flips



def length_ratio(flip: Flip, keys: dict, lengths) -> float | None:
    """The flip's model's answer length over its opponent's (``keys``: item id -> question key;
    ``lengths``: (model, question key) -> length)."""
    key = keys.get(flip.item)
    mine, theirs = lengths.get((flip.model, key)), lengths.get((flip.opponent, key))
    if not mine or not theirs:
        return None
    return float(mine) / float(theirs)
