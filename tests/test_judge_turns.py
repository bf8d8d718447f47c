"""``reviews_gen.judge_turns: each``: a two-turn battle judged per turn as FastChat's MT-bench does, end to end.

The candidates answer from files (their turns carry tokens such as ``alpha-q1-t2``) and the loopback judge
reads the tokens of the turn it is shown, so every verdict, and every figure of the per-turn tables, is
known in advance (``QUALITY``).
"""

from __future__ import annotations

import json
import re

import pandas as pd  # two in-process arenas in one module need pandas imported first
import pytest
import yaml
from support.judge_server import constant, prompt_text

from pytest_arena.judging.judgment import Judgment
from pytest_arena.matches import Battle
from pytest_arena.questions import Question

QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a poem about rain.", "Now make it rhyme."]},
    {"question_id": 2, "category": "writing", "turns": ["Describe a cat.", "Now describe it as a lion would."]},
]
# How good each model's answer to (question, turn) is: the judge prefers the higher number.
QUALITY = {
    "alpha": {(1, 1): 3, (1, 2): 1, (2, 1): 3, (2, 2): 2},
    "beta": {(1, 1): 1, (1, 2): 3, (2, 1): 2, (2, 2): 2},
    "gamma": {(1, 1): 2, (1, 2): 2, (2, 1): 1, (2, 2): 1},
}
TOKEN = re.compile(r"\b(alpha|beta|gamma)-q(\d+)-t(\d)\b")
REVIEWS = "reviews/review_gpt4.jsonl"
TURNS_CSV = "reports/elo_rating.turns.csv"


def token(model: str, qid: int, turn: int) -> str:
    return f"{model}-q{qid}-t{turn}"


def shown_answers(body: dict) -> tuple[int, list[tuple[str, int]]]:
    """The turn a judge prompt is about (its latest answers), and those answers' (model, question) in the
    order shown: the judge is to judge the last turn it sees."""
    found = [(m, int(q), int(t)) for m, q, t in TOKEN.findall(prompt_text(body))]
    turn = max(t for _, _, t in found)
    return turn, [(m, q) for m, q, t in found if t == turn]


def judge_by_quality(body: dict) -> str:
    """Pairwise: the better answer of the turn shown wins, equal is a tie; single: its quality as the rating."""
    turn, answers = shown_answers(body)
    if len(answers) == 1:
        model, qid = answers[0]
        return f"Fine. Rating: [[{QUALITY[model][(qid, turn)]}]]"
    (a, qid), (b, _) = answers
    qa, qb = QUALITY[a][(qid, turn)], QUALITY[b][(qid, turn)]
    return "Compared. " + ("[[A]]" if qa > qb else "[[B]]" if qb > qa else "[[C]]")


