"""The local (transformers) judge: text, probability and fallback verdicts, batching of concurrent
calls, and its wiring from cfg_arena.yaml. Offline, CPU, tiny random-weight checkpoints."""

from __future__ import annotations

import gc
import math
import os
import re
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from pytest_arena.config import JudgeSpec, ModelSpec, load_config
from pytest_arena.generation.transformers_backend import GeneratedText
from pytest_arena.judging.local_judge import LocalJudge
from pytest_arena.judging.openai_judge import JudgeCallError
from pytest_arena.judging.parsers import VerdictParseError, arena_hard_parser, lmsys_parser
from support.tiny_models import build_tiny_model

SYSTEM = "You are a helpful and fair judge."
PAIR_PROMPT = ("Question: what is the capital of France?\n[Assistant A] Paris.\n[Assistant B] Lyon, I think.\n"
               "Which answer is better? Output [[A]], [[B]] or [[C]] for a tie.")
RATE_PROMPT = "Question: explain why the sky is blue.\nAnswer: sunlight scatters.\nRate the answer from 1 to 10."


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("judges")
    return {
        "chat": build_tiny_model(root / "chat", seed=11),
        "plain": build_tiny_model(root / "plain", seed=12, chat_template=False),
    }


def make_judge(path: Path, verdict: str, *, batch_size: int = 4, max_tokens: int = 8, temperature: float = 0.0,
               parser: str = "lmsys_parser", max_concurrency: int = 8) -> LocalJudge:
    # Shaped like config.judge._local_judge_checkpoint's spec.
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    checkpoint = ModelSpec(name="tiny-judge", path=str(path), output_file=Path(os.devnull), precision="float32",
                           generation_config={"max_new_tokens": max_tokens, **sampling}, batch_size=batch_size,
                           device="cpu")
    spec = JudgeSpec(ref="local", model="tiny-judge", fn_completion_parser=parser, max_tokens=max_tokens,
                     temperature=temperature, max_concurrency=max_concurrency, checkpoint=checkpoint, verdict=verdict)
    return LocalJudge(spec)


@pytest.fixture(scope="module")
def prob_judge(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability")
    yield judge
    judge.close()


def distribution(text: str) -> dict[str, float]:
    """The label probabilities a synthetic verdict line shows."""
    line = text.splitlines()[-1]
    shown = line.split("probabilities:", 1)[1].split("->", 1)[0]
    pairs = (item.strip().rsplit(" ", 1) for item in shown.split(","))
    return {label: float(p) for label, p in pairs}


def pair_prompt(i: int) -> str:
    # Different lengths, so batched rows need padding.
    return f"Question {i}: " + "please compare them carefully. " * (i % 5) + PAIR_PROMPT


# --------------------------------------------------------------------------------------------------
# Probability verdicts


def test_probability_verdict_parses_and_its_probabilities_sum_to_one(prob_judge):
    for i in range(4):
        reply = prob_judge.complete(SYSTEM, pair_prompt(i), "[[A]]")
        verdict = lmsys_parser(reply.text, "[[A]]")
        shown = distribution(reply.text)
        assert list(shown) == ["A", "B", "C"]
        assert sum(shown.values()) == pytest.approx(1.0, abs=0.005)
        best = max(shown, key=shown.get)
        assert verdict.winner == {"A": "A", "B": "B", "C": "tie"}[best]
        assert reply.completion_tokens == 0 and reply.finish_reason == "stop"
        assert reply.prompt_tokens > 20


def test_rating_probability_verdict_is_the_expected_rating_over_1_to_10(prob_judge):
    reply = prob_judge.complete(SYSTEM, RATE_PROMPT, "[[rating]]")
    verdict = lmsys_parser(reply.text, "[[rating]]")
    shown = distribution(reply.text)
    # The tiny tokenizer writes 10 as "1" + "0": it is scored as a label of its own all the same.
    assert list(shown) == [str(i) for i in range(1, 11)]
    assert sum(shown.values()) == pytest.approx(1.0, abs=0.01)
    expected = sum(int(label) * p for label, p in shown.items())
    assert verdict.score == pytest.approx(expected, abs=0.06)
    assert 1.0 <= verdict.score <= 10.0


def test_rating_10_is_not_counted_as_a_rating_of_1(prob_judge):
    """With "10" tokenized as "1" + "0", P(1) must exclude the mass that goes on to "0"."""
    from pytest_arena.judging.local_judge import RATING_LABELS

    query = prob_judge.plan_labels(prob_judge.render(SYSTEM, RATE_PROMPT) + RATING_LABELS.prefix, RATING_LABELS.labels)
    assert len(query.rows) == 1 and len(query.reads) == 2  # after "[[", and after "[[1"
    one, ten = query.factors[0], query.factors[9]
    assert ten[0] == one[0] and len(ten) == 2  # "10" = the "1" token, then "0"
    assert query.complements[0] == [(ten[1][0], (ten[1][1],))]  # "1" = "1" followed by anything but "0"


def test_arena_hard_labels_get_a_probability_verdict(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability", parser="arena_hard_parser")
    try:
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A>B]]")
    finally:
        judge.close()
    verdict = arena_hard_parser(reply.text, "[[A>B]]")
    shown = distribution(reply.text)
    assert list(shown) == ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    assert sum(shown.values()) == pytest.approx(1.0, abs=0.01)
    best = max(shown, key=shown.get)
    assert (verdict.winner, verdict.strength) == {
        "A>>B": ("A", 2), "A>B": ("A", 1), "A=B": ("tie", 1), "B>A": ("B", 1), "B>>A": ("B", 2)}[best]


