"""A judgment and what it is made of: the calls asked of the judge (``Call``), their replies
(``CallResult``), the match's outcome (``Judgment``) and how the replies combine into it (``combine``).

Plain data that every reader of verdicts takes (the ratings, the items, the report, the battle browser,
the flips, the rate-only stage); ``match_judge.MatchJudge`` makes them. A judgment keeps its judge's
replies (``Judgment.replies``, as ``Reply`` records), also when it travelled from an xdist worker to the
controller as plain data (``summary`` / ``from_summary``), so no reader goes back to the review file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import JudgeSpec
from ..matches import Battle, Scoring
from .parsers import ParsedVerdict
from .templates import PromptTemplate

EXCERPT = 300
# A verdict about the answers as shown ("A" first) -> the battle's own sides.
SIDE = {False: {"A": "model_a", "B": "model_b", "tie": "tie"}, True: {"A": "model_b", "B": "model_a", "tie": "tie"}}


@dataclass(frozen=True)
class Call:
    """One request to the judge: which template, the prompt, its cache key, and the order shown."""

    template: PromptTemplate
    prompt: str
    key: str
    swapped: bool = False  # model_b's answer was shown as assistant A
    # For a likelihood verdict, the judge compares the answers themselves, not a prompt about them:
    # (question turns, answer A's turns, answer B's turns), in the order shown.
    exchange: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None
    # The answers shown, as (label, turns): a verdict the judge copied out of one is no verdict.
    quoted: tuple[tuple[str, tuple[str, ...]], ...] = ()


# How the parser names an answer slot in ``verdict_source`` ("ignored 1 token quoted from answer B").
QUOTED_LABELS = {"answer_a": "answer A", "answer_b": "answer B", "answer": "the answer"}


@dataclass(frozen=True)
class CallResult:
    call: Call
    text: str
    verdict: ParsedVerdict | None
    cached: bool
    error: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None
    batch_id: str | None = None  # the provider batch that answered it (batch_judging.py); None: a live call

    @property
    def winner(self) -> str | None:
        """The verdict in the battle's own terms: model_a, model_b or tie."""
        if self.verdict is None or self.verdict.winner is None:
            return None
        return SIDE[self.call.swapped][self.verdict.winner]


@dataclass(frozen=True)
class Reply:
    """One judge reply of a judgment, as the reports show it: its text, the call's cache key, the order
    shown, the verdict in the battle's terms (``model_a``, ``model_b``, ``tie``; None for none) or the score,
    the template, whether it came from the review cache, the turn it judged (None: the whole
    conversation), and in a panel the judge that wrote it (None: the run's one judge)."""

    text: str
    cache_key: str
    swapped: bool
    winner: str | None
    score: float | None
    template: str
    needs_reference: bool
    cached: bool
    error: str | None = None
    turn: int | None = None
    judge: str | None = None

    @classmethod
    def of(cls, result: CallResult, turn: int | None) -> "Reply":
        verdict = result.verdict
        return cls(result.text or "", result.call.key, result.call.swapped, result.winner,
                   None if verdict is None else verdict.score, result.call.template.name,
                   bool(result.call.template.needs_reference), result.cached, result.error, turn)


