"""Candidates served over an OpenAI-compatible chat-completions API (``answers_gen.<name>.api``).

A vLLM, SGLang, TGI or Ollama server (or a hosted API) holds the model; the arena sends each question's
turns as chat messages through ``pytest_arena.openai_chat`` (the judge's client: the ``openai``
client's own retries and backoff, ``timeout``, the key read from the environment and held only by the
client). Questions are asked concurrently, up to ``max_concurrency`` at a time; the turns of one question
go one after another, each seeing the model's own earlier answers.

``generation_config`` is the same setting a local candidate takes, mapped onto the request
(``GenerationSettings.for_chat``, in config/generation.py): what a server cannot be told is a config error before
anything runs, not a setting silently dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..tally import Tally

@dataclass
class ServedCounters(Tally):
    """What one API candidate cost this run: requests (one per turn), answers from the answers file,
    questions left unanswered, turns cut off at max_tokens, and tokens."""

    requests: int = 0
    cached: int = 0
    answered: int = 0
    failed: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ServedAnswer:
    turns: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None  # the last turn's
    seconds: float


class AnswerFailed(Exception):
    """A question got no answer from the server (after the client's retries); the message says why."""


class ServedModel:
    """The client for one API candidate; ``answer`` may be called from many threads at once."""

    def __init__(self, spec, counters: ServedCounters | None = None):
        from ..replicas import ReplicaSet

        self.spec = spec
        self.api = spec.api
        self.sampling = spec.generation.for_chat(self.api.extra_body)
        self.counters = counters if counters is not None else ServedCounters()
        # A client per calling thread and per replica (base_url as a list spreads the questions over them).
        self.replicas = ReplicaSet.of_threads(self.api.urls, self.api.api_key_env, self.api.max_retries,
                                              self.api.timeout)

    @property
    def max_concurrency(self) -> int:
        return self.api.max_concurrency

    def answer(self, turns: tuple[str, ...]) -> ServedAnswer:
        """All turns of one question, in order; a later turn sees the model's own earlier answers."""
        from ..openai_chat import ChatCallError, chat

        started = time.perf_counter()
        messages: list[dict] = []
        answers: list[str] = []
        prompt_tokens = completion_tokens = 0
        finish_reason = None
        for number, text in enumerate(turns, start=1):
            messages.append({"role": "user", "content": text})
            self.counters.add(requests=1)
            try:
                sent = list(messages)
                reply = self.replicas.call(lambda client: chat(
                    client, self.api.model, sent, self.sampling.temperature, self.sampling.max_tokens,
                    extra_body=self.sampling.body or None))
            except ChatCallError as exc:
                where = f" (turn {number} of {len(turns)})" if len(turns) > 1 else ""
                raise AnswerFailed(f"{exc}{where}") from None
            answer = reply.text.strip()
            messages.append({"role": "assistant", "content": answer})
            answers.append(answer)
            prompt_tokens += reply.prompt_tokens
            completion_tokens += reply.completion_tokens
            finish_reason = reply.finish_reason
            self.counters.add(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                              truncated=int(reply.finish_reason == "length"))
        return ServedAnswer(tuple(answers), prompt_tokens, completion_tokens, finish_reason,
                            time.perf_counter() - started)

    def close(self) -> None:
        self.replicas.close()

