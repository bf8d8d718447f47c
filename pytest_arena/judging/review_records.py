"""The review file's record of one judgment: a pure function, so what the file holds is decided in one place."""

from __future__ import annotations

import time

from ..config import JudgeSpec
from ..plan import Scoring


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
        record[f"usage{suffix}"] = result.usage
        record[f"finish_reason{suffix}"] = result.finish_reason
        # what the parser read (and ignored as copied from an answer); older records lack it
        record[f"verdict_source{suffix}"] = result.verdict.source if result.verdict else None
    if judgment.error:
        record["error"] = judgment.error
    return record


def match_key(match) -> tuple:
    """What names a match in the review file: question set, question id, and the models in their order."""
    question = match.question
    return (question.question_set, question.question_id, *match.models)


def replies_by_match(records: list[dict]) -> dict[tuple, dict[int | None, list[dict]]]:
    """The judge's replies of each match (:func:`match_key`) and turn (None: the whole conversation), from
    its latest record that is a verdict: the source of replies where a judgment came without them (an
    xdist controller receives verdicts, not replies). A reply: its text, win, swapped, score, template,
    turn and cache key."""
    found: dict[tuple, dict] = {}
    for record in records:
        if record.get("error"):
            continue
        key = (record.get("question_set"), record.get("question_id"),
               *((record.get("model"),) if "model" in record else (record.get("model_a"), record.get("model_b"))))
        suffixes = ["_1", "_2"] if "review_text_1" in record else [""]
        swapped = [False, True] if len(suffixes) == 2 else [bool(record.get("swapped"))]
        found.setdefault(key, {})[record.get("turn")] = [
            {"text": record.get(f"review_text{s}"), "win": record.get(f"win{s}", record.get("win")), "swapped": sw,
             "score": record.get("score"), "template": record.get("template", ""), "turn": record.get("turn"),
             "cache_key": record.get(f"cache_key{s}")}
            for s, sw in zip(suffixes, swapped)]
    return found
