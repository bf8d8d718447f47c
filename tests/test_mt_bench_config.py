"""configs/mt_bench.yaml's wiring end to end: FastChat's questions, GPT-4's reference answers and FastChat's
judge prompts as shipped, judged per turn in both orders by the loopback judge (in GPT-4's place), with
tiny candidates in place of the Qwen2 checkpoints and four of the 80 questions (two reference categories,
two plain ones). What the judge received is read back template by template."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas  # noqa: F401 - pytester runs the arena in this process (tests/COMMON note)
import pytest
import yaml

from pytest_arena.judging.templates import load_templates
from pytest_arena.questions import load_questions
from support.judge_server import prompt_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MT_BENCH = CONFIGS / "mt_bench"
# writing and extraction (plain), reasoning and math (judged against GPT-4's reference answers)
QUESTION_IDS = (81, 101, 111, 131)
# The candidates keep their names; their answers' lengths differ, so the judge below prefers Qwen2-1.5B.
TINY = {"Qwen2-1.5B": ("tiny-a", 12), "Qwen2-0.5B": ("tiny-c", 3)}


def mt_bench_project(arena_project, question_ids=QUESTION_IDS) -> Path:
    """configs/mt_bench.yaml as shipped, but for the judge's base_url (the loopback judge), the candidates'
    checkpoints (tiny models, a few tokens an answer) and a question file holding a few of its questions."""
    config = yaml.safe_load((CONFIGS / "mt_bench.yaml").read_text(encoding="utf-8"))
    questions = {q.question_id: q for q in load_questions(CONFIGS / config["question_file"])}
    lines = [json.dumps({"question_id": i, "category": questions[i].category, "turns": list(questions[i].turns)})
             for i in question_ids]
    (arena_project.root / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config["question_file"] = "questions.jsonl"
    review = config["reviews_gen"]
    for key in ("prompt_file", "reference_file"):  # the shipped files themselves
        review[key] = str(CONFIGS / review[key])
    review["reviewer"]["args"].update(base_url=arena_project.server.base_url, timeout=10)
    assert set(config["answers_gen"]) == set(TINY)
    for name, (tiny, tokens) in TINY.items():
        config["answers_gen"][name].update(
            model_id_or_path=str(arena_project.models[tiny]), precision="torch.float32", batch_size=4,
            generation_config={"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens})
    return arena_project.write(config)


class FastChatPrompts:
    """Reads a judge request back into FastChat's template and the values filled into it."""

    def __init__(self, path: Path):
        self.patterns = [(t, _pattern(t.prompt_template)) for t in load_templates(path)]

    def read(self, body: dict) -> tuple[str, dict[str, str]]:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        found = [(t.name, m.groupdict()) for t, pattern in self.patterns
                 if t.system_prompt == system and (m := pattern.fullmatch(user))]
        assert len(found) == 1, f"not exactly one FastChat template fits: {[n for n, _ in found]}\n{user[:300]}"
        return found[0]

    def prefer_longer(self, body: dict) -> str:
        """The judge: the longer last answer wins ([[A]] / [[B]] / [[C]])."""
        _, values = self.read(body)
        a = values.get("answer_a_2") or values["answer_a"]
        b = values.get("answer_b_2") or values["answer_b"]
        return "[[C]]" if len(a) == len(b) else "[[A]]" if len(a) > len(b) else "[[B]]"


