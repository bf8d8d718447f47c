"""The review file's record of one judgment: a pure function, so what the file holds is decided in one place.

Every judgment has its record, also one that paid for no call: a battle whose prompts equal another
battle's (two models that answered alike) reads the reply that battle's call got, and a battle of a
rerun reads the reply stored last time. Its record repeats that reply's text under the same
``cache_key``, so the index of replies (call key -> text) reads the same text twice, and names the
call in ``shared_call`` (``shared_call_1``/``_2`` per order), with no usage: whoever re-rates the file
(the rate-only stage, EvalScope's rater, a notebook) counts every battle the report counted, and
whoever sums the spend counts each call once. ``LatestVerdicts`` says when a judgment's record is
already the latest of its match, so a rerun whose verdicts are all on file writes nothing.
"""

from __future__ import annotations

import time

from ..config import JudgeSpec
from ..matches import Scoring


def review_record(judgment, spec: JudgeSpec) -> dict:
    """A judgment as the line the review file keeps: EvalScope's review fields (``model_a``, ``model_b``,
    ``win``, ``win_1``/``win_2``, ``review_text``), then what makes it a cache and an audit trail (the call
    keys, usage, finish reasons and where each verdict was read)."""
    match = judgment.match
    record: dict = {}
    if isinstance(match, Scoring):
        record.update(model=match.model, score=judgment.score)
    else:
        record.update(model_a=match.model_a, model_b=match.model_b, win=judgment.winner or "error")
    record.update(question_id=match.question.question_id, category=match.question.category,
                  question=match.question.text)
    if match.question.question_set is not None:
        record["question_set"] = match.question.question_set
    if judgment.turn is not None:  # judge_turns each: the record judges this turn (FastChat's ``turn``)
        record["turn"] = judgment.turn
    results = judgment.results
    suffixes = [""] if len(results) == 1 else ["_1", "_2"]
    for suffix, result in zip(suffixes, results):
        if suffix:
            record[f"win{suffix}"] = result.winner or "error"
        record[f"review_text{suffix}"] = result.text
    if spec.position_bias_mitigation == "randomize_order":
        record["swapped"] = results[0].call.swapped  # model_b's answer was shown first
    record.update(tstamp=time.time(), judge=spec.model, template=judgment.template)
    for suffix, result in zip(suffixes, results):
        record[f"cache_key{suffix}"] = result.call.key
        if result.cached:  # this record paid nothing for this reply: another record did (the same key)
            record[f"shared_call{suffix}"] = result.call.key
        record[f"usage{suffix}"] = result.usage
        record[f"finish_reason{suffix}"] = result.finish_reason
        if result.batch_id is not None:  # answered by a provider batch (batch_judging.py), not a live call
            record[f"batch_id{suffix}"] = result.batch_id
        # what the parser read (and ignored as copied from an answer); older records lack it
        record[f"verdict_source{suffix}"] = result.verdict.source if result.verdict else None
    if judgment.error:
        record["error"] = judgment.error
    return record


def match_key(match) -> tuple:
    """What names a match in the review file: question set, question id, and the models in their order."""
    question = match.question
    return (question.question_set, question.question_id, *match.models)


def record_match_key(record: dict) -> tuple:
    """:func:`match_key` of the match a review record is about."""
    models = (record.get("model"),) if "model" in record else (record.get("model_a"), record.get("model_b"))
    return (record.get("question_set"), record.get("question_id"), *models)


# What a record says about its match: the verdict a rater reads, and the calls it read it from.
SAID = ("win", "win_1", "win_2", "score", "cache_key", "cache_key_1", "cache_key_2")


class LatestVerdicts:
    """The verdict of each match's latest record (and turn) in the review file, as the rate-only stage
    reads it: a judgment whose record says the same needs none of its own."""

    def __init__(self, records: list[dict] = ()):
        self._said: dict[tuple, tuple] = {}
        self.add(records)

    def add(self, records: list[dict]) -> None:
        for record in records:
            try:
                self._said[(record_match_key(record), record.get("turn"))] = _said(record)
            except TypeError:  # a name or id that is a list (no record of ours): it names none of our matches
                continue

    def on_file(self, record: dict) -> bool:
        """Whether ``record`` says what the latest record of its match already says."""
        return self._said.get((record_match_key(record), record.get("turn"))) == _said(record)


def _said(record: dict) -> tuple:
    return tuple(record.get(key) for key in SAID) + (bool(record.get("error")),)