def arena(project, *, models=("alpha", "beta", "gamma"), questions=QUESTIONS, **judge_args) -> None:
    """A per-turn arena over fixed two-turn answers; the judge scripted by ``QUALITY``."""
    config = project.config(questions=1, models=("tiny-a",))
    with open(project.root / "questions.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(q) + "\n" for q in questions)
    (project.root / "answers").mkdir(exist_ok=True)
    config["answers_gen"] = {}
    for name in models:
        path = project.root / "answers" / f"answer_{name}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for q in questions:
                turns = [f"{name} answers turn {t}: {token(name, q['question_id'], t)}"
                         for t in range(1, len(q.get("turns", [q.get("text")])) + 1)]
                handle.write(json.dumps({"question_id": q["question_id"], "model_id": name, "answer": turns[-1],
                                         "answer_turns": turns}) + "\n")
        config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    config["reviews_gen"]["judge_turns"] = "each"
    config["reviews_gen"]["reviewer"]["args"].update(judge_args)
    project.server.reply = judge_by_quality
    project.write(config)


def set_review_keys(project, **keys) -> None:
    """Change keys of reviews_gen in the project's written config."""
    path = project.root / "cfg_arena.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["reviews_gen"].update(keys)
    project.write(config)


def expected_records(turns: tuple[int, ...]) -> dict[str, tuple[int, int, int]]:
    """(wins, losses, ties) per model over every pair and question at ``turns``, from QUALITY."""
    records = {m: [0, 0, 0] for m in QUALITY}
    for a, b in [("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma")]:
        for key in [(q["question_id"], t) for q in QUESTIONS for t in turns]:
            qa, qb = QUALITY[a][key], QUALITY[b][key]
            if qa == qb:
                records[a][2] += 1
                records[b][2] += 1
            else:
                winner, loser = (a, b) if qa > qb else (b, a)
                records[winner][0] += 1
                records[loser][1] += 1
    return {m: tuple(r) for m, r in records.items()}


def test_each_turn_of_a_battle_is_judged_and_counted(arena_project):
    arena(arena_project, position_bias_mitigation="swap_position")
    collected = arena_project.run("--collect-only")
    # 3 pairs x 2 questions, each judged at 2 turns in 2 orders.
    collected.stdout.fnmatch_lines(["*plan: 6 battles, 0 gates; 24 judge calls (0 cached, 24 to make)*"])

    result = arena_project.run("-v")
    result.assert_outcomes(passed=6)
    assert arena_project.server.request_count == 24
    result.stdout.fnmatch_lines(["*per turn (judge_turns: each)*", "turn 1:", "turn 2:", "average over the turns:",
                                 "*judge: 24 calls, 0 from cache, 0 failed*",
                                 "*per-turn report: *elo_rating.turns.csv*"])

    reviews = arena_project.read_jsonl(REVIEWS)
    assert sorted((r["question_id"], r["model_a"], r["model_b"], r["turn"]) for r in reviews) == sorted(
        (q, a, b, t) for q in (1, 2) for a, b in [("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma")]
        for t in (1, 2))
    keys = [r[f"cache_key_{i}"] for r in reviews for i in (1, 2)]
    assert len(set(keys)) == 24  # each turn and order its own call
    assert {r["template"] for r in reviews if r["turn"] == 1} == {"pair-v1"}
    assert {r["template"] for r in reviews if r["turn"] == 2} == {"pair-v1-multi-turn"}
    for record in reviews:  # swapped or not, the judge agreed with itself on the turn it was shown
        qa = QUALITY[record["model_a"]][(record["question_id"], record["turn"])]
        qb = QUALITY[record["model_b"]][(record["question_id"], record["turn"])]
        assert record["win"] == ("model_a" if qa > qb else "model_b" if qb > qa else "tie")

    # Each turn's judgment is a battle of the ratings: 2 opponents x 2 questions x 2 turns.
    ratings = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert ratings["Battles"].to_dict() == {"alpha": 8, "beta": 8, "gamma": 8}
    both = expected_records((1, 2))
    assert {m: (ratings.loc[m, "Wins"], ratings.loc[m, "Losses"], ratings.loc[m, "Ties"]) for m in QUALITY} == both

    table = pd.read_csv(arena_project.root / TURNS_CSV, dtype={"Turn": str})
    assert list(table["Turn"].unique()) == ["1", "2", "average"]
    for label, turns in (("1", (1,)), ("2", (2,)), ("average", (1, 2))):
        rows = table[table["Turn"] == label].set_index("Model")
        for model, (wins, losses, ties) in expected_records(turns).items():
            games = wins + losses + ties
            row = rows.loc[model]
            assert (row["Wins"], row["Losses"], row["Ties"], row["Battles"]) == (wins, losses, ties, games)
            assert row["Win_Rate"] == pytest.approx(wins / games, abs=1e-4)
            assert row["Loss_Rate"] == pytest.approx(losses / games, abs=1e-4)
            assert row["Win_Rate_Adjusted"] == pytest.approx((wins + ties / 2) / games, abs=1e-4)
    # The figures themselves, for one model: alpha won all of turn 1, then lost twice and tied once.
    alpha = table[table["Model"] == "alpha"].set_index("Turn")
    assert alpha.loc["1", ["Wins", "Losses", "Ties"]].tolist() == [4, 0, 0]
    assert alpha.loc["2", ["Wins", "Losses", "Ties"]].tolist() == [1, 2, 1]
    assert alpha.loc["average", "Win_Rate_Adjusted"] == pytest.approx(5.5 / 8)
    # Best first within each turn: beta leads turn 2.
    assert table[table["Turn"] == "2"]["Model"].iloc[0] == "beta"


def test_the_judge_sees_turn_one_alone_then_the_whole_conversation(arena_project):
    arena(arena_project, models=("alpha", "beta"), questions=QUESTIONS[:1])
    arena_project.run("--junitxml=out.xml").assert_outcomes(passed=1)
    # The item names both turns' templates (a JUnit property).
    assert 'value="pair-v1, pair-v1-multi-turn"' in (arena_project.root / "out.xml").read_text()
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    assert len(prompts) == 2
    first = next(p for p in prompts if "-t2" not in p)
    second = next(p for p in prompts if "-t2" in p)
    # Turn 1: the first question and both first answers, nothing of turn 2.
    assert "Write a poem about rain." in first and "Now make it rhyme." not in first
    assert token("alpha", 1, 1) in first and token("beta", 1, 1) in first
    # Turn 2: both questions and both turns of both answers, the second answers last in each conversation.
    for text in ("Write a poem about rain.", "Now make it rhyme.", token("alpha", 1, 1), token("alpha", 1, 2),
                 token("beta", 1, 1), token("beta", 1, 2)):
        assert text in second
    assert second.index(token("alpha", 1, 1)) < second.index(token("alpha", 1, 2)) < second.index(token("beta", 1, 1))
    assert "focus" in second.lower() or "final user turn" in second  # the multi-turn template's instruction


def test_k_selects_one_models_battles_and_its_turns(arena_project):
    arena(arena_project)
    result = arena_project.run("-v", "-k", "gamma")
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*alpha--vs--beta*")
    assert arena_project.server.request_count == 8  # 4 battles x 2 turns
    reviews = arena_project.read_jsonl(REVIEWS)
    assert len(reviews) == 8 and all("gamma" in (r["model_a"], r["model_b"]) for r in reviews)
    assert sorted(r["turn"] for r in reviews) == [1] * 4 + [2] * 4
    # A -k run writes the subset report, and its per-turn tables beside it.
    subset = pd.read_csv(arena_project.root / "reports/elo_rating.subset.turns.csv", dtype={"Turn": str})
    assert set(subset["Turn"]) == {"1", "2", "average"}
    assert not (arena_project.root / TURNS_CSV).exists()


def test_a_cached_rerun_makes_no_call(arena_project):
    arena(arena_project, position_bias_mitigation="swap_position")
    arena_project.run().assert_outcomes(passed=6)
    first_table = (arena_project.root / TURNS_CSV).read_text()
    arena_project.server.reset_counters()
    collected = arena_project.run("--collect-only")
    collected.stdout.fnmatch_lines(["*24 judge calls (24 cached, 0 to make)*"])
    again = arena_project.run()
    again.assert_outcomes(passed=6)
    again.stdout.fnmatch_lines(["*judge: 0 calls, 24 from cache*"])
    assert arena_project.server.request_count == 0
    assert len(arena_project.read_jsonl(REVIEWS)) == 12  # nothing judged twice
    assert (arena_project.root / TURNS_CSV).read_text() == first_table


def test_single_mode_scores_each_turn(arena_project):
    arena(arena_project, mode="single")
    result = arena_project.run()
    result.assert_outcomes(passed=6)  # 3 models x 2 questions
    assert arena_project.server.request_count == 12  # ... x 2 turns
    reviews = arena_project.read_jsonl(REVIEWS)
    assert {(r["model"], r["question_id"], r["turn"]): r["score"] for r in reviews} == {
        (m, q, t): QUALITY[m][(q, t)] for m in QUALITY for q in (1, 2) for t in (1, 2)}
    assert {r["template"] for r in reviews if r["turn"] == 2} == {"single-v1-multi-turn"}
    table = pd.read_csv(arena_project.root / TURNS_CSV, dtype={"Turn": str})
    scores = {(row.Turn, row.Model): row.Score for row in table.itertuples()}
    for model, quality in QUALITY.items():  # FastChat: mean per turn, and over every turn's score
        assert scores[("1", model)] == pytest.approx((quality[(1, 1)] + quality[(2, 1)]) / 2)
        assert scores[("2", model)] == pytest.approx((quality[(1, 2)] + quality[(2, 2)]) / 2)
        assert scores[("average", model)] == pytest.approx(sum(quality.values()) / 4)
    assert table[table["Turn"] == "1"]["Model"].tolist() == ["alpha", "beta", "gamma"]  # best first
    ratings = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert ratings.loc["beta", "Score"] == pytest.approx(2.0)  # (1 + 3 + 2 + 2) / 4
    result.stdout.fnmatch_lines(["*per turn (judge_turns: each): mean score per model*"])


def test_a_single_turn_question_is_judged_once(arena_project):
    questions = [QUESTIONS[0], {"question_id": 3, "category": "writing", "text": "Name a colour."}]
    QUALITY["alpha"][(3, 1)], QUALITY["beta"][(3, 1)] = 1, 2
    try:
        arena(arena_project, models=("alpha", "beta"), questions=questions)
        collected = arena_project.run("--collect-only")
        collected.stdout.fnmatch_lines(["*plan: 2 battles, 0 gates; 3 judge calls*"])
        arena_project.run().assert_outcomes(passed=2)
    finally:
        del QUALITY["alpha"][(3, 1)], QUALITY["beta"][(3, 1)]
    assert arena_project.server.request_count == 3
    reviews = arena_project.read_jsonl(REVIEWS)
    assert sorted((r["question_id"], r["turn"]) for r in reviews) == [(1, 1), (1, 2), (3, 1)]
    single = next(r for r in reviews if r["question_id"] == 3)
    assert single["template"] == "pair-v1" and single["win"] == "model_b"


def test_whole_judges_the_conversation_once(arena_project):
    arena(arena_project, models=("alpha", "beta"))
    set_review_keys(arena_project, judge_turns="whole")
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    assert arena_project.server.request_count == 2
    reviews = arena_project.read_jsonl(REVIEWS)
    assert all("turn" not in r and r["template"] == "pair-v1-multi-turn" for r in reviews)
    assert not (arena_project.root / TURNS_CSV).exists()
    result.stdout.no_fnmatch_line("*per turn*")


def test_a_failed_turn_fails_its_battle(arena_project):
    arena(arena_project, models=("alpha", "beta"))

    def garbage_on_turn_two_of_question_two(body):
        turn, answers = shown_answers(body)
        return "no verdict here" if (turn, answers[0][1]) == (2, 2) else judge_by_quality(body)

    arena_project.server.reply = garbage_on_turn_two_of_question_two
    result = arena_project.run("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*q002-alpha--vs--beta*FAILED*", "*turn 2: unparseable verdict*"])
    # The failed battle counts neither turn; the other counts both.
    ratings = pd.read_csv(arena_project.root / "reports/elo_rating.csv").set_index("Model")
    assert ratings.loc["alpha", "Battles"] == 2


