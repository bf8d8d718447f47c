"""pytest_arena.openai_chat: one chat completion through the real ``openai`` client over real HTTP to the
loopback server; every failure a ChatCallError with a one-line reason."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_arena.judging.openai_judge import JudgeCallError, JudgeReply
from pytest_arena.openai_chat import ChatCallError, ChatReply, ThreadClients, read_reply, chat, make_client
from support.judge_server import Fault, JudgeServer, constant

KEY_ENV = "ARENA_TEST_CHAT_KEY"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def server():
    with JudgeServer("Hello there. [[A]]") as running:
        yield running


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-chat-test")
    made = make_client(KEY_ENV, server.base_url, max_retries=0, timeout=5.0)
    yield made
    made.close()


def test_one_request_carries_the_settings_and_the_reply_is_read(server, client):
    reply = chat(client, "gpt-4", HELLO, 0.2, 32, extra_body={"top_p": 0.9})
    assert reply == ChatReply("Hello there. [[A]]", "stop", reply.prompt_tokens, reply.completion_tokens)
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    (body,) = server.requests
    assert body == {"model": "gpt-4", "messages": HELLO, "temperature": 0.2, "max_tokens": 32, "top_p": 0.9}
    assert server.auth_headers == ["Bearer sk-chat-test"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault(kind="garbage"), "JSONDecodeError: "),
        (Fault(kind="empty_choices"), "the reply has no choices"),
        (Fault(kind="reset"), "APIConnectionError: "),
        (Fault(status=400, message="bad\nrequest"), "BadRequestError: "),
        (Fault(kind="hang", seconds=2), "APITimeoutError: "),
    ],
    ids=["not-json", "empty-choices", "reset", "bad-request", "timeout"],
)
def test_a_failure_is_a_one_line_chat_call_error(server, monkeypatch, fault, reason):
    server.reply = constant(fault)
    monkeypatch.setenv(KEY_ENV, "sk-chat-test")
    client = make_client(KEY_ENV, server.base_url, max_retries=0, timeout=0.5)
    with pytest.raises(ChatCallError) as info:
        chat(client, "gpt-4", HELLO, 0.0, 8)
    client.close()
    assert str(info.value).startswith(reason) and "\n" not in str(info.value)


def test_the_clients_own_retries_answer_a_rate_limit(server, monkeypatch):
    replies = iter([Fault(status=429, retry_after=0.05), "[[B]]"])
    server.reply = lambda body: next(replies)
    monkeypatch.setenv(KEY_ENV, "sk-chat-test")
    client = make_client(KEY_ENV, server.base_url, max_retries=1, timeout=5.0)
    assert chat(client, "gpt-4", HELLO, 0.0, 8).text == "[[B]]"
    client.close()
    assert server.request_count == 2


def test_a_missing_key_fails_before_any_request(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ChatCallError, match=f"no API key in the environment variable {KEY_ENV}"):
        make_client(KEY_ENV, server.base_url, max_retries=0, timeout=1.0)
    assert server.request_count == 0


@pytest.mark.parametrize(
    ("decoded", "reason"),
    [
        ("<html>a proxy's error page</html>", "the reply is not a JSON object: <html>"),
        ({"choices": [{"finish_reason": "stop"}]}, "the reply's first choice has no message"),
        ({"choices": [{"message": None}]}, "the reply's first choice has no message"),
        ({"choices": [{"message": {"content": [{"type": "text"}]}}]}, "not text but list"),
        ({"choices": "none"}, "the reply has no choices"),
    ],
    ids=["text-body", "no-message", "null-message", "content-parts", "choices-not-a-list"],
)
def test_a_reply_of_the_wrong_shape_is_refused(decoded, reason):
    # What the client hands back with cast_to=object: the decoded JSON, or the body as text when the
    # content type is not JSON; no model has checked its shape.
    with pytest.raises(ChatCallError, match=reason.replace("(", r"\(")):
        read_reply(decoded)


def test_missing_usage_and_null_content_read_as_zero_and_empty():
    reply = read_reply({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]})
    assert reply == ChatReply("", "content_filter", 0, 0)


def test_the_judge_names_are_the_same_classes():
    # Local judges raise JudgeCallError and the runner catches it: chat()'s errors must be caught too.
    assert JudgeCallError is ChatCallError and JudgeReply is ChatReply


def test_each_thread_gets_a_client_of_its_own_with_the_same_settings(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-chat-test")
    clients = ThreadClients(KEY_ENV, server.base_url, max_retries=1, timeout=5.0)
    with ThreadPoolExecutor(4) as pool:
        used = list(pool.map(lambda i: (clients.get(), chat(clients.get(), "gpt-4", HELLO, 0.0, 8).text), range(16)))
    made = {id(client): client for client, _ in used}
    assert 2 <= len(made) <= 4 and all(text == "Hello there. [[A]]" for _, text in used)
    for client in made.values():
        assert (client.api_key, str(client.base_url), client.max_retries, client.timeout) == \
            ("sk-chat-test", server.base_url.rstrip("/") + "/", 1, 5.0)
    assert set(server.auth_headers) == {"Bearer sk-chat-test"}
    clients.close()
    with pytest.raises(ChatCallError, match="closed"):
        ThreadPoolExecutor(1).submit(clients.get).result()
