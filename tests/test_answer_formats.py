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
from pytest_arena.generation.answer_formats import (detect_format, index_answers, read_answer_records, record_key,
                                                    record_model, record_turns)
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


# -------------------------------------------------------------------------------------------------
# Read strictly (issue 23): one file is one model's answers, ids and names of the right type, one answer
# a question (or, where the tool's own readers keep the last one, a warning naming the line read)


def index_of(file: Path):
    return index_answers(file, read_answer_records(file))


def refused(file: Path) -> str:
    with pytest.raises(ArenaDataError) as caught:
        index_of(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: "), message
    return message


@pytest.mark.parametrize("make", [
    lambda qid, model: fastchat(qid, ["x"], model=model),
    lambda qid, model: arena_hard_v01(f"q{qid}", "x", model=model),
    lambda qid, model: arena_hard_v2(f"q{qid}", "x", model=model),
    lambda qid, model: alpaca(f"Question {qid}.", "x", generator=model),
    lambda qid, model: {"question_id": qid, "model_id": model, "answer": "x"},
], ids=["fastchat", "arena-hard-v0.1", "arena-hard-v2", "alpaca_eval", "evalscope"])
def test_records_naming_two_models_are_refused_naming_both_lines(tmp_path, make):
    file = write_jsonl(tmp_path / "answers.jsonl", [make(1, "vicuna-7b"), make(2, "llama-13b")])
    message = refused(file)
    assert ": line 2: " in message and "differs from 'vicuna-7b' on line 1" in message
    assert "'llama-13b'" in message and "expected one model's answers in one file" in message


def test_an_alpaca_eval_list_naming_two_generators_is_refused_naming_the_record(tmp_path):
    file = tmp_path / "model_outputs.json"
    file.write_text(json.dumps([alpaca("A.", "x", "gpt4_turbo"), alpaca("B.", "y", "gpt4_turbo"),
                                alpaca("C.", "z", "claude")], indent=2))
    message = refused(file)
    assert ": record 3: generator 'claude' differs from 'gpt4_turbo' on record 1" in message


def test_a_blank_line_does_not_shift_the_line_named(tmp_path):
    file = tmp_path / "vicuna-7b.jsonl"
    first, second = json.dumps(fastchat(1, ["a"])), json.dumps(fastchat(2, ["b"], model="other"))
    file.write_text(f"\n{first}\n\n{second}\n")
    message = refused(file)
    assert ": line 4: " in message and "on line 2" in message


def test_records_without_a_name_beside_named_ones_take_the_files_one_name(tmp_path):
    file = write_jsonl(tmp_path / "ours.jsonl", [{"question_id": 1, "answer": "x"},
                                                 {"question_id": 2, "model_id": "ours", "answer": "y"}])
    assert index_of(file).model == "ours"


@pytest.mark.parametrize("name", [7, ["vicuna"], {"name": "vicuna"}, True])
def test_a_model_name_that_is_not_a_string_is_refused(tmp_path, name):
    file = write_jsonl(tmp_path / "vicuna-7b.jsonl", [fastchat(81, ["a"]), fastchat(82, ["b"], model=name)])
    message = refused(file)
    assert ": line 2: model_id: expected the model's name as a string, got " in message


@pytest.mark.parametrize("qid", [True, 81.0, None, [81], {"id": 81}, ""])
def test_a_question_id_of_the_wrong_type_is_refused(tmp_path, qid):
    # True == 1 and 81.0 == 81 in a dict: such a record was taken for question 1 or 81.
    record = {"question_id": qid, "model_id": "ours", "answer": "x"}
    file = write_jsonl(tmp_path / "ours.jsonl", [{"question_id": 1, "model_id": "ours", "answer": "y"}, record])
    message = refused(file)
    assert ": line 2: question_id: expected an integer or a non-empty string, got " in message
    with pytest.raises(ArenaDataError):
        ModelAnswers("ours", file, None, 0, DigestMemo()).load_cached([Question(1, ("q",)), Question(81, ("r",))])


@pytest.mark.parametrize("record", [arena_hard_v2(5, "x") | {"uid": ["5"]}, alpaca(None, "x")],
                         ids=["uid-a-list", "instruction-null"])
def test_an_id_of_the_wrong_type_is_refused_in_other_formats(tmp_path, record):
    good = arena_hard_v2("a1", "y") if "uid" in record else alpaca("A.", "y")
    message = refused(write_jsonl(tmp_path / "answers.jsonl", [good, record]))
    assert ": line 2: " in message
    assert "uid: expected an integer" in message or "instruction: expected the question's text" in message


@pytest.mark.parametrize("fmt, make, rule", [
    ("fastchat", lambda text: fastchat(81, [text]), "as FastChat's own readers do"),
    ("arena-hard-v0.1", lambda text: arena_hard_v01(81, text), "as arena-hard-auto's own readers do"),
    ("arena-hard-v2", lambda text: arena_hard_v2(81, text), "as arena-hard-auto's own readers do"),
    ("evalscope", lambda text: {"question_id": 81, "model_id": "m", "answer": text},
     "the newest (the answers file is appended to)"),
])
def test_a_question_answered_twice_reads_the_last_line_and_says_which(tmp_path, fmt, make, rule):
    file = write_jsonl(tmp_path / "answers.jsonl", [make("OLD"), make("other") | {"question_id": 5, "uid": 5},
                                                   make("NEWEST")])
    index = index_of(file)
    assert index.fmt == fmt
    key = ("question_id" if fmt != "arena-hard-v2" else "uid")
    assert index.repeated == (f"{file}: line 3: {key} 81 is answered more than once (also on line 1): "
                              f"line 3 is read, the last, {rule}")
    answers = read_answers(tmp_path, file, [Question(81, ("Write a travel blog post.",))])
    assert answers.get(Question(81, ("Write a travel blog post.",))).text == "NEWEST"


def test_three_answers_to_one_question_and_more_repeats_are_counted_in_one_warning(tmp_path):
    records = [fastchat(81, ["a"]), fastchat(82, ["b"]), fastchat(81, ["c"]), fastchat(82, ["d"]), fastchat(81, ["e"])]
    index = index_of(write_jsonl(tmp_path / "vicuna-7b.jsonl", records))
    assert ("line 5: question_id 81 is answered more than once (also on line 1, line 3): line 5 is read"
            in index.repeated)
    assert "1 more question(s) answered more than once, the last of each read" in index.repeated


@pytest.mark.parametrize("layout", ["json-list", "jsonl"])
def test_an_alpaca_eval_instruction_answered_twice_is_refused(tmp_path, layout):
    # AlpacaEval pairs outputs row by row and would judge both: there is no record to prefer.
    records = [alpaca("Sort a list.", "one"), alpaca("Other.", "x"), alpaca("Sort a list.", "two")]
    file = tmp_path / "model_outputs.json"
    if layout == "json-list":
        file.write_text(json.dumps(records, indent=2))
    else:
        write_jsonl(file, records)
    place = "record" if layout == "json-list" else "line"
    message = refused(file)
    assert f": {place} 3: instruction 'Sort a list.' is answered again (first on {place} 1)" in message


def test_a_lone_surrogate_in_an_alpaca_eval_list_is_refused_naming_the_record(tmp_path):
    file = tmp_path / "model_outputs.json"
    file.write_text('[{"instruction": "A.", "output": "ok \\ud83d\\ude00"},\n'
                    ' {"instruction": "B.", "output": "x\\udc80"}]')
    with pytest.raises(ArenaDataError) as caught:
        read_answer_records(file)
    assert str(caught.value).startswith(f"{file}: record 2: expected text that UTF-8 can encode, got a lone "
                                        "surrogate '\\udc80' at output")


# End to end: refused at configure time, before the judge is paid; or read with a warning that names the line


def _bad_fastchat_models(root: Path, texts: dict) -> tuple[dict, str]:
    records = [fastchat(qid, [f"answer {qid}"], model="vicuna-7b" if qid == 1 else "llama-13b") for qid in texts]
    return {"vicuna": write_jsonl(root / "model_answer" / "vicuna-7b.jsonl", records)}, \
        "line 2: model_id 'llama-13b' differs from 'vicuna-7b' on line 1"


def _bad_surrogate(root: Path, texts: dict) -> tuple[dict, str]:
    path = root / "model_answer" / "o3-mini.jsonl"
    write_jsonl(path, [arena_hard_v2(qid, f"answer {qid}") for qid in texts])
    path.write_text(path.read_text().replace("answer 2", "answer \\ud800 2"))
    return {"target": path}, ("line 2: expected text that UTF-8 can encode, got a lone surrogate '\\ud800' "
                              "at messages[1]")


def _bad_question_id(root: Path, texts: dict) -> tuple[dict, str]:
    records = [{"question_id": qid, "model_id": "old", "answer": f"answer {qid}"} for qid in texts]
    records[1]["question_id"] = True  # True == 1: it was read as question 1's answer
    return {"old": write_jsonl(root / "answers" / "answer_old.jsonl", records)}, \
        "line 2: question_id: expected an integer or a non-empty string, got True"


@pytest.mark.parametrize("bad", [_bad_fastchat_models, _bad_surrogate, _bad_question_id],
                         ids=["two-models", "lone-surrogate", "question-id-true"])
def test_a_refused_answers_file_stops_the_run_before_the_judge_is_called(arena_project, bad):
    config = fixed_answers_config(arena_project, 2, {"ours": 2})
    files, expected = bad(arena_project.root, question_texts(arena_project.root / "questions.jsonl"))
    for name, path in files.items():
        if name == "target":
            config["reviews_gen"]["target_answers"] = [config["answers_gen"]["ours"]["output_file"], str(path)]
        else:
            config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    arena_project.write(config)
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [errors[0]] and errors[0].startswith(f"ERROR: {next(iter(files.values()))}: {expected}"), errors
    assert arena_project.server.requests == []


def test_a_lone_surrogate_in_the_review_file_stops_the_run_before_the_judge_is_called(arena_project):
    config = fixed_answers_config(arena_project, 2, {"ours": 2, "theirs": 1})
    review = arena_project.root / "reviews" / "review_gpt4.jsonl"
    review.parent.mkdir()
    # One of ours (a cache_key: a judge cache, not EvalScope's rating input), bar the one character.
    review.write_text('{"model_a": "ours", "model_b": "theirs", "win": "tie", "question_id": 1, '
                      f'"cache_key": "{"0" * 64}", "review_text": "a reply \\udc80 cut"}}\n')
    arena_project.write(config)
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {review}: line 1: expected text that UTF-8 can encode, got a lone "
                                 "surrogate '\\udc80' at review_text*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert arena_project.server.requests == []


def test_a_fastchat_question_answered_twice_is_judged_on_its_last_line_with_a_warning(arena_project):
    config = fixed_answers_config(arena_project, 2, {"ours": 2})
    texts = question_texts(arena_project.root / "questions.jsonl")
    fc = write_jsonl(arena_project.root / "model_answer" / "vicuna-7b.jsonl",
                     [fastchat(1, ["OLD answer one " * 4]), fastchat(2, ["answer two " * 4]),
                      fastchat(1, ["NEWEST answer one " * 4])])
    config["answers_gen"]["vicuna"] = {"enable": False, "output_file": str(fc)}
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=len(texts))
    result.stdout.fnmatch_lines([f"*WARNING: {fc}: line 3: question_id 1 is answered more than once (also on line 1): "
                                 "line 3 is read, the last, as FastChat's own readers do*"])
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    assert any("NEWEST answer one" in p for p in prompts)
    assert not any("OLD answer one" in p for p in prompts)


def test_two_target_answers_files_of_one_model_are_refused(arena_project):
    config = fixed_answers_config(arena_project, 2, {"ours": 2})
    texts = question_texts(arena_project.root / "questions.jsonl")
    first = write_jsonl(arena_project.root / "a" / "o3-mini.jsonl", [arena_hard_v2(q, "x") for q in texts])
    second = write_jsonl(arena_project.root / "b" / "o3-mini.jsonl", [arena_hard_v2(q, "y") for q in texts])
    config["reviews_gen"]["target_answers"] = [config["answers_gen"]["ours"]["output_file"], str(first), str(second)]
    arena_project.write(config)
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *cfg_arena.yaml: reviews_gen.target_answers: {second} holds answers of "
                                 f"'o3-mini', as {first} does: expected one answers file a model"])
    assert arena_project.server.requests == []
