"""Every battle has its review record, also one that paid for no judge call: two models that answered
alike give battles whose judge prompts are identical, judged once (``PaidOnce``), and a battle of a
later run may read a reply an earlier run stored for another battle. Rating the review file alone
(the rate-only stage: ``reviews_gen.enable: false``, ``rating_gen.enable: true``) must then give the
judged run's report, byte for byte: the same battles, the same ratings and intervals.
"""

from __future__ import annotations

import json
import re

import pandas as pd  # several in-process arenas in one module need pandas imported first
import pytest
import yaml
from support.arena_project import fixed_answers_config
from support.judge_server import prompt_text
from test_judge_turns import QUESTIONS, judge_by_quality, token

REVIEWS = "reviews/review_gpt4.jsonl"
REPORT = "reports/elo_rating.csv"
WORD = re.compile(r"\bw\d+\b")


def rate_only(project):
    """Run the written config again as the rate-only stage: reviews off, rating on."""
    path = project.root / "cfg_arena.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["reviews_gen"]["enable"] = False
    config["rating_gen"]["enable"] = True
    project.write(config)
    return project.run()


def judge_then_rate_only(project, items: int, also: tuple[str, ...] = ()) -> tuple[list[dict], bytes]:
    """Judge the written config, then rate its review file alone: the records, and the report (the
    same from both runs, as are the files ``also`` names: asserted here). The rating calls no judge."""
    judged = project.run()
    judged.assert_outcomes(passed=items)
    report = (project.root / REPORT).read_bytes()
    others = {name: (project.root / name).read_bytes() for name in also}
    calls = project.server.request_count
    records = project.read_jsonl(REVIEWS)

    rated = rate_only(project)

    assert rated.ret == pytest.ExitCode.OK, rated.stdout.str()
    rated.assert_outcomes(passed=items)
    assert project.server.request_count == calls
    rated.stdout.fnmatch_lines([f"*rating only: {items} reviews from *review_gpt4.jsonl (pytest-arena records)*"])
    assert (project.root / REPORT).read_bytes() == report
    assert {name: (project.root / name).read_bytes() for name in also} == others
    return records, report


def shared_halves(records: list[dict]) -> list[tuple[str, str]]:
    """(cache key, shared_call) of every half that paid nothing."""
    return [(r[f"cache_key{s}"], r[f"shared_call{s}"]) for r in records for s in ("", "_1", "_2")
            if f"shared_call{s}" in r]


def battles_column(report: bytes) -> dict[str, int]:
    from io import BytesIO

    return pd.read_csv(BytesIO(report)).set_index("Model")["Battles"].to_dict()


# --------------------------------------------------------------------------------------------------
# Pairwise, the whole conversation


@pytest.mark.parametrize("mitigation, rule", [(None, "consistent"), ("swap_position", "consistent"),
                                              ("swap_position", "independent")])
def test_rating_the_review_file_alone_gives_the_report_when_twins_share_calls(arena_project, mitigation, rule):
    questions, words = 5, {"twin": 6, "twin-copy": 6, "mid": 4, "short": 2}  # the twins answer word for word alike
    config = fixed_answers_config(arena_project, questions, words, max_concurrency=4,
                                  position_bias_mitigation=mitigation, swap_rule=rule)
    config["rating_gen"]["metrics"] = ["elo", "pairwise"]  # EvalScope's tables, reproduced too
    arena_project.write(config)
    pairs = [(a, b) for i, a in enumerate(words) for b in list(words)[i + 1:]]

    records, report = judge_then_rate_only(arena_project, items=len(pairs) * questions,
                                           also=("reports/elo_rating.elo.csv", "reports/elo_rating.pairwise.csv"))

    # One record per battle: the twins' battles against mid and short are judged by one call (per order).
    assert sorted((r["question_id"], r["model_a"], r["model_b"]) for r in records) == sorted(
        (q, a, b) for q in range(1, questions + 1) for a, b in pairs)
    orders = 1 if mitigation is None else 2
    distinct = {r[f"cache_key{s}"] for r in records for s in (("",) if orders == 1 else ("_1", "_2"))}
    assert arena_project.server.request_count == len(distinct) < len(pairs) * questions * orders
    shared = shared_halves(records)
    assert shared and all(key == call for key, call in shared)
    # The twins' battles against "mid" and "short": one of each pair pays, the other points at its call.
    assert len(shared) >= 2 * questions * orders
    games = (len(words) - 1) * questions * (2 if rule == "independent" and mitigation else 1)
    assert battles_column(report) == {model: games for model in words}


