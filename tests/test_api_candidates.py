"""Candidates served over an OpenAI-compatible API (``answers_gen.<name>.api``): the real ``openai`` client
over real HTTP to the loopback server playing the candidate (and, through ``by_model``, the judge too)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
from support.arena_project import OWN_MARKERS
from support.judge_server import Fault, JudgeServer, by_model, candidate_answer, prefer_longer

from pytest_arena.config import ApiEndpoint, ModelSpec
from pytest_arena.generation.answers import ModelAnswers
from pytest_arena.generation.api_backend import ServedModel
from pytest_arena.redact import public_url
from pytest_arena.generation.fingerprint import DigestMemo
from pytest_arena.questions import Question

LOADING = re.compile(r"arena: (\S+): loading model")


def served_entry(base_url: str, model: str, **api) -> dict:
    """An answers_gen entry for a candidate behind the API (fast: no retries unless asked)."""
    return {
        "api": {"base_url": base_url, "model": model, "max_concurrency": 4, "max_retries": 0, "timeout": 10, **api},
        "generation_config": {"temperature": 0.0, "max_new_tokens": 32},
        "output_file": f"answers/answer_{model}.jsonl",
    }


def api_only_config(project, server_url: str, questions: int, models=("model-a", "model-b"), **api) -> dict:
    """An arena of API candidates only (no model loads), judged by the project's judge settings."""
    config = project.config(questions=questions, models=())
    config["answers_gen"] = {f"served-{m[-1]}": served_entry(server_url, m, **api) for m in models}
    return config


def judge_and_candidates(**candidates) -> by_model:
    """One server playing the judge (model gpt-4, preferring longer answers) and the named candidates."""
    return by_model(candidates, default=prefer_longer(**OWN_MARKERS))


def test_api_candidate_battles_a_local_model_and_a_rerun_asks_nothing(arena_project):
    server = arena_project.server
    server.reply = judge_and_candidates(**{"served-model": candidate_answer()})
    config = arena_project.config(questions=3, models=("tiny-a",))
    config["answers_gen"]["served"] = served_entry(server.base_url, "served-model")
    arena_project.write(config)

    first = arena_project.run("-v")

    first.assert_outcomes(passed=3)
    assert LOADING.findall(first.stdout.str()) == ["tiny-a"]  # the served model loads nowhere here
    asked = server.requests_for("served-model")
    assert len(asked) == 3
    assert {(r["temperature"], r["max_tokens"]) for r in asked} == {(0.0, 32)}
    records = arena_project.read_jsonl("answers/answer_served-model.jsonl")
    questions = {q["question_id"]: q["text"] for q in arena_project.read_jsonl("questions.jsonl")}
    assert sorted(r["question_id"] for r in records) == [1, 2, 3]
    for record in records:
        assert record["model_id"] == "served"
        assert record["answer"] == f"Answer 1 to: {questions[record['question_id']]}"
        assert record["metadata"]["api"] == {"base_url": server.base_url, "model": "served-model"}
        assert record["metadata"]["completion_tokens"] == len(record["answer"].split())
        assert len(record["metadata"]["cache_key"]) == 64
    first.stdout.fnmatch_lines([
        "candidate served (API): 3 requests, 3 answers received, 0 from cache, 0 failed; * prompt + * completion tokens",
        "models loaded: tiny-a",
    ])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert sorted(report["Model"]) == ["served", "tiny-a"]
    assert (report["Battles"] == 3).all()
    judge_requests = server.request_count - 3

    second = arena_project.run()

    second.assert_outcomes(passed=3)
    assert len(server.requests_for("served-model")) == 3
    assert server.request_count - 3 == judge_requests  # the verdicts came from the review cache too
    second.stdout.fnmatch_lines([
        "candidate served (API): 0 requests, 0 answers received, 3 from cache, 0 failed; 0 prompt + 0 completion tokens",
        "models loaded: none (all answers cached)",
    ])
    assert len(arena_project.read_jsonl("answers/answer_served-model.jsonl")) == 3


