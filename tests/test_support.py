"""The test infrastructure itself: the loopback judge and the tiny checkpoints behave as promised."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from support.judge_server import (
    A_END,
    A_START,
    B_END,
    B_START,
    Fault,
    JudgeServer,
    constant,
    faults_then,
    prefer_containing,
    prefer_longer,
)
from support.tiny_models import CHAT_TEMPLATE, build_tiny_model

MESSAGES = [{"role": "user", "content": "Which answer is better?"}]


@pytest.fixture
def judge():
    with JudgeServer() as server:
        yield server


def make_client(server: JudgeServer, **options) -> openai.OpenAI:
    options.setdefault("max_retries", 0)
    return openai.OpenAI(api_key="sk-test", base_url=server.base_url, **options)


def ask(client: openai.OpenAI, messages=MESSAGES, **params):
    return client.chat.completions.create(model="judge-model", messages=messages, **params)


def judge_prompt(answer_a: str, answer_b: str) -> list[dict]:
    text = f"Question?\n{A_START}\n{answer_a}\n{A_END}\n{B_START}\n{answer_b}\n{B_END}\nVerdict:"
    return [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": text}]


# --- judge server --------------------------------------------------------------------------


def test_judge_answers_the_real_openai_client(judge):
    assert judge.base_url == f"http://127.0.0.1:{judge.port}/v1"

    completion = ask(make_client(judge), temperature=0.0, max_tokens=16)

    assert completion.object == "chat.completion"
    assert completion.model == "judge-model"
    assert completion.choices[0].message.content == "[[C]]"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 4  # "Which answer is better?" split on whitespace
    assert completion.usage.completion_tokens == 1
    assert completion.usage.total_tokens == 5
    assert judge.request_count == 1
    body = judge.requests[0]
    assert (body["model"], body["messages"], body["temperature"], body["max_tokens"]) == (
        "judge-model",
        MESSAGES,
        0.0,
        16,
    )
    assert judge.auth_headers == ["Bearer sk-test"]


def test_reply_can_be_swapped_between_requests(judge):
    client = make_client(judge)
    judge.reply = constant("[[A]]")
    first = ask(client).choices[0].message.content
    judge.reply = lambda body: f"echo {body['messages'][-1]['content']}"
    second = ask(client).choices[0].message.content
    assert (first, second) == ("[[A]]", "echo Which answer is better?")


def test_counters_see_every_concurrent_request(judge):
    judge.latency = 0.2
    client = make_client(judge)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: ask(client, [{"role": "user", "content": f"q{i}"}]), range(16)))
    elapsed = time.perf_counter() - started

    assert [a.choices[0].message.content for a in answers] == ["[[C]]"] * 16
    assert judge.request_count == 16
    assert judge.max_in_flight == 8
    assert judge.in_flight == 0
    assert sorted(body["messages"][0]["content"] for body in judge.requests) == sorted(f"q{i}" for i in range(16))
    # Handled concurrently, counted not timed: all eight threads' requests were in the server at once
    # (max_in_flight above; serial handling would show 1). The latency is applied to each of them: 16
    # requests, 8 at a time, take at least two waves of 0.2 s however idle the machine.
    assert elapsed >= 0.4

    judge.reset_counters()
    assert (judge.request_count, judge.max_in_flight, judge.requests, judge.auth_headers) == (0, 0, [], [])


@pytest.mark.parametrize(
    ("status", "error_class", "retry_after"),
    [
        (429, openai.RateLimitError, 0.1),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_error_status_faults(judge, status, error_class, retry_after):
    judge.reply = constant(Fault(status=status, retry_after=retry_after, message="scripted trouble"))

    with pytest.raises(error_class) as raised:
        ask(make_client(judge))

    assert raised.value.status_code == status
    assert raised.value.body["message"] == "scripted trouble"
    assert raised.value.body["type"]
    assert raised.value.response.headers.get("retry-after") == (None if retry_after is None else "0.1")
    assert judge.request_count == 1  # max_retries=0: no retry hides the fault


def test_faults_then_recovers_and_retry_after_is_honoured(judge):
    # 0.7 s is longer than the client's own first backoff (<= 0.5 s), so waiting it proves the header was read.
    judge.reply = faults_then(1, Fault(status=429, retry_after=0.7), "[[A]]")
    client = make_client(judge, max_retries=1)

    started = time.perf_counter()
    completion = ask(client)
    elapsed = time.perf_counter() - started

    assert completion.choices[0].message.content == "[[A]]"
    assert judge.request_count == 2
    assert elapsed >= 0.7  # a lower bound only: a loaded machine makes it longer, never shorter


def test_faults_then_counts_each_distinct_request_separately(judge):
    judge.reply = faults_then(2, Fault(status=500), "[[B]]")
    client = make_client(judge)
    other = [{"role": "user", "content": "a different pair"}]

    outcomes = []
    for messages in (MESSAGES, other, MESSAGES, other, MESSAGES, other):
        try:
            outcomes.append(ask(client, messages).choices[0].message.content)
        except openai.InternalServerError:
            outcomes.append(500)

    assert outcomes == [500, 500, 500, 500, "[[B]]", "[[B]]"]


def test_reset_fault_is_a_connection_error_and_the_server_survives(judge):
    client = make_client(judge)
    judge.reply = constant(Fault(kind="reset"))
    with pytest.raises(openai.APIConnectionError) as raised:
        ask(client)
    assert not isinstance(raised.value, openai.APITimeoutError)

    judge.reply = constant("[[A]]")
    assert ask(client).choices[0].message.content == "[[A]]"


def test_hang_fault_times_out_the_client(judge):
    # The server would answer after a minute (the teardown wakes it): a timeout error, not an answer,
    # is the client's own 0.3 s timeout firing, whatever the machine's load.
    judge.reply = constant(Fault(kind="hang", seconds=60))
    with pytest.raises(openai.APITimeoutError):
        ask(make_client(judge, timeout=0.3))
    assert judge.request_count == 1


def test_short_hang_answers_normally(judge):
    judge.reply = constant(Fault(kind="hang", seconds=0.2, content="[[B]]"))
    started = time.perf_counter()
    completion = ask(make_client(judge, timeout=5))
    assert completion.choices[0].message.content == "[[B]]"
    assert time.perf_counter() - started >= 0.2


def test_garbage_fault_is_not_parseable(judge):
    judge.reply = constant(Fault(kind="garbage"))
    client = make_client(judge)

    raw = client.chat.completions.with_raw_response.create(model="judge-model", messages=MESSAGES)
    assert raw.status_code == 200
    with pytest.raises(ValueError):
        json.loads(raw.http_response.text)
    # The openai client lets the decode error through rather than wrapping it.
    with pytest.raises((ValueError, openai.APIResponseValidationError)):
        ask(client)


def test_empty_choices_fault(judge):
    judge.reply = constant(Fault(kind="empty_choices"))
    completion = ask(make_client(judge))
    assert completion.choices == []
    assert completion.model == "judge-model"


@pytest.mark.parametrize("finish_reason", ["length", "content_filter"])
def test_finish_fault(judge, finish_reason):
    judge.reply = constant(Fault(kind="finish", finish_reason=finish_reason, content="[[A"))
    choice = ask(make_client(judge)).choices[0]
    assert (choice.finish_reason, choice.message.content) == (finish_reason, "[[A")


def test_broken_reply_becomes_a_500_and_is_recorded(judge):
    judge.reply = prefer_longer()  # MESSAGES has no answer sections, so the reply raises
    with pytest.raises(openai.InternalServerError) as raised:
        ask(make_client(judge))
    assert "ValueError" in raised.value.body["message"]
    assert len(judge.reply_errors) == 1 and isinstance(judge.reply_errors[0], ValueError)


@pytest.mark.parametrize(
    ("answer_a", "answer_b", "verdict"),
    [("a long detailed answer", "short", "[[A]]"), ("short", "a long detailed answer", "[[B]]"), ("same", "SAME", "[[C]]")],
)
def test_prefer_longer(answer_a, answer_b, verdict):
    assert prefer_longer()({"messages": judge_prompt(answer_a, answer_b)}) == verdict


@pytest.mark.parametrize(
    ("answer_a", "answer_b", "verdict"),
    [("GOOD x", "plain", "[[A]]"), ("plain", "it is GOOD", "[[B]]"), ("GOOD", "GOOD", "[[C]]"), ("no", "neither", "[[C]]")],
)
def test_prefer_containing(answer_a, answer_b, verdict):
    assert prefer_containing("GOOD")({"messages": judge_prompt(answer_a, answer_b)}) == verdict


def test_prefer_containing_with_custom_section_markers():
    text = "<a>the GOOD one</a><b>the other</b>"
    reply = prefer_containing("GOOD", a_start="<a>", a_end="</a>", b_start="<b>", b_end="</b>")
    assert reply({"messages": [{"role": "user", "content": text}]}) == "[[A]]"


@pytest.mark.parametrize("arguments", [{}, {"status": 200}, {"kind": "bogus"}, {"status": 500, "kind": "reset"}])
def test_invalid_faults_are_refused(arguments):
    with pytest.raises(ValueError):
        Fault(**arguments)


def test_stop_closes_the_port_and_is_idempotent():
    server = JudgeServer()
    client = make_client(server, timeout=2)
    assert ask(client).choices[0].message.content == "[[C]]"
    server.stop()
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        ask(client)


# --- tiny models ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "llama": build_tiny_model(root / "llama", seed=0),
        "llama_seed1": build_tiny_model(root / "llama_seed1", seed=1),
        "qwen2_plain": build_tiny_model(root / "qwen2_plain", arch="qwen2", chat_template=False),
    }


def load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def sample(tokenizer, model, prompt: str, seed: int = 123) -> str:
    import torch

    inputs = tokenizer([prompt], return_tensors="pt")
    torch.manual_seed(seed)
    output = model.generate(**inputs, do_sample=True, max_new_tokens=8)
    return tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)


def test_tiny_model_reloads_with_chat_template(tiny_models):
    tokenizer, model = load(tiny_models["llama"])

    assert model.config.model_type == "llama"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert model.config.tie_word_embeddings is False
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<s>",
        "</s>",
        "<pad>",
        "<unk>",
    )
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.chat_template == CHAT_TEMPLATE
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<s>user: What is 2+2?\nassistant:"


def test_tiny_model_without_chat_template(tiny_models):
    tokenizer, model = load(tiny_models["qwen2_plain"])
    assert model.config.model_type == "qwen2"
    assert tokenizer.chat_template is None


def test_tiny_tokenizer_round_trips_any_text(tiny_models):
    tokenizer, _ = load(tiny_models["llama"])
    text = "Héllo 🙂 wörld,\n  numbers 12345!"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_tiny_model_sampling_is_deterministic_and_seed_dependent(tiny_models):
    tokenizer, model = load(tiny_models["llama"])
    other_tokenizer, other_model = load(tiny_models["llama_seed1"])
    prompt = "Explain why the sky is blue."

    answer = sample(tokenizer, model, prompt)

    assert answer.strip()
    assert sample(tokenizer, model, prompt) == answer
    # A different build seed means different weights, hence a different answer under the same sampling seed.
    assert sample(other_tokenizer, other_model, prompt) != answer


def test_tiny_models_build_fast_and_refuse_unknown_arch(tiny_models, tmp_path):
    # Fast because tiny, counted not timed (bench/tiny_models_build.py times it): well under a million
    # weights, so building and loading one costs milliseconds.
    built = build_tiny_model(tmp_path / "again", seed=5)
    assert (built / "model.safetensors").stat().st_size < 2_000_000
    _, model = load(built)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    with pytest.raises(ValueError, match="arch"):
        build_tiny_model(tmp_path / "bad", arch="gpt2")
