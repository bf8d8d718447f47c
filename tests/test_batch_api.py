"""pytest_arena.judging.batch_api: judge calls as one Batch API job, through the real ``openai`` client
over real HTTP to the loopback Batch API server (tests/support/batch_server.py).

Covered: a batch that completes (with progress over several polls), one with failed requests, one
that expires, one cancelled, one that fails validation; a submit killed by SIGKILL and a collect from
the state file by a fresh process' client; a resubmit while pending that pays nothing (the server
counts uploads and batches); two processes submitting at once (as ``-n 2`` workers) paying once; and
no key in any file written, with the server's echoes of it scrubbed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.batch_server import BatchServer
from support.judge_server import Fault, JudgeServer, prompt_text

from pytest_arena.config.specs import JudgeSpec
from pytest_arena.errors import ArenaDataError
from pytest_arena.judging import batch_api
from pytest_arena.judging.batch_api import (BatchApiError, BatchRequest, cancel, collect, forget, read_state,
                                            request_chunks, state_file, submit, wait)
from pytest_arena.judging.openai_judge import OpenAIJudge
from pytest_arena.openai_chat import make_client
from pytest_arena.redact import MASK
from pytest_arena.record_files import cache_key

KEY_ENV = "ARENA_TEST_BATCH_KEY"
KEY = "sk-batch-7f3e91c2d4b5a6"
SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
TOPICS = ["alpha", "bravo", "charlie", "delta", "echo"]


def verdict(body: dict) -> str:
    """The scripted judge: its verdict follows from the prompt alone, so each reply can be checked."""
    text = prompt_text(body)
    return "[[A]]" if "alpha" in text or "charlie" in text else "[[B]]"


def judge_requests(topics=TOPICS, model: str = "gpt-4") -> list[BatchRequest]:
    """One request per topic, keyed as the runner keys a call (record_files.cache_key of what the reply depends on)."""
    requests = []
    for topic in topics:
        prompt = f"[Question]\nTell me about {topic}.\n[Answer of assistant A]\n...\n[Answer of assistant B]\n..."
        key = cache_key(kind="review", judge=model, template="pair-v2", prompt=prompt, system_prompt=SYSTEM,
                        temperature=0.0, max_tokens=64)
        requests.append(BatchRequest.for_judge(key, model, SYSTEM, prompt, 0.0, 64))
    return requests


def expected_verdicts(requests: list[BatchRequest]) -> dict[str, str]:
    return {r.custom_id: verdict(r.line()["body"]) for r in requests}


@pytest.fixture
def server():
    with BatchServer(verdict, api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    made = make_client(KEY_ENV, server.base_url, max_retries=0, timeout=10.0)
    yield made
    made.close()


@pytest.fixture
def state(tmp_path) -> Path:
    return state_file(tmp_path / "reviews" / "review_gpt4.jsonl")


def run_to_the_end(client, state, progress=None):
    return wait(client, state, on_progress=progress, poll_s=0.0, timeout_s=None, sleep=lambda s: None)


def test_the_request_is_the_one_the_live_judge_sends(monkeypatch):
    """custom_id aside, a batch line's body is byte for byte what OpenAIJudge posts for the same call."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with JudgeServer("[[A]]") as live:
        spec = JudgeSpec(ref="openai", model="gpt-4o", temperature=0.3, max_tokens=77, base_url=live.base_url,
                         api_key_env=KEY_ENV, max_retries=0, timeout=5.0)
        judge = OpenAIJudge(spec)
        judge.complete(SYSTEM, "Which answer is better?")
        judge.complete("", "No system prompt this time.")
        judge.close()
        sent = live.requests
    lines = [BatchRequest.for_judge("k1", "gpt-4o", SYSTEM, "Which answer is better?", 0.3, 77).line(),
             BatchRequest.for_judge("k2", "gpt-4o", "", "No system prompt this time.", 0.3, 77).line()]
    assert [line["body"] for line in lines] == sent
    assert {(line["method"], line["url"]) for line in lines} == {("POST", "/v1/chat/completions")}


