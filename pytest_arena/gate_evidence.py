"""The paired evidence of the regression gates: ``max_drop`` against the stored baseline run and ``beats``
within this run, compared question by question (``rating.paired``).

The baseline run and this run answered the same questions, and a question that suits a model in one
run suits it in the other: resampling the questions once, for both sides (a paired bootstrap by
question), lets that question-to-question spread cancel instead of counting it twice, as two
independent intervals do. ``max_drop`` fails when the whole paired 95% interval of
``R_now(model) - R_baseline(model)`` lies below ``-max_drop``; ``beats`` when the whole paired interval of
``R(model) - R(other)`` lies below ``-margin`` (bench/README.md section 4: the study behind it).

Both sides are built the same way: this run's judgments through ``flips.verdict_records``, the
baseline's from the records of ``<baseline stem>.verdicts.jsonl`` that ``--arena-baseline-update``
stored (``rating.battles_from_verdicts``). A baseline without that file (written before verdicts were
stored), or a side missing the model falls back to the unpaired test of ``gates``, and the gate's message
says so on one line.

Under a style control (``length``, ``style``: the default is ``length``) each side is refitted with the
controlled fit (``rating.style_bradley_terry``) on the same question draw, so the records carry each
answer's length and markdown counts (``flips.verdict_records`` with the run's styles); a baseline
verdicts file written before they were stored has none, and the gate falls back to the unpaired
controlled test with one line. (Where length and quality cannot be told apart, ``gates`` asks a
controlled pass for evidence: ``gates._on_evidence_if_confounded``.)

Pure: no pytest; ``gates`` calls :func:`paired_gate` (handing it the unpaired test, whose result it
reshapes, so this module never imports ``gates``), ``results`` builds the :class:`RunEvidence`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .file_names import verdicts_file


@dataclass(frozen=True)
class RunEvidence:
    """What the paired gates compare: this run's battles, the baseline run's (None: no verdicts file),
    and how to resample."""

    candidate: object  # battles table (pandas) of this run's verdicts
    baseline: object | None  # battles table of the stored baseline run's verdicts; None: none stored
    baseline_report: Path | None  # --arena-baseline
    anchor: str | None  # the model rated 1000 (pairwise_baseline mode), as the report anchors it
    rounds: int
    seed: int

    @property
    def missing_line(self) -> str:
        """The one line of a max_drop gate that had to fall back (no verdicts beside the baseline report)."""
        name = verdicts_file(self.baseline_report).name if self.baseline_report else "the verdicts file"
        return (f"(unpaired test: no per-battle verdicts beside the baseline report ({name} is missing); "
                "the next --arena-baseline-update stores them)")


    def styles_missing_line(self, control: str) -> str:
        """The line of a controlled max_drop gate whose baseline verdicts carry no answer styles."""
        name = verdicts_file(self.baseline_report).name if self.baseline_report else "the verdicts file"
        what = "answer lengths" if control == "length" else "answer lengths and markdown counts"
        return (f"(unpaired {control}-controlled test: {name} has no {what} (written before they were stored); "
                "the next --arena-baseline-update stores them)")


def run_evidence(plan, judgments, baseline_report: Path | None, styles=None) -> RunEvidence:
    """The paired gates' evidence over ``judgments`` (the run's finished ones); ``styles``
    (``answer_styles``) gives this run's battles their style columns, for a controlled gate."""
    from .flips import read_verdicts, verdict_records
    from .rating import battles_from_verdicts

    candidate = battles_from_verdicts(verdict_records(judgments, styles))
    baseline = None
    if baseline_report is not None:
        records = read_verdicts(verdicts_file(baseline_report))
        baseline = None if records is None else battles_from_verdicts(records)
    rated = set(candidate["model_a"]) | set(candidate["model_b"])
    anchor = plan.baseline if plan.baseline in rated else None
    spec = plan.config.rating
    return RunEvidence(candidate, baseline, baseline_report, anchor, spec.bootstrap_rounds, spec.seed)