def test_probability_verdicts_are_deterministic(checkpoints, prob_judge):
    first = prob_judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    again = prob_judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    other = make_judge(checkpoints["chat"], "probability")
    try:
        fresh = other.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    finally:
        other.close()
    assert first == again == fresh


def test_unsupported_probability_formats_fail_clearly(checkpoints, prob_judge):
    with pytest.raises(JudgeCallError, match=r"rating_a,rating_b"):
        prob_judge.complete(SYSTEM, PAIR_PROMPT, "[[rating_a,rating_b]]")
    with pytest.raises(ValueError, match="probability verdicts support"):
        prob_judge.complete(SYSTEM, PAIR_PROMPT, "[[A>B]]")  # an arena-hard label with lmsys_parser
    with pytest.raises(ValueError, match="probability verdicts support"):
        make_judge(checkpoints["chat"], "probability", parser="ranking_parser")
    with pytest.raises(ValueError, match="checkpoint"):
        LocalJudge(JudgeSpec(ref="local", verdict="probability"))


# --------------------------------------------------------------------------------------------------
# Text verdicts and the fallback


def test_text_verdict_is_the_generated_text_cut_at_max_tokens(checkpoints):
    judge = make_judge(checkpoints["chat"], "text", max_tokens=3)
    try:
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
        again = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
        [direct] = judge.generator.generate_prompts([judge.render(SYSTEM, PAIR_PROMPT)], seed=judge.spec.random_seed)
    finally:
        judge.close()
    assert reply.finish_reason == "length"
    assert reply.completion_tokens == 3
    assert reply.text == direct.text and reply.prompt_tokens == direct.prompt_tokens
    assert "probabilities" not in reply.text  # text mode never falls back
    assert reply == again


def test_sampled_text_verdict_is_seeded(checkpoints):
    judge = make_judge(checkpoints["chat"], "text", max_tokens=12, temperature=1.0)
    try:
        replies = {judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]").text for _ in range(3)}
    finally:
        judge.close()
    assert len(replies) == 1


def test_text_or_probability_falls_back_when_the_text_has_no_verdict(checkpoints):
    text_judge = make_judge(checkpoints["chat"], "text")
    judge = make_judge(checkpoints["chat"], "text_or_probability")
    try:
        written = text_judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    finally:
        text_judge.close()
        judge.close()
    with pytest.raises(VerdictParseError):  # random weights write noise, never a verdict
        lmsys_parser(written.text, "[[A]]")
    assert reply.text.startswith(written.text + "\n")  # the record keeps the review ...
    assert reply.text.splitlines()[-1].startswith("Verdict from label probabilities: A ")  # ... and the verdict
    verdict = lmsys_parser(reply.text, "[[A]]")
    shown = distribution(reply.text)
    assert verdict.winner == {"A": "A", "B": "B", "C": "tie"}[max(shown, key=shown.get)]
    assert (reply.completion_tokens, reply.prompt_tokens) == (written.completion_tokens, written.prompt_tokens)


def test_text_or_probability_keeps_a_readable_text_as_it_is(checkpoints, monkeypatch):
    judge = make_judge(checkpoints["chat"], "text_or_probability")
    review = "Assistant A is right and B is not. [[A]]"
    monkeypatch.setattr(judge.generator, "generate_prompts",
                        lambda prompts, seed: [GeneratedText(review, 30, 5) for _ in prompts])
    try:
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    finally:
        judge.close()
    assert reply.text == review and reply.finish_reason == "stop"
    assert judge.batches_run == 1  # no probability pass