def test_a_failing_question_fails_only_the_battles_that_need_its_answer(arena_project):
    server = arena_project.server
    broken = {"on": True}

    def flaky(body):  # model-a's server fails question 2 with a 500, every time, until fixed
        if broken["on"] and "part 2." in body["messages"][-1]["content"]:
            return Fault(status=500, message="CUDA out of memory")
        return candidate_answer("A: ")(body)

    server.reply = judge_and_candidates(**{"model-a": flaky, "model-b": candidate_answer("B: "),
                                           "model-c": candidate_answer("C says: ")})
    config = api_only_config(arena_project, server.base_url, 3, models=("model-a", "model-b", "model-c"),
                             max_retries=1)
    arena_project.write(config)

    first = arena_project.run("-v")

    # 3 questions x 3 pairs; the two battles of question 2 that involve served-a fail.
    first.assert_outcomes(passed=7, failed=2)
    first.stdout.fnmatch_lines([
        "*test_battle?q002-served-a--vs--served-b? FAILED*",
        "*test_battle?q002-served-a--vs--served-c? FAILED*",
    ])
    first.stdout.fnmatch_lines(["*served-a has no answer to question 2 (InternalServerError: *CUDA out of memory*"])
    assert "test_battle[q002-served-b--vs--served-c] PASSED" in first.stdout.str()
    # The client's own retry asked once more; the failure was not written, the other answers were.
    part2 = [r for r in server.requests_for("model-a") if "part 2." in r["messages"][-1]["content"]]
    assert len(part2) == 2
    assert sorted(r["question_id"] for r in arena_project.read_jsonl("answers/answer_model-a.jsonl")) == [1, 3]
    # Counted as the judge's calls are: one per turn asked, the client's retries inside it.
    first.stdout.fnmatch_lines(["candidate served-a (API): 3 requests, 2 answers received, 0 from cache, 1 failed;*"])

    broken["on"] = False
    asked_before = len(server.requests_for("model-a"))
    second = arena_project.run()

    second.assert_outcomes(passed=9)
    assert len(server.requests_for("model-a")) == asked_before + 1  # only the missing answer is asked for
    assert len(server.requests_for("model-b")) == 3
    second.stdout.fnmatch_lines(["candidate served-a (API): 1 requests, 1 answers received, 2 from cache, 0 failed;*"])


def test_questions_are_asked_concurrently_up_to_max_concurrency(arena_project):
    with JudgeServer(reply=candidate_answer(), latency=0.3) as candidates:
        config = api_only_config(arena_project, candidates.base_url, 8, max_concurrency=4)
        config["reviews_gen"]["enable"] = False  # answers only: the candidate server sees every request
        arena_project.write(config)
        result = arena_project.run()

        result.assert_outcomes(passed=8)
        assert candidates.request_count == 16
        # Reached, never exceeded: each request is held 0.3 s, and the two models are asked one after another.
        assert candidates.max_in_flight == 4


def test_api_key_is_sent_to_the_server_and_written_nowhere(arena_project, monkeypatch):
    secret = "sk-served-secret-4f1c9e"
    monkeypatch.setenv("SERVED_KEY", secret)
    server = arena_project.server
    server.reply = judge_and_candidates(**{"model-a": candidate_answer("A: "), "model-b": candidate_answer("B: ")})
    config = api_only_config(arena_project, server.base_url, 2)
    config["answers_gen"]["served-a"]["api"]["api_key_env"] = "SERVED_KEY"
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=2)
    headers = dict(zip((json.dumps(b["model"]) for b in server.requests), server.auth_headers))
    assert headers['"model-a"'] == f"Bearer {secret}"
    assert headers['"model-b"'] == "Bearer no-key"  # no api_key_env: a placeholder for servers without auth
    assert secret not in result.stdout.str() + result.stderr.str()
    for path in arena_project.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# --- the candidate's client and answers, without pytest in between ---------------------------------


def served_spec(tmp_path: Path, base_url: str, generation_config=None, **api) -> ModelSpec:
    return ModelSpec(name="served", path="", output_file=tmp_path / "answers.jsonl",
                     generation_config=generation_config or {"max_new_tokens": 16},
                     api=ApiEndpoint(base_url=base_url, model="served-model", max_retries=0, timeout=10, **api))


def ask(tmp_path: Path, server: JudgeServer, *questions: Question) -> tuple[ModelAnswers, ServedModel]:
    """Ask the server for ``questions`` as the arena does; the answers (and failures) and the counters."""
    answers = ModelAnswers("served", tmp_path / "answers.jsonl", served_spec(tmp_path, server.base_url), 0, DigestMemo())
    served = ServedModel(answers.spec)
    try:
        answers.ask(list(questions), served, log=lambda line: None)
    finally:
        served.close()
    return answers, served


