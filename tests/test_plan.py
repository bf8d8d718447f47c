"""The plan's item IDs: readable, ASCII, no spaces or '/', and each one a single -k identifier."""

from __future__ import annotations

import re

import pytest
from _pytest.mark.expression import Expression

from pytest_arena.config import GateSpec
from pytest_arena.matches import VS, ambiguous_names, describe, gate_id, plan_pairwise, plan_single, safe_name, shared_ids
from pytest_arena.questions import Question

ODD_NAMES = [
    "org/name", "Qwen/Qwen2-0.5B-Instruct", "my model", "Qwén2 7B", "模型", "a[1]", "a(b)", "x:y", "a\\b",
    "a'b\"c", "a=b,c", "not", "or", "and", "True", "None", "-k", "a  b\tc", "v1.5+fix", "über/ß", "🙂",
    "name with (parens) and 'quotes'", "x==1", "", "/", "org/name/sub",
]


def questions(*ids) -> list[Question]:
    return [Question(qid, (f"question {qid}",)) for qid in ids]


def is_one_k_identifier(item_id: str) -> bool:
    """True when ``-k <item_id>`` parses as exactly that identifier (no operators, no syntax error)."""
    seen = []

    def matcher(name: str, /, **kwargs) -> bool:
        seen.append((name, kwargs))
        return name == item_id and not kwargs

    matched = Expression.compile(item_id).evaluate(matcher)
    return matched and seen == [(item_id, {})]


def test_pairwise_plan_has_every_pair_on_every_question():
    models = ["Qwen2-3B", "Qwen2-0.5B", "Llama-3-8B"]
    battles = plan_pairwise(questions(1, 2, 17, 80), models)
    assert len(battles) == 4 * 3
    assert len({b.id for b in battles}) == len(battles)
    assert battles[0].id == "q001-Qwen2-3B--vs--Qwen2-0.5B"
    assert [b.id for b in battles if b.question.question_id == 17] == [
        "q017-Qwen2-3B--vs--Qwen2-0.5B", "q017-Qwen2-3B--vs--Llama-3-8B", "q017-Qwen2-0.5B--vs--Llama-3-8B"]
    assert battles[0].models == ("Qwen2-3B", "Qwen2-0.5B")
    assert {frozenset(b.models) for b in battles} == {
        frozenset(p) for p in [("Qwen2-3B", "Qwen2-0.5B"), ("Qwen2-3B", "Llama-3-8B"), ("Qwen2-0.5B", "Llama-3-8B")]}


@pytest.mark.parametrize("n_models", [2, 3, 5])
def test_battle_count_is_questions_times_pairs(n_models):
    models = [f"m{i}" for i in range(n_models)]
    qs = questions(*range(1, 8))
    assert len(plan_pairwise(qs, models)) == 7 * n_models * (n_models - 1) // 2


def test_question_numbers_are_zero_padded_to_three_digits_or_the_widest():
    assert plan_pairwise(questions(1, 42, 999), ["a", "b"])[0].id == "q001-a--vs--b"
    ids = [b.id for b in plan_pairwise(questions(1, 42, 1000), ["a", "b"])]
    assert ids == ["q0001-a--vs--b", "q0042-a--vs--b", "q1000-a--vs--b"]  # equal width keeps them sortable


def test_string_question_ids_are_kept_and_made_safe():
    ids = [b.id for b in plan_pairwise(questions("math-7", "writing/2 b"), ["a", "b"])]
    assert ids == ["qmath-7-a--vs--b", "qwriting--2_b-a--vs--b"]
    assert all(is_one_k_identifier(i) for i in ids)


def test_model_names_in_ids_are_mapped():
    [battle] = plan_pairwise(questions(3), ["Qwen/Qwen2-0.5B", "meta llama/Llama 3"])
    assert battle.id == "q003-Qwen--Qwen2-0.5B--vs--meta_llama--Llama_3"
    assert battle.model_a == "Qwen/Qwen2-0.5B"  # the battle keeps the exact names
    assert battle.models == ("Qwen/Qwen2-0.5B", "meta llama/Llama 3")


