"""Judge prompt templates: both template files load, the right template is chosen for a question, and
filling one in touches only its own placeholders (never rendering a missing reference as "None")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_arena.config import DEFAULT_TEMPLATES
from pytest_arena.errors import ArenaConfigError
from pytest_arena.judging.templates import (PromptTemplate, TurnsNotCovered, answer_problem, choose_template,
                                            load_templates, template_values)
from pytest_arena.questions import Question

from test_config import COMPAT

SOURCES = [pytest.param(DEFAULT_TEMPLATES, id="ours")]
if COMPAT is not None:
    SOURCES.append(pytest.param(COMPAT / "prompt_templates.jsonl", id="evalscope"))
else:  # keep the parameter so the skip shows up with its reason
    SOURCES.append(pytest.param(None, id="evalscope", marks=pytest.mark.skip(
        reason="EvalScope compat files (../shared/compat/evalscope) not present")))

UNFILLED = re.compile(r"\{(question|answer|answer_a|answer_b|ref_answer)(_\d+)?\}")


def q(category="generic", turns=("What is 2+2?",), reference=None, qid=1) -> Question:
    return Question(qid, tuple(turns), category, None if reference is None else tuple(reference))


def render(template: PromptTemplate, question: Question, kind: str) -> str:
    n = len(question.turns)
    if kind == "pairwise":
        answers = {"answer_a": tuple(f"A says {i}" for i in range(1, n + 1)),
                   "answer_b": tuple(f"B says {i}" for i in range(1, n + 1))}
    else:
        answers = {"answer": tuple(f"It says {i}" for i in range(1, n + 1))}
    return template.render(template_values(question, answers))


@pytest.fixture(params=SOURCES)
def templates(request) -> list[PromptTemplate]:
    return load_templates(request.param)


@pytest.mark.parametrize("source", SOURCES)
def test_template_files_load(source):
    templates = load_templates(source)
    assert len(templates) == 8
    for kind in ("pairwise", "single"):
        of_kind = [t for t in templates if t.type == kind]
        # general and reference-guided, single- and multi-turn: four of each kind
        assert {(t.multi_turn, t.needs_reference) for t in of_kind} == {
            (False, False), (False, True), (True, False), (True, True)}
    for t in templates:
        assert t.name and t.system_prompt and t.prompt_template
        assert t.output_format == ("[[A]]" if t.type == "pairwise" else "[[rating]]")
        assert isinstance(t.categories, tuple)
        assert t.categories == ("general",) or set(t.categories) == {"math", "reasoning", "coding"}


def test_evalscope_templates_are_read_as_written():
    if COMPAT is None:
        pytest.skip("EvalScope compat files (../shared/compat/evalscope) not present")
    by_name = {t.name: t for t in load_templates(COMPAT / "prompt_templates.jsonl")}
    assert set(by_name) == {"pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn",
                            "single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"}
    assert by_name["pair-math-v1"].categories == ("math", "reasoning", "coding")
    assert by_name["pair-v2"].categories == ("general",)
    assert by_name["pair-math-v1-multi-turn"].reference_turns == 2


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_general_question_gets_the_general_template(templates, kind):
    question = q("writing")
    template = choose_template(templates, kind, question)
    assert template.type == kind and "general" in template.categories
    assert not template.multi_turn and not template.needs_reference
    text = render(template, question, kind)
    assert "What is 2+2?" in text and not UNFILLED.search(text)
    assert ("A says 1" in text and "B says 1" in text) if kind == "pairwise" else "It says 1" in text


@pytest.mark.parametrize("category", ["math", "reasoning", "coding"])
@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_reference_guided_template_when_the_question_has_a_reference(templates, kind, category):
    question = q(category, reference=["Four."])
    template = choose_template(templates, kind, question)
    assert category in template.categories and template.needs_reference and not template.multi_turn
    text = render(template, question, kind)
    assert "Four." in text and not UNFILLED.search(text)


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_no_reference_falls_back_to_the_general_template(templates, kind):
    question = q("math")  # a math question, but nobody wrote a reference answer
    template = choose_template(templates, kind, question)
    assert "general" in template.categories and not template.needs_reference
    text = render(template, question, kind)
    assert "None" not in text  # EvalScope rendered the missing reference as the word None
    assert "{ref_answer_1}" not in text and not UNFILLED.search(text)


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_multi_turn_question_gets_a_multi_turn_template(templates, kind):
    question = q("writing", turns=("Write a poem.", "Now make it rhyme."))
    template = choose_template(templates, kind, question)
    assert template.multi_turn and not template.needs_reference
    text = render(template, question, kind)
    assert "Write a poem." in text and "Now make it rhyme." in text
    if kind == "pairwise":
        assert all(s in text for s in ("A says 1", "A says 2", "B says 1", "B says 2"))
    else:
        assert "It says 1" in text and "It says 2" in text
    assert not UNFILLED.search(text)


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_multi_turn_reference_guided_template(templates, kind):
    question = q("math", turns=("2+2?", "Times 3?"), reference=["4", "12"])
    template = choose_template(templates, kind, question)
    assert template.multi_turn and template.needs_reference and "math" in template.categories
    text = render(template, question, kind)
    assert "12" in text and not UNFILLED.search(text) and "None" not in text


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_multi_turn_question_with_too_few_references_uses_the_general_template(templates, kind):
    """A reference for the first turn only cannot fill {ref_answer_2}: use the general template."""
    question = q("math", turns=("2+2?", "Times 3?"), reference=["4"])
    template = choose_template(templates, kind, question)
    assert template.multi_turn and not template.needs_reference
    text = render(template, question, kind)
    assert not UNFILLED.search(text) and "None" not in text


def test_category_given_as_a_string_is_matched(tmp_path):
    path = write_templates(tmp_path, [
        template_line("general-pair"),
        template_line("writing-pair", category="writing"),
        template_line("code-pair", category=["coding", "math"]),
    ])
    templates = load_templates(path)
    assert templates[1].categories == ("writing",)
    assert choose_template(templates, "pairwise", q("writing")).name == "writing-pair"
    assert choose_template(templates, "pairwise", q("coding")).name == "code-pair"
    assert choose_template(templates, "pairwise", q("roleplay")).name == "general-pair"


def test_without_a_general_template_the_first_usable_one_is_taken(tmp_path):
    templates = load_templates(write_templates(tmp_path, [template_line("only-writing", category="writing")]))
    assert choose_template(templates, "pairwise", q("roleplay")).name == "only-writing"


def test_no_usable_template_is_a_lookup_error(tmp_path):
    templates = load_templates(write_templates(tmp_path, [template_line("pair")]))
    with pytest.raises(LookupError, match="single"):
        choose_template(templates, "single", q())
    with pytest.raises(LookupError, match="multi-turn"):
        choose_template(templates, "pairwise", q(turns=("a", "b")))


def test_render_leaves_braces_in_answers_and_prose_alone():
    template = PromptTemplate(
        name="t", type="pairwise", system_prompt="s", output_format="[[A]]", categories=("general",),
        prompt_template='Reply as JSON like {"winner": "A"}; {not_a_placeholder} {}\nQ: {question}\nA: {answer_a}\nB: {answer_b}',
    )
    question = q(turns=("Use {braces}?",))
    answer_a = "def f(): return {'question': 1}  # and {answer_b} and {ref_answer_1} and {0}"
    text = template.render(template_values(question, {"answer_a": (answer_a,), "answer_b": ("plain",)}))
    assert text == (
        'Reply as JSON like {"winner": "A"}; {not_a_placeholder} {}\n'
        f"Q: Use {{braces}}?\nA: {answer_a}\nB: plain"
    )


def test_render_leaves_unknown_values_unfilled_rather_than_inventing_them():
    template = PromptTemplate("t", "single", "s", "{question} / {ref_answer_1}", "[[rating]]", ("math",))
    assert template.render({"question": "Q"}) == "Q / {ref_answer_1}"


def test_template_values_for_single_and_multi_turn():
    single = template_values(q(turns=("Q1",), reference=["R1"]), {"answer_a": ("A1",), "answer_b": ("B1",)})
    assert single["question"] == single["question_1"] == "Q1"
    assert single["answer_a"] == single["answer_a_1"] == "A1"
    assert single["ref_answer_1"] == "R1"
    multi = template_values(q(turns=("Q1", "Q2")), {"answer": ("T1", "T2")})
    assert (multi["question_1"], multi["question_2"]) == ("Q1", "Q2")
    assert (multi["answer_1"], multi["answer_2"]) == ("T1", "T2")
    assert "ref_answer_1" not in multi


def test_digest_changes_with_the_wording():
    a = PromptTemplate("t", "single", "s", "{question} {answer}", "[[rating]]", ("general",))
    b = PromptTemplate("renamed", "single", "s", "{question} {answer}", "[[rating]]", ("writing",))
    c = PromptTemplate("t", "single", "s", "{question}\n{answer}", "[[rating]]", ("general",))
    d = PromptTemplate("t", "single", "s!", "{question} {answer}", "[[rating]]", ("general",))
    assert a.digest == b.digest  # name and category do not change what the judge reads
    assert len({a.digest, c.digest, d.digest}) == 3


# --------------------------------------------------------------------------------------------------
# Bad template files


def template_line(name="t", type="pairwise", category="general", **overrides) -> dict:
    line = {"name": name, "type": type, "system_prompt": "Judge fairly.",
            "prompt_template": "{question}\n{answer_a}\n{answer_b}" if type == "pairwise" else "{question}\n{answer}",
            "description": "d", "category": category, "output_format": "[[A]]" if type == "pairwise" else "[[rating]]"}
    line.update(overrides)
    return line


def write_templates(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "templates.jsonl"
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines), encoding="utf-8")
    return path


def _without(key):
    line = template_line("bad")
    del line[key]
    return line


@pytest.mark.parametrize("bad, expected", [
    (_without("prompt_template"), "prompt_template: expected a string"),
    (_without("output_format"), "output_format: expected a string"),
    (_without("name"), "name: expected a string"),
    (template_line("bad", prompt_template=5), "prompt_template: expected a string"),
    (template_line("bad", type="triple"), "type: expected pairwise or single"),
    (template_line("bad", category=5), "category: expected a string or a list of strings"),
    (template_line("bad", category=["math", 1]), "category: expected a string or a list of strings"),
    ('{"name": "bad", "type": ', "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
], ids=["no-prompt_template", "no-output_format", "no-name", "prompt_template-int", "bad-type", "category-int",
        "category-list-with-int", "invalid-json", "not-an-object"])
def test_bad_template_line_is_a_config_error_with_its_line(tmp_path, bad, expected):
    path = write_templates(tmp_path, [template_line("good"), "", bad])
    with pytest.raises(ArenaConfigError) as info:
        load_templates(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line 3: "), message
    assert expected in message


def test_empty_template_file(tmp_path):
    path = write_templates(tmp_path, ["", "  "])
    with pytest.raises(ArenaConfigError, match="no prompt templates"):
        load_templates(path)


def test_non_utf8_template_file(tmp_path):
    path = tmp_path / "templates.jsonl"
    path.write_bytes(json.dumps(template_line("caf\u00e9"), ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(ArenaConfigError, match="UTF-8"):
        load_templates(path)


# --------------------------------------------------------------------------------------------------
# Templates that could not show the judge what it judges

@pytest.mark.parametrize("type, prompt, expected", [
    ("pairwise", "{question}\n{answer_a}", "no {answer_b} placeholder"),
    ("pairwise", "Compare the answers to: {question}", "no {answer_a} placeholder"),
    ("single", "{question}", "no {answer} placeholder"),
    ("pairwise", "{question_1}\n{answer_a_1}\n{question_2}\n{answer_a_2}\n{answer_b_1}", "no {answer_b_2} placeholder"),
    ("single", "{question}\n{answer_a}", "unknown placeholder {answer_a}"),
    ("pairwise", "{question}\n{answer}\n{answer_a}\n{answer_b}", "unknown placeholder {answer}"),
    ("pairwise", "{question}\n{answer_a}\n{answer_b}\nBe {tone}.", "unknown placeholder {tone}"),
    ("pairwise", "{question_0}\n{answer_a}\n{answer_b}", "unknown placeholder {question_0}"),
    ("single", "{question}\n{answer}\n{answer_c_1}", "unknown placeholder {answer_c_1}"),
], ids=["pair-no-answer-b", "pair-no-answers", "single-no-answer", "multi-turn-no-last-b", "single-with-answer-a",
        "pair-with-answer", "unknown-name", "turn-zero", "unknown-turn-form"])
def test_template_that_cannot_be_filled_is_a_config_error_naming_it(tmp_path, type, prompt, expected):
    broken = template_line("broken", type=type, prompt_template=prompt)
    path = write_templates(tmp_path, [template_line("good"), broken])
    with pytest.raises(ArenaConfigError) as info:
        load_templates(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 2: template 'broken': prompt_template: "), message
    assert expected in message


def test_braces_that_are_no_placeholder_are_allowed(tmp_path):
    """JSON in a template's prose ({"winner": "A"}, a ranking list) is not a placeholder."""
    prompt = ('{question}\n{answer_a}\n{answer_b}\nReply like [{"model": "model_1", "rank": 1}] or {"winner": "A"} '
              "or { spaced } or {}")
    templates = load_templates(write_templates(tmp_path, [template_line("json", prompt_template=prompt)]))
    assert templates[0].turns == 1