def paired_gate(gate, table, evidence: RunEvidence, control: str, unpaired: Callable[[], object]):
    """The gate's result from the paired comparison, or ``unpaired()`` (today's test) where no pairing
    is possible, with one line saying why when the user could change it."""
    if table.primary != "bt":
        return unpaired()  # (scores have no pairing here)
    judged = table.judged_control(control)  # raw where this run's battles have no style columns
    if evidence.rounds < 1:
        return _noted(unpaired(), "(unpaired test: bootstrap_rounds is 0, so there is no interval to pair)")
    if judged != "none" and not _has_styles(evidence.candidate, judged):
        return _noted(unpaired(), f"(unpaired test: this run's verdicts lack the answers' styles for {judged} control)")
    if gate.kind == "beats":
        return _paired_beats(gate, table, evidence, unpaired, judged)
    if evidence.baseline_report is None:
        return unpaired()  # (its message asks for --arena-baseline)
    if evidence.baseline is None or (judged != "none" and not _has_styles(evidence.baseline, judged)):
        result = unpaired()
        line = evidence.missing_line if evidence.baseline is None else evidence.styles_missing_line(judged)
        # (a failed gate's flips say it already, in flips.evidence_lines: one line either way)
        return _noted(result, line) if result.passed or evidence.baseline is not None else result
    return _paired_max_drop(gate, table, evidence, unpaired, judged)


def _has_styles(battles, control: str) -> bool:
    needed = ["length_a", "length_b"] + (["headers_a", "headers_b", "list_items_a", "list_items_b", "bold_a", "bold_b"]
                                         if control == "style" else [])
    return all(column in battles.columns for column in needed)


def _kind(control: str) -> str:
    """How the interval is named: ``paired`` (raw) or ``paired, length-controlled``."""
    return "paired" if control == "none" else f"paired, {control}-controlled"


def _noted(result, line: str):
    return dataclasses.replace(result, message=f"{result.message}\n{line}")


def _paired_beats(gate, table, evidence: RunEvidence, unpaired, control: str):
    from .rating import paired_difference

    try:
        iv = paired_difference(evidence.candidate, gate.model, gate.beats, rounds=evidence.rounds,
                               seed=evidence.seed, anchor=evidence.anchor, control=control)
    except ValueError as exc:
        return _noted(unpaired(), f"(unpaired test: {exc})")
    passed = not iv.below(-gate.margin)
    verdict = "not significantly below" if passed else "significantly below"
    return dataclasses.replace(
        unpaired(), passed=passed, message=
        f"{gate.model} - {gate.beats}: {table.rating_name(control)} difference {iv.estimate:+.1f} ({_kind(control)} 95% "
        f"CI {iv.ci_lower:+.1f} .. {iv.ci_upper:+.1f}, {iv.questions} questions resampled for both); {verdict} -margin "
        f"{0.0 - gate.margin:+g}",
        value=iv.estimate, ci=(iv.ci_lower, iv.ci_upper), threshold=-gate.margin, control=control,
    )


def _paired_max_drop(gate, table, evidence: RunEvidence, unpaired, control: str):
    from .rating import paired_change

    try:
        iv = paired_change(evidence.baseline, evidence.candidate, gate.model, rounds=evidence.rounds,
                           seed=evidence.seed, anchor=_shared_anchor(evidence), control=control)
    except ValueError as exc:
        return _noted(unpaired(), f"(unpaired test: {exc})")
    before = iv.reference  # (the baseline run's rating, fitted once inside paired_change)
    passed = not iv.below(-gate.max_drop)
    verdict = "not significantly more" if passed else "significantly more"
    paired = (f"{iv.shared} of {iv.questions} questions paired" if iv.shared
              else "no question in common with the baseline run, so unpaired")
    return dataclasses.replace(
        unpaired(), passed=passed, message=
        f"{gate.model}: {table.rating_name(control)} {before + iv.estimate:.1f} against {before:.1f} in the baseline run "
        f"(both from their verdicts): change {iv.estimate:+.1f} ({_kind(control)} 95% CI {iv.ci_lower:+.1f} .. "
        f"{iv.ci_upper:+.1f}, {paired}), {verdict} than the allowed drop of {gate.max_drop:g}",
        value=iv.estimate, ci=(iv.ci_lower, iv.ci_upper), threshold=-gate.max_drop, control=control,
    )


def _shared_anchor(evidence: RunEvidence) -> str | None:
    """The anchor, where both runs rated it (a paired change needs the same scale on both sides)."""
    if evidence.anchor is None or evidence.baseline is None:
        return evidence.anchor
    rated = set(evidence.baseline["model_a"]) | set(evidence.baseline["model_b"])
    return evidence.anchor if evidence.anchor in rated else None