def _pattern(template: str) -> re.Pattern:
    """A regex that matches the template filled in, one group per placeholder (a repeated one must repeat)."""
    parts, seen, at = [], set(), 0
    for match in re.finditer(r"\{(\w+)\}", template):
        parts.append(re.escape(template[at:match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
        at = match.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts), re.DOTALL)


def test_mt_bench_config_judges_each_turn_with_fastchats_templates(arena_project):
    prompts = FastChatPrompts(MT_BENCH / "judge_prompts.jsonl")
    arena_project.server.reply = prompts.prefer_longer
    questions = {q.question_id: q for q in load_questions(MT_BENCH / "question.jsonl")}
    references = {r["question_id"]: r["choices"][0]["turns"] for r in map(
        json.loads, (MT_BENCH / "reference_answer_gpt-4.jsonl").read_text(encoding="utf-8").splitlines())}

    result = arena_project.run("-v", config=mt_bench_project(arena_project))
    assert result.ret == 0, result.stdout.str()
    assert arena_project.server.reply_errors == []

    # 4 questions x 2 turns x 2 orders (swap_position), one pair of candidates
    asked = arena_project.server.requests
    assert len(asked) == 16
    assert {(r["model"], r["temperature"], r["max_tokens"]) for r in asked} == {("gpt-4", 0, 2048)}
    chosen = Counter()
    for body in asked:
        name, values = prompts.read(body)
        question = questions[next(i for i in QUESTION_IDS
                                  if questions[i].turns[0] in (values.get("question"), values.get("question_1")))]
        chosen[(question.category, name)] += 1
        if "ref_answer_1" in values:  # GPT-4's reference answers, turn by turn
            assert values["ref_answer_1"] == references[question.question_id][0]
            assert values.get("ref_answer_2", references[question.question_id][1]) == references[question.question_id][1]
    assert chosen == {
        ("writing", "pair-v2"): 2, ("writing", "pair-v2-multi-turn"): 2,
        ("extraction", "pair-v2"): 2, ("extraction", "pair-v2-multi-turn"): 2,
        ("reasoning", "pair-math-v1"): 2, ("reasoning", "pair-math-v1-multi-turn"): 2,
        ("math", "pair-math-v1"): 2, ("math", "pair-math-v1-multi-turn"): 2,
    }

    # the choice is logged once per category and template
    logged = [line for line in result.stdout.lines if line.startswith("arena: judge template for ")]
    assert sorted(logged) == sorted([
        "arena: judge template for writing: pair-v2", "arena: judge template for writing: pair-v2-multi-turn",
        "arena: judge template for extraction: pair-v2", "arena: judge template for extraction: pair-v2-multi-turn",
        "arena: judge template for reasoning: pair-math-v1 (reference answers)",
        "arena: judge template for reasoning: pair-math-v1-multi-turn (reference answers)",
        "arena: judge template for math: pair-math-v1 (reference answers)",
        "arena: judge template for math: pair-math-v1-multi-turn (reference answers)",
    ])

    # one review record per question and turn, naming its template; the longer answers won every game
    reviews = arena_project.read_jsonl("results/reviews/reviews.jsonl")
    assert sorted((r["question_id"], r["turn"], r["template"]) for r in reviews) == sorted(
        (i, turn, ("pair-math-v1" if questions[i].category in ("math", "reasoning") else "pair-v2")
         + ("-multi-turn" if turn == 2 else "")) for i in QUESTION_IDS for turn in (1, 2))
    assert {(r["win_1"], r["win_2"]) for r in reviews} == {("model_a", "model_a")}
    assert {r["model_a"] for r in reviews} == {"Qwen2-1.5B"}
    result.stdout.fnmatch_lines(["*test_gate?beats-Qwen2-1.5B--vs--Qwen2-0.5B? PASSED*"])


# --------------------------------------------------------------------------------------------------
# Judging the answers FastChat already generated (a judge-only arena): FastChat's pairwise-baseline, with the
# baseline and the gates naming models that only the answer files name.


def fastchat_answers(path: Path, model: str, questions: dict, words: int) -> Path:
    """A FastChat model_answer file (``choices[0].turns``) with ``words`` words a turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [{"question_id": q.question_id, "answer_id": f"{model}-{q.question_id}", "model_id": model,
                "choices": [{"index": 0, "turns": [" ".join([f"t{t}"] * words) for t in (1, 2)]}], "tstamp": 0.0}
               for q in questions.values()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def judge_only_project(arena_project, *, baseline: str, gate: dict) -> Path:
    path = mt_bench_project(arena_project, (81, 111))
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    questions = {q.question_id: q for q in load_questions(arena_project.root / "questions.jsonl")}
    answers = arena_project.root / "model_answer"
    del config["answers_gen"]
    config["reviews_gen"]["target_answers"] = [
        str(fastchat_answers(answers / "vicuna-13b.jsonl", "vicuna-13b", questions, 9)),
        str(fastchat_answers(answers / "gpt-3.5-turbo.jsonl", "gpt-3.5-turbo", questions, 3))]
    config["reviews_gen"]["reviewer"]["args"]["mode"] = "pairwise_baseline"
    config["rating_gen"]["baseline_model"] = baseline
    config["gates"] = [gate]
    return arena_project.write(config)


def test_baseline_and_gates_may_name_models_of_target_answers_files(arena_project):
    arena_project.server.reply = FastChatPrompts(MT_BENCH / "judge_prompts.jsonl").prefer_longer
    path = judge_only_project(arena_project, baseline="gpt-3.5-turbo",
                              gate={"model": "vicuna-13b", "beats": "gpt-3.5-turbo"})
    result = arena_project.run("-v", config=path)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_battle?q081-vicuna-13b--vs--gpt-3.5-turbo? PASSED*",
                                 "*test_battle?q111-vicuna-13b--vs--gpt-3.5-turbo? PASSED*",
                                 "*test_gate?beats-vicuna-13b--vs--gpt-3.5-turbo? PASSED*"])
    assert arena_project.server.request_count == 2 * 2 * 2  # questions x turns x orders
    assert not (arena_project.root / "results" / "answers").exists()  # nothing generated: answers as given


@pytest.mark.parametrize("baseline, gate, where, problem", [
    ("gpt-3.5-turbo", {"model": "vicuna-7b", "min_rating": 1000}, "gates[0].model",
     "expected one of the models that take part (vicuna-13b, gpt-3.5-turbo), got 'vicuna-7b'"),
    ("gpt-3.5-turbo", {"model": "vicuna-13b", "beats": "gpt-4"}, "gates[0].beats",
     "expected one of the models that take part (vicuna-13b, gpt-3.5-turbo), got 'gpt-4'"),
    ("gpt-4", {"model": "vicuna-13b", "min_rating": 1000}, "rating_gen.baseline_model",
     "the baseline 'gpt-4' has no answers"),
])
def test_a_name_no_answers_file_gives_is_refused_before_any_call(arena_project, baseline, gate, where, problem):
    path = judge_only_project(arena_project, baseline=baseline, gate=gate)
    result = arena_project.run(config=path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {path}: {where}: {problem}" in result.stderr.str()
    assert arena_project.server.request_count == 0