def test_a_batch_that_completes_gives_every_reply_by_cache_key(server, client, state):
    server.per_poll = 2
    requests = judge_requests()
    done = submit(client, state, requests)
    assert (len(done.created), done.sent, done.already_pending) == (1, 5, 0)
    assert len(server.uploads) == 1 and len(server.batches_created) == 1
    created = server.batches_created[0]
    assert (created["endpoint"], created["completion_window"]) == ("/v1/chat/completions", "24h")
    assert created["metadata"]["requests"] == "5"
    progress = []
    statuses = run_to_the_end(client, state, progress.append)
    assert [s.status for s in statuses] == ["completed"]
    assert [p.done for p in progress] == sorted(p.done for p in progress) and progress[-1].done == 5
    assert len({p.done for p in progress}) >= 3  # seen moving over several polls, not all at once
    assert progress[-1].line().startswith("judge batch: 5 of 5 requests done, completed, ")
    collected = collect(client, state, statuses)
    assert {key: r.reply.text for key, r in collected.replies.items()} == expected_verdicts(requests)
    assert collected.failures == {} and collected.pending == []
    reply = collected.replies[requests[0].custom_id]
    assert reply.batch_id == done.created[0] and reply.reply.finish_reason == "stop"
    assert reply.usage["prompt_tokens"] > 0 and reply.usage["completion_tokens"] == 1
    # The server answered exactly the requests sent, once each.
    assert sorted(json.dumps(b, sort_keys=True) for b in server.answered_bodies) == sorted(
        json.dumps(r.line()["body"], sort_keys=True) for r in requests)
    request_file = state.with_name(read_state(state)[0].request_file)
    assert request_file.read_bytes() == server.uploads[0].data
    forget(state, collected.finished)
    assert not state.exists() and not request_file.exists()


def test_failed_requests_are_failures_with_their_reason_and_the_rest_replies(server, client, state):
    requests = judge_requests()
    failing = {requests[1].custom_id, requests[3].custom_id}

    def reply(body):
        text = prompt_text(body)
        if "bravo" in text:
            return Fault(status=500, message="The model produced invalid content.")
        if "delta" in text:
            return Fault(status=429, message="Rate limit reached for requests")
        if "echo" in text:
            return Fault(kind="finish", finish_reason="length", content="[[B")
        return verdict(body)

    server.reply = reply
    submit(client, state, requests)
    collected = collect(client, state, run_to_the_end(client, state))
    assert set(collected.failures) == failing
    assert {f.reason for f in collected.failures.values()} == {"failed"}
    assert collected.failures[requests[1].custom_id].message == "HTTP 500: The model produced invalid content."
    assert collected.failures[requests[3].custom_id].message.startswith("HTTP 429: Rate limit")
    assert set(collected.replies) == {r.custom_id for r in requests} - failing
    cut = collected.replies[requests[4].custom_id].reply
    assert (cut.text, cut.finish_reason) == ("[[B", "length")  # a reply, cut short: the runner's to judge


def test_an_expired_batch_gives_what_it_answered_and_the_rest_as_expired(server, client, state):
    server.expire_after = 2
    requests = judge_requests()
    submit(client, state, requests)
    statuses = run_to_the_end(client, state)
    assert [s.status for s in statuses] == ["expired"]
    collected = collect(client, state, statuses)
    answered = [r.custom_id for r in requests[:2]]
    assert sorted(collected.replies) == sorted(answered)
    assert {key: f.reason for key, f in collected.failures.items()} == {r.custom_id: "expired" for r in requests[2:]}
    assert "batch_expired" in collected.failures[requests[4].custom_id].message


def test_a_cancelled_batch_gives_its_answered_requests_and_the_rest_as_cancelled(server, client, state):
    server.per_poll = 1
    requests = judge_requests()
    submit(client, state, requests)
    stopped = wait(client, state, poll_s=0.0, timeout_s=2.0, sleep=lambda s: None,
                   clock=iter([0.0, 1.0, 2.0]).__next__)  # two polls: in_progress, then 1 answered
    assert [s.status for s in stopped] == ["in_progress"] and stopped[0].done == 1
    assert cancel(client, state) == [stopped[0].batch.id]
    collected = collect(client, state, run_to_the_end(client, state))
    assert len(collected.replies) == 1
    assert sorted(f.reason for f in collected.failures.values()) == ["cancelled"] * 4


