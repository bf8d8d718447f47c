"""A panel of judges end to end (issue 26): three scripted loopback judges of known quality, routed by
model name (always right, prefers the longer answer, prefers the answer shown first), on a labelled
file whose truth the test lays out so that the two biased judges err on different battles. The panel's
majority is counted here from that layout; its agreement with the labels beats each biased judge's."""

from __future__ import annotations

import csv
import json
import re

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
from support.arena_project import OWN_MARKERS
from support.judge_server import by_model, constant, prefer_containing, prefer_longer

from pytest_arena.config import load_config

# question -> (the label's winner, the side with the longer answer); the battles show alpha first.
LAYOUT = {1: ("alpha", "alpha"), 2: ("alpha", "alpha"), 3: ("alpha", "beta"), 4: ("alpha", "beta"),
          5: ("alpha", "beta"), 6: ("beta", "beta"), 7: ("beta", "beta"), 8: ("beta", "beta"),
          9: ("beta", "alpha"), 10: ("tie", "beta"), 11: ("tie", "beta")}
SAYS = {"right": lambda q: LAYOUT[q][0], "longer": lambda q: LAYOUT[q][1], "first": lambda q: "alpha"}
REPLIES = {"right": prefer_containing("RIGHT", **OWN_MARKERS), "longer": prefer_longer(**OWN_MARKERS),
           "first": constant("[[A]]")}


def majority(said: list[str]) -> str:
    top = max(set(said), key=said.count)
    return top if said.count(top) * 2 > len(said) else "tie"


def write_panel_arena(project, **review):
    config = project.config(questions=len(LAYOUT), models=("tiny-a",))
    config["answers_gen"] = {}
    for name in ("alpha", "beta"):
        path = project.root / "answers" / f"answer_{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        with open(path, "w") as handle:
            for qid, (winner, longer) in LAYOUT.items():
                words = ["RIGHT" if winner == name else "plain"] + ["w"] * (8 if longer == name else 2)
                handle.write(json.dumps({"question_id": qid, "model_id": name, "answer": " ".join(words)}) + "\n")
        config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    with open(project.root / "labels.jsonl", "w") as handle:
        for qid, (winner, _) in LAYOUT.items():
            label = {"alpha": "model_a", "beta": "model_b", "tie": "tie"}[winner]
            record = {"question_id": qid, "model_a": "alpha", "model_b": "beta", "winner": label}
            handle.write(json.dumps(record) + "\n")
    single = config["reviews_gen"]["reviewer"]
    config["reviews_gen"]["reviewer"] = [{"ref": "openai", "args": {**single["args"], "model": name}}
                                         for name in SAYS]
    config["reviews_gen"].update(audit="labels.jsonl", **review)
    project.server.reply = by_model(REPLIES)
    project.write(config)


def records(project, relative: str) -> list[dict]:
    """The review file's records without what differs from run to run (time, usage)."""
    return sorted((json.dumps({k: v for k, v in r.items() if k not in ("tstamp", "usage")}, sort_keys=True)
                   for r in project.read_jsonl(relative)))