def test_multi_turn_questions_send_the_models_own_earlier_answers(tmp_path):
    question = Question(81, ("Write a haiku about rain.", "Now make it about snow.", "And about fog?"))
    with JudgeServer(reply=candidate_answer()) as server:
        answers, served = ask(tmp_path, server, question)
        third = server.requests[2]["messages"]

    assert third == [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Answer 1 to: Write a haiku about rain."},
        {"role": "user", "content": "Now make it about snow."},
        {"role": "assistant", "content": "Answer 2 to: Now make it about snow."},
        {"role": "user", "content": "And about fog?"},
    ]
    record = json.loads((tmp_path / "answers.jsonl").read_text(encoding="utf-8"))
    assert record["answer_turns"] == ["Answer 1 to: Write a haiku about rain.", "Answer 2 to: Now make it about snow.",
                                      "Answer 3 to: And about fog?"]
    assert record["answer"] == "Answer 3 to: And about fog?"
    assert answers.get(question).turns == tuple(record["answer_turns"])
    assert served.counters.requests == 3 and served.counters.answered == 1


def test_a_failed_turn_leaves_no_record_and_says_which_turn(tmp_path):
    question = Question(7, ("First.", "Second."))

    def second_turn_fails(body):
        return Fault(status=503) if len(body["messages"]) > 1 else candidate_answer()(body)

    with JudgeServer(reply=second_turn_fails) as server:
        answers, served = ask(tmp_path, server, question)

    assert answers.get(question) is None
    assert "(turn 2 of 2)" in answers.failures[question.key]
    assert not (tmp_path / "answers.jsonl").exists() or not (tmp_path / "answers.jsonl").read_text().strip()
    assert served.counters.failed == 1


def test_generation_config_and_extra_body_reach_the_request(tmp_path):
    generation = {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.1,
                  "min_new_tokens": 2, "max_new_tokens": 40, "stop": ["\n\n"], "seed": 7}
    with JudgeServer(reply=candidate_answer()) as server:
        spec = served_spec(tmp_path, server.base_url, generation,
                           extra_body={"chat_template_kwargs": {"enable_thinking": False}})
        served = ServedModel(spec)
        try:
            served.answer(("Hello?",))
        finally:
            served.close()
        body = server.requests[0]

    assert body["model"] == "served-model"
    assert body["temperature"] == 0.6 and body["max_tokens"] == 40 and body["top_p"] == 0.9
    assert body["top_k"] == 20 and body["repetition_penalty"] == 1.1 and body["min_tokens"] == 2
    assert body["stop"] == ["\n\n"] and body["seed"] == 7
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "do_sample" not in body and "max_new_tokens" not in body


def test_answer_cache_key_follows_the_endpoint_and_the_request_not_the_arena_seed(tmp_path):
    question = Question(1, ("Hi?",))

    def key(seed=0, **changes):
        api = {"base_url": "http://localhost:8000/v1", "model": "m", **changes.pop("api", {})}
        spec = ModelSpec(name="s", path="", output_file=tmp_path / "a.jsonl",
                         generation_config=changes.pop("generation_config", {"temperature": 0.0}),
                         api=ApiEndpoint(**api))
        return ModelAnswers("s", spec.output_file, spec, seed, DigestMemo()).key(question)

    base = key()
    assert key(seed=5) == base
    assert key(api={"max_concurrency": 32, "timeout": 5, "api_key_env": "K"}) == base  # how it is asked, not what
    assert key(api={"base_url": "http://localhost:8000/v1/"}) == base  # the same URL
    assert key(api={"model": "m2"}) != base
    assert key(api={"base_url": "http://gpu-2:8000/v1"}) != base
    assert key(generation_config={"temperature": 0.5}) != base
    assert key(api={"extra_body": {"top_a": 1}}) != base


def test_public_url_drops_credentials_and_query():
    assert public_url("https://user:pw@example.com:8443/v1/?key=abc") == "https://example.com:8443/v1"
    assert public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_api_and_vllm_candidates_import_nothing_heavy_before_they_run(arena_project, tiny_models):
    """Reading such a config, and preflight for an arena of API candidates, import neither the openai
    client nor torch, transformers, pandas or vllm (the plugin's cheap-import rule)."""
    config = api_only_config(arena_project, arena_project.server.base_url, 2)
    api_only = arena_project.write(config, "api.yaml")
    config["answers_gen"]["engine"] = {"model_id_or_path": str(tiny_models["tiny-a"]), "backend": "vllm",
                                       "vllm_args": {"tensor_parallel_size": 2}}
    with_vllm = arena_project.write(config, "vllm.yaml")
    script = (
        "import sys\n"
        "from pytest_arena.config import load_config\n"
        "from pytest_arena.session import ArenaSession\n"
        f"assert load_config({str(with_vllm)!r}).models['engine'].backend == 'vllm'\n"
        f"ArenaSession.from_file({str(api_only)!r}).preflight()\n"
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'pandas', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = arena_project.pytester.run(sys.executable, "-c", script)
    assert result.ret == 0, result.stderr.str()
