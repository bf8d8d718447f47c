"""The judge audit's keys (issue 26): ``reviews_gen.audit`` (a file of labelled pairs),
``reviews_gen.audit_annotators`` (whose labels count) and the gate on the judge itself,
``gates: - judge_agreement: {min: 0.6, ties: false}``. The labels themselves are read and checked
against the arena's questions and models by ``judge_audit.configure``, once the plan is known."""

from __future__ import annotations

from ..errors import excerpt, kind_of
from .section import NUMBER, Section
from .specs import JUDGE_AGREEMENT, JudgeGateSpec

AUDIT_KEYS = ("audit", "audit_annotators")


def read_audit(section: Section, existing_file) -> dict:
    """``ReviewSpec``'s audit fields. ``audit_annotators``: a prefix or a list of prefixes of the
    annotators kept (``expert`` reproduces FastChat's "human" figures on its MT-bench file)."""
    annotators = section.get("audit_annotators", (str, list), expected="an annotator name prefix, or a list of them")
    annotators = [annotators] if isinstance(annotators, str) else annotators or []
    for i, prefix in enumerate(annotators):
        if not isinstance(prefix, str) or not prefix:
            section.fail(f"audit_annotators[{i}]", f"expected an annotator name prefix, got {excerpt(prefix)}")
    return {"audit": existing_file(section, "audit", required=False), "audit_annotators": tuple(annotators)}


def is_judge_gate(entry) -> bool:
    return isinstance(entry, dict) and JUDGE_AGREEMENT in entry


def read_judge_gate(gate: Section) -> JudgeGateSpec:
    """``- judge_agreement: {min: 0.6, ties: false}``: the judge must agree with the audit's labels at
    least ``min`` of the time (by the interval's lower end), with ties (FastChat's "with tie") or without."""
    gate.check_keys((JUDGE_AGREEMENT,))
    if not isinstance(gate.data[JUDGE_AGREEMENT], dict):
        gate.fail(JUDGE_AGREEMENT, "expected a mapping such as {min: 0.6, ties: false}, got "
                                   f"{kind_of(gate.data[JUDGE_AGREEMENT])}")
    args = gate.section(JUDGE_AGREEMENT)
    args.check_keys(("min", "ties"))
    least = args.get("min", NUMBER, expected="a share between 0 and 1", check=lambda v: 0 <= v <= 1)
    if least is None:
        args.fail("min", "missing; expected the least agreement with the labels, a share between 0 and 1")
    return JudgeGateSpec(float(least), ties=args.get("ties", bool, True, expected="true or false"))