# --------------------------------------------------------------------------------------------------
# Prompts


def test_chat_template_renders_system_and_user_with_a_generation_prompt(prob_judge):
    rendered = prob_judge.render(SYSTEM, "Judge this.")
    assert rendered == f"<s>system: {SYSTEM}\n<s>user: Judge this.\nassistant:"
    assert prob_judge.render("", "Judge this.") == "<s>user: Judge this.\nassistant:"


def test_a_template_without_a_system_role_gets_it_in_the_user_turn(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability")
    judge.generator.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    )
    try:
        assert judge.render(SYSTEM, "Judge this.") == f"<s>user: {SYSTEM}\n\nJudge this.\nassistant:"
    finally:
        judge.close()


def test_tokenizer_without_chat_template_gets_plain_text(checkpoints):
    judge = make_judge(checkpoints["plain"], "probability")
    try:
        assert judge.render(SYSTEM, "Judge this.") == f"{SYSTEM}\n\nJudge this.\n\n"
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    finally:
        judge.close()
    assert lmsys_parser(reply.text, "[[A]]").winner in ("A", "B", "tie")


# --------------------------------------------------------------------------------------------------
# Likelihood verdicts

LIKELIHOOD_LINE = re.compile(r"A (-?\d+\.\d+|-inf) \((\d+) tokens\), B (-?\d+\.\d+|-inf) \((\d+) tokens\) -> \[\[(.+)\]\]$")
QUESTIONS = ["What is the capital of France?", "Name three colours.", "Why is the sea salty? Explain."]
ANSWERS = ["Paris is the capital of France.", "red green blue", "Rivers carry salt from rocks into the sea, "
           "and evaporation leaves it behind.", "zq xv kk lorem", "I do not know.", "The the the the the the."]


@pytest.fixture(scope="module")
def likelihood_judge(checkpoints):
    judge = make_judge(checkpoints["chat"], "likelihood")
    yield judge
    judge.close()


def shown(text: str) -> tuple[float, int, float, int, str]:
    match = LIKELIHOOD_LINE.search(text)
    assert match, text
    a, na, b, nb, label = match.groups()
    return float(a), int(na), float(b), int(nb), label


def reference_mean(judge: LocalJudge, turns: list[tuple[str, str]]) -> tuple[float, int]:
    """Written apart from the judge: each turn's answer scored in its own unpadded row, one at a time."""
    import torch

    tokenizer, model = judge.generator.tokenizer, judge.generator.model
    messages, total, count = [], 0.0, 0
    for question, answer in turns:
        messages.append({"role": "user", "content": question})
        context = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(context + answer, add_special_tokens=False)["input_ids"]
        assert full_ids[:len(context_ids)] == context_ids
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.tensor([full_ids])).logits[0].float(), dim=-1)
        for position in range(len(context_ids), len(full_ids)):
            total += log_probs[position - 1, full_ids[position]].item()
            count += 1
        messages.append({"role": "assistant", "content": answer})
    return total / count, count


def test_likelihood_verdict_matches_a_plain_unbatched_computation(likelihood_judge):
    cases = [(q, a, b) for q in QUESTIONS for a, b in zip(ANSWERS, ANSWERS[1:])]
    before = likelihood_judge.batches_run
    with ThreadPoolExecutor(8) as pool:  # concurrent calls share padded batches
        replies = list(pool.map(lambda c: likelihood_judge.compare((c[0],), (c[1],), (c[2],), "[[A]]"), cases))
    assert likelihood_judge.batches_run - before < len(cases)
    for (question, a, b), reply in zip(cases, replies):
        mean_a, tokens_a, mean_b, tokens_b, label = shown(reply.text)
        expected_a, count_a = reference_mean(likelihood_judge, [(question, a)])
        expected_b, count_b = reference_mean(likelihood_judge, [(question, b)])
        assert (tokens_a, tokens_b) == (count_a, count_b)
        assert mean_a == pytest.approx(expected_a, abs=6e-4) and mean_b == pytest.approx(expected_b, abs=6e-4)
        assert label == ("A" if mean_a > mean_b else "B" if mean_b > mean_a else "C")
        assert lmsys_parser(reply.text, "[[A]]").winner == {"A": "A", "B": "B", "C": "tie"}[label]
        assert reply.prompt_tokens > tokens_a + tokens_b and reply.completion_tokens == 0


