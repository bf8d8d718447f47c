"""The loopback Batch API server against the openai client's own types: every response it gives is
read by the real client over real HTTP and validated strictly by the client's pydantic models, and
its field names compared with the models' fields, so a shape mistake in the server fails here rather
than hiding behind a lenient parse (the client itself builds its models without validating them).

The output and error lines have no model in the client; they are checked against the documented
``BatchRequestOutput`` (``id, custom_id, response {status_code, request_id, body}, error {code,
message}``), and a reply's body against ``openai.types.chat.ChatCompletion``.
"""

from __future__ import annotations

import json

import openai
import pytest
from openai.types import Batch, BatchError, BatchRequestCounts, FileObject
from openai.types.chat import ChatCompletion
from support.batch_server import BatchServer
from support.judge_server import Fault

KEY = "sk-batch-server-test-41c9"
LINE_KEYS = {"id", "custom_id", "response", "error"}
RESPONSE_KEYS = {"status_code", "request_id", "body"}
ERROR_KEYS = {"code", "message"}


def request_file(count: int, model: str = "gpt-4") -> bytes:
    lines = [{"custom_id": f"call-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}],
                       "temperature": 0.0, "max_tokens": 16}} for i in range(count)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def server():
    with BatchServer(lambda body: Fault(status=500) if "question 1" in str(body) else "[[A]]", api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server):
    made = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=5.0)
    yield made
    made.close()


def strict_batch(client, batch_id: str) -> Batch:
    """The batch as the server sends it, validated strictly, with no field the client does not know."""
    raw = client.batches.with_raw_response.retrieve(batch_id)
    fields = json.loads(raw.text)
    assert set(fields) <= set(Batch.model_fields), set(fields) - set(Batch.model_fields)
    batch = Batch.model_validate_json(raw.text, strict=True)
    if fields.get("request_counts") is not None:
        assert set(fields["request_counts"]) == set(BatchRequestCounts.model_fields)
    assert raw.parse() == batch  # the client's own reading agrees
    return batch


def strict_file(raw) -> FileObject:
    fields = json.loads(raw.text)
    assert set(fields) <= set(FileObject.model_fields), set(fields) - set(FileObject.model_fields)
    return FileObject.model_validate_json(raw.text, strict=True)


def created(client, data: bytes, metadata: dict | None = None) -> Batch:
    uploaded = strict_file(client.files.with_raw_response.create(file=("in.jsonl", data, "application/jsonl"),
                                                                 purpose="batch"))
    raw = client.batches.with_raw_response.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                  completion_window="24h", metadata=metadata)
    return Batch.model_validate_json(raw.text, strict=True)


def poll_until(client, batch_id: str, final: str) -> list[str]:
    seen = []
    for _ in range(20):
        seen.append(strict_batch(client, batch_id).status)
        if seen[-1] == final:
            return seen
    raise AssertionError(f"never reached {final}: {seen}")


def test_the_batch_list_is_a_page_of_batches_newest_first(server, client):
    from openai.pagination import SyncCursorPage

    ids = [created(client, request_file(1), metadata={"n": str(i)}).id for i in range(2)]
    raw = client.batches.with_raw_response.list(limit=100)
    fields = json.loads(raw.text)
    assert set(fields) <= set(SyncCursorPage.model_fields) | {"object", "first_id", "last_id"}
    assert [Batch.model_validate(entry, strict=True).id for entry in fields["data"]] == ids[::-1]
    assert [batch.id for batch in client.batches.list(limit=100)] == ids[::-1] and server.lists == 2


def test_an_upload_is_a_file_object_holding_the_bytes_sent(server, client):
    data = request_file(3)
    uploaded = strict_file(client.files.with_raw_response.create(file=("in.jsonl", data, "application/jsonl"),
                                                                 purpose="batch"))
    assert (uploaded.purpose, uploaded.bytes, uploaded.filename, uploaded.object) == ("batch", len(data), "in.jsonl",
                                                                                        "file")
    assert strict_file(client.files.with_raw_response.retrieve(uploaded.id)) == uploaded
    assert client.files.content(uploaded.id).content == data
    assert [u.data for u in server.uploads] == [data]


