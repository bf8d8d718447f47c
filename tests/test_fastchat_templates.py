"""FastChat's judge_prompts.jsonl is chosen from as FastChat's llm_judge chooses (gen_judgment.py:
pair-math-v1 / single-math-v1 with reference answers for math, reasoning and coding, pair-v2 / single-v1
otherwise, the -multi-turn forms for a two-turn judgment), filled in as FastChat fills it in, and a
reference question without its reference answers is refused before any judge call. Also the judge
settings FastChat and arena-hard bring: max_tokens 2048, a warning for replies cut at max_tokens, and
arena-hard's weight of 3 for strong verdicts with its parser."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pytest_arena.config import load_config
from pytest_arena.judging.templates import (FASTCHAT_REFERENCE_CATEGORIES, ReferenceMissing, TurnsNotCovered,
                                            choose_template, describe_choice, is_fastchat_file, load_templates,
                                            template_values)
from pytest_arena.questions import Question, load_questions
from pytest_arena.question_sets import load_question_sets
from support.judge_server import Fault, constant

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MT_BENCH = CONFIGS / "mt_bench"
PROMPTS = MT_BENCH / "judge_prompts.jsonl"
EVALSCOPE_PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "compat" / "evalscope" / "prompt_templates.jsonl"

# FastChat's choice, written out: (kind, needs a reference, turns judged) -> the template's name.
FASTCHAT_TABLE = {
    ("pairwise", False, 1): "pair-v2", ("pairwise", False, 2): "pair-v2-multi-turn",
    ("pairwise", True, 1): "pair-math-v1", ("pairwise", True, 2): "pair-math-v1-multi-turn",
    ("single", False, 1): "single-v1", ("single", False, 2): "single-v1-multi-turn",
    ("single", True, 1): "single-math-v1", ("single", True, 2): "single-math-v1-multi-turn",
}


@pytest.fixture(scope="module")
def fastchat():
    return load_templates(PROMPTS)


@pytest.fixture(scope="module")
def mt_bench_questions():
    """MT-bench's 80 questions with GPT-4's reference answers merged in, as configs/mt_bench.yaml reads them."""
    questions, _ = load_question_sets(load_config(CONFIGS / "mt_bench.yaml"), None, None)
    return questions


def first_turn(question: Question) -> Question:
    return replace(question, turns=question.turns[:1], reference=(question.reference or ())[:1] or None)


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_every_mt_bench_question_gets_fastchats_template(fastchat, mt_bench_questions, kind):
    assert len(mt_bench_questions) == 80
    seen = set()
    for question in mt_bench_questions:
        needs_reference = question.category in ("math", "reasoning", "coding")
        for turns, judged in ((1, first_turn(question)), (2, question)):
            template = choose_template(fastchat, kind, judged)
            assert template.name == FASTCHAT_TABLE[(kind, needs_reference, turns)], (question.question_id, turns)
            seen.add(template.name)
    assert seen == {name for (k, _, _), name in FASTCHAT_TABLE.items() if k == kind}


def test_fastchats_file_is_recognised_by_its_names_and_tags(fastchat):
    # FastChat's own tags could not choose: its multi-turn reference template is tagged "general".
    assert {t.name: t.categories for t in fastchat}["pair-math-v1-multi-turn"] == ("general",)
    for kind in ("pairwise", "single"):
        assert is_fastchat_file([t for t in fastchat if t.type == kind], kind)
    ours = load_templates(Path(__file__).resolve().parents[1] / "pytest_arena" / "templates" / "prompt_templates.jsonl")
    assert not is_fastchat_file([t for t in ours if t.type == "pairwise"], "pairwise")


@pytest.mark.skipif(not EVALSCOPE_PROMPTS.is_file(), reason="EvalScope compat files not present")
def test_evalscopes_copy_keeps_its_own_tags_and_fallback():
    """EvalScope tags the same templates math, reasoning and coding: its tags choose, and a math question
    without a reference keeps the general template (EvalScope's users, whose math questions have none)."""
    evalscope = load_templates(EVALSCOPE_PROMPTS)
    assert not is_fastchat_file([t for t in evalscope if t.type == "pairwise"], "pairwise")
    assert choose_template(evalscope, "pairwise", Question(1, ("2+2?",), "math")).name == "pair-v2"
    assert choose_template(evalscope, "pairwise", Question(1, ("2+2?",), "math", ("4",))).name == "pair-math-v1"


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_a_question_tagged_only_by_another_category_still_gets_the_reference_template(fastchat, kind):
    """FastChat's file tags its reference templates "math" only; reasoning and coding get them too."""
    for category in FASTCHAT_REFERENCE_CATEGORIES:
        question = Question(1, ("Q1", "Q2"), category, ("R1", "R2"))
        assert choose_template(fastchat, kind, question).name == FASTCHAT_TABLE[(kind, True, 2)]
    assert choose_template(fastchat, kind, Question(1, ("Q1",), "Math", ("R1",))).name == FASTCHAT_TABLE[(kind, False, 1)]


@pytest.mark.parametrize("turns", [1, 2])
@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_prompts_are_filled_in_as_fastchat_fills_them(fastchat, mt_bench_questions, kind, turns):
    """Our rendering equals FastChat's str.format with its own arguments (common.run_judge_pair/single)."""
    question = next(q for q in mt_bench_questions if q.category == "math")
    judged = question if turns == 2 else first_turn(question)
    template = choose_template(fastchat, kind, judged)
    a, b = ("A one", "A two"), ("B one", "B two")
    refs = dict(ref_answer_1=question.reference[0], ref_answer_2=question.reference[1])
    if kind == "pairwise":
        ours = template.render(template_values(judged, {"answer_a": a[:turns], "answer_b": b[:turns]}))
        if turns == 1:
            theirs = template.prompt_template.format(question=question.turns[0], answer_a=a[0], answer_b=b[0], **refs)
        else:
            theirs = template.prompt_template.format(question_1=question.turns[0], question_2=question.turns[1],
                                                     answer_a_1=a[0], answer_b_1=b[0], answer_a_2=a[1],
                                                     answer_b_2=b[1], **refs)
    else:
        ours = template.render(template_values(judged, {"answer": a[:turns]}))
        if turns == 1:
            theirs = template.prompt_template.format(question=question.turns[0], answer=a[0], **refs)
        else:
            theirs = template.prompt_template.format(question_1=question.turns[0], question_2=question.turns[1],
                                                     answer_1=a[0], answer_2=a[1], **refs)
    assert ours == theirs
    assert question.reference[0] in ours  # GPT-4's reference answer, from reference_answer_gpt-4.jsonl


def test_reference_answers_come_from_the_reference_file(mt_bench_questions):
    """FastChat shows GPT-4's answers (reference_answer/gpt-4.jsonl), not the questions' short `reference`."""
    gpt4 = {}
    for line in (MT_BENCH / "reference_answer_gpt-4.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        gpt4[record["question_id"]] = tuple(record["choices"][0]["turns"])
    for question in mt_bench_questions:
        if question.category in FASTCHAT_REFERENCE_CATEGORIES:
            assert question.reference == gpt4[question.question_id]


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_a_reference_question_without_its_reference_is_refused(fastchat, kind):
    with pytest.raises(ReferenceMissing, match="category 'coding' is judged with .*math-v1.* no reference answer"):
        choose_template(fastchat, kind, Question(123, ("Q1",), "coding"))
    # one reference for a two-turn judgment: turn 2's reference answer is missing
    with pytest.raises(ReferenceMissing, match="reference answer for 1 turn only .*needs 2"):
        choose_template(fastchat, kind, Question(123, ("Q1", "Q2"), "coding", ("R1",)))
    assert choose_template(fastchat, kind, Question(123, ("Q1", "Q2"), "writing")).name == FASTCHAT_TABLE[(kind, False, 2)]


def test_longer_questions_than_fastchat_judges_are_refused(fastchat):
    with pytest.raises(TurnsNotCovered, match="3 turns"):
        choose_template(fastchat, "pairwise", Question(1, ("a", "b", "c"), "writing"))


def test_the_choice_is_described_for_the_log(fastchat):
    by_name = {t.name: t for t in fastchat}
    assert describe_choice(by_name["pair-math-v1"], "math") == "judge template for math: pair-math-v1 (reference answers)"
    assert describe_choice(by_name["pair-v2-multi-turn"], "writing") == "judge template for writing: pair-v2-multi-turn"


# --------------------------------------------------------------------------------------------------
# End to end: refusal before any call, the log, the judge settings


def _mt_bench_project(arena_project, question_ids, *, reference_file=True, **judge_args) -> Path:
    """configs/mt_bench.yaml with the loopback judge, tiny candidates and a few of its questions."""
    config = yaml.safe_load((CONFIGS / "mt_bench.yaml").read_text(encoding="utf-8"))
    questions = {q.question_id: q for q in load_questions(MT_BENCH / "question.jsonl")}
    lines = [json.dumps({"question_id": i, "category": questions[i].category, "turns": list(questions[i].turns)})
             for i in question_ids]
    (arena_project.root / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config["question_file"] = "questions.jsonl"
    config["reviews_gen"]["prompt_file"] = str(PROMPTS)
    if reference_file:
        config["reviews_gen"]["reference_file"] = str(MT_BENCH / "reference_answer_gpt-4.jsonl")
    else:
        del config["reviews_gen"]["reference_file"]
    config["reviews_gen"]["reviewer"]["args"].update(base_url=arena_project.server.base_url, timeout=10, **judge_args)
    config["answers_gen"] = {name: {"model_id_or_path": str(arena_project.models[tiny]), "precision": "torch.float32",
                                    "generation_config": {"do_sample": False, "max_new_tokens": tokens,
                                                          "min_new_tokens": tokens}, "batch_size": 4}
                             for name, tiny, tokens in (("Qwen2-1.5B", "tiny-a", 12), ("Qwen2-0.5B", "tiny-c", 3))}
    config.pop("gates")
    return arena_project.write(config)


def test_a_missing_reference_is_refused_before_any_model_or_judge_call(arena_project):
    # MT-bench's question 123 (coding) has no `reference` of its own: without the reference file it has none.
    path = _mt_bench_project(arena_project, [81, 123], reference_file=False)
    result = arena_project.run(config=path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {PROMPTS}: *category 'coding' is judged with 'pair-math-v1*"
                                 "reviews_gen.reference_file*(question 123)"])
    assert "Traceback" not in result.stderr.str()
    assert arena_project.server.request_count == 0
    assert not (arena_project.root / "results" / "answers").exists()  # no model was loaded


def test_judge_defaults_and_the_cut_off_warning(arena_project):
    """max_tokens 2048 as FastChat asks; replies that end at max_tokens are counted in one warning."""
    arena_project.server.reply = constant(Fault(kind="finish", finish_reason="length", content="... [[A]]"))
    path = _mt_bench_project(arena_project, [81])
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    del config["reviews_gen"]["reviewer"]["args"]["max_tokens"]  # the default
    arena_project.write(config)
    result = arena_project.run(config=path)
    assert result.ret == 0, result.stdout.str()
    asked = arena_project.server.requests
    assert {r["max_tokens"] for r in asked} == {2048}
    warnings = [line for line in result.stdout.lines if "ended at max_tokens" in line]
    assert warnings == [f"WARNING: {len(asked)} of {len(asked)} judge replies ended at max_tokens (2048; "
                        "finish_reason length): raise reviews_gen.reviewer.args.max_tokens"]
    result.stdout.fnmatch_lines(["*judge template for writing: pair-v2"])


def _judge_of_mt_bench_with(tmp_path, drop=(), **changes):
    """The judge configs/mt_bench.yaml gives with its reviewer args changed (``drop``: keys left out)."""
    config = yaml.safe_load((CONFIGS / "mt_bench.yaml").read_text(encoding="utf-8"))
    config["question_file"] = str(MT_BENCH / "question.jsonl")
    review = config["reviews_gen"]
    for key in ("prompt_file", "reference_file"):
        review[key] = str(CONFIGS / review[key])
    args = review["reviewer"]["args"]
    args.update(changes)
    for key in drop:
        del args[key]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_config(path).review.judge


def test_arena_hard_parser_brings_arena_hards_strong_verdict_weight(tmp_path):
    assert _judge_of_mt_bench_with(tmp_path).strong_verdict_weight == 1.0  # lmsys_parser: no strong verdicts
    assert _judge_of_mt_bench_with(tmp_path, fn_completion_parser="arena_hard_parser").strong_verdict_weight == 3.0
    explicit = _judge_of_mt_bench_with(tmp_path, fn_completion_parser="arena_hard_parser", strong_verdict_weight=1)
    assert explicit.strong_verdict_weight == 1.0  # an explicit value wins


def test_api_judge_max_tokens_defaults_to_fastchats_2048(tmp_path):
    assert _judge_of_mt_bench_with(tmp_path, drop=("max_tokens",)).max_tokens == 2048
    assert _judge_of_mt_bench_with(tmp_path, max_tokens=512).max_tokens == 512
