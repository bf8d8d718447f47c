"""A loopback OpenAI-compatible chat-completions server that plays the judge in tests (and, with
``candidate_answer``, a candidate model served over the API; ``by_model`` lets one server play both).

The real ``openai`` client talks to it over real HTTP, so retries, timeouts and connection
errors go through the same code paths as with a hosted judge. Each test scripts it through
``JudgeServer.reply`` (a callable from the request body to a reply string or a ``Fault``)
and ``JudgeServer.latency``, and checks what arrived through the counters.

Stdlib only, so it works wherever the tests run.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

A_START = "[The Start of Assistant A's Answer]"
A_END = "[The End of Assistant A's Answer]"
B_START = "[The Start of Assistant B's Answer]"
B_END = "[The End of Assistant B's Answer]"

FAULT_KINDS = ("reset", "hang", "garbage", "empty_choices", "finish", "drip", "drip_head")
# A dripping reply stops after this many bytes (then drops the connection): a test whose client never
# gives up still ends.
DRIP_LIMIT = 60

# OpenAI-style error ``type`` per status; anything else reads as a bad request.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable",
    504: "server_error",
}


@dataclass(frozen=True)
class Fault:
    """A misbehaviour the reply callable returns instead of a verdict string.

    Exactly one of ``status`` (an HTTP error answer) or ``kind`` (one of FAULT_KINDS):

    - ``Fault(status=429, retry_after=0.1)``: error JSON body, ``Retry-After`` header when set.
    - ``Fault(kind="reset")``: the connection is dropped with a TCP RST, no response at all.
    - ``Fault(kind="hang", seconds=5)``: answer ``content`` normally, but only after ``seconds``.
    - ``Fault(kind="garbage")``: status 200 with a body that is not JSON.
    - ``Fault(kind="empty_choices")``: a valid completion with ``choices: []``.
    - ``Fault(kind="finish", finish_reason="length", content="[[A")``: a valid completion
      that stopped for another reason than "stop".
    - ``Fault(kind="drip", seconds=0.1)``: status and headers at once, then the body one byte every
      ``seconds``; ``kind="drip_head"`` drips from the status line on. Either stops after DRIP_LIMIT
      bytes and drops the connection; ``JudgeServer.drips_cut`` counts the drips the client closed first.
    - ``Fault(status=401, echo_headers=True)``: the error message quotes the request's headers (the
      ``Authorization`` header included), as some proxies do.
    """

    status: int | None = None
    kind: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    finish_reason: str = "length"
    content: str = "[[C]]"
    message: str | None = None
    echo_headers: bool = False

    def __post_init__(self) -> None:
        if (self.status is None) == (self.kind is None):
            raise ValueError("a Fault needs exactly one of status= or kind=")
        if self.kind is not None and self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP error (4xx/5xx), got {self.status}")


Reply = Callable[[dict], Union[str, Fault]]


# --- reply factories ---------------------------------------------------------------------


def constant(text: str) -> Reply:
    """Always answer ``text``."""
    return lambda request_body: text


def prompt_text(request_body: dict) -> str:
    """All message contents of a request, joined; content parts lists are flattened."""
    pieces = []
    for message in request_body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces.extend(part.get("text", "") for part in content if isinstance(part, dict))
    return "\n".join(pieces)


def _section(text: str, start: str, end: str) -> str:
    begin = text.find(start)
    if begin < 0:
        raise ValueError(f"judge prompt has no {start!r} section")
    begin += len(start)
    finish = text.find(end, begin)
    if finish < 0:
        raise ValueError(f"judge prompt has no {end!r} after {start!r}")
    return text[begin:finish]


def _answer_blocks(request_body: dict, a_start: str, a_end: str, b_start: str, b_end: str) -> tuple[str, str]:
    text = prompt_text(request_body)
    return _section(text, a_start, a_end).strip(), _section(text, b_start, b_end).strip()


def prefer_longer(
    *, a_start: str = A_START, a_end: str = A_END, b_start: str = B_START, b_end: str = B_END
) -> Reply:
    """Prefer the longer answer block; "[[C]]" (tie) when both have the same length.

    A prompt without the answer sections makes the reply raise, which the server turns into a
    500 and records in ``reply_errors``: a wrong prompt format should be loud, not a silent tie.
    """

    def reply(request_body: dict) -> str:
        answer_a, answer_b = _answer_blocks(request_body, a_start, a_end, b_start, b_end)
        if len(answer_a) == len(answer_b):
            return "[[C]]"
        return "[[A]]" if len(answer_a) > len(answer_b) else "[[B]]"

    return reply


def prefer_containing(
    marker: str, *, a_start: str = A_START, a_end: str = A_END, b_start: str = B_START, b_end: str = B_END
) -> Reply:
    """Prefer the answer containing ``marker`` when exactly one of them does, else "[[C]]"."""

    def reply(request_body: dict) -> str:
        answer_a, answer_b = _answer_blocks(request_body, a_start, a_end, b_start, b_end)
        a_has, b_has = marker in answer_a, marker in answer_b
        if a_has and not b_has:
            return "[[A]]"
        if b_has and not a_has:
            return "[[B]]"
        return "[[C]]"

    return reply


def candidate_answer(prefix: str = "") -> Reply:
    """Play a candidate model: answer the last user message with text derived from it, numbered by turn.

    ``"<prefix>Answer 2 to: <last user message>"`` for a conversation's second turn, so a test can see
    which question and which turn an answer belongs to, and that earlier answers came back as history.
    """

    def reply(request_body: dict) -> str:
        users = [m for m in request_body.get("messages", []) if m.get("role") == "user"]
        if not users:
            raise ValueError("a candidate request without a user message")
        return f"{prefix}Answer {len(users)} to: {users[-1].get('content', '')}"

    return reply


def by_model(routes: dict[str, Reply | str], default: Reply | str | None = None) -> Reply:
    """Reply as ``routes[request model]``, else ``default``; a model with neither is a loud 500."""
    table = {name: constant(r) if isinstance(r, str) else r for name, r in routes.items()}
    fallback = constant(default) if isinstance(default, str) else default

    def reply(request_body: dict) -> str | Fault:
        chosen = table.get(request_body.get("model"), fallback)
        if chosen is None:
            raise ValueError(f"no reply scripted for model {request_body.get('model')!r}")
        return chosen(request_body)

    return reply


def echo_prompt() -> Reply:
    """A judge that only repeats its prompt (system and user messages): any verdict token in the
    reply comes from the template or from an answer, none from the judge."""
    return prompt_text


def decide_then_quote(
    verdict: str, side: str, *, a_start: str = A_START, a_end: str = A_END, b_start: str = B_START, b_end: str = B_END
) -> Reply:
    """Answer ``verdict`` first, then quote the answer of assistant ``side`` ("A" or "B") in full, as
    judges that justify themselves do: a verdict token inside that answer comes last in the reply."""
    if side not in ("A", "B"):
        raise ValueError(f"side must be 'A' or 'B', not {side!r}")

    def reply(request_body: dict) -> str:
        answer_a, answer_b = _answer_blocks(request_body, a_start, a_end, b_start, b_end)
        quoted = answer_a if side == "A" else answer_b
        return f"Having compared both answers, my verdict: {verdict}\n\nFor the record, assistant {side} wrote:\n{quoted}"

    return reply


def faults_then(n: int, fault: Fault, then_reply: Reply | str) -> Reply:
    """Answer ``fault`` to the first ``n`` calls of each distinct request, then ``then_reply``.

    Requests are told apart by their messages, so each judged pair fails ``n`` times no
    matter how calls to different pairs interleave — what a retry test needs.
    """
    follow_up = constant(then_reply) if isinstance(then_reply, str) else then_reply
    calls_by_request: dict[str, int] = {}
    lock = threading.Lock()

    def reply(request_body: dict) -> str | Fault:
        key = json.dumps(request_body.get("messages"), sort_keys=True)
        with lock:
            calls = calls_by_request.get(key, 0)
            calls_by_request[key] = calls + 1
        return fault if calls < n else follow_up(request_body)

    return reply


# --- the server ----------------------------------------------------------------------------


def _count_words(text: str) -> int:
    return len(text.split())


def per_character(text: str) -> int:
    """A token per character that is not white space: about what GPT-4's tokenizer makes of CJK text
    (common characters are one token each, rarer ones two or three), where characters / 4 guesses a
    quarter of it."""
    return sum(not c.isspace() for c in text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it, small responses wait on delayed ACKs (~40 ms each) under HTTP/1.1 keep-alive.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def setup(self) -> None:
        super().setup()
        self.server.judge._track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.judge._track_connection(self.connection, open_=False)

    def do_GET(self) -> None:
        self._send_error_json(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length)
        if self.path.rstrip("/") != CHAT_COMPLETIONS_PATH:
            self._send_error_json(404, f"no route for POST {self.path}")
            return
        try:
            body = json.loads(raw_body)
        except ValueError:
            self._send_error_json(400, "request body is not JSON")
            return
        judge = self.server.judge
        judge._request_started(body, self.headers.get("Authorization"))
        try:
            self._answer(judge, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before the answer came; nothing to report
        finally:
            judge._request_finished()

    def _answer(self, judge: "JudgeServer", body: dict) -> None:
        judge._wait(judge.latency)
        try:
            outcome = judge.reply(body)
        except Exception as error:  # a broken script must show up, not hang the client
            judge._record_reply_error(error)
            self._send_error_json(500, f"judge reply raised {type(error).__name__}: {error}")
            return
        if isinstance(outcome, str):
            self._send_completion(body, outcome, "stop")
        elif isinstance(outcome, Fault):
            self._send_fault(judge, body, outcome)
        else:
            judge._record_reply_error(TypeError(f"reply returned {type(outcome).__name__}"))
            self._send_error_json(500, f"judge reply returned {type(outcome).__name__}, not str or Fault")

    def _send_fault(self, judge: "JudgeServer", body: dict, fault: Fault) -> None:
        if fault.status is not None and fault.echo_headers:
            echoed = "; ".join(f"{name}: {value}" for name, value in self.headers.items())
            self._send_error_json(fault.status, f"{fault.message or 'request refused'} (request headers: {echoed})")
        elif fault.status is not None:
            self._send_error_json(fault.status, fault.message, retry_after=fault.retry_after)
        elif fault.kind == "reset":
            self._reset_connection()
        elif fault.kind == "hang":
            judge._wait(fault.seconds)
            self._send_completion(body, fault.content, "stop")
        elif fault.kind == "garbage":
            self._send_bytes(200, b"<html>upstream proxy error: this is not JSON", "application/json")
        elif fault.kind == "empty_choices":
            self._send_completion(body, None, None)
        elif fault.kind == "finish":
            self._send_completion(body, fault.content, fault.finish_reason)
        elif fault.kind in ("drip", "drip_head"):
            self._drip(judge, fault)

    def _drip(self, judge: "JudgeServer", fault: Fault) -> None:
        # Longer than DRIP_LIMIT, so a drip never completes a response: the client ends it or gets a cut-off one.
        payload = (" " * DRIP_LIMIT + json.dumps({"choices": [{"message": {"content": fault.content}}]})).encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n").encode()
        self.close_connection = True
        try:
            if fault.kind == "drip":
                self.wfile.write(head)
                data = payload
            else:
                data = head + payload
            for index in range(DRIP_LIMIT):
                judge._wait(fault.seconds)
                if judge._stopping.is_set():
                    return
                # Once the client has closed, the next write or the one after fails (EPIPE/ECONNRESET).
                self.wfile.write(data[index:index + 1])
        except OSError:
            judge._drip_ended(cut=True)
            return
        judge._drip_ended(cut=False)

    def _reset_connection(self) -> None:
        # Linger 0 turns close() into a TCP RST, which the client sees as a reset, not a clean EOF.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket; it must go first or close() is deferred.
        # (wfile stays open: the base handler still flushes it, which is harmless unbuffered.)
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _send_completion(self, body: dict, content: str | None, finish_reason: str | None) -> None:
        judge = self.server.judge
        prompt_tokens = judge.count_tokens(prompt_text(body))
        completion_tokens = judge.count_tokens(content or "")
        choices = []
        if content is not None:
            choices.append(
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            )
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "judge"),
            "choices": choices,
        }
        if judge.report_usage:
            completion["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            judge._usage_reported(prompt_tokens, completion_tokens)
        self._send_bytes(200, json.dumps(completion).encode(), "application/json")

    def _send_error_json(self, status: int, message: str | None, *, retry_after: float | None = None) -> None:
        error_type = _ERROR_TYPES.get(status, "invalid_request_error")
        payload = {
            "error": {
                "message": message or f"scripted judge error {status}",
                "type": error_type,
                "code": error_type if status != 429 else "rate_limit_exceeded",
            }
        }
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 drops SYNs under a burst of concurrent clients, and a dropped
    # SYN costs a 1 s retransmit — enough to wreck timing assertions.
    request_queue_size = 128

    def __init__(self, judge: "JudgeServer") -> None:
        self.judge = judge
        super().__init__(("127.0.0.1", 0), _Handler)


class JudgeServer:
    """A scripted OpenAI-compatible judge on 127.0.0.1, served from a daemon thread.

    ``reply`` and ``latency`` may be changed at any time; the next request uses the new values. So may
    the ``usage`` each completion reports: ``count_tokens`` (text -> tokens; words by default, ``per_character``
    plays a tokenizer that makes a token of each CJK character) and ``report_usage`` (False: no ``usage``
    at all, as some servers do). ``usage_reported`` lists the (prompt, completion) tokens sent.
    """

    def __init__(self, reply: Reply | str = "[[C]]", *, latency: float = 0.0) -> None:
        self.reply: Reply = constant(reply) if isinstance(reply, str) else reply
        self.latency = latency
        self.count_tokens: Callable[[str], int] = _count_words
        self.report_usage = True
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self.reset_counters()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._serve, name="judge-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # shutdown() waits up to one poll interval; the default 0.5 s would slow every test's teardown.
        self._server.serve_forever(poll_interval=0.02)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def requests_for(self, model: str) -> list[dict]:
        """The request bodies that named ``model`` (e.g. a candidate's, where one server plays several)."""
        with self._lock:
            return [body for body in self.requests if body.get("model") == model]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests: list[dict] = []
            self.auth_headers: list[str | None] = []
            self.reply_errors: list[Exception] = []
            self.usage_reported: list[tuple[int, int]] = []  # (prompt_tokens, completion_tokens) per completion
            self.drips_cut = 0  # drips the client closed before DRIP_LIMIT bytes
            self.drips_finished = 0  # drips that sent DRIP_LIMIT bytes (the client never gave up)
            self.drip_over = threading.Event()  # set when a drip ends either way
            # in_flight is live state, not a counter: requests being served now still finish.
            self.in_flight: int = getattr(self, "in_flight", 0)
            self.max_in_flight = self.in_flight

    def stop(self) -> None:
        """Stop serving and drop open connections; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a hang
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_connections = list(self._connections)
        # Keep-alive handler threads block reading the next request; shutting their sockets ends them.
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "JudgeServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- called from handler threads ---

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _track_connection(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _request_started(self, body: dict, authorization: str | None) -> None:
        with self._lock:
            self.requests.append(body)
            self.auth_headers.append(authorization)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _drip_ended(self, *, cut: bool) -> None:
        with self._lock:
            if cut:
                self.drips_cut += 1
            else:
                self.drips_finished += 1
        self.drip_over.set()

    def _usage_reported(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.usage_reported.append((prompt_tokens, completion_tokens))

    def _record_reply_error(self, error: Exception) -> None:
        with self._lock:
            self.reply_errors.append(error)
