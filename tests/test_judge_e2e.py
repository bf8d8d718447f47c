"""The judge, end to end: modes, position bias, templates, references, multi-turn, parsers, faults, accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support.arena_project import OWN_MARKERS
from support.judge_server import Fault, constant, faults_then, prefer_longer, prompt_text

COMPAT = next(
    (p for p in (Path(__file__).resolve().parents[2] / "shared" / "compat" / "evalscope",
                 Path("/work/shared/compat/evalscope")) if p.is_dir()),
    None,
)


def rate_by_length(start="[Answer of the assistant]", end="[End of answer]"):
    """A single-mode judge: longer answers score higher (1..10)."""

    def reply(body):
        text = prompt_text(body)
        answer = text[text.index(start) + len(start):text.index(end)]
        return f"The answer is fine. Rating: [[{min(10, 1 + len(answer.split()) // 3)}]]"

    return reply


def always(label: str):
    return constant(f"Both are good, but I lean one way. [[{label}]]")


def test_pairwise_baseline_battles_each_model_against_the_baseline(arena_project):
    config = arena_project.config(questions=3, rating_gen__baseline_model="tiny-b",
                                  reviews_gen__reviewer__args__mode="pairwise_baseline")
    arena_project.write(config)
    result = arena_project.run("-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_battle?q001-tiny-a--vs--tiny-b? PASSED*",
                                 "*test_battle?q001-tiny-c--vs--tiny-b? PASSED*"])
    result.stdout.no_fnmatch_line("*tiny-a--vs--tiny-c*")


def test_pairwise_baseline_from_a_baseline_file(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-c"))
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    # The answers of tiny-c become a fixed baseline file under another name, as EvalScope users have.
    records = arena_project.read_jsonl("answers/answer_tiny-c.jsonl")
    baseline = arena_project.root / "answer_davinci.jsonl"
    baseline.write_text("".join(json.dumps({**r, "model_id": "davinci"}) + "\n" for r in records))
    config = arena_project.config(questions=2, models=("tiny-a",), reviews_gen__baseline_file=str(baseline),
                                  reviews_gen__reviewer__args__mode="pairwise_baseline",
                                  rating_gen__baseline_model="davinci")
    arena_project.write(config)
    result = arena_project.run("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_battle?q001-tiny-a--vs--davinci? PASSED*"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert list(report["Model"]) == ["tiny-a", "davinci"]


def test_single_mode_scores_each_answer(arena_project):
    arena_project.server.reply = rate_by_length()
    config = arena_project.config(questions=3, reviews_gen__reviewer__args__mode="single")
    arena_project.write(config)
    result = arena_project.run("-v")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*test_score?q001-tiny-a? PASSED*", "*test_score?q003-tiny-c? PASSED*"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert list(report.columns) == ["Model", "Score", "CI_Lower", "CI_Upper", "Questions"]
    assert list(report["Model"]) == ["tiny-a", "tiny-b", "tiny-c"]
    assert report["Score"].between(1, 10).all()
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert {r["model"] for r in reviews} == {"tiny-a", "tiny-b", "tiny-c"}
    assert all(1 <= r["score"] <= 10 for r in reviews)
    result.stdout.fnmatch_lines(["rank*model*score*95% CI*questions*"])


def test_swap_position_consistent_rule_turns_a_position_biased_judge_into_ties(arena_project):
    arena_project.server.reply = always("A")  # a judge that always prefers whatever is shown first
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"),
                                  reviews_gen__reviewer__args__position_bias_mitigation="swap_position")
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    assert arena_project.server.request_count == 4
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert all(r["win_1"] == "model_a" and r["win_2"] == "model_b" and r["win"] == "tie" for r in reviews)
    assert all(r["review_text_1"] and r["review_text_2"] for r in reviews)
    result.stdout.fnmatch_lines(["position consistency: 0.0% of 2 swapped pairs agree"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv")
    assert report["Ties"].tolist() == [2, 2]


def test_swap_position_independent_rule_counts_two_games(arena_project):
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-c"),
                                  reviews_gen__reviewer__args__position_bias_mitigation="swap_position",
                                  reviews_gen__reviewer__args__swap_rule="independent")
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["position consistency: 100.0% of 2 swapped pairs agree"])
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert report.loc["tiny-a", "Wins"] == 4 and report.loc["tiny-a", "Battles"] == 4
    # The second order was really shown swapped: the longer answer stood first in call 1, second in call 2.
    first, second = arena_project.server.requests[:2]
    assert prompt_text(first) != prompt_text(second)


def test_randomize_order_is_seeded_and_mapped_back(arena_project):
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    config = arena_project.config(questions=12, models=("tiny-a", "tiny-c"),
                                  reviews_gen__reviewer__args__position_bias_mitigation="randomize_order")
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=12)
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    swapped = [r["swapped"] for r in sorted(reviews, key=lambda r: r["question_id"])]
    assert 0 < sum(swapped) < 12  # both orders were shown
    assert all(r["win"] == "model_a" for r in reviews)  # tiny-a wins whichever order it was shown in
    # Same seed, new review file: the same orders.
    config["reviews_gen"]["review_file"] = "reviews/again.jsonl"
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=12)
    again = arena_project.read_jsonl("reviews/again.jsonl")
    assert [r["swapped"] for r in sorted(again, key=lambda r: r["question_id"])] == swapped


@pytest.mark.skipif(COMPAT is None, reason="EvalScope compat files (shared/compat/evalscope) not present")
def test_evalscope_prompt_templates_work_unchanged(arena_project):
    arena_project.server.reply = prefer_longer()  # EvalScope's own answer markers
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-c"),
                                  reviews_gen__prompt_file=str(COMPAT / "prompt_templates.jsonl"))
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    request = arena_project.server.requests[0]
    assert "[The Start of Assistant A's Answer]" in prompt_text(request)
    assert all(r["template"] == "pair-v2" and r["win"] == "model_a"
               for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl"))


def _write_questions(root: Path, records: list[dict]) -> None:
    (root / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_references_choose_the_reference_template_and_never_render_none(arena_project):
    arena_project.server.reply = always("B")
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"))
    arena_project.write(config)
    _write_questions(arena_project.root, [
        {"question_id": 1, "text": "What is 6 times 7?", "category": "math", "reference": "42"},
        {"question_id": 2, "text": "What is 5 plus 5?", "category": "math"},
        {"question_id": 3, "text": "Describe a sunset.", "category": "writing"},
    ])
    result = arena_project.run()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*category 'math': questions without a reference answer are judged with "
                                 "'pair-v1' instead of 'pair-ref-v1'*"])
    reviews = {r["question_id"]: r for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")}
    assert reviews[1]["template"] == "pair-ref-v1"
    assert reviews[2]["template"] == "pair-v1"
    prompts = [prompt_text(r) for r in arena_project.server.requests]
    assert any("[Reference answer]\n42\n" in p for p in prompts)
    assert not any("None" in p or "{ref_answer" in p for p in prompts)


def test_reference_file_feeds_references(arena_project):
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"), reviews_gen__reference_file="refs.jsonl")
    arena_project.write(config)
    _write_questions(arena_project.root, [{"question_id": 1, "text": "What is 6 times 7?", "category": "math"}])
    (arena_project.root / "refs.jsonl").write_text(json.dumps({"question_id": 1, "answer": "It is 42."}) + "\n")
    arena_project.server.reply = always("C")
    arena_project.run().assert_outcomes(passed=1)
    assert "It is 42." in prompt_text(arena_project.server.requests[0])


def test_multi_turn_questions_are_answered_turn_by_turn_and_judged_whole(arena_project):
    markers = dict(a_start="=== Conversation of Assistant A ===", a_end="=== End of conversation of Assistant A ===",
                   b_start="=== Conversation of Assistant B ===", b_end="=== End of conversation of Assistant B ===")
    arena_project.server.reply = prefer_longer(**markers)
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-c"))
    arena_project.write(config)
    _write_questions(arena_project.root, [
        {"question_id": 81, "category": "writing", "turns": ["Write a haiku about rain.", "Now make it about snow."]},
    ])
    arena_project.run().assert_outcomes(passed=1)
    record = arena_project.read_jsonl("answers/answer_tiny-a.jsonl")[0]
    assert len(record["answer_turns"]) == 2 and record["answer"] == record["answer_turns"][1]
    review = arena_project.read_jsonl("reviews/review_gpt4.jsonl")[0]
    assert review["template"] == "pair-v1-multi-turn" and review["win"] == "model_a"
    prompt = prompt_text(arena_project.server.requests[0])
    assert "Now make it about snow." in prompt and record["answer_turns"][0] in prompt


def test_arena_hard_labels_with_strong_verdict_weight(arena_project):
    def strong_for_longer(body):
        verdict = prefer_longer(**OWN_MARKERS)(body)
        return {"[[A]]": "[[A>>B]]", "[[B]]": "[[B>>A]]", "[[C]]": "[[A=B]]"}[verdict]

    arena_project.server.reply = strong_for_longer
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-c"),
                                  reviews_gen__reviewer__args__fn_completion_parser="arena_hard_parser",
                                  reviews_gen__reviewer__args__strong_verdict_weight=3)
    arena_project.write(config)
    (arena_project.root / "templates.jsonl").write_text(json.dumps({
        "name": "arena-hard-v1", "type": "pairwise", "category": "general", "output_format": "[[A>B]]",
        "system_prompt": "Compare the two answers; end with one of [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]].",
        "prompt_template": "{question}\n[Answer of assistant A]\n{answer_a}\n[End of answer A]\n"
                           "[Answer of assistant B]\n{answer_b}\n[End of answer B]",
    }) + "\n")
    config["reviews_gen"]["prompt_file"] = "templates.jsonl"
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    report = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert report.loc["tiny-a", "Wins"] == 6


def test_rate_limits_are_retried_and_every_judgment_completes(arena_project):
    arena_project.server.reply = faults_then(1, Fault(status=429, retry_after=0.05), prefer_longer(**OWN_MARKERS))
    arena_project.write(arena_project.config(questions=4, models=("tiny-a", "tiny-c")))
    result = arena_project.run()
    result.assert_outcomes(passed=4)
    assert arena_project.server.request_count == 8  # each judgment: one 429, one success
    result.stdout.fnmatch_lines(["judge: 4 calls, 0 from cache, 0 failed*"])


def test_a_call_that_keeps_failing_fails_only_its_item_and_is_asked_again_later(arena_project):
    def broken_for_question_2(body):
        return Fault(status=500) if "part 2." in prompt_text(body) else prefer_longer(**OWN_MARKERS)(body)

    arena_project.server.reply = broken_for_question_2
    config = arena_project.config(questions=3, models=("tiny-a", "tiny-c"))
    config["reviews_gen"]["reviewer"]["args"]["max_retries"] = 1
    arena_project.write(config)
    result = arena_project.run("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_battle?q002-tiny-a--vs--tiny-c? FAILED*", "*judge call failed: InternalServerError*"])
    assert arena_project.server.request_count == 2 + 2  # two good calls, one call tried twice
    result.stdout.fnmatch_lines(["judge: 3 calls, 0 from cache, 1 failed*"])
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    again = arena_project.run()
    again.assert_outcomes(passed=3)
    again.stdout.fnmatch_lines(["judge: 1 calls, 2 from cache, 0 failed*"])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault(kind="hang", seconds=3), "judge call failed: APITimeoutError*"),
        (Fault(kind="finish", finish_reason="length", content="Let me think about [[A"),
         "unparseable verdict (the reply was cut off at max_tokens: finish_reason length)*"),
        (Fault(kind="garbage"), "judge call failed:*"),
        (Fault(kind="empty_choices"), "judge call failed: the reply has no choices*"),
        (Fault(kind="reset"), "judge call failed: APIConnectionError*"),
        (Fault(kind="finish", finish_reason="content_filter", content=""),
         "unparseable verdict (the judge's content filter stopped the reply)*"),
        (Fault(status=400), "judge call failed: BadRequestError*"),
    ],
    ids=["timeout", "truncated", "garbage", "empty-choices", "reset", "content-filter", "bad-request"],
)
def test_faults_fail_their_item_with_a_reason(arena_project, fault, message):
    arena_project.server.reply = constant(fault)
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"))
    config["reviews_gen"]["reviewer"]["args"].update(max_retries=0, timeout=0.5)
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{message}"])
    assert not (arena_project.root / "reports/elo_rating.csv").exists()


def test_unparseable_reply_can_be_reasked_once(arena_project):
    replies = iter(["I like both.", "On reflection A is better. [[A]]"])
    arena_project.server.reply = lambda body: next(replies)
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"),
                                  reviews_gen__reviewer__args__reask_unparseable=True)
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=1)
    assert arena_project.server.request_count == 2
    result.stdout.fnmatch_lines(["judge: 2 calls, 0 from cache, 0 failed, 1 re-asked*"])


def test_cost_is_reported_when_prices_are_configured(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"),
                                  reviews_gen__reviewer__args__prompt_cost_per_1m=10.0,
                                  reviews_gen__reviewer__args__completion_cost_per_1m=30.0)
    arena_project.write(config)
    result = arena_project.run()
    line = next(line for line in result.stdout.lines if line.startswith("judge: "))
    prompt_tokens = int(line.split("; ")[1].split(" prompt")[0])
    completion_tokens = int(line.split(" + ")[1].split(" completion")[0])
    assert prompt_tokens > 0 and completion_tokens > 0
    expected = (prompt_tokens * 10.0 + completion_tokens * 30.0) / 1e6
    assert line.endswith(f"cost {expected:.4f}")


def test_collect_only_counts_swapped_calls(arena_project):
    config = arena_project.config(questions=3, models=("tiny-a", "tiny-b"),
                                  reviews_gen__reviewer__args__position_bias_mitigation="swap_position")
    arena_project.write(config)
    result = arena_project.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*plan: 3 battles, 0 gates; 6 judge calls*"])


@pytest.mark.parametrize("verdict", ["probability", "text_or_probability"])
def test_local_judge_runs_offline_after_the_candidates(arena_project, verdict):
    config = arena_project.config(questions=3, models=("tiny-a", "tiny-c"))
    config["reviews_gen"]["reviewer"] = {
        "ref": "local",
        "args": {"model": "tiny-judge", "model_id_or_path": str(arena_project.models["tiny-b"]),
                 "precision": "torch.float32", "verdict": verdict, "max_tokens": 8, "batch_size": 4,
                 "max_concurrency": 4, "position_bias_mitigation": "swap_position"},
    }
    arena_project.write(config)
    result = arena_project.run("-v")
    result.assert_outcomes(passed=3)
    assert arena_project.server.request_count == 0  # no API judge involved
    out = result.stdout.str()
    # The judge loads only after the last candidate is released: never two models at once.
    assert out.index("tiny-c: model released") < out.index("judge: loading local model")
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert len(reviews) == 3 and all(r["judge"] == "tiny-judge" for r in reviews)
    assert all("label probabilities" in r["review_text_1"] for r in reviews)
    result.stdout.fnmatch_lines(["position consistency: * of 3 swapped pairs agree"])
    # Cached on the next run: no judge model is even loaded.
    again = arena_project.run()
    again.assert_outcomes(passed=3)
    assert "judge: loading local model" not in again.stdout.str()
