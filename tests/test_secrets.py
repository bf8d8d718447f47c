"""No secret is written anywhere, and ``timeout`` is the deadline of an attempt (issue 13, §1 and §4).

Servers and proxies echo requests, the ``Authorization`` header included, into error bodies and replies:
the key must still reach neither the terminal, nor the JUnit XML, nor a review, answer, report or step
summary file. A ``base_url`` that carries ``user:password`` or a query is refused before anything runs,
without being quoted. A server that drips its reply is cut at ``timeout``, not kept alive byte by byte.
All of it with the real openai client over real HTTP to the loopback server.
"""

from __future__ import annotations

import json
import threading

import pytest
from support.arena_project import FAKE_KEY, OWN_MARKERS, fixed_answers_config
from support.judge_server import Fault, JudgeServer, by_model, candidate_answer, prefer_longer, prompt_text

from pytest_arena.openai_chat import ChatCallError, ThreadClients, chat, make_client, short
from pytest_arena.redact import MASK, remember_key, remember_url, scrub, url_secret_problem

SERVED_KEY = "sk-served-9b2e7d41c0aa"
PASSWORD = "pw-hunter2-Zq81"
QUERY_TOKEN = "tok-Qx7f3a90"


def every_file_text(root) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def echoing_judge(body: dict):
    """Question 1: a 401 quoting the request headers. Question 2: a verdict quoting the key. Else a verdict."""
    prompt = prompt_text(body)
    if "part 1." in prompt:
        return Fault(status=401, echo_headers=True, message="invalid key")
    if "part 2." in prompt:
        return f"[[A]] (by the way, you sent {FAKE_KEY})"
    return prefer_longer(**OWN_MARKERS)(body)


def echoing_candidate(body: dict):
    """The served candidate: a 500 quoting the request headers for question 3, else an answer."""
    if "part 3." in prompt_text(body):
        return Fault(status=500, echo_headers=True, message="upstream failed")
    return candidate_answer()(body)


def test_keys_echoed_by_the_judge_and_a_served_candidate_are_written_nowhere(arena_project, monkeypatch):
    server = arena_project.server
    server.reply = by_model({"served-model": echoing_candidate}, default=echoing_judge)
    monkeypatch.setenv("SERVED_KEY", SERVED_KEY)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(arena_project.root / "step_summary.md"))
    config = fixed_answers_config(arena_project, 3, {"short": 2, "long": 6}, max_retries=0)
    config["answers_gen"]["served"] = {
        "api": {"base_url": server.base_url, "model": "served-model", "api_key_env": "SERVED_KEY",
                "max_retries": 0, "timeout": 10},
        "generation_config": {"max_new_tokens": 16},
        "output_file": "answers/answer_served.jsonl",
    }
    arena_project.write(config)

    result = arena_project.run("-v", "--junitxml=junit.xml")

    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    # The keys did reach the servers, and the servers did echo them: what is written shows the mask instead.
    assert f"Bearer {FAKE_KEY}" in server.auth_headers and f"Bearer {SERVED_KEY}" in server.auth_headers
    junit = (arena_project.root / "junit.xml").read_text(encoding="utf-8")
    assert f"Bearer {MASK}" in junit and f"Bearer {MASK}" in output
    assert "AuthenticationError" in junit and "InternalServerError" in output
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert any(MASK in record.get("review_text", "") for record in reviews)  # the verdict that quoted the key
    for secret in (FAKE_KEY, SERVED_KEY):
        assert secret not in output
        for path, data in every_file_text(arena_project.root).items():
            assert secret.encode() not in data, f"{secret} written to {path}"


@pytest.mark.parametrize(
    ("where", "url", "secret", "problem"),
    [
        ("judge", "http://arena:{secret}@127.0.0.1:{port}/v1", PASSWORD, "user:password"),
        ("judge", "http://127.0.0.1:{port}/v1?token={secret}", QUERY_TOKEN, "query string"),
        ("candidate", "http://arena:{secret}@127.0.0.1:{port}/v1", PASSWORD, "user:password"),
        ("candidate", "http://127.0.0.1:{port}/v1?api_key={secret}", QUERY_TOKEN, "query string"),
        ("candidate", "127.0.0.1:{port}/v1?api_key={secret}", QUERY_TOKEN, "query string"),  # no scheme either
    ],
    ids=["judge-userinfo", "judge-query", "candidate-userinfo", "candidate-query", "candidate-query-no-scheme"],
)
def test_a_base_url_carrying_a_secret_is_refused_without_quoting_it(arena_project, where, url, secret, problem):
    server = arena_project.server
    url = url.format(secret=secret, port=server.port)
    config = fixed_answers_config(arena_project, 2, {"short": 2, "long": 6})
    if where == "judge":
        config["reviews_gen"]["reviewer"]["args"]["base_url"] = url
        key = "reviews_gen.reviewer.args.base_url"
    else:
        config["answers_gen"]["served"] = {"api": {"base_url": url, "model": "served-model"}}
        key = "answers_gen.served.api.base_url"
    arena_project.write(config)

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: ") and key in errors[0], errors
    assert problem in errors[0] and "api_key_env" in errors[0]
    assert secret not in result.stdout.str() + result.stderr.str()
    assert server.request_count == 0


@pytest.mark.parametrize("url", ["http://arena:{secret}@127.0.0.1:{port}/v1", "http://127.0.0.1:{port}/v1?k={secret}"],
                         ids=["userinfo", "query"])