def test_turns_a_template_shows():
    multi = PromptTemplate("m", "pairwise", "s", "{question_1} {answer_a_1} {answer_b_1} {question_2} {answer_a_2} "
                           "{answer_b_2}", "[[A]]", ("general",))
    assert multi.turns == 2 and multi.multi_turn
    assert PromptTemplate("s", "single", "s", "{question} {answer}", "[[rating]]", ("general",)).turns == 1


@pytest.mark.parametrize("kind", ["pairwise", "single"])
def test_question_with_more_turns_than_any_template_is_refused(templates, kind):
    """A 3-turn question is not judged on two of its turns."""
    question = q("writing", turns=("One.", "Two.", "Three."), qid=7)
    with pytest.raises(TurnsNotCovered) as info:
        choose_template(templates, kind, question)
    message = str(info.value)
    assert message.startswith(f"3 turns (a multi-turn question), but no {kind} template shows 3: they show 1 or 2")
    assert info.value.template.turns == 2 and info.value.template.name in message


def test_question_with_fewer_turns_than_every_template_is_refused(tmp_path):
    multi = template_line("pair-2", prompt_template="{question_1}{answer_a_1}{answer_b_1}"
                                                    "{question_2}{answer_a_2}{answer_b_2}")
    templates = load_templates(write_templates(tmp_path, [multi]))
    with pytest.raises(TurnsNotCovered, match="1 turn, but no pairwise template shows 1: they show 2"):
        choose_template(templates, "pairwise", q())


