"""A panel of judges (issue 26): ``reviews_gen.reviewer`` as a list of judges, each a mapping like the
single ``reviewer`` (its own ``ref`` and ``args``: API, local or mixed), and ``reviews_gen.panel``, how
their verdicts combine (``majority`` of the verdicts in a pairwise arena, ``mean`` of the scores in
single mode). The battles' verdict is the panel's (``judging/panel.py``); one judge in a list is no panel."""

from __future__ import annotations

from typing import Callable

from ..file_names import member_name
from .section import Section
from .specs import PANEL_RULES, JudgeSpec

# What every judge of a panel must share: the matches they judge and the calls each match makes
# (plan.calls_per_match, the items) are the panel's, not one judge's.
SHARED = ("mode", "position_bias_mitigation")
RESERVED = ("audit",)  # ``reviews.audit.jsonl`` is the judge audit's (file_names.audit_reviews)


def read_reviewers(section: Section, read_judge: Callable[[Section], JudgeSpec]
                   ) -> tuple[JudgeSpec, tuple[JudgeSpec, ...], str]:
    """(the judge ``review.judge`` names, the panel's judges or () for one judge, the panel's rule)."""
    raw = section.data.get("reviewer")
    if not isinstance(raw, list):
        judge = read_judge(section.section("reviewer"))
        if section.data.get("panel") is not None:
            section.fail("panel", "needs a panel of judges: reviews_gen.reviewer as a list of judges")
        return judge, (), "mean" if judge.mode == "single" else "majority"
    if not raw:
        section.fail("reviewer", "expected a judge (a mapping with ref and args) or a list of them, got an empty list")
    judges = []
    for i, entry in enumerate(raw):
        member = Section(section.file, f"{section.where}.reviewer[{i}]", entry)  # (not a mapping: its own error)
        judges.append(read_judge(member))
        _check_member(member, judges)
    first = judges[0]
    rule = section.choice("panel", PANEL_RULES + (None,), None)
    if len(judges) == 1:  # one judge written as a list: exactly the single judge's run
        return first, (), "mean" if first.mode == "single" else "majority"
    wanted = "mean" if first.mode == "single" else "majority"
    if rule is not None and rule != wanted:
        section.fail("panel", f"{rule} does not combine {'scores' if first.mode == 'single' else 'pairwise verdicts'}"
                              f": mode {first.mode} takes {wanted!r} (majority of verdicts in pairwise modes, "
                              "mean of scores in single mode)")
    return first, tuple(judges), wanted


def _check_member(member: Section, judges: list[JudgeSpec]) -> None:
    """A panel's judge: named apart from the others (its name names its review file), sharing SHARED,
    asked live (a provider batch answers one judge's calls, not a panel's)."""
    judge, others = judges[-1], judges[:-1]
    args = member.section("args")
    if member_name(judge.model).split(".")[0] in RESERVED:  # (``audit.x``: the audit's file of judge x)
        args.fail("model", f"{judge.model!r} names a file the run keeps beside the review file; name the judge "
                           "otherwise (args.model)")
    for other in others:
        if member_name(other.model) == member_name(judge.model):
            args.fail("model", f"another judge of the panel is named {other.model!r}: each judge's name must "
                               "differ (it names the judge's own review file)")
        for key in SHARED:
            if getattr(other, key) != getattr(judge, key):
                args.fail(key, f"expected the same {key} as the panel's first judge ({getattr(other, key)!r}), "
                               f"got {getattr(judge, key)!r}: every judge of a panel judges the same matches")
    if judge.batch:
        args.fail("batch", "a panel's judges are asked live: batch needs a single judge")
