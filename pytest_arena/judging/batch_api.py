"""Judge calls through a provider's Batch API (OpenAI's, and the compatible batch endpoints of other
providers and of vLLM): about half the price, answered within the 24 h window instead of at once.

The calls a run still has to make are written as one JSONL of ``/v1/chat/completions`` requests whose
``custom_id`` is the call's cache key, uploaded (``client.files.create``, purpose ``batch``) and run as a
batch (``client.batches.create``); ``wait`` polls it with a progress line, ``collect`` reads its output
and error files back into replies and failures by cache key. The request body is the live judge's
(``openai_judge.OpenAIJudge.complete`` through ``openai_chat.chat``), so a reply from either is cached
and read alike.

What is in flight is stored beside the review file (``<review file>.batch.json``, written atomically):
which batches, their input files, and the cache keys each one answers. So a second ``submit`` while a
batch is pending pays nothing for the keys it holds, and a later process (the ``collect`` step of a CI
pipeline, or a run after a SIGKILL) finds the batches without the process that made them. Entries are
dropped by ``forget`` only once their replies are merged into the review file: a crash in between
loses nothing, as the provider keeps the output files (30 days at OpenAI) and ``collect`` reads again.

Secrets: the key stays in the client. The request file holds model, messages and sampling settings,
the state file ids and the URL without user:password or query (``redact.public_url``); every text a
server sends back (an error line, a refused request, a reply) is scrubbed (``redact.scrub``) where it
becomes ours.

No ``openai`` import here: the functions take a client made by ``openai_chat.make_client``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ArenaDataError
from ..file_names import batch_state_file, lock_file
from ..openai_chat import ChatCallError, ChatReply, chat_body, read_reply, short
from ..redact import public_url
from ..record_files import file_lock, write_atomic

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
STATE_FORMAT = 1
# The API's limits on one input file (50,000 requests, 200 MB); the bytes with room for the multipart
# framing. More requests than that go into several batches.
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BATCH_BYTES = 190 * 1024 * 1024
IN_FLIGHT = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# A request the batch never ran: the error code the provider writes for it -> our reason.
UNRUN_CODES = {"batch_expired": "expired", "batch_cancelled": "cancelled"}
FAILURE_REASONS = ("failed", "expired", "cancelled")
POLL_SECONDS = 30.0


class BatchApiError(Exception):
    """A Batch API step could not be done (upload, create, retrieve, download); one line, scrubbed."""

    def __init__(self, message: str):
        super().__init__(short(message, 500))


# --- the requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequest:
    """One judge call as a batch line: ``custom_id`` is its cache key."""

    custom_id: str
    model: str
    messages: tuple[dict, ...]
    temperature: float
    max_tokens: int

    @classmethod
    def for_judge(cls, custom_id: str, model: str, system_prompt: str, prompt: str, temperature: float,
                  max_tokens: int) -> "BatchRequest":
        """The request the live OpenAI judge sends for this prompt (``OpenAIJudge.complete``)."""
        return cls(custom_id, model, tuple(chat_messages(system_prompt, prompt)), temperature, max_tokens)

    def line(self) -> dict:
        """The input file's line: ``{custom_id, method, url, body}`` with the chat-completions body."""
        body = chat_body(self.model, list(self.messages), self.temperature, self.max_tokens)
        return {"custom_id": self.custom_id, "method": "POST", "url": ENDPOINT, "body": body}