@pytest.mark.parametrize("turns, problem", [
    (("",), "is empty"),
    ((" \n\t",), "is empty"),
    (("A1",), None),
])
def test_answer_problem_single_turn(turns, problem):
    assert answer_problem(q(), turns) == problem


@pytest.mark.parametrize("turns, problem", [
    (("A1",), "answers 1 of the question's 2 turns"),
    (("A1", "  "), "is empty in turn 2"),
    (("", "A2"), "is empty in turn 1"),
    (("A1", "A2"), None),
])
def test_answer_problem_multi_turn(turns, problem):
    assert answer_problem(q(turns=("Q1", "Q2")), turns) == problem


def test_template_values_refuse_an_answer_that_cannot_be_shown():
    """A last guard: an empty answer or a missing turn never becomes '' or a literal {answer_a_2}."""
    with pytest.raises(ValueError, match="the answer_b to question 1 is empty"):
        template_values(q(), {"answer_a": ("A1",), "answer_b": ("   ",)})
    with pytest.raises(ValueError, match="answers 1 of the question's 2 turns"):
        template_values(q(turns=("Q1", "Q2")), {"answer": ("T1",)})


def test_unnumbered_reference_placeholder_is_filled():
    template = PromptTemplate("t", "single", "s", "{question} / {ref_answer} / {answer}", "[[rating]]", ("math",))
    values = template_values(q("math", reference=["Four."]), {"answer": ("4",)})
    assert template.render(values) == "What is 2+2? / Four. / 4"
