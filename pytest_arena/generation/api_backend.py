"""Candidates served over an OpenAI-compatible chat-completions API (``answers_gen.<name>.api``).

A vLLM, SGLang, TGI or Ollama server (or a hosted API) holds the model; the arena sends each question's
turns as chat messages through ``pytest_arena.openai_chat`` (the judge's client: the ``openai``
client's own retries and backoff, ``timeout``, the key read from the environment and held only by the
client). Questions are asked concurrently, up to ``max_concurrency`` at a time; the turns of one question
go one after another, each seeing the model's own earlier answers.

``generation_config`` is the same setting a local candidate takes, mapped onto the request
(``chat_sampling``): what a server cannot be told is a config error before anything runs, not a
setting silently dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import UnsupportedSetting, excerpt
from ..redact import public_url  # noqa: F401 - answers.py and session.py import it from here
from ..tally import Tally
from .transformers_backend import GENERATION_DEFAULTS

# generation_config key -> the request parameter it becomes. OpenAI's own parameters first; then
# those vLLM and SGLang accept beside them (a hosted API may refuse these with a 400).
CHAT_PARAMETERS = {"top_p": "top_p", "presence_penalty": "presence_penalty",
                   "frequency_penalty": "frequency_penalty", "seed": "seed", "stop": "stop"}
SERVER_EXTENSIONS = {"top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repetition_penalty",
                     "min_new_tokens": "min_tokens"}
# Read by chat_sampling itself rather than passed through.
MAPPED = ("do_sample", "temperature", "max_new_tokens", "num_beams")
API_SETTINGS = MAPPED + tuple(CHAT_PARAMETERS) + tuple(SERVER_EXTENSIONS)
# Request fields the arena sets itself: extra_body must not override them behind generation_config's back.
OWN_FIELDS = ("model", "messages", "temperature", "max_tokens", "stream", "n",
              *CHAT_PARAMETERS.values(), *SERVER_EXTENSIONS.values())


@dataclass(frozen=True)
class ChatSampling:
    """The sampling part of every request: ``temperature``, ``max_tokens`` and the other fields."""

    temperature: float
    max_tokens: int
    body: dict  # extra request fields (sent through the client's extra_body)


def chat_sampling(generation_config: dict, extra_body: dict | None = None) -> ChatSampling:
    """Map a candidate's ``generation_config`` onto chat-completions arguments.

    ``do_sample: false`` means greedy (temperature 0); otherwise ``temperature`` is sent as given
    (default 0, greedy as with transformers, or 1.0 with ``do_sample: true``). ``max_new_tokens``
    becomes ``max_tokens`` (default 256). Only settings the config names are sent, so the server's own
    defaults hold for the rest. Raises ``UnsupportedSetting`` for what no chat endpoint takes.
    """
    for key in generation_config:
        if key not in API_SETTINGS:
            raise UnsupportedSetting(key, "not a setting an API candidate can send; expected one of "
                                          f"{', '.join(API_SETTINGS)} (other request fields go in api.extra_body)")
    if generation_config.get("num_beams", 1) != 1:
        raise UnsupportedSetting("num_beams", "expected 1: chat-completions APIs do not do beam search")
    _check_types(generation_config)
    do_sample = generation_config.get("do_sample")
    if do_sample is False:
        temperature = 0.0
    elif generation_config.get("temperature") is not None:
        temperature = float(generation_config["temperature"])
    else:
        temperature = 1.0 if do_sample else 0.0
    max_tokens = generation_config.get("max_new_tokens", GENERATION_DEFAULTS["max_new_tokens"])
    body = {wire: generation_config[key] for key, wire in {**CHAT_PARAMETERS, **SERVER_EXTENSIONS}.items()
            if generation_config.get(key) is not None}
    for key, value in (extra_body or {}).items():
        body.setdefault(key, value)
    return ChatSampling(temperature, int(max_tokens), body)


def _check_types(generation_config: dict) -> None:
    """Types of the settings config.py does not check already (it checks the transformers ones)."""
    for key in ("presence_penalty", "frequency_penalty"):
        value = generation_config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not -2 <= value <= 2):
            raise UnsupportedSetting(key, f"expected a number between -2 and 2, got {excerpt(value)}")
    seed = generation_config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UnsupportedSetting("seed", f"expected an integer, got {excerpt(seed)}")
    min_p = generation_config.get("min_p")
    if min_p is not None and (isinstance(min_p, bool) or not isinstance(min_p, (int, float)) or not 0 <= min_p <= 1):
        raise UnsupportedSetting("min_p", f"expected a number between 0 and 1, got {excerpt(min_p)}")
    stop = generation_config.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and stop
                                                          and all(isinstance(s, str) for s in stop))):
        raise UnsupportedSetting("stop", f"expected a string or a list of strings, got {excerpt(stop)}")


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
        from ..openai_chat import make_client

        self.spec = spec
        self.api = spec.api
        self.sampling = chat_sampling(spec.generation_config, self.api.extra_body)
        self.counters = counters if counters is not None else ServedCounters()
        self.client = make_client(self.api.api_key_env, self.api.base_url, self.api.max_retries, self.api.timeout)

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
                reply = chat(self.client, self.api.model, list(messages), self.sampling.temperature,
                             self.sampling.max_tokens, extra_body=self.sampling.body or None)
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
        self.client.close()


def served_summary(name: str, counters: ServedCounters) -> str:
    """The terminal summary's line for one API candidate."""
    return (f"candidate {name} (API): {counters.requests} requests, {counters.answered} answers received, "
            f"{counters.cached} from cache, {counters.failed} failed"
            + (f", {counters.truncated} cut off at max_tokens" if counters.truncated else "")
            + f"; {counters.prompt_tokens} prompt + {counters.completion_tokens} completion tokens")