def test_likelihood_verdict_does_not_depend_on_the_order_shown(likelihood_judge):
    question = (QUESTIONS[0],)
    forward = shown(likelihood_judge.compare(question, (ANSWERS[0],), (ANSWERS[3],), "[[A]]").text)
    backward = shown(likelihood_judge.compare(question, (ANSWERS[3],), (ANSWERS[0],), "[[A]]").text)
    assert forward[:4] == backward[2:4] + backward[:2]
    assert {forward[4], backward[4]} == {"A", "B"}
    same = shown(likelihood_judge.compare(question, (ANSWERS[0],), (ANSWERS[0],), "[[A]]").text)
    assert same[4] == "C"


def test_likelihood_verdict_in_small_chunks_equals_one_batch(likelihood_judge, monkeypatch):
    import pytest_arena.judging.likelihood as likelihood

    question = (QUESTIONS[2],)
    whole = likelihood_judge.compare(question, (ANSWERS[2],), (ANSWERS[5],), "[[A]]").text
    monkeypatch.setattr(likelihood, "LOGITS_BUDGET_BYTES", 1)  # one row per forward pass
    assert likelihood_judge.compare(question, (ANSWERS[2],), (ANSWERS[5],), "[[A]]").text == whole


def test_likelihood_verdict_scores_every_turn_of_a_conversation(likelihood_judge):
    questions = (QUESTIONS[0], "And of Italy?")
    a, b = (ANSWERS[0], "Rome is the capital of Italy."), (ANSWERS[4], ANSWERS[3])
    mean_a, tokens_a, mean_b, tokens_b, _ = shown(likelihood_judge.compare(questions, a, b, "[[A]]").text)
    expected_a, count_a = reference_mean(likelihood_judge, list(zip(questions, a)))
    expected_b, count_b = reference_mean(likelihood_judge, list(zip(questions, b)))
    assert (tokens_a, tokens_b) == (count_a, count_b)
    assert mean_a == pytest.approx(expected_a, abs=6e-4) and mean_b == pytest.approx(expected_b, abs=6e-4)


def test_an_empty_answer_loses_and_two_empty_answers_tie(likelihood_judge):
    question = (QUESTIONS[1],)
    empty_first = shown(likelihood_judge.compare(question, ("",), (ANSWERS[1],), "[[A]]").text)
    assert empty_first[0] == -math.inf and empty_first[1] == 0 and empty_first[4] == "B"
    assert shown(likelihood_judge.compare(question, ("",), ("",), "[[A]]").text)[4] == "C"


def test_likelihood_verdict_writes_arena_hard_labels_and_refuses_ratings(checkpoints, likelihood_judge):
    judge = make_judge(checkpoints["chat"], "likelihood", parser="arena_hard_parser")
    try:
        reply = judge.compare((QUESTIONS[0],), (ANSWERS[0],), (ANSWERS[3],), "[[A>>B]]")
    finally:
        judge.close()
    assert arena_hard_parser(reply.text, "[[A>>B]]").winner in ("A", "B")
    assert shown(reply.text)[4] in ("A>B", "B>A")  # a likelihood gap is never a strong verdict
    with pytest.raises(ValueError, match="pairwise template"):
        likelihood_judge.compare((QUESTIONS[0],), (ANSWERS[0],), (ANSWERS[3],), "[[rating]]")


# --------------------------------------------------------------------------------------------------
# Batching concurrent calls


def test_concurrent_calls_are_batched_and_each_gets_its_own_verdict(prob_judge):
    prompts = [pair_prompt(i) for i in range(16)]
    before = prob_judge.batches_run
    singles = [prob_judge.complete(SYSTEM, p, "[[A]]") for p in prompts]
    assert prob_judge.batches_run - before == 16  # alone, each call is its own batch

    before = prob_judge.batches_run
    with ThreadPoolExecutor(8) as pool:
        batched = list(pool.map(lambda p: prob_judge.complete(SYSTEM, p, "[[A]]"), prompts))
    batches = prob_judge.batches_run - before
    assert 4 <= batches < 16  # batch_size 4 caps a batch at 4 calls

    for single, together in zip(singles, batched):
        alone, joint = distribution(single.text), distribution(together.text)
        # Padding may move the logits by float noise, never by more.
        assert alone == pytest.approx(joint, abs=0.002)
        ranked = sorted(alone.values(), reverse=True)
        if ranked[0] - ranked[1] > 0.005:
            assert lmsys_parser(single.text, "[[A]]") == lmsys_parser(together.text, "[[A]]")
        assert single.prompt_tokens == together.prompt_tokens
    # The prompts differ, so the replies are per call, not one reply handed to all.
    assert len({r.prompt_tokens for r in batched}) > 1


