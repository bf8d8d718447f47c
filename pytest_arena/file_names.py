"""File names: what a filesystem allows in one, and the names of every file a run writes beside its report.

A leaf: it imports nothing of the project, so the config reader (which checks the lengths of the paths
it is given), the paths check, the session, the report writer, the EvalScope tables and the flips all
take their names from here, and a name derived from the report is written in one place only.

The report ``reports/rating.csv`` has beside it, for a whole run:

- ``rating.sets.csv`` (per question set), ``rating.turns.csv`` (per turn, ``judge_turns: each``),
  ``rating.flips.csv`` (the battles behind a failed gate), ``rating.<metric>.csv`` (EvalScope's tables),
  ``rating.audit.csv`` (the judge audit), ``rating.judges.csv`` (a panel's judges), ``rating.style.csv`` (what style control found), ``rating.png`` (the plot), ``rating.html`` (the battle browser);

and a -k/-m or partial run writes the same set beside ``rating.subset.csv`` instead, so that it never
rewrites what a whole run produced. A baseline report ``baseline.csv`` keeps its per-battle verdicts in
``baseline.verdicts.jsonl``.
"""

from __future__ import annotations

import os
from pathlib import Path

# -------------------------------------------------------------------------------------------------
# What a filesystem allows

# The limits of nearly every filesystem (Linux, macOS): a config path beyond them names no file that
# could exist, and asking the OS about it raises instead of answering "no such file".
NAME_MAX = 255
PATH_MAX = 4096


def path_length_problem(value: str) -> str | None:
    """Why a path written in the config can name no file (a part or the whole too long), or None."""
    for part in Path(os.path.expanduser(value)).parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return f"file name too long ({size} bytes; at most {NAME_MAX}): {part[:40]}..."
    if len(os.fsencode(value)) >= PATH_MAX:
        return f"path too long (at most {PATH_MAX - 1} bytes)"
    return None


# -------------------------------------------------------------------------------------------------
# The files beside the report

# rating_gen.metrics with a table of their own beside the report (``bt`` is the report itself).
METRIC_TABLES = ("elo", "pairwise", "score")


def _beside(report: Path, part: str, suffix: str | None = None) -> Path:
    report = Path(report)
    return report.with_name(f"{report.stem}.{part}{report.suffix if suffix is None else suffix}")


def subset_report(report: Path) -> Path:
    """A -k/-m, --arena-limit or partial run's report: ``rating.csv`` -> ``rating.subset.csv``."""
    return _beside(report, "subset")


def sets_report(report: Path) -> Path:
    """The ratings per question set: ``rating.sets.csv``."""
    return _beside(report, "sets")


def turns_report(report: Path) -> Path:
    """The per-turn tables (``judge_turns: each``): ``rating.turns.csv``."""
    return _beside(report, "turns")


def flips_file(report: Path) -> Path:
    """The battles behind the failed gates: ``rating.flips.csv``."""
    return _beside(report, "flips", ".csv")


def style_notes_file(report: Path) -> Path:
    """What style control found (each covariate's coefficient, issue 24): ``rating.style.csv``."""
    return _beside(report, "style", ".csv")


def run_notes_file(report: Path) -> Path:
    """What the report's reader must know of the run as a whole (where it stopped when decided):
    ``rating.notes.csv``."""
    return _beside(report, "notes", ".csv")


def metric_file(report: Path, metric: str) -> Path:
    """A ``rating_gen.metrics`` table (EvalScope's): ``rating.elo.csv``, ``rating.pairwise.csv``."""
    return _beside(report, metric, ".csv")


def audit_file(report: Path) -> Path:
    """The judge audit's table: ``rating.audit.csv``."""
    return _beside(report, "audit", ".csv")


def plot_file(report: Path) -> Path:
    """The plot of the ratings: ``rating.png``."""
    return Path(report).with_suffix(".png")


def page_file(report: Path) -> Path:
    """The battle browser: ``rating.html``."""
    return Path(report).with_suffix(".html")


