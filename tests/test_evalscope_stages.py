"""EvalScope's stages as its users run them (answers only, reviews only, rating only), its review files
read as rating input with its model ids mapped to the config's names, and ``rating_gen.metrics``' tables
(``elo``, ``pairwise``) as EvalScope computes them, written beside the report.

The review files here are written in EvalScope v0.16's own record format (``AutoReviewerGpt4``):
``model_a, model_b, scores, win, anony, tstamp, language, question_id, category, question, review_text``,
with the answer files' ``model_id`` (the hub id) as the model names.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pandas  # noqa: F401 - imported once here: this module runs several in-process pytester arenas
import pytest
from support.arena_project import fixed_answers_config

from pytest_arena.evalscope.reviews import pairwise_games, single_score

GLM, BAICHUAN, QWEN = "ZhipuAI/chatglm3-6b", "baichuan-inc/Baichuan2-7B-Base", "qwen/Qwen-7B"
NAMES = {GLM: "chatglm3-6b", BAICHUAN: "Baichuan2-7B-Base", QWEN: "Qwen-7B"}
# EvalScope's battle pairs for answer files [chatglm, baichuan, qwen] (get_battle_pairs): the later
# model is model_a. Per question: the verdicts of (B, G), (Q, G), (Q, B).
PAIRS = [(BAICHUAN, GLM), (QWEN, GLM), (QWEN, BAICHUAN)]
VERDICTS = {1: ["model_b", "model_a", "model_a"], 2: ["tie", "model_a", "model_b"], 3: ["model_b", "tie", "model_a"]}
# Stamps out of file order: EvalScope rates in tstamp order, and online Elo depends on the order.
STAMPS = [1700000000.9, 1700000000.1, 1700000000.5, 1700000000.3, 1700000000.8, 1700000000.2,
          1700000000.7, 1700000000.4, 1700000000.6]


def evalscope_review(model_a, model_b, win, qid, tstamp, **extra) -> dict:
    scores = {"model_a": [8.0, 6.0], "model_b": [5.0, 7.0], "tie": [6.0, 6.0]}.get(win, [-1, -1])
    return {"model_a": model_a, "model_b": model_b, "scores": scores, "win": win, "anony": True, "tstamp": tstamp,
            "language": "NA", "question_id": qid, "category": "generic", "question": f"Question {qid}?",
            "review_text": f"{scores[0]} {scores[1]}\nThe reasons.", **extra}


def evalscope_reviews() -> list[dict]:
    records = []
    for qid, verdicts in VERDICTS.items():
        for (a, b), win in zip(PAIRS, verdicts):
            records.append(evalscope_review(a, b, win, qid, STAMPS[len(records)]))
    return records


def evalscope_elo(records: list[dict], k=32, scale=400, base=10, init=1000) -> dict[str, float]:
    """EvalScope's rating (RatingEvaluate.compute_elo_rating): battles sorted by tstamp, then
    compute_elo's update, ties ('tie', 'tie (bothbad)') half a win."""
    rating = defaultdict(lambda: init)
    for record in sorted(records, key=lambda r: r["tstamp"]):
        a, b, win = record["model_a"], record["model_b"], record["win"]
        ra, rb = rating[a], rating[b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        sa = {"model_a": 1, "model_b": 0, "tie": 0.5}[win]
        rating[a] += k * (sa - ea)
        rating[b] += k * (1 - sa - eb)
    return dict(rating)


def rating_only_config(project, metrics=("elo", "pairwise")) -> dict:
    """EvalScope's shipped cfg_arena.yaml, turned to re-rating: its three models by hub id (Baichuan
    disabled, as shipped), reviews off, rating on."""
    config = project.config(questions=3, models=("tiny-a",))
    config["answers_gen"] = {
        "chatglm3-6b": {"model_id_or_path": GLM, "revision": "v1.0.2", "precision": "torch.float16", "enable": True,
                        "template_type": "chatglm3", "output_file": "answers/answer_chatglm3-6b.jsonl"},
        "Baichuan2-7B-Base": {"model_id_or_path": BAICHUAN, "precision": "torch.float16", "enable": False,
                              "template_type": "default-generation",
                              "output_file": "answers/answer_Baichuan2-7B-Base.jsonl"},
        "Qwen-7B": {"model_id_or_path": QWEN, "precision": "torch.float16", "enable": True,
                    "template_type": "default-generation", "output_file": "answers/answer_Qwen-7B.jsonl"},
    }
    config["reviews_gen"]["enable"] = False
    config["rating_gen"].update(enable=True, metrics=list(metrics))
    return config


def write_reviews(project, records: list[dict], relative="reviews/review_gpt4.jsonl"):
    path = project.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------------
# Answers only, reviews only


@pytest.mark.parametrize("rating, said", [
    (False, "answers only: reviews_gen.enable is false and rating_gen.enable is false, so nothing was judged and "
            "no report written"),
    # EvalScope's rating stage, with no review to rate: the answers are the run, and the summary says so.
    (True, "answers only: reviews_gen.enable is false, so nothing was judged, and *review_gpt4.jsonl holds no "
           "review to rate (rating_gen.enable: true rates the reviews already there), so no report"),
])
def test_answers_only_generates_and_says_nothing_was_judged(arena_project, rating, said):
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"))
    config["reviews_gen"]["enable"] = False
    config["rating_gen"]["enable"] = rating
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=2)
    assert arena_project.server.request_count == 0
    assert len(arena_project.read_jsonl("answers/answer_tiny-a.jsonl")) == 2
    assert len(arena_project.read_jsonl("answers/answer_tiny-b.jsonl")) == 2
    assert not (arena_project.root / "reports").exists()
    result.stdout.fnmatch_lines([said])


