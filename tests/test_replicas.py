"""Replicas of one model behind several base_urls (pytest_arena/replicas.py): the real openai client over
real HTTP to loopback servers, one of them failing (500s, or a closed port)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pandas as pd  # noqa: F401 - two in-process arenas in one module (COMMON.md)
import pytest
from support.arena_project import fixed_answers_config
from support.judge_server import Fault, JudgeServer, candidate_answer
from test_api_candidates import judge_and_candidates, served_entry

from pytest_arena.config import ApiEndpoint, ModelSpec
from pytest_arena.generation.answers import ModelAnswers
from pytest_arena.generation.fingerprint import DigestMemo
from pytest_arena.openai_chat import ChatCallError, chat
from pytest_arena.questions import Question
from pytest_arena.replicas import ReplicaSet
from pytest_arena.server_url import same_server_form, same_servers

KEY_ENV = "ARENA_REPLICA_TEST_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-replica-test")


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def replica_set(urls, max_retries=1, **options) -> ReplicaSet:
    return ReplicaSet.of_threads(urls, KEY_ENV, max_retries=max_retries, timeout=5.0, **options)


def ask(replicas: ReplicaSet, text: str = "Hi?") -> str:
    return replicas.call(lambda client: chat(client, "m", [{"role": "user", "content": text}], 0.0, 16)).text


def test_concurrent_calls_are_spread_over_both_replicas():
    with JudgeServer("one", latency=0.05) as first, JudgeServer("two", latency=0.05) as second:
        replicas = replica_set([first.base_url, second.base_url])
        try:
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(lambda i: ask(replicas, f"q{i}"), range(24)))
        finally:
            replicas.close()

    assert sorted(set(replies)) == ["one", "two"]
    assert first.request_count + second.request_count == 24  # each call answered once, by one replica
    assert first.request_count >= 6 and second.request_count >= 6


def test_one_caller_alternates_between_idle_replicas():
    with JudgeServer("one") as first, JudgeServer("two") as second:
        replicas = replica_set([first.base_url, second.base_url])
        try:
            replies = [ask(replicas) for _ in range(6)]
        finally:
            replicas.close()

    assert replies == ["one", "two"] * 3


def test_a_replica_answering_500_is_set_aside_and_the_other_carries_every_call():
    with JudgeServer(lambda body: Fault(status=500, message="engine dead")) as broken, JudgeServer("fine") as healthy:
        replicas = replica_set([broken.base_url, healthy.base_url], max_retries=1)
        try:
            replies = [ask(replicas, f"q{i}") for i in range(10)]
        finally:
            replicas.close()

    assert replies == ["fine"] * 10
    assert healthy.request_count == 10
    # Only the first call reached the broken replica (the client's own try and its one retry); the
    # nine after it went straight to the healthy one while the broken one cooled down.
    assert broken.request_count == 2
    assert [r.failures for r in replicas.replicas] == [1, 0]


def test_a_closed_port_is_set_aside_and_the_arena_judges_through_the_other(arena_project):
    # Judge replicas: a closed port first, the loopback judge second; candidates: answers from files.
    config = fixed_answers_config(arena_project, 3, {"long": 9, "short": 2},
                                  base_url=[closed_port_url(), arena_project.server.base_url])
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=3)
    assert arena_project.server.request_count == 3
    assert {r["win"] for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")} == {"model_a"}


def test_all_replicas_down_fails_the_call_as_one_url_would():
    with JudgeServer(lambda body: Fault(status=503)) as broken:
        replicas = replica_set([broken.base_url, closed_port_url()], max_retries=0)
        try:
            with pytest.raises(ChatCallError) as failed:
                ask(replicas)
            with pytest.raises(ChatCallError):
                ask(replicas)  # both set aside: the one due back first is still tried, not skipped unasked
        finally:
            replicas.close()

    assert failed.value.server_down
    assert broken.request_count == 2
    assert [r.sent for r in replicas.replicas] == [2, 1]


def test_a_bad_request_is_not_a_replica_failure_and_is_not_sent_elsewhere():
    with JudgeServer(lambda body: Fault(status=400, message="max_tokens too large")) as refusing, \
            JudgeServer("fine") as other:
        replicas = replica_set([refusing.base_url, other.base_url], max_retries=0)
        try:
            with pytest.raises(ChatCallError) as failed:
                ask(replicas)
        finally:
            replicas.close()

    assert not failed.value.server_down
    assert other.request_count == 0  # its twin would refuse the same request
    assert replicas.replicas[0].failures == 0


def test_a_set_aside_replica_is_tried_again_after_its_cooldown():
    now = [0.0]
    with JudgeServer(lambda body: Fault(status=502)) as flaky, JudgeServer("fine") as healthy:
        replicas = replica_set([flaky.base_url, healthy.base_url], max_retries=0, cooldown_s=30.0,
                               clock=lambda: now[0])
        try:
            ask(replicas)
            now[0] = 29.0
            ask(replicas)
            assert flaky.request_count == 1
            flaky.reply = lambda body: "back"
            now[0] = 31.0
            reply = ask(replicas)  # the least used replica again, now that its cooldown is over
        finally:
            replicas.close()

    assert reply == "back"
    assert flaky.request_count == 2


def test_api_candidate_replicas_share_the_work_and_the_cache_key_ignores_who_answered(arena_project):
    with JudgeServer(candidate_answer()) as replica:
        # The project's server plays the judge and the candidate; a second server is the candidate's twin.
        server = arena_project.server
        server.reply = judge_and_candidates(**{"served-model": candidate_answer()})
        config = arena_project.config(questions=6, models=("tiny-a",))
        config["answers_gen"]["served"] = served_entry([server.base_url, replica.base_url], "served-model")
        arena_project.write(config)

        first = arena_project.run()
        second = arena_project.run()

    first.assert_outcomes(passed=6)
    second.assert_outcomes(passed=6)
    asked_here, asked_there = len(server.requests_for("served-model")), replica.request_count
    assert asked_here + asked_there == 6 and asked_here > 0 and asked_there > 0
    records = arena_project.read_jsonl("answers/answer_served-model.jsonl")
    questions = {q["question_id"]: q for q in arena_project.read_jsonl("questions.jsonl")}
    for record in records:
        # The key is the one a single URL (the first) gives: which replica answered does not enter it.
        spec = ModelSpec(name="served", path="", output_file=arena_project.root / "x.jsonl",
                         generation_config={"temperature": 0.0, "max_new_tokens": 32},
                         api=ApiEndpoint(base_url=server.base_url, model="served-model"))
        question = Question(record["question_id"], (questions[record["question_id"]]["text"],))
        assert record["metadata"]["cache_key"] == ModelAnswers("served", spec.output_file, spec, 0, DigestMemo()).key(question)
        assert record["metadata"]["api"] == {"base_url": server.base_url, "model": "served-model"}


# -------------------------------------------------------------------------------------------------
# Equivalent URLs are one server (pytest_arena/server_url.py): the config refuses such a list (the
# tests/bad_inputs/replicas-* cases), and so does a replica set built without the config.


@pytest.mark.parametrize("first, second", [
    ("http://gpu-1:8000/v1", "http://gpu-1:8000/v1/"),  # a trailing slash
    ("HTTP://GPU-1:8000/v1", "http://gpu-1:8000/v1"),  # scheme and host case
    ("http://gpu-1:80/v1", "http://gpu-1/v1"),  # http's default port
    ("https://judge.example.com:443/v1", "https://Judge.Example.com/v1/"),  # https's, with case and a slash
    ("http://gpu-1", "http://gpu-1/"),  # an empty path is "/"
    ("http://[::1]:80/v1", "http://[::1]/v1"),  # an IPv6 host keeps its brackets
    (" http://gpu-1/v1", "http://gpu-1/v1"),  # white space around
])
def test_equivalent_urls_name_the_same_server(first, second):
    assert same_server_form(first) == same_server_form(second)
    assert same_servers([first, "http://other:8000/v1", second]) == (0, 2)


@pytest.mark.parametrize("first, second", [
    ("http://gpu-1:8000/v1", "http://gpu-1:8001/v1"),  # another port
    ("http://gpu-1/v1", "https://gpu-1/v1"),  # another scheme (and default port: 80 is not 443)
    ("http://gpu-1:443/v1", "https://gpu-1:80/v1"),
    ("http://gpu-1/V1", "http://gpu-1/v1"),  # a path's case may matter to the server
    ("http://gpu-1/v1//", "http://gpu-1/v1"),  # two slashes are another path (the client keeps them)
    ("http://[::1]/v1", "http://[::2]/v1"),
])
def test_different_servers_stay_apart(first, second):
    assert same_server_form(first) != same_server_form(second)
    assert same_servers([first, second]) is None


def test_a_port_that_is_not_a_number_is_a_value_error():
    for url in ("http://gpu-1:80O0/v1", "http://gpu-1:70000/v1"):
        with pytest.raises(ValueError):
            same_server_form(url)


def test_a_replica_set_refuses_one_server_twice():
    with JudgeServer("one") as server:
        with pytest.raises(ValueError, match="replicas 1 and 2 name the same server"):
            replica_set([server.base_url, server.base_url + "/"])
        replicas = replica_set([server.base_url, closed_port_url()])  # two servers: fine
        try:
            assert ask(replicas) == "one"
        finally:
            replicas.close()
