"""Each answer's style (length and markdown counts) for the style-controlled ratings, from the run's
participants: the answers the judge compared, looked up by (model, question).

Lengths are in tokens when every answer's record carries its ``completion_tokens`` (answers this project
generated or asked of a server), else in characters for all of them: an answer read from another tool's
file carries no token count, and one table may not mix the two units (``rating.style_table`` refuses it).
The notes say which unit was used.
"""

from __future__ import annotations


def answer_styles(judgments, participants):
    """The style table (``rating.style_table``) of every answer in ``judgments``' battles; None when an
    answer is missing (a recorded review whose answers this run does not have)."""
    from . import rating
    from .rating_table import question_key

    answers = {}
    for judgment in judgments:
        match = judgment.match
        for name in getattr(match, "models", ()):
            key = (name, question_key(match.question))
            if key in answers:
                continue
            source = participants.get(name)
            answer = None if source is None else source.get(match.question)
            if answer is None:
                return None
            answers[key] = list(answer.turns)
    if not answers:
        return None
    counts = token_counts(judgments, participants)
    return rating.style_table(answers, token_counts=counts if counts is not None and counts.keys() >= answers.keys()
                              else None)


def token_counts(judgments, participants) -> dict | None:
    """Each answer's ``completion_tokens`` from its record, by (model, question key); None as soon as one
    answer has none (a model reading another tool's file, or a record from before tokens were counted)."""
    from .generation.answer_formats import read_answer_records
    from .rating_table import question_key

    by_model: dict[str, dict] = {}
    counts = {}
    for judgment in judgments:
        match = judgment.match
        for name in getattr(match, "models", ()):
            key = (name, question_key(match.question))
            if key in counts:
                continue
            source = participants.get(name)
            if source is None or not source.generates:
                return None
            if name not in by_model:  # (kept by read_answer_records: parsed once while unchanged)
                records = read_answer_records(source.output_file, keep=True)
                by_model[name] = {r.get("metadata", {}).get("cache_key"): r.get("metadata", {})
                                  for r in records if isinstance(r.get("metadata"), dict)}
            tokens = by_model[name].get(source.key(match.question), {}).get("completion_tokens")
            if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens <= 0:
                return None
            counts[key] = tokens
    return counts