def test_reviews_only_judges_and_writes_no_ratings(arena_project):
    config = fixed_answers_config(arena_project, questions=3, models={"long": 5, "short": 2})
    config["rating_gen"]["enable"] = False
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert arena_project.server.request_count == 3
    reviews = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert [r["win"] for r in reviews] == ["model_a"] * 3  # the longer answer, shown first
    assert not (arena_project.root / "reports").exists()
    out = result.stdout.str()
    assert "win rate" not in out  # no rating table
    result.stdout.fnmatch_lines(["reviews only: rating_gen.enable is false, so no ratings and no report*",
                                 "reviews: *review_gpt4.jsonl"])


# --------------------------------------------------------------------------------------------------
# Rating only


def test_rating_only_rates_an_evalscope_review_file_without_a_judge_call(arena_project):
    records = evalscope_reviews()
    review_file = write_reviews(arena_project, records)
    before = review_file.read_bytes()
    config = rating_only_config(arena_project)
    config["gates"] = [{"model": "Qwen-7B", "min_elo": 0}]  # gates judge the recorded verdicts too
    arena_project.write(config)

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=10)
    assert arena_project.server.request_count == 0
    out = result.stdout.str()
    assert "takes no part" not in out and "models loaded" not in out  # nothing about answers: none are read
    assert review_file.read_bytes() == before  # the user's file is input only
    assert not (arena_project.root / "answers").exists()  # nothing generated
    result.stdout.fnmatch_lines([
        "*rating only: 9 reviews from *review_gpt4.jsonl (EvalScope records); no answer is generated and no judge*",
        f"*review names mapped to answers_gen: *{QWEN} -> Qwen-7B*",
        ("rating only: the reviews in *review_gpt4.jsonl were rated (reviews_gen.enable is false); no judge was "
         "called; chatglm3-6b, Qwen-7B generated nothing (rating only reads no answer*"),
    ])
    report = read_csv(arena_project.root / "reports/elo_rating.csv")
    assert {row["Model"] for row in report} == set(NAMES.values())
    # EvalScope's Elo table: its columns, its formula, its battle order (tstamp), rounded as it rounds.
    elo = read_csv(arena_project.root / "reports/elo_rating.elo.csv")
    expected = evalscope_elo(records)
    assert list(elo[0]) == ["Model", "Elo_Rating"]
    assert [(row["Model"], float(row["Elo_Rating"])) for row in elo] == sorted(
        ((NAMES[m], round(v, 1)) for m, v in expected.items()), key=lambda pair: -pair[1])
    in_file_order = evalscope_elo([dict(r, tstamp=i) for i, r in enumerate(records)])
    assert {m: round(v, 1) for m, v in in_file_order.items()} != {m: round(v, 1) for m, v in expected.items()}


