"""The judge's biases, measured on every run (issue 24): plain functions over the run's judgments, no pytest.

- **Position bias**: in swapped pairs (``swap_position``: each battle judged in both orders), the share of
  decisive verdicts that went to the answer shown first. An unbiased judge is at 50%.
- **Length bias**: the share of decisive verdicts that went to the longer answer (battles whose two
  answers differ in length). A judge blind to length is at 50% when length says nothing of quality;
  MT-bench's GPT-4 verdicts are near 70%.
- **Self-preference**: a warning when the judge is, or shares a family with, a candidate, since judges
  favour their own answers: the judge's model name or checkpoint against each candidate's name, path and
  ``config.json`` (``_name_or_path``, ``model_type``).

Each share comes with its 95% interval: Wilson's at the effective sample size, verdicts clustered by
question (``rating.clustered_rate``: verdicts on one question are not independent).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Share:
    """``hits`` of ``total`` decisive verdicts, the share and its 95% interval (NaN without verdicts)."""

    hits: int
    total: int
    estimate: float
    ci_lower: float
    ci_upper: float

    def text(self) -> str:
        if not self.total:
            return "no decisive verdicts"
        return (f"{self.estimate:.1%} (95% CI {self.ci_lower:.1%} .. {self.ci_upper:.1%}) of {self.total} "
                "decisive verdicts")


@dataclass(frozen=True)
class JudgeBias:
    judge: str
    position: Share | None  # None: no swapped pairs (position_bias_mitigation is not swap_position)
    length: Share | None  # None: no answers at hand
    self_preference: tuple[str, ...] = ()  # the warnings

    def lines(self) -> list[str]:
        lines = []
        if self.position is not None:
            lines.append(f"judge {self.judge} position bias: first-shown answer won {self.position.text()} in "
                         "swapped pairs (50% = no bias)")
        if self.length is not None:
            lines.append(f"judge {self.judge} length bias: longer answer won {self.length.text()} "
                         "(50% = length-blind)")
        return lines + [f"WARNING: {warning}" for warning in self.self_preference]

    def properties(self) -> list[tuple[str, object]]:
        """For JUnit XML (the run's properties): each share and its interval."""
        found = []
        for name, share in (("position_bias", self.position), ("length_bias", self.length)):
            if share is not None and share.total:
                found += [(f"judge_{name}", round(share.estimate, 4)),
                          (f"judge_{name}_ci", f"{share.ci_lower:.4f} .. {share.ci_upper:.4f}"),
                          (f"judge_{name}_verdicts", share.total)]
        found += [("judge_self_preference", warning) for warning in self.self_preference]
        return found

    def to_dict(self) -> dict:
        """For the battle browser."""
        def share(s):
            return None if s is None else {"text": s.text(), "estimate": s.estimate, "ci": [s.ci_lower, s.ci_upper],
                                           "total": s.total}
        return {"judge": self.judge, "position": share(self.position), "length": share(self.length),
                "warnings": list(self.self_preference)}


def _share(hits: list[bool], clusters: list) -> Share:
    from .rating import clustered_rate

    rate = clustered_rate(hits, clusters)
    return Share(rate.hits, rate.total, rate.estimate, rate.ci_lower, rate.ci_upper)


def position_share(judgments) -> Share | None:
    """Decisive verdicts in swapped pairs that went to the answer shown first; None without swapped pairs.
    Read from each judgment's replies (they travel with it from an xdist worker too), turn by turn."""
    hits, clusters, pairs = [], [], 0
    for judgment in judgments:
        by_turn: dict = {}
        for reply in judgment.replies:
            by_turn.setdefault((reply.judge, reply.turn), []).append(reply)  # (a panel: each judge's pair)
        for replies in by_turn.values():
            if len(replies) != 2 or {r.swapped for r in replies} != {False, True}:
                continue
            pairs += 1
            for reply in replies:
                if reply.winner in ("model_a", "model_b"):
                    # Shown first: model_a unless the call swapped the sides.
                    hits.append((reply.winner == "model_a") != reply.swapped)
                    clusters.append(_question(judgment))
    return _share(hits, clusters) if pairs else None


def length_share(judgments, lengths: dict) -> Share | None:
    """Decisive verdicts (each reply's) that went to the longer answer; ``lengths``: (model, question key)
    -> length. None when the answers are not at hand."""
    if not lengths:
        return None
    hits, clusters = [], []
    for judgment in judgments:
        match = judgment.match
        la, lb = (lengths.get((m, _question(judgment))) for m in (match.model_a, match.model_b))
        if la is None or lb is None or la == lb:
            continue
        for reply in judgment.replies:
            if reply.winner in ("model_a", "model_b"):
                hits.append((reply.winner == "model_a") == (la > lb))
                clusters.append(_question(judgment))
    return _share(hits, clusters) if hits else None


def _question(judgment):
    from .rating_table import question_key

    return question_key(judgment.match.question)


# -------------------------------------------------------------------------------------------------
# Self-preference

_VERSION = re.compile(r"[\d.]+[a-z]?$")


def family(name: str | None) -> str | None:
    """A model family from a name or path, as far as a name tells: the last path part, lower case, up to
    the first digit or separator (``Qwen/Qwen2-1.5B-Instruct`` -> ``qwen``, ``gpt-4o`` -> ``gpt``,
    ``SmolLM2-135M`` -> ``smollm``); None when nothing alphabetic leads it."""
    if not name:
        return None
    base = str(name).rstrip("/").replace("\\", "/").rsplit("/", 1)[-1].lower()
    match = re.match(r"[a-z]+", base)
    return match.group(0) if match and len(match.group(0)) >= 2 else None


def identities(name: str, path: str | None) -> dict[str, str]:
    """What names a model: its name, its checkpoint path and, from the checkpoint's ``config.json``,
    ``_name_or_path`` and ``model_type``."""
    found = {"name": name}
    if path:
        found["checkpoint"] = str(path)
        config = Path(path) / "config.json"
        try:
            data = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            for key in ("_name_or_path", "model_type"):
                if isinstance(data.get(key), str) and data[key]:
                    found[key] = data[key]
    return found


def self_preference(judge: dict[str, str], candidates: dict[str, dict[str, str]]) -> list[str]:
    """One warning per candidate that is the judge or shares its family (``identities`` of each)."""
    warnings = []
    judge_names = {v for k, v in judge.items() if k != "model_type"}
    judge_families = {family(v) for v in judge_names} - {None}
    for candidate, ids in candidates.items():
        names = {v for k, v in ids.items() if k != "model_type"}
        same = sorted(judge_names & names)
        if same or ("checkpoint" in judge and "checkpoint" in ids
                    and Path(judge["checkpoint"]).resolve() == Path(ids["checkpoint"]).resolve()):
            warnings.append(f"self-preference: the judge {judge['name']} is candidate {candidate} "
                            f"({same[0] if same else 'the same checkpoint'}); judges favour their own answers")
            continue
        shared = sorted(judge_families & ({family(v) for v in names} - {None}))
        if shared:
            warnings.append(f"self-preference: the judge {judge['name']} shares the {shared[0]} family with "
                            f"candidate {candidate}; judges favour answers like their own")
        elif judge.get("model_type") and judge.get("model_type") == ids.get("model_type"):
            warnings.append(f"self-preference: the judge {judge['name']} and candidate {candidate} have the same "
                            f"architecture (config.json model_type {ids['model_type']}): they may share a family")
    return warnings


def judge_bias(judgments, lengths: dict | None, judge_spec, models: dict) -> JudgeBias:
    """The run's judge biases. ``judge_spec``: the config's ``JudgeSpec``; ``models``: answers_gen's
    ``ModelSpec`` by name (candidates read from files count by name only)."""
    judge_path = judge_spec.checkpoint.path if getattr(judge_spec, "checkpoint", None) is not None else None
    judge = identities(judge_spec.model, judge_path)
    candidates = {name: identities(name, _local_path(spec)) for name, spec in models.items()}
    judged = [j for j in judgments if j.ok and getattr(j.match, "model_a", None) is not None]
    return JudgeBias(judge_spec.model, position_share(judged), length_share(judged, lengths or {}),
                     tuple(self_preference(judge, candidates)))


def _local_path(spec) -> str | None:
    """A candidate's checkpoint (a folder, or a hub id: it names the model too), or its served name."""
    if spec is None:
        return None
    if getattr(spec, "api", None) is not None:
        return spec.api.model
    return spec.path or None
