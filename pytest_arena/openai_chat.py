"""One chat completion over an OpenAI-compatible API, for judges and API-served models alike.

Retries (429 with Retry-After, 5xx, connection errors, timeouts) and their exponential backoff are the
official ``openai`` client's own, configured by ``max_retries`` and ``timeout``; the API key is read from
the environment variable the caller names and is held only by the client.

The request goes through ``client.post("/chat/completions", body=dict, cast_to=object)`` rather than
``client.chat.completions.create``: the same client, so the same retries, backoff, timeout and headers,
but without the per-call TypedDict transform of the parameters and the pydantic model of the reply,
which cost ~5.5 ms of CPU per call against ~2.6 ms this way (bench/README.md, "Judge throughput"). At
32 calls in flight that CPU, under one GIL, capped a fast judge near half of the throughput it could
give. The reply is then read as a plain dict, so its shape is checked here.

Secrets: a server that echoes the request (its ``Authorization`` header) into an error or a reply must
not put the key into our records, so every ``ChatCallError`` and every reply's text is scrubbed here
(``pytest_arena.redact``), where the server's text becomes ours. ``timeout`` bounds each attempt as a
whole (``pytest_arena.call_deadline``), not each read.

``openai`` is imported inside ``make_client`` only: this module is imported by the plugin's modules, and
a pytest run without an arena config must not pay for it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from .call_deadline import deadline_http_client
from .redact import remember_key, remember_url, scrub


@dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class ChatCallError(Exception):
    """The endpoint gave no usable reply, after the client's own retries; the message is one short line,
    scrubbed of secrets (it may quote what the server said, and servers echo requests)."""

    def __init__(self, message: str, server_down: bool = False):
        super().__init__(scrub(message))
        # The server did not answer (connection refused or reset, timeout, 5xx, 429) even after the
        # client's retries: another replica of the same model may (pytest_arena.replicas). A reply that
        # came but is unusable, or a 4xx, would fail on every replica alike.
        self.server_down = server_down


# Sent to servers that need no key (a local vLLM, SGLang, TGI or Ollama): the client insists on one.
PLACEHOLDER_KEY = "no-key"


def make_client(api_key_env: str | None, base_url: str | None, max_retries: int, timeout: float) -> Any:
    """An ``openai.OpenAI`` client with the key from ``$api_key_env`` (None: a server without auth,
    sent a placeholder).

    ``base_url`` None lets the client read ``OPENAI_BASE_URL``, else use api.openai.com.

    ``timeout`` bounds each attempt from its first byte sent to its last byte read; the openai client
    makes up to ``max_retries + 1`` attempts, sleeping between them (0.5 s doubling, at most 8 s), so a
    call ends within about ``(max_retries + 1) * timeout + max_retries * 8 s``; a server's Retry-After
    replaces a sleep (the client honours up to 60 s, from openai 3 on up to 120 s).
    """
    import openai

    api_key = os.environ.get(api_key_env) if api_key_env is not None else PLACEHOLDER_KEY
    if not api_key:
        raise ChatCallError(f"no API key in the environment variable {api_key_env}")
    if api_key_env is not None:
        remember_key(api_key)
    remember_url(base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL"))
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout,
                         http_client=deadline_http_client())


class ThreadClients:
    """One client per calling thread, all configured alike, for ``chat`` from a pool of threads.

    A client's connection pool has one lock, and at 32 calls in flight the threads spend ~17% of their
    GIL time on it (py-spy); a client per thread takes no lock the others need: ~14% fewer instructions
    per call (bench/README.md, "Judge throughput"). The extra clients are copies of the first (same key,
    URL, retries, timeout), each with its own HTTP client built on one shared SSL context: building an
    SSL context (the CA bundle) costs ~60 ms (~0.24 G instructions), what ~400 calls save.
    """

    def __init__(self, api_key_env: str | None, base_url: str | None, max_retries: int, timeout: float):
        self._first = make_client(api_key_env, base_url, max_retries, timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients = [self._first]
        self._first_taken = False
        self._ssl_context = None
        self._closed = False

    def get(self) -> Any:
        """This thread's client (the first thread to ask gets the first one)."""
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._closed:
                    raise ChatCallError("the client is closed")
                if not self._first_taken:
                    client, self._first_taken = self._first, True
                else:
                    client = self._first.copy(http_client=self._http_client())
                    self._clients.append(client)
            self._local.client = client
        return client

    def _http_client(self) -> Any:
        if self._ssl_context is None:
            self._ssl_context = _default_ssl_context()
        # DefaultHttpxClient's defaults, as the openai client gives its own (limits, redirects), with the deadline
        return deadline_http_client(verify=self._ssl_context)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def _default_ssl_context() -> Any:
    """The SSL context the client's HTTP library builds for ``verify=True`` (certifi, or SSL_CERT_FILE /
    SSL_CERT_DIR from the environment): verification as for the openai client's own HTTP client."""
    try:
        import httpx2 as httpx  # the HTTP library of openai >= 3
    except ImportError:
        import httpx
    return httpx.create_ssl_context()


def chat(client: Any, model: str, messages: list[dict], temperature: float, max_tokens: int,
         extra_body: dict | None = None) -> ChatReply:
    """One non-streaming chat completion; any failure is a ChatCallError with a one-line reason."""
    body = chat_body(model, messages, temperature, max_tokens)
    if extra_body:
        body.update(extra_body)
    try:
        response = client.post("/chat/completions", body=body, cast_to=object)
    except Exception as exc:  # noqa: BLE001 - any failure of one call fails that call only
        # The client has already retried what is worth retrying; a JSON content type with a body that
        # is not JSON surfaces as a plain ValueError, not an openai error, and must not crash a pool.
        raise ChatCallError(f"{type(exc).__name__}: {short(str(exc))}", server_down=_server_down(exc)) from None
    return read_reply(response)


def chat_body(model: str, messages: list[dict], temperature: float, max_tokens: int) -> dict[str, Any]:
    """The chat-completions request body: what a live call posts and a batch line carries (batch_api)."""
    return {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}


def _server_down(exc: Exception) -> bool:
    """Whether ``exc`` says the server gave no answer (rather than an answer we cannot use)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # refused, reset, DNS, timeouts (a subclass)
        return True
    status = getattr(exc, "status_code", None) if isinstance(exc, openai.APIStatusError) else None
    return isinstance(status, int) and (status >= 500 or status == 429)


def read_reply(response: object) -> ChatReply:
    """A chat completion's decoded JSON as a ChatReply (a live reply, or a batch output line's body)."""
    # With cast_to=object the client returns the decoded JSON, or the body as text when the content
    # type is not JSON; nothing has validated its shape.
    if not isinstance(response, dict):
        raise ChatCallError(f"the reply is not a JSON object: {short(str(response), 120)}")
    choices = response.get("choices")
    if not choices or not isinstance(choices, list):
        raise ChatCallError("the reply has no choices")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise ChatCallError("the reply's first choice has no message")
    content = choice["message"].get("content")
    if content is not None and not isinstance(content, str):
        raise ChatCallError(f"the reply's message content is not text but {type(content).__name__}")
    finish_reason = choice.get("finish_reason")
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return ChatReply(
        text=scrub(content or ""),  # a reply that quotes the request must not put the key into a record
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def short(text: str, limit: int = 300) -> str:
    """``text`` scrubbed of secrets, on one line, cut at ``limit`` characters (scrubbed before the cut,
    which could leave a part of a key that no longer matches)."""
    text = " ".join(scrub(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