def test_a_battle_that_reads_a_reply_an_earlier_run_stored_gets_its_own_record(arena_project):
    """The twin joins later: its battle against "short" reads the reply the first run stored for
    twin vs short (the same prompt), so it pays nothing, but the review file still gets its record."""
    questions = 4
    arena_project.write(fixed_answers_config(arena_project, questions, {"twin": 6, "short": 2}))
    arena_project.run().assert_outcomes(passed=questions)
    first_calls = arena_project.server.request_count
    arena_project.write(fixed_answers_config(arena_project, questions, {"twin": 6, "twin-copy": 6, "short": 2}))

    records, report = judge_then_rate_only(arena_project, items=3 * questions)

    assert arena_project.server.request_count == first_calls + questions  # only twin vs twin-copy was new
    late = [r for r in records if (r["model_a"], r["model_b"]) == ("twin-copy", "short")]
    assert [r["question_id"] for r in late] == list(range(1, questions + 1))
    assert all(r["shared_call"] == r["cache_key"] and r["usage"] is None and r["win"] == "model_a" for r in late)
    earlier = {r["cache_key"]: r["review_text"] for r in records if (r["model_a"], r["model_b"]) == ("twin", "short")}
    assert {r["cache_key"]: r["review_text"] for r in late} == earlier  # the same calls, the same replies
    assert battles_column(report) == {"twin": 2 * questions, "twin-copy": 2 * questions, "short": 2 * questions}


def test_a_verdict_read_back_from_an_older_record_is_recorded_again_when_a_newer_one_says_otherwise(arena_project):
    """y's answers change, then change back: the third run reads the first run's reply from the cache,
    but the file's latest record of the battle is the second run's, so the battle is recorded again."""
    questions = 3
    for words in ({"x": 6, "y": 2}, {"x": 6, "y": 9}):
        arena_project.write(fixed_answers_config(arena_project, questions, {"x": words["x"], "y": words["y"]}))
        arena_project.run().assert_outcomes(passed=questions)
    calls = arena_project.server.request_count
    arena_project.write(fixed_answers_config(arena_project, questions, {"x": 6, "y": 2}))

    records, report = judge_then_rate_only(arena_project, items=questions)

    assert arena_project.server.request_count == calls == 2 * questions  # the third run asked nothing
    first, second, third = (sorted(records[i:i + questions], key=lambda r: r["question_id"])
                            for i in range(0, 3 * questions, questions))
    assert [r["win"] for r in first + second + third] == ["model_a"] * questions + ["model_b"] * questions + [
        "model_a"] * questions
    assert [r["cache_key"] for r in third] == [r["cache_key"] for r in first]
    assert all(r["shared_call"] == r["cache_key"] and r["usage"] is None for r in third)
    assert pd.read_csv(arena_project.root / REPORT).set_index("Model")["Wins"].to_dict() == {"x": questions, "y": 0}
    before = (arena_project.root / REVIEWS).read_bytes()
    arena_project.write(fixed_answers_config(arena_project, questions, {"x": 6, "y": 2}))
    arena_project.run().assert_outcomes(passed=questions)
    assert (arena_project.root / REVIEWS).read_bytes() == before  # now the latest records say it: none written


# --------------------------------------------------------------------------------------------------
# Per turn, and single mode