def test_a_batch_walks_through_its_statuses_with_counts_and_files(server, client):
    server.per_poll, server.validating_polls, server.finalizing_polls = 2, 1, 1
    batch = created(client, request_file(5), metadata={"run": "nightly"})
    assert (batch.status, batch.endpoint, batch.completion_window, batch.metadata) == (
        "validating", "/v1/chat/completions", "24h", {"run": "nightly"})
    seen = poll_until(client, batch.id, "completed")
    assert seen == ["validating", "in_progress", "in_progress", "in_progress", "finalizing", "finalizing",
                    "completed"]
    done = strict_batch(client, batch.id)
    assert done.request_counts == BatchRequestCounts(completed=4, failed=1, total=5)
    assert done.completed_at is not None and done.in_progress_at is not None and done.usage.total_tokens > 0
    assert strict_file(client.files.with_raw_response.retrieve(done.output_file_id)).purpose == "batch_output"
    assert len(server.batches_created) == 1 and server.retrieves == len(seen) + 1


def test_output_lines_carry_chat_completions_and_error_lines_the_failed_request(server, client):
    batch = created(client, request_file(3))
    poll_until(client, batch.id, "completed")
    done = strict_batch(client, batch.id)
    outputs = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [line["custom_id"] for line in outputs] == ["call-0", "call-2"]
    for line in outputs:
        assert set(line) == LINE_KEYS and set(line["response"]) == RESPONSE_KEYS and line["error"] is None
        assert line["response"]["status_code"] == 200
        completion = ChatCompletion.model_validate_json(json.dumps(line["response"]["body"]), strict=True)
        assert completion.choices[0].message.content == "[[A]]" and completion.choices[0].finish_reason == "stop"
    (failed,) = errors
    assert set(failed) == LINE_KEYS and failed["custom_id"] == "call-1" and failed["response"]["status_code"] == 500
    assert set(failed["response"]["body"]["error"]) >= {"message", "type", "code"}


def test_an_expired_batch_keeps_what_it_answered_and_lists_the_rest_as_expired(server, client):
    server.expire_after = 1
    batch = created(client, request_file(3))
    poll_until(client, batch.id, "expired")
    done = strict_batch(client, batch.id)
    assert done.expired_at is not None
    outputs = client.files.content(done.output_file_id).text.splitlines()
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [json.loads(line)["custom_id"] for line in outputs] == ["call-0"]
    assert [(e["custom_id"], e["response"], e["error"]["code"]) for e in errors] == [
        ("call-1", None, "batch_expired"), ("call-2", None, "batch_expired")]
    assert all(set(e) == LINE_KEYS and set(e["error"]) == ERROR_KEYS for e in errors)


def test_a_cancelled_batch_goes_through_cancelling(server, client):
    server.per_poll = 1
    batch = created(client, request_file(3))
    poll_until(client, batch.id, "in_progress")
    strict_batch(client, batch.id)  # one request answered
    raw = client.batches.with_raw_response.cancel(batch.id)
    assert Batch.model_validate_json(raw.text, strict=True).status == "cancelling"
    poll_until(client, batch.id, "cancelled")
    done = strict_batch(client, batch.id)
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["error"]["code"] for e in errors if e["response"] is None] == ["batch_cancelled", "batch_cancelled"]
    assert done.cancelled_at is not None and server.cancels == 1


def test_an_invalid_input_file_fails_the_batch_with_errors_by_line(server, client):
    lines = request_file(2).decode().splitlines()
    bad = json.loads(lines[1])
    bad["extra"] = 1
    batch = created(client, (lines[0] + "\n" + json.dumps(bad) + "\n").encode())
    poll_until(client, batch.id, "failed")
    raw = json.loads(client.batches.with_raw_response.retrieve(batch.id).text)
    (error,) = raw["errors"]["data"]
    assert set(error) == set(BatchError.model_fields) and error["line"] == 2
    assert BatchError.model_validate(error, strict=True).code == "invalid_request"
    assert raw["output_file_id"] is None and raw["error_file_id"] is None


def test_wrong_key_and_unknown_ids_are_the_clients_own_errors(server, client):
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-nope")
    wrong = openai.OpenAI(api_key="sk-wrong", base_url=server.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.files.create(file=("in.jsonl", request_file(1)), purpose="batch")
    wrong.close()
    assert server.uploads == [] and f"Bearer {KEY}" not in server.auth_headers[-1]


def test_a_refused_route_answers_its_scripted_status(server, client):
    server.refuse["batches.create"] = Fault(status=503, message="overloaded")
    uploaded = client.files.create(file=("in.jsonl", request_file(1)), purpose="batch")
    with pytest.raises(openai.InternalServerError, match="overloaded"):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert server.batches_created == []
