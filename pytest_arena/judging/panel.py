"""A panel of judges (``reviews_gen.reviewer`` as a list; issue 26): ``PanelJudge`` has ``MatchJudge``'s
interface, so the runner, the budget, the audit and xdist take it as they take one judge.

Each judge of the panel is a ``MatchJudge`` of its own: its own backend, settings, cache identity and
review file (``<review stem>.<judge>.jsonl``, file_names.member_reviews), so single-flight, claims across
runs and the review cache work per judge exactly as for one, and a judge added to a panel reuses
nothing of another's. The run's budget counts every judge's calls (one ``CallLimit``: N judges are N
times the calls). A battle's verdict is the majority of the judges' verdicts (a tie when no side has
more than half of them), a scoring's score the mean of theirs; the panel's record in the run's review
file gives it, with each judge's verdict in ``panel``, and a panel judgment keeps each judge's judgment
(``Judgment.panel``) for the report's per-judge ratings and the battle browser.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from ..errors import ArenaConfigError
from ..matches import Scoring
from ..record_files import JsonlAppender, JsonlFollower, cache_key
from .claims import when_all_done
from .judgment import Judgment
from .match_judge import JudgeCounters, MatchJudge
from .review_records import record_match_key, review_record


def panel_judgment(match, members: list[tuple[str, Judgment]], rule: str) -> Judgment:
    """The panel's judgment from each judge's (``rule``: majority or mean); judged per turn, turn by turn.
    A judge that gave no verdict fails the panel's judgment: a majority of the others is not the panel's."""
    failed = [f"judge {name}: {member.error}" for name, member in members if member.error]
    if failed:
        return Judgment(match, (), error="; ".join(failed), panel=tuple(members))
    if members[0][1].turns:
        parts = [panel_judgment(match, [(name, member.turns[i]) for name, member in members], rule)
                 for i in range(len(members[0][1].turns))]
        return dataclasses.replace(Judgment.of_turns(match, parts), panel=tuple(members))
    turn = members[0][1].turn
    if isinstance(match, Scoring):  # mean: the judges' scores averaged
        score = sum(member.score for _, member in members) / len(members)
        return Judgment(match, (), score=score, turn=turn, panel=tuple(members))
    return Judgment(match, (), winner=(winner := majority([m.winner for _, m in members])), games=((winner, 1.0),),
                    turn=turn, panel=tuple(members))


def majority(winners: list[str]) -> str:
    """The side more than half of the judges chose; a tie when none did (ties count as a side)."""
    side, votes = Counter(winners).most_common(1)[0]
    return side if votes * 2 > len(winners) else "tie"


def panel_record(judgment: Judgment, spec) -> dict:
    """The panel judgment's line in the run's review file: the review fields (``win`` or ``score``), each
    judge's verdict in ``panel``, and as ``cache_key`` a digest of the judges' call keys (what it was read
    from; and what marks the record as ours, not EvalScope's)."""
    # The panel's record holds no call of its own: the order each call showed is in its judge's file.
    record = review_record(judgment, dataclasses.replace(spec, position_bias_mitigation=None))
    said = "score" if isinstance(judgment.match, Scoring) else "win"
    record["judge"] = "panel"
    record["panel"] = [{"judge": name, said: (member.score if said == "score" else member.winner or "error"),
                        **({"error": member.error} if member.error else {})} for name, member in judgment.panel]
    record["cache_key"] = cache_key(kind="panel", calls=[[name, [r.call.key for r in member.results]]
                                                         for name, member in judgment.panel])
    return record


def _said(record: dict) -> tuple:
    return (record.get("win"), record.get("score"), record.get("cache_key"), repr(record.get("panel")))


class PanelJudge:
    """Several judges as one: each match judged by every judge, the verdicts combined (``panel_judgment``)."""

    def __init__(self, members: list[tuple[str, MatchJudge]], spec, rule: str, review_file: Path,
                 log: Callable[[str], None] = lambda message: None):
        self.members = members
        self.spec = spec  # the first judge's: the mode and the orders shown are the panel's (config/panel_keys.py)
        self.rule = rule
        self.templates = members[0][1].templates
        self.judge_identity = "panel:" + ",".join(judge.judge_identity for _, judge in members)
        self.judge_turns = members[0][1].judge_turns
        self.log = log
        self.judge = _Backends([judge.judge for _, judge in members])
        self.review_file = review_file
        self._reviews = JsonlAppender(review_file)
        self._latest = {(record_match_key(r), r.get("turn")): _said(r) for r in JsonlFollower(review_file).read_new()
                        if r.get("judge") == "panel"}
        self._lock = threading.Lock()
        self._unwritable: str | None = None

    @property
    def counters(self) -> JudgeCounters:
        """Every judge's counts added up (what the budget and the summary count)."""
        total = JudgeCounters()
        for _, judge in self.members:
            total.add(**judge.counters.counts())
        return total

    @property
    def call_limit(self):
        return self.members[0][1].call_limit

    @call_limit.setter
    def call_limit(self, limit) -> None:  # one limit for all: the budget counts every judge's calls
        for _, judge in self.members:
            judge.call_limit = limit

    @property
    def batch(self):
        return self.members[0][1].batch  # (a panel never batches: config/panel_keys.py)

    @property
    def unwritable(self) -> str | None:
        return self._unwritable or next((j.unwritable for _, j in self.members if j.unwritable), None)

    def calls(self, match, answers, turn=None) -> list:
        return [call for _, judge in self.members for call in judge.calls(match, answers, turn)]

    def cached_calls(self, match, answers) -> int:
        return sum(judge.cached_calls(match, answers) for _, judge in self.members)

    def uncached_calls(self, match, answers) -> list:
        return [call for _, judge in self.members for call in judge.uncached_calls(match, answers)]

    def refresh(self) -> None:
        for _, judge in self.members:
            judge.refresh()

    def submit(self, match, answers) -> Future:
        """A future panel Judgment: every judge's judgment, combined and recorded once all are in."""
        futures = [(name, judge.submit(match, answers)) for name, judge in self.members]
        gathered: Future = Future()

        def resolve():
            try:
                gathered.set_result(self._finish(match, [(name, f.result()) for name, f in futures]))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the judgment
                gathered.set_exception(exc)

        when_all_done([f for _, f in futures], resolve)
        return gathered

    def _finish(self, match, members: list[tuple[str, Judgment]]) -> Judgment:
        judgment = panel_judgment(match, members, self.rule)
        parts = list(judgment.turns) if judgment.turns else [judgment]
        try:
            for part in parts:
                self._record(part)
        except (OSError, ArenaConfigError) as exc:
            with self._lock:
                first, self._unwritable = self._unwritable is None, self._unwritable or \
                    f"not counted: the review file {self.review_file} could not be written ({exc})"
            if first:
                self.log(f"judge panel: {self._unwritable}")
            return dataclasses.replace(judgment, winner=None, games=(), score=None, error=self._unwritable)
        return judgment

    def _record(self, part: Judgment) -> None:
        """The part's panel record, unless the review file's latest one of its match says the same."""
        if self._unwritable:
            raise OSError(self._unwritable)
        record = panel_record(part, self.spec)
        key = (record_match_key(record), record.get("turn"))
        with self._lock:
            if self._latest.get(key) == _said(record):
                return
            self._latest[key] = _said(record)
        self._reviews.append(record)

    def close(self, wait: bool = True) -> None:
        for _, judge in self.members:
            judge.close(wait=wait)
        self._reviews.close()


class _Backends:
    """The judges' backends as one, for the runner's ``judge.judge.close()``."""

    def __init__(self, backends: list):
        self.backends = backends

    def close(self) -> None:
        for backend in self.backends:
            if backend is not None:
                backend.close()