def verdicts_file(baseline_report: Path) -> Path:
    """A baseline report's per-battle verdicts: ``baseline.csv`` -> ``baseline.verdicts.jsonl``."""
    return _beside(baseline_report, "verdicts", ".jsonl")


def files_beside(report: Path, metrics=()) -> tuple[Path, ...]:
    """Every file a run may write for ``report``: the report and its subset report, and beside each of
    them the per-set and per-turn tables, the plot, the page, the flips, the metric tables, the audit,
    the panel's judges, the style-control notes and the run notes."""
    both = (Path(report), subset_report(report))
    files = [f for path in both for f in (path, sets_report(path), plot_file(path), turns_report(path), page_file(path))]
    files += [flips_file(path) for path in both]
    files += [metric_file(path, m) for path in both for m in METRIC_TABLES if m in metrics]
    files += [audit_file(path) for path in both]
    files += [judges_file(path) for path in both]
    files += [style_notes_file(path) for path in both]
    files += [run_notes_file(path) for path in both]
    return tuple(files)


# -------------------------------------------------------------------------------------------------
# The files kept beside the review file and the answers files


def _after(path: Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.name + suffix)


def lock_file(path: Path) -> Path:
    """The lock beside a file, taken by whoever writes it across processes: ``x.jsonl`` -> ``x.jsonl.lock``."""
    return _after(path, ".lock")


def cached_count_file(review_file: Path) -> Path:
    """--collect-only's count of cached judge calls: ``reviews.jsonl.count.json``."""
    return _after(review_file, ".count.json")


def spend_file(review_file: Path) -> Path:
    """The judge calls and spend that the xdist workers of a run share under a budget: ``reviews.jsonl.calls.json``."""
    return _after(review_file, ".calls.json")


def claims_folder(review_file: Path) -> Path:
    """The claims on judge calls in flight, one lock file a call: ``reviews.jsonl.claims/``."""
    return _after(review_file, ".claims")


def batch_state_file(review_file: Path) -> Path:
    """The provider batches still pending for a review file: ``reviews.jsonl.batch.json``."""
    return _after(review_file, ".batch.json")


def batch_run_lock(review_file: Path) -> Path:
    """Held by the one process of a run that submits, waits for and merges its batches: ``reviews.jsonl.batch-run.lock``."""
    return _after(review_file, ".batch-run.lock")


def audit_reviews(review_file: Path) -> Path:
    """The judge audit's own review file (its cache), for labelled pairs no battle judged: ``reviews.audit.jsonl``."""
    return _beside(review_file, "audit")


def member_name(judge: str) -> str:
    """A panel judge's name as a file name part: ``meta-llama/Llama-3`` -> ``meta-llama_Llama-3``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in judge).strip(".") or "judge"


def member_reviews(review_file: Path, judge: str) -> Path:
    """A panel judge's own review file (its cache): ``reviews.jsonl`` -> ``reviews.<judge>.jsonl``."""
    return _beside(review_file, member_name(judge))


def judges_file(report: Path) -> Path:
    """A panel's per-judge ratings: ``rating.judges.csv``."""
    return _beside(report, "judges", ".csv")


def digests_file(answers_file: Path) -> Path:
    """The checkpoint digests kept beside a model's answers: ``answer_x.jsonl.digests.json``."""
    return _after(answers_file, ".digests.json")


def files_beside_reviews(review_file: Path, judges=()) -> tuple[Path, ...]:
    """The files a run may write beside its review file (the paths check keeps every input off them); with
    a panel's ``judges`` (names), each judge's own review file and those beside it."""
    members = tuple(f for judge in judges
                    for member in (member_reviews(review_file, judge), member_reviews(audit_reviews(review_file), judge))
                    for f in (member, *files_beside_reviews(member)))
    spend = spend_file(review_file)
    return (cached_count_file(review_file), spend, lock_file(spend), audit_reviews(review_file),
            batch_state_file(review_file),
            lock_file(batch_state_file(review_file)), batch_run_lock(review_file)) + members