def test_openai_base_url_carrying_a_secret_is_refused_without_quoting_it(arena_project, monkeypatch, url):
    server = arena_project.server
    monkeypatch.setenv("OPENAI_BASE_URL", url.format(secret=PASSWORD, port=server.port))
    config = fixed_answers_config(arena_project, 2, {"short": 2, "long": 6})
    del config["reviews_gen"]["reviewer"]["args"]["base_url"]  # the judge reads OPENAI_BASE_URL
    arena_project.write(config)

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and "OPENAI_BASE_URL" in errors[0], errors
    assert PASSWORD not in result.stdout.str() + result.stderr.str()
    assert server.request_count == 0


# --- the scrubber ------------------------------------------------------------------------------


def test_scrub_masks_a_remembered_key_in_the_forms_an_echo_takes():
    key = "sk-scrub/+test=0a1b2c3d"
    remember_key(key)
    echoed = f'Bearer {key} | {json.dumps(key)} | {key.replace("/", chr(92) + "/")} | sk-scrub%2F%2Btest%3D0a1b2c3d'
    assert key[3:] not in scrub(echoed).replace(MASK, "")  # nothing of the key is left, escaped or not
    assert scrub(echoed).count(MASK) == 4
    assert scrub("nothing secret here") == "nothing secret here"


def test_scrub_masks_the_default_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-remembered-77e1")
    assert scrub("got sk-never-remembered-77e1") == f"got {MASK}"


def test_scrub_masks_the_credentials_and_query_of_a_remembered_url():
    remember_url("https://bob:s3cr3t-pw-81@example.com/v1?token=q-91x")
    # Basic auth as an HTTP client builds it from the URL's userinfo: base64("bob:s3cr3t-pw-81")
    text = scrub("url https://bob:s3cr3t-pw-81@example.com/v1?token=q-91x auth Basic Ym9iOnMzY3IzdC1wdy04MQ==")
    assert "s3cr3t-pw-81" not in text and "q-91x" not in text and "Ym9iOnMzY3IzdC1wdy04MQ" not in text
    assert "example.com/v1" in text


@pytest.mark.parametrize(("url", "refused"), [
    ("http://localhost:8000/v1", False),
    ("https://api.openai.com/v1/", False),
    ("http://u:p@localhost:8000/v1", True),
    ("http://token@localhost:8000/v1", True),
    ("u:p@localhost:8000/v1", True),
    ("http://localhost:8000/v1?key=1", True),
    ("http://localhost:8000/v1#frag", True),
    ("http://localhost:8000/v1/a@b", False),  # an @ in the path is no userinfo
])
def test_url_secret_problem(url, refused):
    problem = url_secret_problem(url)
    assert (problem is not None) == refused
    if problem:
        assert url not in problem and "api_key_env" in problem


def test_an_error_text_is_scrubbed_before_it_is_cut_short():
    key = "sk-" + "k" * 40
    remember_key(key)
    # Cut at 300 characters first, the key's first 20 characters would survive, matching nothing.
    text = short("x" * 280 + f" Bearer {key} and more")
    assert "kkkkk" not in text and MASK in text


def test_a_401_quoting_the_key_becomes_an_error_without_it(monkeypatch):
    key = "sk-direct-call-51fd02"
    monkeypatch.setenv("ARENA_SECRET_TEST_KEY", key)
    with JudgeServer(lambda body: Fault(status=401, echo_headers=True)) as server:
        client = make_client("ARENA_SECRET_TEST_KEY", server.base_url, max_retries=0, timeout=10)
        with pytest.raises(ChatCallError) as error:
            chat(client, "gpt-4", [{"role": "user", "content": "hi"}], 0.0, 8)
        client.close()
    assert server.auth_headers == [f"Bearer {key}"]
    assert key not in str(error.value) and f"Bearer {MASK}" in str(error.value)
    assert str(error.value).startswith("AuthenticationError")


# --- the deadline --------------------------------------------------------------------------------


def _chat_on(client_kind: str, server: JudgeServer, timeout: float):
    """One chat through the judge's first client, or through one of its per-thread copies."""
    clients = ThreadClients("ARENA_SECRET_TEST_KEY", server.base_url, max_retries=0, timeout=timeout)
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["reply"] = chat(clients.get(), "gpt-4", [{"role": "user", "content": "hi"}], 0.0, 8)
        except ChatCallError as exc:
            outcome["error"] = str(exc)

    clients.get()  # this thread takes the first client: a second thread gets a copy
    if client_kind == "first":
        call()
    else:
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()
    clients.close()
    return outcome


@pytest.mark.parametrize("drip", ["drip", "drip_head"], ids=["body", "status-and-headers"])
@pytest.mark.parametrize("client_kind", ["first", "copy"])
def test_a_dripping_judge_is_cut_at_the_deadline(monkeypatch, drip, client_kind):
    monkeypatch.setenv("ARENA_SECRET_TEST_KEY", FAKE_KEY)
    # A byte every 0.1 s never trips a 0.5 s wait between bytes; the drip stops by itself after 60 bytes
    # (6 s), so without a deadline the call ends there, with a cut-off reply instead of a timeout.
    with JudgeServer(lambda body: Fault(kind=drip, seconds=0.1)) as server:
        outcome = _chat_on(client_kind, server, timeout=0.5)
        assert server.drip_over.wait(30)
        assert (server.drips_cut, server.drips_finished) == (1, 0)  # the client closed the connection
    assert "reply" not in outcome
    assert outcome["error"].startswith("APITimeoutError"), outcome