def test_unknown_judge_turns_is_a_config_error(arena_project):
    arena(arena_project, models=("alpha", "beta"))
    set_review_keys(arena_project, judge_turns="every")
    result = arena_project.run()
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*reviews_gen.judge_turns: expected one of whole, each, got 'every'*"])
    assert arena_project.server.request_count == 0


def test_each_needs_a_template_for_the_first_turn(arena_project):
    arena(arena_project, models=("alpha", "beta"))
    templates = arena_project.root / "two_turn_templates.jsonl"
    templates.write_text(json.dumps({
        "name": "pair-two", "type": "pairwise", "system_prompt": "Judge.", "output_format": "[[A]]",
        "prompt_template": "{question_1}{answer_a_1}{question_2}{answer_a_2}{answer_b_1}{answer_b_2}",
    }) + "\n")
    set_review_keys(arena_project, prompt_file=str(templates))
    result = arena_project.run()
    assert result.ret == 4, result.stdout.str()
    result.stderr.fnmatch_lines(["*question_id 1*1 turn*no pairwise template shows 1*"])
    assert arena_project.server.request_count == 0


def test_generated_two_turn_answers_are_judged_per_turn(arena_project):
    """Tiny models answer both turns; the judge is asked twice per battle, turn 2 with the second answers."""
    arena_project.server.reply = constant("Both fine. [[A]]")
    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"), reviews_gen__judge_turns="each")
    arena_project.write(config)
    with open(arena_project.root / "questions.jsonl", "w", encoding="utf-8") as handle:
        handle.write(json.dumps(QUESTIONS[0]) + "\n")
    arena_project.run().assert_outcomes(passed=1)
    assert arena_project.server.request_count == 2
    answers = {name: arena_project.read_jsonl(f"answers/answer_{name}.jsonl")[0]["answer_turns"]
               for name in ("tiny-a", "tiny-b")}
    prompts = [prompt_text(body) for body in arena_project.server.requests]
    second = next(p for p in prompts if "Now make it rhyme." in p)
    first = next(p for p in prompts if "Now make it rhyme." not in p)
    assert all(answer in second for turns in answers.values() for answer in turns)
    assert answers["tiny-a"][0] in first and answers["tiny-a"][1] not in first
    reviews = arena_project.read_jsonl(REVIEWS)
    assert sorted(r["turn"] for r in reviews) == [1, 2] and all(r["win"] == "model_a" for r in reviews)


