"""Answer generation with real (tiny, random-weight) transformers checkpoints, and the answer cache.

The models are built offline in a fraction of a second (tests/support/tiny_models.py) and loaded back
through the same code path as a real checkpoint.
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import pytest

from support.tiny_models import build_tiny_model

from pytest_arena.config import ModelSpec
from pytest_arena.generation.answers import ModelAnswers
from pytest_arena.generation.fingerprint import DigestMemo
from pytest_arena.generation.transformers_backend import TransformersGenerator, generation_config_for
from pytest_arena.questions import Question
from pytest_arena.record_files import read_jsonl

GREEDY = {"do_sample": False, "max_new_tokens": 8}
PROMPTS = ["Hi", "What is the capital of France? Please answer in one short sentence.", "Write a poem about tea."]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen-models")
    return {
        "chat": build_tiny_model(root / "chat", seed=1),
        "plain": build_tiny_model(root / "plain", seed=2, chat_template=False, arch="qwen2"),
    }


def spec_for(path: Path, *, name="tiny", batch_size=3, generation_config=None, output_file=None, **extra) -> ModelSpec:
    return ModelSpec(
        name=name,
        path=str(path),
        output_file=Path(output_file) if output_file else Path(path).parent / f"answer_{name}.jsonl",
        generation_config=dict(GREEDY if generation_config is None else generation_config),
        batch_size=batch_size,
        **{"precision": "float32", "device": "cpu", **extra},
    )


def conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------------------------------
# TransformersGenerator


def test_batched_left_padded_greedy_generation_equals_one_at_a_time(checkpoints):
    conversations = [conversation(p) for p in PROMPTS]
    one = TransformersGenerator(spec_for(checkpoints["chat"], batch_size=1))
    singles = one.generate(conversations, seed=0)
    one.close()
    batched_generator = TransformersGenerator(spec_for(checkpoints["chat"], batch_size=3))
    assert batched_generator.tokenizer.padding_side == "left"
    batched = batched_generator.generate(conversations, seed=0)
    batched_generator.close()

    assert len({r.prompt_tokens for r in singles}) == 3  # different lengths: the batch really was padded
    assert [r.text for r in batched] == [r.text for r in singles]
    assert [(r.prompt_tokens, r.completion_tokens) for r in batched] == [
        (r.prompt_tokens, r.completion_tokens) for r in singles]
    assert all(0 < r.completion_tokens <= GREEDY["max_new_tokens"] for r in batched)
    assert any(r.text for r in batched)


def test_chat_template_is_used_when_the_tokenizer_has_one(checkpoints):
    generator = TransformersGenerator(spec_for(checkpoints["chat"]))
    try:
        assert generator.chat_template_missing is False
        messages = conversation("What is tea?")
        prompt = generator.render(messages)
        assert prompt == generator.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert prompt == "<s>user: What is tea?\nassistant:"
        [result] = generator.generate([messages], seed=0)
        # The template already holds its special tokens: none are added on top.
        assert result.prompt_tokens == len(generator.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    finally:
        generator.close()


def test_plain_prompt_fallback_is_flagged_when_the_tokenizer_has_no_chat_template(checkpoints):
    generator = TransformersGenerator(spec_for(checkpoints["plain"]))
    try:
        assert generator.chat_template_missing is True
        assert generator.render(conversation("What is tea?")) == "What is tea?"
        two_turns = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                     {"role": "user", "content": "Q2"}]
        assert generator.render(two_turns) == "Q1\n\nA1\n\nQ2\n\n"
        results = generator.generate([conversation(p) for p in PROMPTS], seed=0)
        assert len(results) == 3 and all(r.completion_tokens > 0 for r in results)
    finally:
        generator.close()


def test_plain_template_type_skips_an_existing_chat_template(checkpoints):
    generator = TransformersGenerator(spec_for(checkpoints["chat"], use_chat_template=False))
    try:
        assert generator.chat_template_missing is False  # not missing: not wanted
        assert generator.render(conversation("What is tea?")) == "What is tea?"
    finally:
        generator.close()


def test_close_drops_the_model(checkpoints):
    generator = TransformersGenerator(spec_for(checkpoints["chat"]))
    model_ref = weakref.ref(generator.model)
    generator.close()
    assert generator.model is None and generator.tokenizer is None
    gc.collect()
    assert model_ref() is None  # nothing else kept it alive


def test_generation_config_for_refuses_unknown_keys_with_a_suggestion(checkpoints):
    spec = spec_for(checkpoints["chat"], generation_config={"do_sample": False, "max_new_token": 5})
    with pytest.raises(ValueError, match=r"generation_config\.max_new_token: .*did you mean 'max_new_tokens'"):
        generation_config_for(spec)


def test_generation_config_for_applies_settings_over_defaults(checkpoints):
    config = generation_config_for(spec_for(checkpoints["chat"], generation_config={"do_sample": True, "top_k": 7}))
    assert (config.do_sample, config.top_k, config.max_new_tokens) == (True, 7, 256)
    config = generation_config_for(spec_for(checkpoints["chat"], generation_config={"max_new_tokens": 3}))
    assert config.max_new_tokens == 3


# --------------------------------------------------------------------------------------------------
# ModelAnswers: the answer cache


def question(qid=1, *turns, category="generic") -> Question:
    return Question(qid, tuple(turns) or (f"Question number {qid}?",), category)


def answers_for(spec: ModelSpec, memo: DigestMemo, *, seed=0, output_file=None) -> ModelAnswers:
    return ModelAnswers(spec.name, Path(output_file or spec.output_file), spec, seed, memo)


def test_cache_key_follows_the_weights(tmp_path):
    path = build_tiny_model(tmp_path / "m", seed=1)
    memo = DigestMemo()
    spec = spec_for(path)
    q = question()
    first = answers_for(spec, memo).key(q)
    assert answers_for(spec, memo).key(q) == first  # stable (and memoised) while nothing changed
    assert answers_for(spec, DigestMemo()).key(q) == first  # and not an artefact of the memo

    build_tiny_model(tmp_path / "m", seed=2)  # a "fine-tune" saved over the same folder
    changed = answers_for(spec, memo).key(q)
    assert changed != first
    assert answers_for(spec, DigestMemo()).key(q) == changed


def test_cache_key_follows_generation_config_question_and_seed(checkpoints):
    memo = DigestMemo()
    spec = spec_for(checkpoints["chat"])
    q = question(1, "What is tea?")
    base = answers_for(spec, memo).key(q)
    assert answers_for(spec_for(checkpoints["chat"], generation_config={**GREEDY, "max_new_tokens": 9}), memo).key(q) != base
    assert answers_for(spec_for(checkpoints["chat"], generation_config={**GREEDY, "do_sample": True}), memo).key(q) != base
    assert answers_for(spec, memo).key(question(1, "What is coffee?")) != base
    assert answers_for(spec, memo).key(question(1, "What is tea?", "And coffee?")) != base
    assert answers_for(spec, memo, seed=1).key(q) != base
    assert answers_for(spec_for(checkpoints["chat"], use_chat_template=False), memo).key(q) != base
    assert answers_for(spec_for(checkpoints["chat"], precision="bfloat16"), memo).key(q) != base
    # Unrelated to what the model says: the same key.
    assert answers_for(spec_for(checkpoints["chat"], name="other", batch_size=1,
                                generation_config=dict(reversed(list(GREEDY.items())))), memo).key(q) == base
    assert answers_for(spec, memo).key(q) == base


def test_cache_key_differs_between_checkpoints(checkpoints):
    memo = DigestMemo()
    q = question()
    assert answers_for(spec_for(checkpoints["chat"]), memo).key(q) != answers_for(spec_for(checkpoints["plain"]), memo).key(q)


def _record(answers: ModelAnswers, q: Question, answer: str, key: str | None = None) -> dict:
    return {**q.to_record(), "model_id": answers.name, "answer": answer,
            "metadata": {"cache_key": key or answers.key(q)}}


def test_load_cached_returns_only_the_missing_questions(checkpoints, tmp_path):
    output = tmp_path / "answers.jsonl"
    answers = answers_for(spec_for(checkpoints["chat"]), DigestMemo(), output_file=output)
    q1, q2, q3, q4 = (question(i) for i in range(1, 5))
    lines = [
        _record(answers, q1, "cached one"),
        _record(answers, q2, "stale", key="0" * 64),  # made with other settings: not reusable
        _record(answers, q4, "cached four"),
    ]
    output.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"question_id": 3, "answ', encoding="utf-8")
    assert answers.generates
    missing = answers.load_cached([q1, q2, q3, q4])
    assert [q.question_id for q in missing] == [2, 3]
    assert answers.get(q1).text == "cached one" and answers.get(q4).text == "cached four"
    assert answers.get(q2) is None and answers.get(q3) is None


def test_disabled_model_answers_only_from_its_file(checkpoints, tmp_path):
    output = tmp_path / "answers.jsonl"
    spec = spec_for(checkpoints["chat"], enable=False, output_file=output)
    output.write_text(json.dumps({"question_id": 1, "answer": "old answer", "metadata": {"cache_key": "x"}}) + "\n",
                      encoding="utf-8")
    answers = answers_for(spec, DigestMemo())
    assert not answers.generates
    q1, q2 = question(1), question(2)
    assert answers.load_cached([q1, q2]) == []  # nothing to generate, whatever is missing
    assert answers.get(q1).text == "old answer" and answers.get(q2) is None


def test_generated_records_follow_the_evalscope_answer_record(checkpoints, tmp_path):
    output = tmp_path / "out" / "answer_tiny.jsonl"
    spec = spec_for(checkpoints["chat"], batch_size=2, output_file=output)
    answers = answers_for(spec, DigestMemo())
    questions = [question(1, "What is tea?"), question(2, "Write a poem.", "Now make it shorter.", category="writing"),
                 question("three", "Name a fruit.", category="knowledge")]
    missing = answers.load_cached(questions)
    assert missing == questions
    generator = TransformersGenerator(spec)
    log = []
    try:
        answers.generate(missing, generator, log.append)
    finally:
        generator.close()

    records = read_jsonl(output)
    assert [r["question_id"] for r in records] == [1, 2, "three"]
    for record, q in zip(records, questions):
        assert {"question_id", "text", "category", "model_id", "answer", "metadata"} <= set(record)
        assert record["text"] == q.text and record["category"] == q.category
        assert record["model_id"] == "tiny"
        assert isinstance(record["answer"], str)
        metadata = record["metadata"]
        assert metadata["cache_key"] == answers.key(q)
        assert metadata["generation_config"] == GREEDY
        assert metadata["prompt_tokens"] > 0 and 0 < metadata["completion_tokens"] <= 8 * len(q.turns)
        assert answers.get(q).text == record["answer"]
    multi = records[1]
    assert multi["turns"] == ["Write a poem.", "Now make it shorter."]
    assert len(multi["answer_turns"]) == 2 and multi["answer"] == multi["answer_turns"][-1]
    assert answers.get(questions[1]).turns == tuple(multi["answer_turns"])
    assert "answer_turns" not in records[0]
    assert log and log[-1].endswith("3/3 answers generated")

    # The file is the cache: a new run with the same inputs finds everything.
    again = answers_for(spec, DigestMemo())
    assert again.load_cached(questions) == []
    assert [again.get(q).turns for q in questions] == [answers.get(q).turns for q in questions]
    # ... and other settings find nothing.
    other = answers_for(spec_for(checkpoints["chat"], generation_config={**GREEDY, "max_new_tokens": 4},
                                 output_file=output), DigestMemo())
    assert other.load_cached(questions) == questions