@pytest.mark.parametrize("name, expected", [
    ("org/name", "org--name"),
    ("Qwen2-0.5B", "Qwen2-0.5B"),
    ("my model", "my_model"),
    ("Qwén2", "Qwen2"),
    ("a[1]", "a_1"),
    ("x:y", "x_y"),
    ("模型", "model"),  # nothing ASCII left: still a usable name
    ("", "model"),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ODD_NAMES)
def test_safe_name_is_ascii_without_spaces_slashes_or_k_syntax(name):
    safe = safe_name(name)
    assert safe and safe.isascii()
    assert not re.search(r"[\s/\\()\[\]:='\",]", safe)
    assert re.fullmatch(r"[A-Za-z0-9_.+-]+", safe)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_every_id_is_one_k_identifier(name):
    battles = plan_pairwise(questions(1, "odd id/2"), [name, "base"])
    gates = [GateSpec(name, min_elo=1000), GateSpec(name, beats="base")]
    for item_id in [b.id for b in battles] + [gate_id(g) for g in gates]:
        assert item_id.isascii() and " " not in item_id and "/" not in item_id
        assert is_one_k_identifier(item_id), item_id


def test_k_with_a_model_name_selects_its_battles():
    """`-k Qwen2-3B` is a substring match on item names: it hits exactly the battles of that model."""
    battles = plan_pairwise(questions(1, 2), ["Qwen2-3B", "Qwen2-0.5B", "Llama"])
    expression = Expression.compile("Qwen2-3B")
    selected = [b for b in battles if expression.evaluate(lambda name, **kw: name in b.id)]
    assert selected == [b for b in battles if "Qwen2-3B" in b.models]
    assert len(selected) == 4


def test_expression_parser_rejects_what_safe_names_avoid():
    """The check above is meaningful: raw names with these characters do break -k."""
    for raw in ["org name", "a(b)", "x==1", "a'b"]:
        with pytest.raises(SyntaxError):
            Expression.compile(f"q001-{raw}--vs--b").evaluate(lambda name, **kw: True)
    assert not is_one_k_identifier("q001-a or b")  # parses, but as two identifiers


def test_ambiguous_names():
    assert ambiguous_names(["a", "b", "c"]) is None
    assert ambiguous_names(["org/name", "x", "org--name"]) == ("org/name", "org--name")
    assert ambiguous_names(["my model", "my_model"]) == ("my model", "my_model")
    assert ambiguous_names(["模型", "模特"]) == ("模型", "模特")  # both map to the fallback name
    assert ambiguous_names(["Qwen2", "qwen2"]) is None  # case is kept, so these stay apart


def test_gate_ids():
    assert gate_id(GateSpec("Qwen2-3B", min_elo=1000)) == "elo-Qwen2-3B"
    assert gate_id(GateSpec("org/sft", min_elo=900)) == "elo-org--sft"
    assert gate_id(GateSpec("Qwen2-3B-sft", beats="Qwen2-0.5B")) == f"beats-Qwen2-3B-sft{VS}Qwen2-0.5B"
    assert gate_id(GateSpec("org/a b", beats="org/c")) == "beats-org--a_b--vs--org--c"


def test_question_id_and_model_name_that_make_the_same_item_id_are_found():
    """Question 'z' + model 'm-x' and question 'z-m' + model 'x' both make 'qz-m-x': one verdict would
    count for two scorings."""
    scorings = plan_single(questions("z", "z-m"), ["m-x", "x"])
    clash = shared_ids(scorings)
    assert clash is not None
    first, second = clash
    assert first.id == second.id == "qz-m-x"
    assert (first.question.question_id, first.model) == ("z", "m-x")
    assert (second.question.question_id, second.model) == ("z-m", "x")
    assert describe(first) == "question 'z' with model 'm-x'"


def test_pairwise_item_ids_that_clash_are_found():
    battles = plan_pairwise(questions("z", "z-m"), ["m-x", "x", "y"])
    first, second = shared_ids(battles)
    assert first.id == second.id == "qz-m-x--vs--y"
    assert describe(first) == "question 'z' with models 'm-x' and 'y'"
    assert describe(second) == "question 'z-m' with models 'x' and 'y'"


def test_model_names_holding_the_separator_clash():
    battles = plan_pairwise(questions(1), ["a--vs--b", "c", "a", "b--vs--c"])
    assert shared_ids(battles)[0].id == "q001-a--vs--b--vs--c"


@pytest.mark.parametrize("models", [["Qwen2-3B", "Qwen2-0.5B", "Llama-3-8B"], ODD_NAMES[:6]])
def test_ordinary_plans_have_unique_ids(models):
    assert shared_ids(plan_pairwise(questions(1, 2, 17, "a-b"), models)) is None
    assert shared_ids(plan_single(questions(1, 2, 17, "a-b"), models)) is None


def test_a_matchs_label_is_the_question_part_of_its_item_id():
    questions = [Question(7, ("q",)), Question(12, ("q",), question_set="mt/bench"), Question("z-m", ("q",))]
    battles = plan_pairwise(questions, ["m-x", "org/b"])
    assert [(b.id, b.label) for b in battles] == [
        ("q007-m-x--vs--org--b", "q007"),
        ("mt--bench-q012-m-x--vs--org--b", "mt--bench-q012"),
        ("qz-m-m-x--vs--org--b", "qz-m"),
    ]
    scorings = plan_single(questions, ["x"])
    assert [s.label for s in scorings] == ["q007", "mt--bench-q012", "qz-m"]