def test_a_judgment_per_turn_travels_whole_to_the_xdist_controller():
    """A worker sends a judgment as plain data: its turns come back with their games and numbers."""
    question = Question(1, ("a", "b"))
    match = Battle(question, "x", "y", "q001-x--vs--y")
    parts = [Judgment(match, (), winner="model_a", games=(("model_a", 1.0),), turn=1),
             Judgment(match, (), winner="tie", games=(("tie", 1.0),), turn=2)]
    combined = Judgment.of_turns(match, parts)
    assert combined.games == (("model_a", 1.0), ("tie", 1.0)) and combined.winner == "model_a"
    back = Judgment.from_summary(match, json.loads(json.dumps(combined.summary())))
    assert [(p.turn, p.winner, p.games) for p in back.turns] == [(1, "model_a", (("model_a", 1.0),)),
                                                                   (2, "tie", (("tie", 1.0),))]
    assert back.games == combined.games and back.winner == combined.winner


def test_a_judgment_keeps_its_replies_when_it_travels_to_the_xdist_controller():
    """The controller's judgments carry the judge's replies (text, cache key, order, verdict, template, turn):
    the flips and the battle browser read them there, never the review file again."""
    from pytest_arena.config import DEFAULT_TEMPLATES
    from pytest_arena.judging.judgment import Call, CallResult
    from pytest_arena.judging.parsers import parse_verdict
    from pytest_arena.judging.templates import load_templates

    template = next(t for t in load_templates(DEFAULT_TEMPLATES) if t.output_format == "[[A]]")
    question = Question(1, ("a", "b"))
    match = Battle(question, "x", "y", "q001-x--vs--y")
    results = [tuple(CallResult(Call(template, f"prompt {turn} {order}", f"{turn}{order}" * 32, swapped=order == 1),
                                text, parse_verdict("lmsys_parser", text, "[[A]]"), cached=order == 1)
                     for order, text in enumerate(("Reasons. [[A]]", "Other reasons. [[B]]")))
               for turn in (1, 2)]
    parts = [Judgment(match, pair, winner="model_a", games=(("model_a", 1.0),), turn=turn)
             for turn, pair in zip((1, 2), results)]
    combined = Judgment.of_turns(match, parts)
    back = Judgment.from_summary(match, json.loads(json.dumps(combined.summary())))
    assert back.results == () and back.replies == combined.replies
    assert [(r.turn, r.swapped, r.winner, r.cached, r.text) for r in back.replies] == [
        (1, False, "model_a", False, "Reasons. [[A]]"), (1, True, "model_a", True, "Other reasons. [[B]]"),
        (2, False, "model_a", False, "Reasons. [[A]]"), (2, True, "model_a", True, "Other reasons. [[B]]")]
    assert {r.template for r in back.replies} == {template.name}


def test_two_xdist_workers_give_the_same_per_turn_tables(arena_project):
    """Under pytest-xdist the controller rates what the workers judged: their turns reach it too."""
    pytest.importorskip("xdist")  # a dev dependency: CI has it
    arena(arena_project, position_bias_mitigation="swap_position")
    parallel = arena_project.pytester.runpytest_subprocess(
        "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "-n", "2")
    parallel.assert_outcomes(passed=6)
    parallel.stdout.fnmatch_lines(["turn 2:", "average over the turns:"])
    assert arena_project.server.request_count == 24
    parallel_table = (arena_project.root / TURNS_CSV).read_text()
    (arena_project.root / TURNS_CSV).unlink()
    arena_project.run("-n", "0").assert_outcomes(passed=6)  # one process, from the review cache
    assert arena_project.server.request_count == 24
    assert (arena_project.root / TURNS_CSV).read_text() == parallel_table
    assert "alpha" in parallel_table and "average" in parallel_table