def test_a_panel_of_three_beats_its_biased_judges_and_each_judge_is_kept(arena_project):
    write_panel_arena(arena_project)
    result = arena_project.run()
    result.assert_outcomes(passed=len(LAYOUT))
    said = {name: {q: says(q) for q in LAYOUT} for name, says in SAYS.items()}
    said["panel"] = {q: majority([said[name][q] for name in SAYS]) for q in LAYOUT}
    assert arena_project.server.request_count == 3 * len(LAYOUT)  # N judges: N times the calls
    # Each judge's own review file, as a single judge's; the panel's record keeps every judge's verdict.
    side = {"alpha": "model_a", "beta": "model_b", "tie": "tie"}
    for name in SAYS:
        own = arena_project.read_jsonl(f"reviews/review_gpt4.{name}.jsonl")
        assert {r["question_id"]: r["win"] for r in own} == {q: side[said[name][q]] for q in LAYOUT}
    panel = {r["question_id"]: r for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")}
    assert {q: r["win"] for q, r in panel.items()} == {q: side[said["panel"][q]] for q in LAYOUT}
    assert panel[9]["panel"] == [{"judge": n, "win": side[said[n][9]]} for n in SAYS]
    # The audit: every judge's agreement with the labels and the panel's, side by side.
    rows = {r["judge"]: r for r in csv.DictReader(open(arena_project.root / "reports" / "elo_rating.audit.csv"))
            if r["by"] == "all"}
    hits = {name: sum(said[name][q] == LAYOUT[q][0] for q in LAYOUT) for name in said}
    assert {name: int(rows[name]["agreement_hits"]) for name in said} == hits
    assert hits["panel"] > max(hits["longer"], hits["first"])
    output = result.stdout.str()
    print("\n".join(line for line in output.splitlines() if "agreement" in line or line.lstrip().startswith(
        ("panel", "right", "longer", "first", "model"))))
    result.stdout.fnmatch_lines(["*judge panel length bias*",
                                 "*judge panel: 3 judges (right, longer, first), the battles' verdict is the majority*",
                                 "*judges among themselves*", "*longer ~ right: kappa*",
                                 "*judge audit: panel of 3 judges against 11 labels*"])
    judges = list(csv.DictReader(open(arena_project.root / "reports" / "elo_rating.judges.csv")))
    assert {r["judge"] for r in judges} == {"panel", *SAYS}
    wins = {name: sum(said[name][q] == "alpha" for q in LAYOUT) - sum(said[name][q] == "beta" for q in LAYOUT)
            for name in said}
    rated = {(r["judge"], r["model"]): float(r["rating"]) for r in judges}
    for name, lead in wins.items():  # the side a judge made win more is rated higher by that judge
        assert (rated[(name, "alpha")] > rated[(name, "beta")]) == (lead > 0), name
    page = (arena_project.root / "reports" / "elo_rating.html").read_text()
    assert all(re.search(rf'"judge":\s*"{name}"', page) for name in SAYS)  # each reply names its judge
    # A rerun asks nothing (every judge's cache) and writes no record again.
    before = {f: records(arena_project, f) for f in ["reviews/review_gpt4.jsonl"] +
              [f"reviews/review_gpt4.{n}.jsonl" for n in SAYS]}
    arena_project.run().assert_outcomes(passed=len(LAYOUT))
    assert arena_project.server.request_count == 3 * len(LAYOUT)
    assert {f: records(arena_project, f) for f in before} == before


def test_under_xdist_a_panel_writes_the_same_records(arena_project):
    write_panel_arena(arena_project)
    arena_project.run().assert_outcomes(passed=len(LAYOUT))
    files = ["reviews/review_gpt4.jsonl"] + [f"reviews/review_gpt4.{n}.jsonl" for n in SAYS]
    alone = {f: [r for r in records(arena_project, f)] for f in files}
    for f in files:
        (arena_project.root / f).unlink()
    result = arena_project.run("-n", "2")
    result.assert_outcomes(passed=len(LAYOUT))
    assert {f: records(arena_project, f) for f in files} == alone
    result.stdout.fnmatch_lines(["*judge panel: 3 judges*"])


def test_the_budget_counts_every_judges_calls(arena_project):
    write_panel_arena(arena_project, max_calls=3 * len(LAYOUT) - 1)
    result = arena_project.run()
    assert arena_project.server.request_count == 0  # refused before the first call: nothing paid
    result.stderr.fnmatch_lines([f"ERROR: *reviews_gen.max_calls: the run needs {3 * len(LAYOUT)} judge calls, "
                                 f"more than max_calls {3 * len(LAYOUT) - 1}*no judge call was made"])
    write_panel_arena(arena_project, max_calls=3 * len(LAYOUT))  # every judge's calls, and not one more
    arena_project.run().assert_outcomes(passed=len(LAYOUT))
    assert arena_project.server.request_count == 3 * len(LAYOUT)


def test_one_judge_in_a_list_is_the_single_judge(arena_project):
    """A list of one judge reads as that judge alone: the same spec, no panel (the same records and report)."""
    config = arena_project.config(questions=2, models=("tiny-a",))
    single = arena_project.write(config, "single.yaml")
    config["reviews_gen"]["reviewer"] = [config["reviews_gen"]["reviewer"]]
    listed = arena_project.write(config, "listed.yaml")
    assert load_config(listed).review == load_config(single).review
    assert load_config(listed).review.panel == ()


def test_a_panel_in_single_mode_scores_the_mean_of_its_judges(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a",))
    config["answers_gen"] = {}
    path = arena_project.root / "answers" / "answer_solo.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps({"question_id": q, "model_id": "solo", "answer": f"answer {q}"}) + "\n"
                            for q in (1, 2)))
    config["answers_gen"]["solo"] = {"enable": False, "output_file": str(path)}
    args = {**config["reviews_gen"]["reviewer"]["args"], "mode": "single"}
    scores = {"high": 9, "mid": 6, "low": 2}
    config["reviews_gen"]["reviewer"] = [{"ref": "openai", "args": {**args, "model": n}} for n in scores]
    config["rating_gen"]["metrics"] = ["score"]
    arena_project.server.reply = by_model({n: f"Rating: [[{s}]]" for n, s in scores.items()})
    arena_project.write(config)
    result = arena_project.run()
    result.assert_outcomes(passed=2)
    mean = sum(scores.values()) / len(scores)
    assert [r["score"] for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")] == [mean, mean]
    assert [r["panel"] for r in arena_project.read_jsonl("reviews/review_gpt4.jsonl")][0] == [
        {"judge": n, "score": s} for n, s in scores.items()]
    result.stdout.fnmatch_lines(["*the battles' verdict is the mean of the scores*"])


def test_the_audit_asks_each_judge_of_the_panel_about_pairs_no_battle_judged(arena_project):
    """Labels in FastChat's format about a model known only from their conversations: each judge is asked
    into its own audit file (``<review stem>.audit.<judge>.jsonl``), and a rerun asks none of them again."""
    write_panel_arena(arena_project)
    asked = {json.loads(line)["question_id"]: json.loads(line)["text"]
             for line in (arena_project.root / "questions.jsonl").read_text().splitlines()}
    gamma = {1: "RIGHT g w w w w w w w w w", 6: "plain g"}  # as good as alpha's answers; longer on 1, shorter on 6

    def label(qid, winner):
        alpha = json.loads((arena_project.root / "answers" / "answer_alpha.jsonl").read_text().splitlines()[qid - 1])
        return {"question_id": qid, "model_a": "gamma", "model_b": "alpha", "winner": winner, "judge": "expert_1",
                "turn": 1, "conversation_a": [{"role": "user", "content": asked[qid]},
                                              {"role": "assistant", "content": gamma[qid]}],
                "conversation_b": [{"role": "user", "content": asked[qid]},
                                   {"role": "assistant", "content": alpha["answer"]}]}

    (arena_project.root / "human.json").write_text(json.dumps([label(1, "tie"), label(6, "tie")]))
    config = arena_project.root / "cfg_arena.yaml"
    config.write_text(config.read_text().replace("audit: labels.jsonl", "audit: human.json"))
    result = arena_project.run()
    result.assert_outcomes(passed=len(LAYOUT))
    result.stdout.fnmatch_lines(["*0 labelled pairs judged by the arena's battles, 2 asked for the audit: 6 calls*"])
    for name, verdicts in {"right": {1: "tie", 6: "tie"}, "longer": {1: "model_a", 6: "model_b"},
                           "first": {1: "model_a", 6: "model_a"}}.items():
        own = arena_project.read_jsonl(f"reviews/review_gpt4.audit.{name}.jsonl")
        assert {r["question_id"]: r["win"] for r in own} == verdicts, name
    rows = {r["judge"]: r for r in csv.DictReader(open(arena_project.root / "reports" / "elo_rating.audit.csv"))
            if r["by"] == "all"}
    # panel: 1 -> model_a (longer and first), 6 -> no majority, a tie; both labels are ties
    assert {n: rows[n]["agreement_hits"] for n in rows} == {"panel": "1", "right": "2", "longer": "0", "first": "0"}
    again = arena_project.run()
    again.stdout.fnmatch_lines(["*2 asked for the audit: 0 calls, 6 from cache, 0 failed"])


def test_judged_per_turn_the_panel_takes_each_turns_majority(arena_project):
    config = arena_project.config(questions=2, models=("tiny-a",))
    with open(arena_project.root / "questions.jsonl", "w") as handle:
        for qid in (1, 2):
            handle.write(json.dumps({"question_id": qid, "turns": [f"Write about {qid}.", "Now shorter."]}) + "\n")
    config["answers_gen"] = {}
    for name in ("alpha", "beta"):
        path = arena_project.root / "answers" / f"answer_{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps({"question_id": q, "model_id": name,
                                            "answer_turns": [f"{name} on {q}", f"{name} again"]}) + "\n"
                                for q in (1, 2)))
        config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    args = config["reviews_gen"]["reviewer"]["args"]
    says = {"one": "[[A]]", "two": "[[B]]", "three": "[[A]]"}  # the majority: the answer shown first, alpha's
    config["reviews_gen"]["reviewer"] = [{"ref": "openai", "args": {**args, "model": n}} for n in says]
    config["reviews_gen"]["judge_turns"] = "each"
    arena_project.server.reply = by_model(says)
    arena_project.write(config)
    arena_project.run().assert_outcomes(passed=2)
    assert arena_project.server.request_count == 3 * 2 * 2  # judges x battles x turns
    panel = arena_project.read_jsonl("reviews/review_gpt4.jsonl")
    assert sorted((r["question_id"], r["turn"], r["win"]) for r in panel) == [
        (1, 1, "model_a"), (1, 2, "model_a"), (2, 1, "model_a"), (2, 2, "model_a")]
    assert all([p["win"] for p in r["panel"]] == ["model_a", "model_b", "model_a"] for r in panel)
