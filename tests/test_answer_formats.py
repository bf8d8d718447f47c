"""Answer files of FastChat, arena-hard and AlpacaEval, read as they are (generation/answer_formats.py).

The fixtures are small files in each tool's real shape (a few records, written here): FastChat's
``model_answer/*.jsonl``, arena-hard-auto's v0.1 and v2 ``model_answer`` records, AlpacaEval's outputs
(a JSON list, or JSONL), and our own EvalScope records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest

from pytest_arena.errors import ArenaDataError
from pytest_arena.generation.answer_formats import (detect_format, read_answer_records, record_key, record_model,
                                                    record_turns)
from pytest_arena.generation.answers import ModelAnswers, answer_from_record
from pytest_arena.generation.fingerprint import DigestMemo
from pytest_arena.questions import Question
from support.arena_project import fixed_answers_config, write_questions
from support.judge_server import prompt_text


def fastchat(qid, turns, model="vicuna-7b"):
    return {"question_id": qid, "answer_id": f"a{qid}", "model_id": model,
            "choices": [{"index": 0, "turns": list(turns)}], "tstamp": 1687221590.0}


def arena_hard_v01(qid, text, model="gpt-4-0314"):
    return {"question_id": qid, "answer_id": f"a{qid}", "model_id": model,
            "choices": [{"index": 0, "turns": [{"content": text, "token_len": 3}]}], "tstamp": 1712350000.0}


def arena_hard_v2(uid, text, model="o3-mini"):
    return {"uid": uid, "ans_id": f"a{uid}", "model": model, "tstamp": 1740000000.0,
            "messages": [{"role": "user", "content": "the question"},
                         {"role": "assistant", "content": {"answer": text}}],
            "metadata": {"token_len": 3}}


def alpaca(instruction, output, generator="gpt4_turbo"):
    return {"dataset": "helpful_base", "instruction": instruction, "output": output, "generator": generator}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def question_texts(path: Path) -> dict[int, str]:
    return {r["question_id"]: r["text"] for r in map(json.loads, path.read_text().splitlines())}


QUESTIONS = [Question(81, ("Write a travel blog post.",)), Question("3b5e", ("Sort a list.",))]


def read_answers(tmp_path: Path, file: Path, questions=QUESTIONS) -> ModelAnswers:
    answers = ModelAnswers("m", file, None, 0, DigestMemo())
    assert answers.load_cached(questions) == []
    return answers


# -------------------------------------------------------------------------------------------------
# One record per format


def test_fastchat_records_give_their_turns_model_and_id(tmp_path):
    record = fastchat(81, ["Aloha from Hawaii.", "Aloha again."])
    assert detect_format([record]) == "fastchat"
    assert record_turns("fastchat", record) == ["Aloha from Hawaii.", "Aloha again."]
    assert record_model("fastchat", record) == "vicuna-7b"
    answers = read_answers(tmp_path, write_jsonl(tmp_path / "vicuna-7b.jsonl", [record]))
    # A single-turn question of the arena: the first turn, not the last.
    assert answers.get(QUESTIONS[0]).turns == ("Aloha from Hawaii.",)
    assert answers.get(QUESTIONS[1]) is None


def test_arena_hard_v01_records_give_each_turns_content(tmp_path):
    file = write_jsonl(tmp_path / "gpt-4-0314.jsonl", [arena_hard_v01("3b5e", "sorted(xs)")])
    records = read_answer_records(file)
    assert detect_format(records) == "arena-hard-v0.1"
    assert record_model("arena-hard-v0.1", records[0]) == "gpt-4-0314"
    assert read_answers(tmp_path, file).get(QUESTIONS[1]).turns == ("sorted(xs)",)


def test_arena_hard_v2_records_give_the_last_messages_answer(tmp_path):
    file = write_jsonl(tmp_path / "o3-mini.jsonl", [arena_hard_v2("3b5e", "Use sorted()."), arena_hard_v2("zz", "x")])
    records = read_answer_records(file)
    assert detect_format(records) == "arena-hard-v2"
    assert record_key("arena-hard-v2", records[0]) == "3b5e"
    assert record_model("arena-hard-v2", records[0]) == "o3-mini"
    assert read_answers(tmp_path, file).get(QUESTIONS[1]).turns == ("Use sorted().",)


@pytest.mark.parametrize("layout", ["json-list", "jsonl"])
def test_alpaca_eval_outputs_match_questions_by_instruction_text(tmp_path, layout):
    records = [alpaca("Write a travel blog post.", "Hawaii is lovely."), alpaca("Something else.", "No.")]
    file = tmp_path / "model_outputs.json"
    if layout == "json-list":
        file.write_text(json.dumps(records, indent=2), encoding="utf-8")
    else:
        write_jsonl(file, records)
    assert detect_format(read_answer_records(file)) == "alpaca_eval"
    assert record_model("alpaca_eval", records[0]) == "gpt4_turbo"
    answers = read_answers(tmp_path, file)
    assert answers.get(QUESTIONS[0]).turns == ("Hawaii is lovely.",)
    assert answers.get(QUESTIONS[1]) is None


def test_our_records_read_as_before_and_a_single_turn_question_takes_the_first_turn(tmp_path):
    record = {"question_id": 81, "model_id": "ours", "answer": "second", "answer_turns": ["first", "second"]}
    assert detect_format([record]) == "evalscope"
    assert answer_from_record("ours", QUESTIONS[0], record).turns == ("first",)
    two_turns = Question(81, ("Write a travel blog post.", "Now shorter."))
    assert answer_from_record("ours", two_turns, record).turns == ("first", "second")
    answers = read_answers(tmp_path, write_jsonl(tmp_path / "ours.jsonl", [record, {"question_id": "3b5e", "answer": "x"}]))
    assert answers.get(QUESTIONS[0]).text == "first"
    assert answers.get(QUESTIONS[1]).turns == ("x",)


def test_a_foreign_file_with_no_answer_to_the_arenas_questions_is_refused_naming_file_and_keys(tmp_path):
    file = write_jsonl(tmp_path / "vicuna-7b.jsonl", [fastchat(1, ["a"]), fastchat(2, ["b"])])
    with pytest.raises(ArenaDataError) as caught:
        ModelAnswers("m", file, None, 0, DigestMemo()).load_cached(QUESTIONS)
    message = str(caught.value)
    assert str(file) in message
    assert "fastchat" in message
    assert "question_id" in message and "choices" in message


# -------------------------------------------------------------------------------------------------
# End to end, with the loopback judge


def test_a_fastchat_file_as_a_disabled_models_output_file_shows_the_judge_its_real_answers(arena_project):
    config = fixed_answers_config(arena_project, 2, {"ours": 2})
    texts = question_texts(arena_project.root / "questions.jsonl")
    fc = write_jsonl(arena_project.root / "model_answer" / "vicuna-7b.jsonl",
                     [fastchat(qid, [f"FASTCHAT first turn {qid} " * 5, f"FASTCHAT second turn {qid}"]) for qid in texts])
    config["answers_gen"]["vicuna"] = {"enable": False, "output_file": str(fc)}
    arena_project.write(config)
    before = fc.read_bytes()
    result = arena_project.run("-s")
    result.assert_outcomes(passed=2)
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    assert len(prompts) >= 2
    for qid in texts:
        assert any(f"FASTCHAT first turn {qid}" in p for p in prompts)
    # Single-turn questions: the judge sees the first turn, never the second.
    assert not any("FASTCHAT second turn" in p for p in prompts)
    result.stdout.fnmatch_lines(["*vicuna: *vicuna-7b.jsonl read as fastchat answers*"])
    assert fc.read_bytes() == before  # read-only: never appended to


def test_a_judge_only_arena_from_two_target_answers_files(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a",))
    del config["answers_gen"]
    texts = question_texts(arena_project.root / "questions.jsonl")
    hard = write_jsonl(arena_project.root / "hard" / "o3-mini.jsonl",
                       [arena_hard_v2(qid, f"HARD answer {qid} " * 4) for qid in texts])
    outputs = arena_project.root / "alpaca" / "model_outputs.json"
    outputs.parent.mkdir()
    outputs.write_text(json.dumps([alpaca(text, f"ALPACA answer {qid}", generator="") for qid, text in texts.items()]))
    config["reviews_gen"]["target_answers"] = [str(hard), str(outputs)]
    arena_project.write(config)
    result = arena_project.run("-s", "-v")
    result.assert_outcomes(passed=2)
    # Names: the v2 records' `model`; AlpacaEval's empty generator leaves the file stem.
    result.stdout.fnmatch_lines(["*q001-o3-mini--vs--model_outputs*PASSED*"])
    result.stdout.fnmatch_lines(["*o3-mini: *o3-mini.jsonl read as arena-hard-v2 answers*"])
    result.stdout.fnmatch_lines(["*model_outputs: *model_outputs.json read as alpaca_eval answers*"])
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    for qid in texts:
        assert any(f"HARD answer {qid}" in p and f"ALPACA answer {qid}" in p for p in prompts)


def test_single_turn_questions_show_the_first_turn_of_our_own_two_turn_records(arena_project):
    config = fixed_answers_config(arena_project, 2, {"short": 1})
    long_file = write_jsonl(arena_project.root / "answers" / "answer_long.jsonl", [
        {"question_id": i, "model_id": "long", "answer": f"SECOND {i}", "answer_turns": [f"FIRST {i} " * 6, f"SECOND {i}"]}
        for i in (1, 2)])
    config["answers_gen"]["long"] = {"enable": False, "output_file": str(long_file)}
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    assert any("FIRST 1" in p for p in prompts) and any("FIRST 2" in p for p in prompts)
    assert not any("SECOND" in p for p in prompts)
