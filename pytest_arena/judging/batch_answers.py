"""What the provider batches said about a run's judge calls, by call key, for ``MatchJudge`` to take
instead of asking live (``batch_judging.py`` fills it): the replies read back, the failures left failed
(``batch_fallback: false``), and the keys a pending batch holds (paid already: claims no run asks live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .judgment import Call, CallResult


@dataclass
class BatchAnswers:
    replies: dict = field(default_factory=dict)  # key -> batch_api.BatchReply
    failures: dict = field(default_factory=dict)  # key -> batch_api.BatchFailure
    pending: dict[str, str] = field(default_factory=dict)  # key -> the id of the batch that holds it

    def answer(self, call: Call, result_of: Callable, counters) -> CallResult | None:
        """The call's result from a batch (read back, failed, or still pending); None: ask it live.
        ``result_of(call, reply, batch_id)`` reads a reply as a live one is read."""
        found = self.replies.pop(call.key, None)  # (used once: a call asked again, its item rerun, goes live)
        if found is not None:
            counters.add(calls=1, batched=1, batch_prompt_tokens=found.reply.prompt_tokens,
                         batch_completion_tokens=found.reply.completion_tokens)
            return result_of(call, found.reply, found.batch_id)
        failure = self.failures.get(call.key)
        if failure is not None:
            return CallResult(call, "", None, cached=False, batch_id=failure.batch_id,
                              error=f"batch {failure.reason}: {failure.message} (batch {failure.batch_id})")
        pending = self.pending.get(call.key)
        if pending is not None:  # paid already: asking it live would pay twice
            return CallResult(call, "", None, cached=False, batch_id=pending,
                              error=f"pending in judge batch {pending}: run with --arena-batch=collect to read it")
        return None