def chat_messages(system_prompt: str, prompt: str) -> list[dict]:
    """The judge's messages: the template's system prompt (when it has one), then the prompt."""
    messages = [{"role": "user", "content": prompt}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def request_chunks(requests: list[BatchRequest], max_requests: int = MAX_REQUESTS_PER_BATCH,
                   max_bytes: int = MAX_BATCH_BYTES) -> list[list[str]]:
    """The requests' lines (JSON text with its newline), in groups that each fit one batch."""
    chunks: list[list[str]] = []
    size = 0
    for request in requests:
        text = json.dumps(request.line(), ensure_ascii=False) + "\n"
        length = len(text.encode("utf-8"))
        if not chunks or len(chunks[-1]) >= max_requests or size + length > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(text)
        size += length
    return chunks


# --- the state file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingBatch:
    """A batch this review file is waiting for, as the state file records it."""

    id: str
    input_file_id: str
    request_file: str  # the input file as written beside the review file (its name)
    url: str | None  # the API's public URL (None: api.openai.com or OPENAI_BASE_URL, as the client chose)
    model: str
    created_at: float
    custom_ids: tuple[str, ...]

    def as_json(self) -> dict:
        return {"id": self.id, "input_file_id": self.input_file_id, "request_file": self.request_file,
                "url": self.url, "model": self.model, "created_at": self.created_at,
                "custom_ids": list(self.custom_ids)}


def state_file(review_file: Path) -> Path:
    """Where a review file's pending batches are recorded: beside it (``file_names.batch_state_file``)."""
    return batch_state_file(review_file)


def read_state(path: Path) -> list[PendingBatch]:
    """The batches the state file records (none when it does not exist); a damaged one is an ArenaDataError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ArenaDataError(path, "", f"the batch state file cannot be read ({exc})") from None
    try:
        state = json.loads(text)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT}")
        return [_pending(entry) for entry in state["batches"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArenaDataError(path, "", f"not a batch state file of pytest-arena ({type(exc).__name__}: {exc}); "
                             "delete it to forget its batches (they are still listed by the provider)") from None


def _pending(entry: dict) -> PendingBatch:
    ids = entry["custom_ids"]
    if not isinstance(ids, list) or not all(isinstance(key, str) for key in ids):
        raise ValueError("custom_ids is not a list of strings")
    return PendingBatch(str(entry["id"]), str(entry["input_file_id"]), str(entry["request_file"]),
                        None if entry["url"] is None else str(entry["url"]), str(entry["model"]),
                        float(entry["created_at"]), tuple(ids))


def write_state(path: Path, batches: list[PendingBatch]) -> None:
    """Record ``batches`` (atomically); no batches left removes the file."""
    path = Path(path)
    if not batches:
        path.unlink(missing_ok=True)
        return
    state = {"format": STATE_FORMAT, "batches": [batch.as_json() for batch in batches]}
    write_atomic(path, json.dumps(state, indent=1) + "\n")


def client_url(client: Any) -> str | None:
    """The client's API URL as the state file may hold it (no user:password, no query)."""
    url = str(getattr(client, "base_url", "") or "")
    return public_url(url) if url else None


# --- submit ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    created: tuple[str, ...]  # ids of the batches created now
    sent: int  # requests in them: what this submit pays for
    already_pending: int  # requests a pending batch of the state file holds already (not paid again)


def submit(client: Any, state_path: Path, requests: list[BatchRequest], metadata: dict[str, str] | None = None,
           max_requests: int = MAX_REQUESTS_PER_BATCH) -> Submitted:
    """Upload the requests no batch of the state file holds yet and create their batches.

    Under a lock on the state file (xdist workers, or a second CI job, submitting the same calls): the
    second one waits, then finds the first one's batches and pays nothing. Each batch is recorded the
    moment it is created, so a crash after the first of several batches keeps the first one; one killed
    between the provider creating a batch and its record is found by its input's digest (``_running_batch``).
    """
    state_path = Path(state_path)
    url = client_url(client)
    with file_lock(lock_file(state_path)):
        batches = read_state(state_path)
        held = {key for batch in batches if batch.url == url for key in batch.custom_ids}
        fresh: dict[str, BatchRequest] = {}
        for request in requests:
            if request.custom_id not in held:
                fresh.setdefault(request.custom_id, request)
        created = []
        for lines in request_chunks(list(fresh.values()), max_requests):
            batch = _create_batch(client, state_path, lines, url, metadata)
            batches.append(batch)
            write_state(state_path, batches)
            created.append(batch.id)
    already = len({request.custom_id for request in requests if request.custom_id in held})
    return Submitted(tuple(created), len(fresh), already)


def _create_batch(client: Any, state_path: Path, lines: list[str], url: str | None,
                  metadata: dict[str, str] | None) -> PendingBatch:
    text = "".join(lines)
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    review_name = state_path.name.removesuffix(".batch.json")
    request_file = state_path.with_name(f"{review_name}.batch-{digest[:16]}.jsonl")
    write_atomic(request_file, text)  # for people to read; what is uploaded is these bytes
    parsed = [json.loads(line) for line in lines]
    model = parsed[0]["body"]["model"]
    tags = {"created_by": "pytest-arena", "requests": str(len(lines)), "digest": digest[:16], **(metadata or {})}
    custom_ids = tuple(line["custom_id"] for line in parsed)
    running = _running_batch(client, digest[:16])
    if running is not None:  # created by a run killed before it could record it: the same requests, paid once
        return PendingBatch(running.id, running.input_file_id, request_file.name, url, model,
                            float(running.created_at), custom_ids)
    try:
        uploaded = client.files.create(file=(request_file.name, data, "application/jsonl"), purpose="batch")
    except Exception as exc:  # noqa: BLE001 - any failure of the upload is one line for the user
        raise BatchApiError(f"uploading the batch requests failed: {_why(exc)}") from None
    try:
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT,
                                      completion_window=COMPLETION_WINDOW, metadata=tags)
    except Exception as exc:  # noqa: BLE001
        raise BatchApiError(f"creating the batch of {uploaded.id} failed: {_why(exc)}") from None
    return PendingBatch(batch.id, uploaded.id, request_file.name, url, model, time.time(), custom_ids)