def test_pairwise_table_counts_unknown_verdicts_apart(arena_project):
    # A fourth question's battle without a verdict: EvalScope's table files it as won by model_b.
    records = evalscope_reviews() + [evalscope_review(QWEN, GLM, "unknown", 4, 1700000001.0)]
    write_reviews(arena_project, records)
    arena_project.write(rating_only_config(arena_project, metrics=["pairwise"]))

    result = arena_project.run()

    result.assert_outcomes(passed=9, failed=1)  # the battle without a verdict fails: it was not rated
    result.stdout.fnmatch_lines([("*review record 10 of *review_gpt4.jsonl has no verdict ('unknown'), so it is not "
                                  "rated (its review_text: -1 -1 The reasons.)")])
    assert arena_project.server.request_count == 0
    table = read_csv(arena_project.root / "reports/elo_rating.pairwise.csv")
    assert list(table[0]) == ["model", "win", "loss", "tie", "win_rate", "loss_rate", "tie_rate", "unknown"]
    rows = {row["model"]: row for row in table}
    assert [row["model"] for row in table] == ["Qwen-7B", "chatglm3-6b", "Baichuan2-7B-Base"]  # best win rate first
    expected = {"Qwen-7B": (4, 1, 1, 1), "chatglm3-6b": (2, 2, 2, 1), "Baichuan2-7B-Base": (1, 4, 1, 0)}
    for model, (win, loss, tie, unknown) in expected.items():
        row = rows[model]
        assert (int(row["win"]), int(row["loss"]), int(row["tie"]), int(row["unknown"])) == (win, loss, tie, unknown)
        games = win + loss + tie  # EvalScope's win_rate: W / N, the unknown battle in neither
        assert float(row["win_rate"]) == pytest.approx(win / games, abs=1e-12)
        assert float(row["loss_rate"]) == pytest.approx(loss / games, abs=1e-12)
        assert float(row["tie_rate"]) == pytest.approx(tie / games, abs=1e-12)
    assert not (arena_project.root / "reports/elo_rating.elo.csv").exists()  # not asked for
    result.stdout.fnmatch_lines(["rating_gen.metrics pairwise (EvalScope's table):", "*Qwen-7B*0.6667*"])


def test_rating_only_of_single_mode_reviews_gives_evalscopes_score_table(arena_project):
    records = [{"model": model, "score": score, "anony": True, "tstamp": 1700000000.0 + i, "language": "NA",
                "question_id": qid, "category": "generic", "question": f"Question {qid}?", "review_text": f"[[{score}]]"}
               for i, (model, qid, score) in enumerate([(QWEN, 1, 8), (GLM, 1, 5), (QWEN, 2, 6), (GLM, 2, -1)])]
    write_reviews(arena_project, records)
    config = rating_only_config(arena_project, metrics=["score"])
    config["reviews_gen"]["reviewer"]["args"]["mode"] = "single"
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=3, failed=1)  # EvalScope's -1: no score found by its parser, not rated
    assert arena_project.server.request_count == 0
    table = read_csv(arena_project.root / "reports/elo_rating.score.csv")
    assert [(r["model"], float(r["score"]), int(r["unknown"])) for r in table] == [("Qwen-7B", 7.0, 0),
                                                                                 ("chatglm3-6b", 5.0, 1)]


def test_rating_only_of_our_own_reviews_gives_the_judged_runs_report(arena_project):
    config = fixed_answers_config(arena_project, questions=3, models={"x": 6, "y": 3, "z": 1}, max_concurrency=1)
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=9)
    judged = (arena_project.root / "reports/elo_rating.csv").read_bytes()
    calls = arena_project.server.request_count

    config["reviews_gen"]["enable"] = False
    config["rating_gen"]["enable"] = True
    arena_project.write(config)
    result = arena_project.run()

    result.assert_outcomes(passed=9)
    assert arena_project.server.request_count == calls  # no judge call
    assert (arena_project.root / "reports/elo_rating.csv").read_bytes() == judged
    result.stdout.fnmatch_lines(["*rating only: 9 reviews from *review_gpt4.jsonl (pytest-arena records)*"])


def test_nothing_to_rate_and_nothing_to_generate_is_one_usage_error(arena_project):
    config = rating_only_config(arena_project)
    for model in config["answers_gen"].values():
        model["enable"] = False  # their answers files do not exist: nothing would be generated either
    arena_project.write(config)

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith("ERROR: ") and "cfg_arena.yaml: reviews_gen.review_file: nothing to rate:" in errors[0]
    assert "review_gpt4.jsonl does not exist, and no model of answers_gen generates answers" in errors[0]
    assert arena_project.server.request_count == 0