def two_turn_arena(project, models: dict[str, str], **judge_args) -> None:
    """The per-turn arena of test_judge_turns (two two-turn questions, the judge scripted by quality),
    where a model may answer word for word as another does (``models``: name -> whose answers)."""
    config = project.config(questions=1, models=("tiny-a",))
    with open(project.root / "questions.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(q) + "\n" for q in QUESTIONS)
    (project.root / "answers").mkdir(exist_ok=True)
    config["answers_gen"] = {}
    for name, like in models.items():
        path = project.root / "answers" / f"answer_{name}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for q in QUESTIONS:
                turns = [f"{like} answers turn {t}: {token(like, q['question_id'], t)}" for t in (1, 2)]
                handle.write(json.dumps({"question_id": q["question_id"], "model_id": name, "answer": turns[-1],
                                         "answer_turns": turns}) + "\n")
        config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    config["reviews_gen"]["reviewer"]["args"].update(judge_args)
    project.server.reply = judge_by_quality
    project.write(config)
    return config


TWINS = {"alpha": "alpha", "alpha-copy": "alpha", "beta": "beta", "gamma": "gamma"}


@pytest.mark.parametrize("mode", ["pairwise", "single"])
def test_per_turn_records_rated_alone_give_the_report_and_the_turn_tables(arena_project, mode):
    config = two_turn_arena(arena_project, TWINS, mode=mode,
                            position_bias_mitigation="swap_position" if mode == "pairwise" else None)
    config["reviews_gen"]["judge_turns"] = "each"
    arena_project.write(config)
    matches = 6 * 2 if mode == "pairwise" else 4 * 2

    turns_csv = "reports/elo_rating.turns.csv"
    records, report = judge_then_rate_only(arena_project, items=matches, also=(turns_csv,))

    assert len(records) == 2 * matches  # a record per battle (or scoring) and turn
    assert sorted({r["turn"] for r in records}) == [1, 2]
    assert shared_halves(records)  # alpha-copy's calls were alpha's
    if mode == "pairwise":
        assert battles_column(report) == {m: 3 * 2 * 2 for m in TWINS}  # 3 opponents, 2 questions, 2 turns
    else:
        table = pd.read_csv(arena_project.root / turns_csv, dtype={"Turn": str})
        assert set(table["Turn"]) == {"1", "2", "average"}


def test_single_mode_twins_each_get_their_score_record(arena_project):
    questions = 4
    config = fixed_answers_config(arena_project, questions, {"twin": 6, "twin-copy": 6, "short": 2}, mode="single")
    arena_project.server.reply = lambda body: f"Rated. [[{len(WORD.findall(prompt_text(body)))}]]"
    arena_project.write(config)

    records, report = judge_then_rate_only(arena_project, items=3 * questions)

    assert arena_project.server.request_count == 2 * questions  # the twins' identical answers: one call
    assert sorted((r["question_id"], r["model"]) for r in records) == sorted(
        (q, m) for q in range(1, questions + 1) for m in ("twin", "twin-copy", "short"))
    assert {r["model"]: r["score"] for r in records} == {"twin": 6, "twin-copy": 6, "short": 2}
    assert len(shared_halves(records)) == questions


# --------------------------------------------------------------------------------------------------
# Records that name no match of ours


ODD = {"model_a": ["x", "y"], "model_b": "y", "question_id": [1], "turn": [2], "win": "tie", "review_text": "[[C]]",
       "cache_key": "0" * 64}


def test_a_record_whose_names_are_lists_names_no_match():
    from pytest_arena.judging.review_records import LatestVerdicts

    ours = {"model_a": "x", "model_b": "y", "question_id": 1, "win": "model_a", "review_text": "[[A]]",
            "cache_key": "1" * 64}
    latest = LatestVerdicts([ODD, ours])
    assert latest.on_file(ours) and not latest.on_file(dict(ours, win="model_b"))


def test_a_judged_run_over_a_review_file_with_such_a_record_judges_as_usual(arena_project):
    config = fixed_answers_config(arena_project, 2, {"x": 4, "y": 2})
    arena_project.write(config)
    review_file = arena_project.root / REVIEWS
    review_file.parent.mkdir(parents=True, exist_ok=True)
    review_file.write_text(json.dumps(ODD) + "\n", encoding="utf-8")

    result = arena_project.run()

    result.assert_outcomes(passed=2)
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert [r["win"] for r in arena_project.read_jsonl(REVIEWS)[1:]] == ["model_a", "model_a"]