def test_concurrent_text_or_probability_calls_all_get_a_verdict(checkpoints):
    judge = make_judge(checkpoints["chat"], "text_or_probability", max_tokens=4)
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: judge.complete(SYSTEM, pair_prompt(i), "[[A]]"), range(16)))
    finally:
        judge.close()
    for reply in replies:
        assert lmsys_parser(reply.text, "[[A]]").winner in ("A", "B", "tie")
    assert judge.batches_run < 32  # 16 generations + 16 probability passes, batched


def test_a_failing_prompt_fails_only_its_own_call(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability")
    forward = judge.read_labels

    def fail_on_long_rows(queries):
        if any(len(row) > 600 for query in queries for row in query.rows):
            raise RuntimeError("prompt too long for this test")
        return forward(queries)

    judge.read_labels = fail_on_long_rows
    long_prompt = "word " * 300 + PAIR_PROMPT

    def call(prompt):
        try:
            return judge.complete(SYSTEM, prompt, "[[A]]")
        except JudgeCallError as exc:
            return exc

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, [pair_prompt(i) for i in range(3)] + [long_prompt] + [pair_prompt(4)]))
    finally:
        judge.close()
    assert isinstance(results[3], JudgeCallError) and "RuntimeError: prompt too long" in str(results[3])
    for reply in results[:3] + results[4:]:
        assert not isinstance(reply, Exception), reply
        lmsys_parser(reply.text, "[[A]]")


def test_a_single_caller_does_not_wait_for_a_batch_to_fill(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability", batch_size=8, max_concurrency=8)
    calls = threading.Thread(target=lambda: [judge.complete(SYSTEM, pair_prompt(i), "[[A]]") for i in range(6)])
    try:
        calls.start()
        # A caller that waited for the other 7 places of its batch would never return; the bound only
        # tells a stall from a slow machine.
        calls.join(timeout=120)
        assert not calls.is_alive()
    finally:
        judge.close()
    assert judge.batches_run == 6  # every call ran as soon as it was due, in a batch of its own


# --------------------------------------------------------------------------------------------------
# Lifetime and configuration


def test_close_releases_the_model(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability")
    judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
    model = weakref.ref(judge.generator.model)
    judge.close()
    gc.collect()
    assert model() is None
    judge.close()  # twice is fine
    with pytest.raises(JudgeCallError, match="closed"):
        judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")


def test_close_waits_for_the_batch_in_flight(checkpoints):
    judge = make_judge(checkpoints["chat"], "probability")
    forward, entered, release = judge.read_labels, threading.Event(), threading.Event()

    def slow_forward(queries):
        entered.set()
        release.wait(5)
        return forward(queries)

    judge.read_labels = slow_forward
    with ThreadPoolExecutor(2) as pool:
        call = pool.submit(judge.complete, SYSTEM, PAIR_PROMPT, "[[A]]")
        assert entered.wait(5)
        closing = pool.submit(judge.close)
        time.sleep(0.05)
        assert not closing.done()  # the model is not pulled from under a running batch
        release.set()
        # Hang guards, not speed bounds: close() ends in gc.collect(), which over a whole suite's heap on a
        # loaded 2-core machine took more than 5 s once (stop 31's local CI); a deadlock still fails here.
        lmsys_parser(call.result(timeout=60).text, "[[A]]")
        closing.result(timeout=60)
    assert judge.generator.model is None


def test_local_judge_is_configured_from_cfg_arena_yaml(checkpoints, tmp_path):
    (tmp_path / "questions.jsonl").write_text('{"question_id": 1, "text": "Hi?", "category": "generic"}\n')
    (tmp_path / "cfg.yaml").write_text(f"""
question_file: questions.jsonl
answers_gen:
  tiny:
    model_id_or_path: {checkpoints['chat']}
reviews_gen:
  reviewer:
    ref: local
    args:
      model_id_or_path: {checkpoints['chat']}
      verdict: probability
      batch_size: 2
      max_tokens: 16
      max_concurrency: 2
      precision: torch.float32
""")
    spec = load_config(tmp_path / "cfg.yaml", results_dir=tmp_path / "results").review.judge
    assert spec.is_local and spec.verdict == "probability"
    assert spec.checkpoint.path == str(checkpoints["chat"]) and spec.checkpoint.batch_size == 2
    judge = LocalJudge(spec)
    try:
        reply = judge.complete(SYSTEM, PAIR_PROMPT, "[[A]]")
        assert judge.generator.generation_config.max_new_tokens == 16
    finally:
        judge.close()
    assert lmsys_parser(reply.text, "[[A]]").winner in ("A", "B", "tie")
    assert sum(distribution(reply.text).values()) == pytest.approx(1.0, abs=0.005)


def test_batcher_under_load_hands_every_caller_its_own_result():
    from pytest_arena.judging.batcher import Batcher

    sizes = []

    def run(kind, payloads):
        sizes.append(len(payloads))
        if any(p == 13 for p in payloads):
            raise RuntimeError("thirteen")
        time.sleep(0.001)
        return [(kind, p * 2) for p in payloads]

    batcher = Batcher(run, max_batch=4, max_wait=0.005)

    def call(i):
        kind = "even" if i % 2 == 0 else "odd"
        try:
            return batcher.submit(kind, i)
        except JudgeCallError as exc:
            return str(exc)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(200)))
    for i, result in enumerate(results):
        expected = "RuntimeError: thirteen" if i == 13 else ("even" if i % 2 == 0 else "odd", i * 2)
        assert result == expected
    assert max(sizes) <= 4 and len(sizes) < 200