def test_a_batch_that_fails_validation_fails_every_request_with_the_batchs_reason(server, client, state):
    server.fail_validation = "The input file is too large."
    requests = judge_requests()
    submit(client, state, requests)
    collected = collect(client, state, run_to_the_end(client, state))
    assert collected.replies == {} and set(collected.failures) == {r.custom_id for r in requests}
    (message,) = {f.message for f in collected.failures.values()}
    assert message == "the batch failed: invalid_file: The input file is too large."


def test_a_batch_still_running_at_timeout_is_pending_and_stays_recorded(server, client, state):
    server.validating_polls = 100
    submit(client, state, judge_requests())
    ticks = iter(float(t) for t in range(10))
    statuses = wait(client, state, poll_s=0.0, timeout_s=3.0, sleep=lambda s: None, clock=lambda: next(ticks))
    assert [s.status for s in statuses] == ["validating"] and server.retrieves == 3  # at 1, 2 and 3 s
    collected = collect(client, state)
    assert collected.replies == {} and collected.failures == {} and collected.finished == []
    assert [p.batch.id for p in collected.pending] == [b.id for b in read_state(state)]


def test_a_resubmit_while_pending_pays_nothing_and_only_new_calls_are_sent(server, client, state):
    server.validating_polls = 100
    requests = judge_requests()
    first = submit(client, state, requests[:3])
    again = submit(client, state, requests[:3])
    assert (again.created, again.sent, again.already_pending) == ((), 0, 3)
    assert len(server.uploads) == 1 and len(server.batches_created) == 1
    more = submit(client, state, requests)  # two calls more than before: only those are paid
    assert (more.sent, more.already_pending) == (2, 3) and len(server.batches_created) == 2
    second_upload = [json.loads(line)["custom_id"] for line in server.uploads[1].data.splitlines()]
    assert second_upload == [r.custom_id for r in requests[3:]]
    assert [b.id for b in read_state(state)] == [*first.created, *more.created]


def test_many_calls_go_into_several_batches_all_collected(server, client, state):
    requests = judge_requests()
    assert [len(chunk) for chunk in request_chunks(requests, max_requests=2)] == [2, 2, 1]
    line_bytes = len((json.dumps(requests[0].line()) + "\n").encode())
    assert [len(chunk) for chunk in request_chunks(requests, max_bytes=2 * line_bytes + 10)] == [2, 2, 1]
    done = submit(client, state, requests, max_requests=2)
    assert len(done.created) == 3 and len(server.batches_created) == 3
    collected = collect(client, state, run_to_the_end(client, state))
    assert {key: r.reply.text for key, r in collected.replies.items()} == expected_verdicts(requests)
    assert sorted(collected.finished) == sorted(done.created)


CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from pytest_arena.judging.batch_api import BatchRequest, submit
    from pytest_arena.openai_chat import make_client

    state, requests_file, url, then = sys.argv[1:5]
    requests = [BatchRequest(r["custom_id"], r["body"]["model"], tuple(r["body"]["messages"]),
                             r["body"]["temperature"], r["body"]["max_tokens"])
                for r in json.loads(Path(requests_file).read_text())]
    done = submit(make_client("{key_env}", url, 0, 10.0), Path(state), requests)
    print(json.dumps({{"created": done.created, "sent": done.sent, "already": done.already_pending}}), flush=True)
    if then == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