def test_judging_into_a_file_of_evalscope_reviews_is_refused_and_the_file_kept(arena_project):
    config = fixed_answers_config(arena_project, questions=2, models={"x": 4, "y": 2})
    arena_project.write(config)
    review_file = write_reviews(arena_project, evalscope_reviews())
    before = review_file.read_bytes()

    result = arena_project.run()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("ERROR: *cfg_arena.yaml: reviews_gen.review_file: *review_gpt4.jsonl holds "
                                  "EvalScope reviews (record 1 has no cache_key)*reviews_gen.enable: false*")])
    assert arena_project.server.request_count == 0
    assert review_file.read_bytes() == before


# --------------------------------------------------------------------------------------------------
# The metrics' tables in a judged run


def test_a_judged_run_writes_the_asked_metric_tables_beside_the_report(arena_project):
    config = fixed_answers_config(arena_project, questions=3, models={"x": 6, "y": 3, "z": 1})
    config["rating_gen"]["metrics"] = ["elo", "pairwise"]
    arena_project.write(config)

    result = arena_project.run()

    result.assert_outcomes(passed=9)
    reports = arena_project.root / "reports"
    report = {row["Model"]: row for row in read_csv(reports / "elo_rating.csv")}
    pairwise = {row["model"]: row for row in read_csv(reports / "elo_rating.pairwise.csv")}
    for model, row in pairwise.items():  # one game a battle: the same record as the report's
        assert (row["win"], row["tie"], row["loss"]) == (report[model]["Wins"], report[model]["Ties"],
                                                         report[model]["Losses"])
    assert [row["Model"] for row in read_csv(reports / "elo_rating.elo.csv")] == ["x", "y", "z"]
    result.stdout.fnmatch_lines(["rating_gen.metrics elo (EvalScope's table):",
                                 "*elo table (EvalScope's): *elo_rating.elo.csv",
                                 "*pairwise table (EvalScope's): *elo_rating.pairwise.csv"])


# --------------------------------------------------------------------------------------------------
# Record semantics


@pytest.mark.parametrize("record, rule, expected", [
    ({"win": "model_a"}, "consistent", ("model_a", (("model_a", 1.0),))),
    ({"win": "tie (bothbad)"}, "consistent", ("tie", (("tie", 1.0),))),
    ({"win": "unknown"}, "consistent", (None, ())),
    ({"win": "error", "error": "judge timed out"}, "consistent", (None, ())),
    # swap_position as EvalScope writes it (no `win`): a disagreement is a tie, an unknown half unknown
    ({"win_1": "model_b", "win_2": "model_b"}, "consistent", ("model_b", (("model_b", 1.0),))),
    ({"win_1": "model_a", "win_2": "model_b"}, "consistent", ("tie", (("tie", 1.0),))),
    ({"win_1": "unknown", "win_2": "unknown"}, "consistent", (None, ())),
    ({"win_1": "model_a", "win_2": "model_b"}, "independent", ("tie", (("model_a", 1.0), ("model_b", 1.0)))),
])
def test_a_records_verdict(record, rule, expected):
    assert pairwise_games({"model_a": "p", "model_b": "q", **record}, rule) == expected


def test_online_elo_is_evalscopes_to_1e_13_in_the_same_order():
    from pytest_arena import rating

    records = sorted(evalscope_reviews(), key=lambda r: r["tstamp"])
    battles = pandas.DataFrame({"model_a": [r["model_a"] for r in records], "model_b": [r["model_b"] for r in records],
                                "winner": [r["win"] for r in records]})
    ours = rating.online_elo(battles, k=32)
    for model, value in evalscope_elo(records).items():
        assert abs(ours[model] - value) < 1e-13


def test_evalscope_single_reviews_without_a_score_are_unknown():
    assert single_score({"model": "m", "score": 7}) == 7.0
    assert single_score({"model": "m", "score": -1}) is None  # EvalScope's parser failure
    assert single_score({"model": "m", "score": None, "cache_key": "k"}) is None
    assert single_score({"model": "m", "score": -1.0, "cache_key": "k"}) == -1.0  # ours: a real score