def _running_batch(client: Any, digest: str) -> Any | None:
    """A batch of ours still running with the same requests (the ``digest`` of its input file), from the
    provider's newest 100: the one a process killed between ``batches.create`` and the state write made. A
    provider without the list endpoint (or an error) finds none, and the batch is created."""
    try:
        listed = client.batches.list(limit=100).data
    except Exception:  # noqa: BLE001 - a best effort: at worst the calls are paid twice, as without it
        return None
    for batch in listed:
        tags = batch.metadata or {}
        if tags.get("created_by") == "pytest-arena" and tags.get("digest") == digest and batch.status in (
                "validating", "in_progress", "finalizing"):
            return batch
    return None


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- polling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStatus:
    """What the provider says of one batch now."""

    batch: PendingBatch
    status: str
    completed: int
    failed: int
    total: int
    output_file_id: str | None
    error_file_id: str | None
    errors: tuple[str, ...] = ()  # why the batch failed as a whole (validation), scrubbed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def done(self) -> int:
        """Requests no longer waiting: all of them once the batch has ended (expired ones too)."""
        return self.total if self.finished else min(self.total, self.completed + self.failed)


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    total: int
    elapsed_s: float
    statuses: tuple[str, ...]

    def line(self) -> str:
        """``judge batch: 120 of 400 requests done (3 failed), in_progress, 2m05s``"""
        minutes, seconds = divmod(int(self.elapsed_s), 60)
        failed = f" ({self.failed} failed)" if self.failed else ""
        states = ", ".join(f"{count} {name}" if count > 1 else name
                           for name, count in sorted({s: self.statuses.count(s) for s in self.statuses}.items()))
        return f"judge batch: {self.done} of {self.total} requests done{failed}, {states}, {minutes}m{seconds:02d}s"


def retrieve(client: Any, batch: PendingBatch) -> BatchStatus:
    try:
        found = client.batches.retrieve(batch.id)
    except Exception as exc:  # noqa: BLE001
        raise BatchApiError(f"reading the state of batch {batch.id} failed: {_why(exc)}") from None
    counts = found.request_counts
    errors = tuple(short(f"line {e.line}: {e.code}: {e.message}" if e.line is not None else f"{e.code}: {e.message}")
                   for e in ((found.errors.data or []) if found.errors is not None else []))
    return BatchStatus(batch, found.status, counts.completed if counts else 0, counts.failed if counts else 0,
                       # While validating the provider counts nothing yet; the state file knows the total.
                       len(batch.custom_ids), found.output_file_id, found.error_file_id, errors)


def pending_batches(state_path: Path, client: Any) -> list[PendingBatch]:
    """The state file's batches made through this client's URL (others belong to another endpoint)."""
    url = client_url(client)
    return [batch for batch in read_state(state_path) if batch.url == url]


def wait(client: Any, state_path: Path, on_progress: Callable[[Progress], None] | None = None,
         poll_s: float = POLL_SECONDS, timeout_s: float | None = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> list[BatchStatus]:
    """Poll every pending batch until all have ended or ``timeout_s`` has passed (then some have not:
    check ``finished``), telling ``on_progress`` after each round."""
    batches = pending_batches(state_path, client)
    started = clock()
    statuses: dict[str, BatchStatus] = {}
    while True:
        for batch in batches:
            if batch.id not in statuses or not statuses[batch.id].finished:
                statuses[batch.id] = retrieve(client, batch)
        current = [statuses[batch.id] for batch in batches]
        elapsed = clock() - started
        if on_progress is not None:
            on_progress(Progress(sum(s.done for s in current), sum(s.failed for s in current),
                                 sum(s.total for s in current), elapsed, tuple(s.status for s in current)))
        if all(s.finished for s in current) or (timeout_s is not None and elapsed >= timeout_s):
            return current
        sleep(poll_s)


def cancel(client: Any, state_path: Path) -> list[str]:
    """Ask the provider to cancel every pending batch that is still running (a blocking run that gave
    up at batch_timeout and asks the rest live); their answered requests stay readable by ``collect``."""
    cancelled = []
    for batch in pending_batches(state_path, client):
        try:
            found = client.batches.cancel(batch.id)
        except Exception as exc:  # noqa: BLE001
            raise BatchApiError(f"cancelling batch {batch.id} failed: {_why(exc)}") from None
        if found.status in IN_FLIGHT:
            cancelled.append(batch.id)
    return cancelled


# --- collect -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchReply:
    custom_id: str
    batch_id: str
    reply: ChatReply  # text (scrubbed), finish_reason, prompt and completion tokens: as a live reply

    @property
    def usage(self) -> dict:
        return {"prompt_tokens": self.reply.prompt_tokens, "completion_tokens": self.reply.completion_tokens}


@dataclass(frozen=True)
class BatchFailure:
    custom_id: str
    batch_id: str
    reason: str  # FAILURE_REASONS: failed (the request or the batch), expired, cancelled
    message: str  # one line, scrubbed


@dataclass
class Collected:
    replies: dict[str, BatchReply] = field(default_factory=dict)  # by custom_id (cache key)
    failures: dict[str, BatchFailure] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)  # batch ids read whole: ``forget`` them once merged
    pending: list[BatchStatus] = field(default_factory=list)  # batches still running