""").format(key_env=KEY_ENV)


def start_submitter(tmp_path, server, state, requests, then: str) -> subprocess.Popen:
    requests_file = tmp_path / "requests.json"
    requests_file.write_text(json.dumps([r.line() for r in requests]))
    env = {**os.environ, KEY_ENV: KEY}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(state), str(requests_file), server.base_url, then],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_submit_killed_by_sigkill_is_collected_later_from_the_state_file(server, client, state, tmp_path):
    requests = judge_requests()
    child = start_submitter(tmp_path, server, state, requests, "kill")
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err
    assert json.loads(out)["sent"] == 5
    # A later process: nothing of the first one but the state file beside the review file.
    collected = collect(client, state, run_to_the_end(client, state))
    assert {key: r.reply.text for key, r in collected.replies.items()} == expected_verdicts(requests)
    assert len(server.batches_created) == 1 and len(server.uploads) == 1


def test_a_batch_whose_record_was_never_written_is_found_by_its_digest_and_not_paid_again(server, client, state):
    """A process killed between batches.create and the state write: the provider lists the batch (its
    metadata carries the input's digest), so the next submit of the same calls adopts it."""
    first = submit(client, state, judge_requests())
    state.unlink()  # as if the process had died before recording it
    again = submit(client, state, judge_requests())
    assert again.created == first.created and len(server.batches_created) == 1 and len(server.uploads) == 1
    assert server.lists == 2 and [b.id for b in read_state(state)] == list(first.created)
    assert set(collect(client, state, run_to_the_end(client, state)).replies) == {r.custom_id for r in judge_requests()}
    state.unlink()  # ended: a batch no longer running is never adopted, the calls are sent again
    assert submit(client, state, judge_requests()).created != first.created and len(server.batches_created) == 2


def test_two_processes_submitting_the_same_calls_at_once_pay_once(server, state, tmp_path):
    server.validating_polls = 100
    requests = judge_requests()
    children = [start_submitter(tmp_path, server, state, requests, "stay") for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert sorted((r["sent"], r["already"]) for r in results) == [(0, 5), (5, 0)]
    assert len(server.batches_created) == 1 and len(server.uploads) == 1


def test_the_key_is_in_no_file_written_and_echoes_of_it_are_scrubbed(server, client, state, tmp_path):
    requests = judge_requests()
    server.reply = lambda body: (Fault(status=500, echo_headers=True, message="upstream failed")
                                 if "alpha" in prompt_text(body) else f"{verdict(body)} (you sent {KEY})")
    submit(client, state, requests)
    collected = collect(client, state, run_to_the_end(client, state))
    failure = collected.failures[requests[0].custom_id]
    assert "upstream failed" in failure.message and "Bearer " + MASK in failure.message
    assert all(KEY not in r.reply.text and MASK in r.reply.text for r in collected.replies.values())
    assert KEY not in server.uploads[0].data.decode()
    server.refuse["batches.create"] = Fault(status=400, echo_headers=True, message="bad batch")
    with pytest.raises(BatchApiError) as refused:
        submit(client, state, judge_requests(["foxtrot"]))
    assert "bad batch" in str(refused.value) and KEY not in str(refused.value)
    written = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert any(path.suffix == ".jsonl" for path in written) and state in written
    assert [path for path, data in written.items() if KEY.encode() in data] == []


def test_batches_made_through_another_url_are_not_collected_by_this_client(server, client, state, monkeypatch):
    server.validating_polls = 100
    submit(client, state, judge_requests())
    with BatchServer(verdict, api_key=KEY) as other:
        elsewhere = make_client(KEY_ENV, other.base_url, max_retries=0, timeout=10.0)
        assert collect(elsewhere, state).pending == [] and other.retrieves == 0
        again = submit(elsewhere, state, judge_requests())
        elsewhere.close()
    assert again.sent == 5 and len(read_state(state)) == 2


def test_a_damaged_state_file_is_one_error_naming_it(state):
    state.parent.mkdir(parents=True)
    state.write_text('{"format": 1, "batches": [{"id": "batch_1"}]}')
    with pytest.raises(ArenaDataError) as damaged:
        read_state(state)
    assert str(state) in str(damaged.value) and "delete it" in str(damaged.value)
    state.write_text("not json")
    with pytest.raises(ArenaDataError):
        read_state(state)


def test_the_module_does_not_import_openai_or_pytest():
    source = Path(batch_api.__file__).read_text()
    assert "import openai" not in source and "import pytest" not in source
