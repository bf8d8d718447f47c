"""The judge audit's labels file (issue 26): FastChat's MT-bench human-judgment format read unchanged, our
own JSON lines, and one ArenaDataError naming the file, the line and the problem for each mistake.
The expected values come from the files' JSON read directly here, not from the reader."""

import json
from collections import Counter
from pathlib import Path

import pytest

from pytest_arena.audit_labels import Label, check_labels, read_labels, select_annotators
from pytest_arena.errors import ArenaConfigError, ArenaDataError

DATA = Path(__file__).parent / "data"
HUMAN = DATA / "audit_human_judgments.json"
GPT4 = DATA / "audit_gpt4_pair_judgments.json"


def conversation(*turns):
    """A conversation of (question, answer) turns as FastChat writes it."""
    return [m for q, a in turns for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]


def fastchat(**changes):
    record = {"question_id": 81, "model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "expert_0",
              "conversation_a": conversation(("q1", "a1"), ("q2", "a2")),
              "conversation_b": conversation(("q1", "b1"), ("q2", "b2")), "turn": 1}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


def ours(**changes):
    record = {"question_id": 1, "model_a": "m1", "model_b": "m2", "winner": "tie"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()


def jsonl(tmp_path, *records, name="labels.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def refused(path, *fragments):
    with pytest.raises(ArenaDataError) as caught:
        read_labels(path)
    message = str(caught.value)
    assert isinstance(caught.value, ArenaConfigError)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------------------------------
# Reading


def test_fastchat_array_file_reads_every_record_in_order():
    raw = json.loads(HUMAN.read_text())
    labels = read_labels(HUMAN)
    assert len(labels) == len(raw)
    for label, record in zip(labels, raw):
        assert (label.question_id, label.model_a, label.model_b, label.winner, label.turn, label.annotator) == (
            record["question_id"], record["model_a"], record["model_b"], record["winner"], record["turn"],
            record["judge"])
        assert label.answers_a == tuple(m["content"] for m in record["conversation_a"] if m["role"] == "assistant")
        assert label.questions == tuple(m["content"] for m in record["conversation_b"] if m["role"] == "user")
    # the file writes one record a line after the opening "[": record i starts on line i + 2
    assert [x.where for x in labels[:3]] == ["line 2", "line 3", "line 4"]
    assert {x.winner for x in labels} == {"model_a", "model_b", "tie", "tie (bothbad)"}


def test_every_tie_is_a_tie():
    labels = read_labels(HUMAN) + read_labels(GPT4)
    assert {x.winner: x.outcome for x in labels} == {
        "model_a": "model_a", "model_b": "model_b", "tie": "tie", "tie (bothbad)": "tie", "tie (inconsistent)": "tie"}


def test_fastchat_model_judge_is_a_list_joined():
    raw = json.loads(GPT4.read_text())
    labels = read_labels(GPT4)
    assert [x.annotator for x in labels] == ["/".join(r["judge"]) for r in raw]
    assert {x.annotator for x in labels} == {"gpt-4/pair-v2", "gpt-4/pair-v2-multi-turn"}


def test_fastchat_json_lines_read_as_the_array(tmp_path):
    raw = json.loads(HUMAN.read_text())
    path = jsonl(tmp_path, *raw)
    from_lines, from_array = read_labels(path), read_labels(HUMAN)
    assert [x.where for x in from_lines[:2]] == ["line 1", "line 2"]
    strip = lambda x: {**x.__dict__, "where": None}  # noqa: E731
    assert [strip(x) for x in from_lines] == [strip(x) for x in from_array]


def test_fastchat_without_conversations(tmp_path):
    path = jsonl(tmp_path, fastchat(conversation_a=DROP, conversation_b=DROP, turn=2))
    [label] = read_labels(path)
    assert (label.turn, label.questions, label.answers_a, label.answers_b) == (2, None, None, None)


def test_our_format_turn_is_optional(tmp_path):
    path = jsonl(tmp_path, ours(), ours(question_id="q-7", winner="model_b", turn=2))
    assert read_labels(path) == [
        Label(1, "m1", "m2", "tie", None, "", "line 1"), Label("q-7", "m1", "m2", "model_b", 2, "", "line 2")]


def test_duplicate_labels_are_all_kept_in_file_order(tmp_path):
    # FastChat appends every vote of a pair to its list; the same annotator twice counts twice too
    reversed_pair = fastchat(model_a="m2", model_b="m1", conversation_a=fastchat()["conversation_b"],
                             conversation_b=fastchat()["conversation_a"])
    path = jsonl(tmp_path, fastchat(), fastchat(judge="expert_1", winner="tie"), reversed_pair, fastchat())
    labels = read_labels(path)
    assert [(x.annotator, x.model_a, x.winner) for x in labels] == [
        ("expert_0", "m1", "model_a"), ("expert_1", "m1", "tie"), ("expert_0", "m2", "model_a"),
        ("expert_0", "m1", "model_a")]


def test_select_annotators_keeps_fastchats_humans():
    raw = json.loads(HUMAN.read_text())
    experts = select_annotators(read_labels(HUMAN), "expert")
    assert len(experts) == sum(r["judge"].startswith("expert") for r in raw)
    assert Counter(x.annotator[:6] for x in read_labels(HUMAN)) == Counter(r["judge"][:6] for r in raw)
    assert len(select_annotators(read_labels(HUMAN), ["expert", "author"])) == len(raw)


def test_a_shorter_conversation_may_start_a_longer_one(tmp_path):
    # a turn-1 record holding only the first turn, a turn-2 record both: the same answers
    short = fastchat(conversation_a=conversation(("q1", "a1")), conversation_b=conversation(("q1", "b1")))
    path = jsonl(tmp_path, short, fastchat(turn=2))
    assert [x.answers_a for x in read_labels(path)] == [("a1",), ("a1", "a2")]


# --------------------------------------------------------------------------------------------------
# Mistakes: one line each


@pytest.mark.parametrize("record, fragments", [
    ("{not json", ["invalid JSON"]),
    ("[1, 2]", ["expected a JSON object", "got a list"]),
    (ours(question_id=True), ["question_id: expected an integer or a non-empty string, got True"]),
    (ours(question_id=DROP), ["question_id: expected", "got None"]),
    (ours(model_a=""), ["model_a: expected the model's name"]),
    (ours(model_b=7), ["model_b: expected the model's name", "got 7"]),
    (ours(model_b="m1"), ["model_a and model_b are both 'm1'"]),
    (ours(winner="model_A"), ["winner: expected one of model_a, model_b, tie", "(did you mean 'model_a'?)"]),
    (ours(winner="tie(bothbad)"), ["did you mean 'tie (bothbad)'?"]),
    (ours(winner=None), ["winner: expected one of", "got None"]),
    (ours(turn=0), ["turn: expected the turn judged, a whole number from 1, got 0"]),
    (ours(turn="1"), ["turn: expected", "got '1'"]),
    (ours(turn=None), ["turn: expected", "got None"]),
    (ours(winer="tie"), ["unknown key 'winer' (did you mean 'winner'?)"]),
    (ours(notes="x"), ["unknown key 'notes' (expected: question_id, model_a, model_b, winner, turn)"]),
    ({"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "model_1", "g2_winner": "model_1"},
     ["a FastChat judgment record (model_1, g1_winner, ...)"]),
    (fastchat(turn=DROP), ["turn: missing (FastChat's format names the turn judged"]),
    (fastchat(judge=3), ["judge: expected the annotator's name", "got 3"]),
    (fastchat(judge=[]), ["judge: expected"]),
    (fastchat(judge=""), ["judge: expected"]),
    (fastchat(conversation_b=DROP), ["conversation_b: missing (expected both conversations, or neither"]),
    (fastchat(conversation_a="hello"), ["conversation_a: expected a non-empty list"]),
    (fastchat(conversation_a=[{"role": "assistant", "content": "a1"}]),
     ["conversation_a[0]: expected a message with role 'user'", "got 'assistant'"]),
    (fastchat(conversation_b=[{"role": "user", "content": "q1"}, {"role": "user", "content": "q2"}]),
     ["conversation_b[1]: expected a message with role 'assistant'"]),
    (fastchat(conversation_a=[{"role": "user", "content": "q1"}, {"role": "assistant", "content": None}]),
     ["conversation_a[1].content: expected a string, got None"]),
    (fastchat(conversation_a=conversation(("q1", "a1")) + [{"role": "user", "content": "q2"}],
              conversation_b=conversation(("q1", "b1")) + [{"role": "user", "content": "q2"}]),
     ["conversation_a: ends with a user turn"]),
    (fastchat(conversation_b=conversation(("other", "b1"), ("q2", "b2"))), ["ask different questions"]),
    (fastchat(turn=3), ["turn: 3, but the conversations hold 2 answers"]),
])
def test_a_bad_record_is_one_error_naming_the_line(tmp_path, record, fragments):
    path = jsonl(tmp_path, ours() if "judge" not in str(record) else fastchat(), record)
    message = refused(path, *fragments)
    assert ": line 2: " in message


def test_two_answers_of_one_model_to_one_question_are_refused(tmp_path):
    other = fastchat(model_b="m3", conversation_a=conversation(("q1", "a1"), ("q2", "different")))
    refused(jsonl(tmp_path, fastchat(), other), "line 2: m1's answer to question 81 differs from the one on line 1")


def test_a_file_is_one_format(tmp_path):
    refused(jsonl(tmp_path, fastchat(), ours()), "line 2: mixes FastChat's format (a judge, as on line 1) with ours")
    refused(jsonl(tmp_path, ours(), fastchat()), "line 2: mixes")


@pytest.mark.parametrize("text, fragments", [
    ('[\n{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "tie"},\n]\n', ["line 3", "invalid JSON"]),
    ('[\n{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "tie"}\n', ["the array is not closed"]),
    ('[\n{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "tie"}\n]\n{}\n',
     ["line 4", "text after the closing ']'"]),
    ('[\n{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "tie"}\n{"question_id": 2}]',
     ["line 3", "expected ',' or ']' after a record"]),
    ('[\n{"question_id": 1, "model_a": "a", "model_b": "b", "winner": "tie"},\n{"question_id": 2,\n"model_a": 5}]',
     ["line 3: model_a: expected the model's name"]),
    ("[]", ["no labels"]),
    ("\n\n", ["no labels"]),
])
def test_json_array_mistakes_name_their_line(tmp_path, text, fragments):
    path = tmp_path / "labels.json"
    path.write_text(text)
    refused(path, *fragments)


def test_unreadable_files(tmp_path):
    refused(tmp_path / "absent.json", "cannot read the labels file")
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes('{"question_id": 1, "model_a": "caf\u00e9"}'.encode("latin-1"))
    refused(binary, "not UTF-8 text")
    surrogate = jsonl(tmp_path, '{"question_id": 1, "model_a": "\\ud800", "model_b": "b", "winner": "tie"}')
    refused(surrogate, "line 1", "lone surrogate")


# --------------------------------------------------------------------------------------------------
# Labels against the arena


def test_check_labels_names_the_label_that_does_not_fit(tmp_path):
    path = jsonl(tmp_path, ours(), ours(question_id=2, turn=2))
    labels = read_labels(path)
    check_labels(path, labels, {1: 1, 2: 2}, ["m1", "m2"])  # fits: no error
    with pytest.raises(ArenaDataError, match=r"line 2: question_id: 2 is not a question of the arena"):
        check_labels(path, labels, {1: 1}, ["m1", "m2"])
    with pytest.raises(ArenaDataError, match=r"the question file has '2', a string"):
        check_labels(path, labels, {1: 1, "2": 2}, ["m1", "m2"])
    with pytest.raises(ArenaDataError, match=r"line 1: model_b: 'm2' is not a model of the arena \(did you mean 'm2x'"):
        check_labels(path, labels, {1: 1, 2: 2}, ["m1", "m2x"])
    with pytest.raises(ArenaDataError, match=r"line 2: turn: 2, but question 2 has 1 turn$"):
        check_labels(path, labels, {1: 1, 2: 1}, ["m1", "m2"])