@dataclass(frozen=True)
class Judgment:
    """The outcome of one battle or scoring: what the items report and the ratings count."""

    match: Battle | Scoring
    results: tuple[CallResult, ...]
    winner: str | None = None  # pairwise: model_a, model_b or tie (swap: both orders combined)
    games: tuple[tuple[str, float], ...] = ()  # (winner, weight) rows the ratings count
    score: float | None = None  # single mode
    error: str | None = None
    turn: int | None = None  # judge_turns each: the turn this judgment is about (None: the whole conversation)
    turns: tuple["Judgment", ...] = ()  # judge_turns each: the match's judgment per turn, combined in this one
    received: tuple[Reply, ...] = ()  # the replies of a judgment made elsewhere (an xdist worker's)
    # A panel's judgment (judging/panel.py): each judge's own judgment of the match, by the judge's name.
    panel: tuple[tuple[str, "Judgment"], ...] = ()

    @classmethod
    def of_turns(cls, match: Battle | Scoring, parts: list["Judgment"]) -> "Judgment":
        """A match judged per turn: every turn's games count (FastChat counts both turns of MT-bench),
        a score is the mean over the turns, and the match fails when any turn's judgment failed."""
        results = tuple(r for part in parts for r in part.results)
        errors = [f"turn {part.turn}: {part.error}" for part in parts if part.error]
        if errors:
            return cls(match, results, error="; ".join(errors), turns=tuple(parts))
        if isinstance(match, Scoring):
            return cls(match, results, score=sum(p.score for p in parts) / len(parts), turns=tuple(parts))
        games = tuple(game for part in parts for game in part.games)
        # The item's verdict: the side that won more of the turns' games.
        lead = sum(w if winner == "model_a" else -w if winner == "model_b" else 0.0 for winner, w in games)
        winner = "model_a" if lead > 0 else "model_b" if lead < 0 else "tie"
        return cls(match, results, winner=winner, games=games, turns=tuple(parts))

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def replies(self) -> tuple[Reply, ...]:
        """The judge's replies, every turn's where the turns were judged one by one."""
        if self.turns:
            return tuple(reply for part in self.turns for reply in part.replies)
        if self.panel:
            return tuple(dataclasses.replace(reply, judge=name) for name, member in self.panel
                         for reply in member.replies)
        if self.results:
            return tuple(Reply.of(result, self.turn) for result in self.results)
        return self.received

    @property
    def cached(self) -> bool:
        if self.panel:
            return all(member.cached for _, member in self.panel)
        return bool(self.results) and all(r.cached for r in self.results)

    @property
    def template(self) -> str:
        """The template's name; judged per turn, each turn's (``pair-v2, pair-v2-multi-turn``)."""
        if self.panel:
            return self.panel[0][1].template
        return ", ".join(dict.fromkeys(r.call.template.name for r in self.results))

    @property
    def consistent(self) -> bool | None:
        """Under swap_position: whether both orders gave the same verdict."""
        if len(self.results) != 2 or any(r.winner is None for r in self.results):
            return None
        return self.results[0].winner == self.results[1].winner

    def excerpt(self) -> str:
        if self.panel:
            failed_judges = [member for _, member in self.panel if member.error] or [self.panel[0][1]]
            return failed_judges[0].excerpt()
        failed = [r for r in self.results if r.error] or list(self.results)
        text = " ".join((failed[0].text if failed else "").split())
        return text if len(text) <= EXCERPT else "..." + text[-EXCERPT:]

    def summary(self) -> dict:
        """The judgment as plain data, its replies with it: how an xdist worker sends it to the controller."""
        own = () if self.turns or self.panel else self.replies  # (each turn's, each judge's summary has its own)
        panel = {"panel": [[name, member.summary()] for name, member in self.panel]} if self.panel else {}
        return {**panel, "id": self.match.id, "winner": self.winner, "games": [list(game) for game in self.games],
                "score": self.score, "error": self.error, "turn": self.turn,
                "turns": [part.summary() for part in self.turns],
                "replies": [dataclasses.asdict(reply) for reply in own]}

    @classmethod
    def from_summary(cls, match: Battle | Scoring, summary: dict) -> "Judgment":
        """The judgment a ``summary`` describes, with the judge's replies."""
        return cls(match, (), winner=summary["winner"], games=tuple((w, float(x)) for w, x in summary["games"]),
                   score=summary["score"], error=summary["error"], turn=summary.get("turn"),
                   turns=tuple(cls.from_summary(match, part) for part in summary.get("turns", ())),
                   received=tuple(Reply(**reply) for reply in summary.get("replies", ())),
                   panel=tuple((name, cls.from_summary(match, part)) for name, part in summary.get("panel", ())))


def combine(match, results: tuple[CallResult, ...], spec: JudgeSpec) -> Judgment:
    """The match's judgment from its calls' verdicts: a score, one game, or (under swap_position) the
    two orders as one game (FastChat's consistent rule) or as two (arena-hard's independent rule)."""
    errors = [r.error for r in results if r.error]
    if errors:
        return Judgment(match, results, error="; ".join(errors))
    if isinstance(match, Scoring):
        score = results[0].verdict.score
        if score is None:
            return Judgment(match, results, error="the judge gave no score (expected a [[rating]] template)")
        return Judgment(match, results, score=score)
    winners = [r.winner for r in results]
    if None in winners:
        return Judgment(match, results, error="the judge gave no pairwise verdict (expected an [[A]] template)")
    weights = [spec.strong_verdict_weight if r.verdict.strength == 2 else 1.0 for r in results]
    if len(results) == 1:
        return Judgment(match, results, winner=winners[0], games=((winners[0], weights[0]),))
    combined = winners[0] if winners[0] == winners[1] else "tie"
    if spec.swap_rule == "independent":  # arena-hard: each order is a game of its own
        games = tuple(zip(winners, weights))
    else:  # consistent (FastChat): one game, a disagreement is a tie
        games = ((combined, min(weights) if combined != "tie" else 1.0),)
    return Judgment(match, results, winner=combined, games=games)