def collect(client: Any, state_path: Path, statuses: list[BatchStatus] | None = None) -> Collected:
    """The replies and failures of every pending batch that has ended; the ones still running are
    listed in ``pending``. Reads only: the state file keeps its batches until ``forget``."""
    if statuses is None:
        statuses = [retrieve(client, batch) for batch in pending_batches(state_path, client)]
    collected = Collected()
    for status in statuses:
        if not status.finished:
            collected.pending.append(status)
            continue
        _read_batch(client, status, collected)
        collected.finished.append(status.batch.id)
    return collected


def _read_batch(client: Any, status: BatchStatus, into: Collected) -> None:
    batch = status.batch
    ours = set(batch.custom_ids)
    for file_id in (status.output_file_id, status.error_file_id):
        if file_id:
            for line in _download_lines(client, batch.id, file_id):
                custom_id = line.get("custom_id")
                if custom_id not in ours or custom_id in into.replies:
                    continue  # not a request of ours (or answered by another batch already)
                outcome = read_output_line(line, batch.id)
                if isinstance(outcome, BatchReply):
                    into.replies[custom_id] = outcome
                    into.failures.pop(custom_id, None)
                else:
                    into.failures[custom_id] = outcome
    # A request in neither file: the batch ended without running it (failed validation, expired or
    # cancelled before its turn, or a provider that lists only what it ran).
    if status.status == "failed":
        reason, message = "failed", "; ".join(status.errors) or "the batch failed"
        message = f"the batch failed: {message}"
    elif status.status in ("expired", "cancelled"):
        reason, message = status.status, f"the batch {status.status} before this request ran"
    else:
        reason, message = "failed", "the completed batch has no line for this request"
    for custom_id in batch.custom_ids:
        if custom_id not in into.replies and custom_id not in into.failures:
            into.failures[custom_id] = BatchFailure(custom_id, batch.id, reason, short(message))


def _download_lines(client: Any, batch_id: str, file_id: str) -> list[dict]:
    try:
        data = client.files.content(file_id).content
    except Exception as exc:  # noqa: BLE001
        raise BatchApiError(f"downloading file {file_id} of batch {batch_id} failed: {_why(exc)}") from None
    lines = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:  # a torn or foreign line names no request: those requests end up missing
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def read_output_line(line: dict, batch_id: str) -> BatchReply | BatchFailure:
    """One line of an output or error file: the reply, or why there is none."""
    custom_id = str(line.get("custom_id"))
    response, error = line.get("response"), line.get("error")
    if isinstance(response, dict) and response.get("status_code") == 200 and not error:
        try:
            return BatchReply(custom_id, batch_id, read_reply(response.get("body")))
        except ChatCallError as exc:
            return BatchFailure(custom_id, batch_id, "failed", str(exc))
    if isinstance(response, dict) and response.get("status_code") is not None:
        body = response.get("body")
        detail = body.get("error") if isinstance(body, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else body
        return BatchFailure(custom_id, batch_id, "failed", short(f"HTTP {response.get('status_code')}: {message}"))
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return BatchFailure(custom_id, batch_id, UNRUN_CODES.get(code, "failed"), short(f"{code}: {message}"))


def forget(state_path: Path, batch_ids: list[str]) -> None:
    """Drop merged batches from the state file, and their request files."""
    state_path = Path(state_path)
    gone = set(batch_ids)
    with file_lock(lock_file(state_path)):
        batches = read_state(state_path)
        for batch in batches:
            if batch.id in gone:
                state_path.with_name(batch.request_file).unlink(missing_ok=True)
        # The lock file stays: removing it while another process waits on it would let two hold it.
        write_state(state_path, [batch for batch in batches if batch.id not in gone])