def test_an_arena_judged_by_likelihood_runs_and_reruns_from_its_cache(arena_project, checkpoints):
    judge = {"ref": "local", "args": {"model_id_or_path": str(checkpoints["chat"]), "precision": "torch.float32",
                                      "verdict": "likelihood", "max_concurrency": 4, "batch_size": 4}}
    arena_project.write(arena_project.config(questions=3, models=("tiny-a", "tiny-b"), reviews_gen__reviewer=judge,
                                             gates=[{"model": "tiny-a", "beats": "tiny-b"}]))
    first = arena_project.run()
    first.assert_outcomes(passed=4)
    assert "judge: loading local model" in first.stdout.str()
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert len(reviews) == 3
    for record in reviews:
        mean_a, _, mean_b, _, label = shown(record["review_text"])
        assert record["win"] == {"A": "model_a", "B": "model_b", "C": "tie"}[label]
        assert label == ("A" if mean_a > mean_b else "B" if mean_b > mean_a else "C")
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    wins_a = sum(1 for r in reviews if r["win"] == "model_a")
    assert report.set_index("Model").loc["tiny-a", "Wins"] == wins_a
    again = arena_project.run()
    again.assert_outcomes(passed=4)
    assert "judge: loading local model" not in again.stdout.str()
    again.stdout.fnmatch_lines(["judge: 0 calls, 3 from cache, 0 failed*"])


def test_an_out_of_memory_batch_is_retried_row_by_row_with_its_activations_freed(checkpoints):
    """Issue 18: the retries run once the failed pass's tensors are gone (weakrefs tell), not from
    inside the exception handler whose traceback would keep them, and give the verdicts of a run
    without the failure."""
    import torch

    judge = make_judge(checkpoints["chat"], "likelihood")
    failed_outputs: list[weakref.ref] = []
    alive_at_retry: list[bool] = []

    def out_of_memory_on_batches(module, inputs, output):
        if output.shape[0] > 2:  # memory for one call's rows (two answers of one turn), not more
            failed_outputs.append(weakref.ref(output))
            raise torch.OutOfMemoryError("CUDA out of memory (raised by the test's forward hook)")

    def record_survivors(module, args, kwargs):
        alive_at_retry.extend(ref() is not None for ref in failed_outputs)

    cases = [(q, a, b) for q in QUESTIONS for a, b in zip(ANSWERS, ANSWERS[1:])]

    def compare(case):
        return judge.compare((case[0],), (case[1],), (case[2],), "[[A]]").text

    expected = [compare(case) for case in cases]  # one call at a time: batches of one, no failure
    hooks = [judge.generator.model.lm_head.register_forward_hook(out_of_memory_on_batches),
             judge.generator.model.register_forward_pre_hook(record_survivors, with_kwargs=True)]
    try:
        for _ in range(5):  # until concurrent calls have shared a batch
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(compare, cases))
            if failed_outputs:
                break
    finally:
        for hook in hooks:
            hook.remove()
        judge.close()
    assert failed_outputs, "no batch of more than one call was run"
    assert alive_at_retry and not any(alive_at_retry)
    assert replies == expected
