"""A loopback OpenAI Batch API server: files upload and content, batch create, retrieve and cancel.

The real ``openai`` client talks to it over real HTTP (``client.files.create``, ``client.batches.create``,
``client.batches.retrieve``, ``client.files.content``), so the arena's batch judging runs the same code
paths as against api.openai.com. Shapes follow the API reference and the openai client's own types
(``openai.types.Batch``, ``BatchRequestCounts``, ``FileObject``); ``tests/test_batch_server.py`` checks
every response against those types strictly, so a shape mistake here fails there.

A batch moves one step per ``GET /v1/batches/{id}`` (what a poller sees over several polls):
``validating`` (``validating_polls`` more polls) -> ``in_progress`` -> requests answered ``per_poll`` at a
time -> ``finalizing`` (``finalizing_polls`` more polls) -> ``completed``, with an output file of the
successful lines and an error file of the failed ones. A test scripts it through attributes read at
each step:

- ``reply``: request body -> reply text, or a ``support.judge_server.Fault``: ``Fault(status=500)`` is a
  failed request (an error-file line with that status and an error body; ``echo_headers=True`` quotes
  the headers of the request that created the batch, ``Authorization`` included, as some proxies do),
  ``Fault(kind="finish", finish_reason="length")`` a reply cut short, ``Fault(kind="empty_choices")``.
- ``expire_after``: the batch expires once that many requests are answered: the output file holds
  those, the error file the rest as ``batch_expired``.
- ``fail_validation``: the batch fails validation with that message (``errors.data``; no files).
- ``refuse``: ``{route: Fault(status=...)}``, an HTTP error answer to every request of that route.

``POST /v1/chat/completions`` answers live (``live_reply``, else ``reply``): a run's fallback asks it.

``GET /v1/batches`` lists every batch, newest first, on one page.

Counters: ``uploads``, ``batches_created``, ``retrieves``, ``downloads``, ``cancels``, ``auth_headers``,
``live_bodies``, ``lists``.
Stdlib only, like ``support.judge_server``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .judge_server import Fault, Reply, constant, prompt_text

CHAT_ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
WINDOW_SECONDS = 24 * 3600
IN_FLIGHT = ("validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")
# The documented line of a batch input file, and the codes of a request the batch never ran.
INPUT_LINE_KEYS = {"custom_id", "method", "url", "body"}
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED = ("batch_cancelled", "This request could not be executed before the batch was cancelled.")
MAX_METADATA_PAIRS = 16

# route name -> (method, path pattern); the names are the keys of BatchServer.refuse.
ROUTES = {
    "files.create": ("POST", re.compile(r"^/v1/files$")),
    "files.retrieve": ("GET", re.compile(r"^/v1/files/(?P<id>[^/]+)$")),
    "files.content": ("GET", re.compile(r"^/v1/files/(?P<id>[^/]+)/content$")),
    "batches.create": ("POST", re.compile(r"^/v1/batches$")),
    "batches.list": ("GET", re.compile(r"^/v1/batches$")),
    "batches.retrieve": ("GET", re.compile(r"^/v1/batches/(?P<id>[^/]+)$")),
    "batches.cancel": ("POST", re.compile(r"^/v1/batches/(?P<id>[^/]+)/cancel$")),
    # The live endpoint too, so a run that falls back to live calls asks the same server (``live_bodies``).
    "chat.completions": ("POST", re.compile(r"^/v1/chat/completions$")),
}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                429: "rate_limit_error", 500: "server_error", 503: "server_error"}


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def error_body(status: int, message: str) -> dict:
    """An OpenAI-style error object, as the API answers an HTTP error (and as a failed request's body)."""
    kind = _ERROR_TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_json(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": self.created_at + 30 * 24 * 3600, "status_details": None}


@dataclass
class StoredBatch:
    id: str
    input_file_id: str
    metadata: dict | None
    created_at: int
    creator_headers: str  # the headers of the create request, for Fault(echo_headers=True)
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    requests: list[dict] = field(default_factory=list)  # the input lines, once validated
    answered: int = 0  # requests answered so far (in input order)
    output_lines: list[dict] = field(default_factory=list)
    error_lines: list[dict] = field(default_factory=list)
    errors: list[dict] | None = None  # validation errors (errors.data)
    output_file_id: str | None = None
    error_file_id: str | None = None
    model: str | None = None
    polls_left: int = 0  # polls before leaving validating or finalizing
    tokens: list[int] = field(default_factory=lambda: [0, 0])  # prompt, completion

    def as_json(self) -> dict:
        completed = len(self.output_lines)
        failed = len(self.error_lines)
        stamps = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
                  "cancelled_at")
        return {
            "id": self.id, "object": "batch", "endpoint": CHAT_ENDPOINT,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id, "completion_window": COMPLETION_WINDOW, "status": self.status,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
            "created_at": self.created_at, "expires_at": self.created_at + WINDOW_SECONDS,
            **{stamp: self.times.get(stamp) for stamp in stamps},
            "request_counts": {"total": len(self.requests), "completed": completed, "failed": failed},
            "metadata": self.metadata, "model": self.model,
            "usage": {"input_tokens": self.tokens[0], "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": self.tokens[1], "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": sum(self.tokens)},
        }


class HttpRefusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def validate_input(data: bytes) -> tuple[list[dict], list[dict]]:
    """The request lines of an input file, and the validation errors (``errors.data``) it has."""
    requests, problems, seen, models = [], [], set(), set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            problems.append(_problem("invalid_json_line", "This line is not parseable as valid JSON.", number))
            continue
        if not isinstance(line, dict) or set(line) != INPUT_LINE_KEYS:
            keys = sorted(line) if isinstance(line, dict) else type(line).__name__
            problems.append(_problem("invalid_request", f"Expected the keys {sorted(INPUT_LINE_KEYS)}, got {keys}.",
                                     number))
            continue
        if not isinstance(line["custom_id"], str) or line["custom_id"] in seen:
            problems.append(_problem("duplicate_custom_id", "The custom_id must be a string unique in the file.",
                                     number, "custom_id"))
        elif line["method"] != "POST" or line["url"] != CHAT_ENDPOINT:
            problems.append(_problem("invalid_url", f"Expected POST {CHAT_ENDPOINT}, the batch's endpoint.",
                                     number, "url"))
        elif not isinstance(line["body"], dict) or not isinstance(line["body"].get("model"), str):
            problems.append(_problem("missing_required_parameter", "The body needs a model.", number, "body.model"))
        else:
            seen.add(line["custom_id"])
            models.add(line["body"]["model"])
            requests.append(line)
    if len(models) > 1:  # the API takes one model per batch
        problems.append(_problem("mismatched_model", f"Every request must use one model, got {sorted(models)}.", None))
    if not requests and not problems:
        problems.append(_problem("empty_file", "The input file has no requests.", None))
    return requests, problems


def _problem(code: str, message: str, line: int | None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename or None, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise HttpRefusal(400, "expected a multipart/form-data body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it, small responses wait on delayed ACKs (~40 ms each) under HTTP/1.1 keep-alive.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        api = self.server.api
        for name, (route_method, pattern) in ROUTES.items():
            found = pattern.match(path)
            if route_method == method and found:
                break
        else:
            self._send_json(404, error_body(404, f"no route for {method} {self.path}"))
            return
        try:
            status, payload = api._handle(name, found.groupdict().get("id"), body, self.headers)
        except HttpRefusal as refusal:
            status, payload = refusal.status, error_body(refusal.status, str(refusal))
        except Exception as exc:  # a broken server must answer loudly, not hang the client
            api._record_error(exc)
            status, payload = 500, error_body(500, f"batch server raised {type(exc).__name__}: {exc}")
        if isinstance(payload, bytes):
            self._send_bytes(status, payload, "application/octet-stream")
        else:
            self._send_json(status, payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send_json(self, status: int, payload: dict) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, api: "BatchServer") -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)


class BatchServer:
    """A scripted OpenAI Batch API on 127.0.0.1, served from a daemon thread.

    ``api_key``: when set, a request without ``Authorization: Bearer <api_key>`` is refused (401).
    """

    def __init__(self, reply: Reply | str = "[[C]]", *, per_poll: int | None = None, validating_polls: int = 0,
                 finalizing_polls: int = 0, expire_after: int | None = None, api_key: str | None = None) -> None:
        self.reply: Reply = constant(reply) if isinstance(reply, str) else reply
        self.per_poll = per_poll
        self.validating_polls = validating_polls
        self.finalizing_polls = finalizing_polls
        self.expire_after = expire_after
        self.fail_validation: str | None = None
        self.refuse: dict[str, Fault] = {}
        self.api_key = api_key
        self._lock = threading.Lock()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, StoredBatch] = {}
        self.uploads: list[StoredFile] = []
        self.batches_created: list[dict] = []  # the create requests' bodies
        self.answered_bodies: list[dict] = []  # every request body the batches answered
        self.live_bodies: list[dict] = []  # every live chat completion asked (a run's fallback)
        self.live_reply: Reply | None = None  # the live endpoint's script (None: ``reply``'s)
        self.lists = 0  # GET /v1/batches
        self.retrieves = 0
        self.downloads = 0
        self.cancels = 0
        self.auth_headers: list[str | None] = []
        self.server_errors: list[Exception] = []
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="batch-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "BatchServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def status_of(self, batch_id: str) -> str:
        with self._lock:
            return self.batches[batch_id].status

    # --- called from handler threads ---

    def _record_error(self, exc: Exception) -> None:
        with self._lock:
            self.server_errors.append(exc)

    def _handle(self, route: str, item_id: str | None, body: bytes, headers) -> tuple[int, dict | bytes]:
        with self._lock:
            self.auth_headers.append(headers.get("Authorization"))
            if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
                raise HttpRefusal(401, "Incorrect API key provided.")
            fault = self.refuse.get(route)
            if fault is not None:
                echoed = "; ".join(f"{name}: {value}" for name, value in headers.items())
                message = fault.message or f"scripted refusal of {route}"
                raise HttpRefusal(fault.status or 500, f"{message} (request headers: {echoed})"
                                  if fault.echo_headers else message)
            if route == "files.create":
                return 200, self._upload(headers.get("Content-Type", ""), body)
            if route in ("files.retrieve", "files.content"):
                stored = self._file(item_id)
                if route == "files.retrieve":
                    return 200, stored.as_json()
                self.downloads += 1
                return 200, stored.data
            if route == "batches.create":
                return 200, self._create(body, headers).as_json()
            if route == "chat.completions":
                return 200, self._live(json.loads(body))
            if route == "batches.list":  # newest first, one page (``has_more`` false)
                self.lists += 1
                listed = [batch.as_json() for batch in reversed(self.batches.values())]
                return 200, {"object": "list", "data": listed, "first_id": listed[0]["id"] if listed else None,
                             "last_id": listed[-1]["id"] if listed else None, "has_more": False}
            batch = self._batch(item_id)
            if route == "batches.cancel":
                self.cancels += 1
                if batch.status in ("validating", "in_progress", "finalizing"):
                    batch.status = "cancelling"
                    batch.times["cancelling_at"] = int(time.time())
                return 200, batch.as_json()
            self.retrieves += 1
            self._advance(batch)
            return 200, batch.as_json()

    def _live(self, body: dict) -> dict:
        self.live_bodies.append(body)
        outcome = (self.live_reply or self.reply)(body)
        if isinstance(outcome, Fault):  # (live faults are support.judge_server's business)
            raise HttpRefusal(outcome.status or 500, outcome.message or "scripted live failure")
        return self._completion(body, outcome, "stop")

    def _file(self, file_id: str | None) -> StoredFile:
        stored = self.files.get(file_id or "")
        if stored is None:
            raise HttpRefusal(404, f"No such File object: {file_id}")
        return stored

    def _batch(self, batch_id: str | None) -> StoredBatch:
        batch = self.batches.get(batch_id or "")
        if batch is None:
            raise HttpRefusal(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _upload(self, content_type: str, body: bytes) -> dict:
        fields = parse_multipart(content_type, body)
        filename, data = fields.get("file", (None, None))
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if data is None or not filename:
            raise HttpRefusal(400, "The file upload has no 'file' part with a filename.")
        if purpose != "batch":
            raise HttpRefusal(400, f"This server takes purpose 'batch' only, got {purpose!r}.")
        stored = StoredFile(_new_id("file-"), filename, purpose, data, int(time.time()))
        self.files[stored.id] = stored
        self.uploads.append(stored)
        return stored.as_json()

    def _create(self, body: bytes, headers) -> StoredBatch:
        try:
            params = json.loads(body)
        except ValueError:
            raise HttpRefusal(400, "The request body is not JSON.") from None
        if not isinstance(params, dict):
            raise HttpRefusal(400, "The request body is not a JSON object.")
        if params.get("endpoint") != CHAT_ENDPOINT:
            raise HttpRefusal(400, f"This server runs {CHAT_ENDPOINT} batches only, got {params.get('endpoint')!r}.")
        if params.get("completion_window") != COMPLETION_WINDOW:
            raise HttpRefusal(400, f"completion_window must be '24h', got {params.get('completion_window')!r}.")
        metadata = params.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= MAX_METADATA_PAIRS and all(
                isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                for k, v in metadata.items())):
            raise HttpRefusal(400, "metadata must be at most 16 string pairs (keys <= 64, values <= 512 chars).")
        stored = self.files.get(params.get("input_file_id") or "")
        if stored is None or stored.purpose != "batch":
            raise HttpRefusal(400, f"No batch input file with id {params.get('input_file_id')!r}.")
        echoed = "; ".join(f"{name}: {value}" for name, value in headers.items())
        batch = StoredBatch(_new_id("batch_"), stored.id, metadata, int(time.time()), echoed,
                            polls_left=self.validating_polls)
        self.batches[batch.id] = batch
        self.batches_created.append(params)
        return batch

    # --- a batch's life, one step per poll ---

    def _advance(self, batch: StoredBatch) -> None:
        now = int(time.time())
        if batch.status in TERMINAL:
            return
        if batch.status == "cancelling":
            self._close(batch, "cancelled", CANCELLED)
        elif batch.status == "validating":
            if batch.polls_left > 0:
                batch.polls_left -= 1
                return
            requests, problems = validate_input(self.files[batch.input_file_id].data)
            if self.fail_validation:
                problems.append(_problem("invalid_file", self.fail_validation, None))
            if problems:
                batch.status, batch.errors, batch.times["failed_at"] = "failed", problems, now
                return
            batch.requests, batch.model = requests, requests[0]["body"]["model"]
            batch.status, batch.times["in_progress_at"] = "in_progress", now
        elif batch.status == "in_progress":
            step = self.per_poll or len(batch.requests)
            for request in batch.requests[batch.answered:batch.answered + step]:
                if self.expire_after is not None and batch.answered >= self.expire_after:
                    self._close(batch, "expired", EXPIRED)
                    return
                self._answer(batch, request)
                batch.answered += 1
            if batch.answered == len(batch.requests):
                batch.status, batch.times["finalizing_at"] = "finalizing", now
                batch.polls_left = self.finalizing_polls
        elif batch.status == "finalizing":
            if batch.polls_left > 0:
                batch.polls_left -= 1
                return
            self._close(batch, "completed", None)

    def _close(self, batch: StoredBatch, status: str, unrun: tuple[str, str] | None) -> None:
        """End the batch: requests never answered become ``unrun`` error lines; the files are written."""
        if unrun is not None:
            for request in batch.requests[batch.answered:]:
                batch.error_lines.append({"id": _new_id("batch_req_"), "custom_id": request["custom_id"],
                                          "response": None, "error": {"code": unrun[0], "message": unrun[1]}})
        for lines, attribute, name in ((batch.output_lines, "output_file_id", "output"),
                                       (batch.error_lines, "error_file_id", "error")):
            if lines:
                data = "".join(json.dumps(line) + "\n" for line in lines).encode()
                stored = StoredFile(_new_id("file-"), f"{batch.id}_{name}.jsonl", "batch_output", data,
                                    int(time.time()))
                self.files[stored.id] = stored
                setattr(batch, attribute, stored.id)
        batch.status = status
        batch.times[f"{status}_at"] = int(time.time())

    def _answer(self, batch: StoredBatch, request: dict) -> None:
        body = request["body"]
        self.answered_bodies.append(body)
        try:
            outcome = self.reply(body)
        except Exception as exc:  # a broken script shows up as a failed request, and in server_errors
            self.server_errors.append(exc)
            outcome = Fault(status=500, message=f"reply raised {type(exc).__name__}: {exc}")
        line = {"id": _new_id("batch_req_"), "custom_id": request["custom_id"], "response": None, "error": None}
        if isinstance(outcome, Fault) and outcome.status is not None:
            message = outcome.message or f"scripted request failure {outcome.status}"
            if outcome.echo_headers:
                message = f"{message} (request headers: {batch.creator_headers})"
            line["response"] = {"status_code": outcome.status, "request_id": uuid.uuid4().hex,
                                "body": error_body(outcome.status, message)}
            batch.error_lines.append(line)
            return
        if isinstance(outcome, Fault) and outcome.kind == "finish":
            completion = self._completion(body, outcome.content, outcome.finish_reason)
        elif isinstance(outcome, Fault) and outcome.kind == "empty_choices":
            completion = self._completion(body, None, None)
        elif isinstance(outcome, str):
            completion = self._completion(body, outcome, "stop")
        else:
            self.server_errors.append(TypeError(f"a batch cannot play {outcome!r}"))
            line["response"] = {"status_code": 500, "request_id": uuid.uuid4().hex,
                                "body": error_body(500, f"unscriptable reply {type(outcome).__name__}")}
            batch.error_lines.append(line)
            return
        batch.tokens[0] += completion["usage"]["prompt_tokens"]
        batch.tokens[1] += completion["usage"]["completion_tokens"]
        line["response"] = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": completion}
        batch.output_lines.append(line)

    @staticmethod
    def _completion(body: dict, content: str | None, finish_reason: str | None) -> dict:
        prompt_tokens = len(prompt_text(body).split())
        completion_tokens = len((content or "").split())
        choices = [] if content is None else [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                                               "message": {"role": "assistant", "content": content,
                                                           "refusal": None}}]
        return {"id": _new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"), "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}
