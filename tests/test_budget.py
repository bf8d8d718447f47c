"""A judge budget, end to end: reviews_gen.max_calls and max_cost stop a run before its first judge call
(none is made), ARENA_MAX_COST only tightens, cached calls are free, --collect-only prints the estimate,
and a run never makes more than max_calls (its xdist workers together)."""

from __future__ import annotations

import json

import pandas as pd  # noqa: F401 - several in-process pytester arenas in one module (COMMON.md)
import pytest
from support.arena_project import fixed_answers_config

REVIEWS = "reviews/review_gpt4.jsonl"
PRICES = {"prompt_cost_per_1m": 10.0, "completion_cost_per_1m": 30.0}


def arena(project, questions: int = 4, **review):
    """Two models answering from files (no model loads): one battle, one judge call, per question."""
    config = fixed_answers_config(project, questions, {"long": 6, "short": 2}, max_tokens=100)
    config["reviews_gen"].update(review)
    return project.write(config)


def usage_error(result, *parts: str) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.stderr.lines
    assert all(part in errors[0] for part in parts), errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    return errors[0]


def test_max_calls_refuses_the_run_before_any_call(arena_project):
    arena(arena_project, 4, max_calls=3)
    result = arena_project.run()
    usage_error(result, "cfg_arena.yaml: reviews_gen.max_calls:", "the run needs 4 judge calls, more than max_calls 3",
                "no judge call was made")
    assert arena_project.server.request_count == 0
    assert not (arena_project.root / REVIEWS).exists()


def test_max_cost_refuses_on_the_estimate_before_any_call(arena_project):
    # 4 calls x 100 completion tokens x 30/1M alone cost 0.012: over 0.01 whatever the prompts.
    arena_project.server.reply = "[[A]]"
    config = fixed_answers_config(arena_project, 4, {"long": 6, "short": 2}, max_tokens=100, **PRICES)
    config["reviews_gen"]["max_cost"] = 0.01
    arena_project.write(config)
    result = arena_project.run()
    line = usage_error(result, "reviews_gen.max_cost:", "estimated judge cost", "more than max_cost 0.01",
                       "4 judge calls to make", "characters/4", "at most 400 completion tokens")
    assert arena_project.server.request_count == 0
    # The same estimate as --collect-only prints.
    plan = arena_project.run("--collect-only")
    assert plan.ret == 0 and arena_project.server.request_count == 0
    estimate = line.split("max_cost 0.01: ", 1)[1].split("; no judge call")[0]
    plan.stdout.fnmatch_lines([f"arena: judge budget: {estimate}; over the budget (max_cost 0.01): *"])


def test_arena_max_cost_only_tightens(arena_project, monkeypatch):
    config = fixed_answers_config(arena_project, 4, {"long": 6, "short": 2}, max_tokens=100, **PRICES)
    config["reviews_gen"]["max_cost"] = 1.0
    arena_project.write(config)
    monkeypatch.setenv("ARENA_MAX_COST", "0.001")  # tighter than the config: it wins
    usage_error(arena_project.run(), "ARENA_MAX_COST:", "more than max_cost 0.001")
    assert arena_project.server.request_count == 0

    config["reviews_gen"]["max_cost"] = 0.001
    arena_project.write(config)
    monkeypatch.setenv("ARENA_MAX_COST", "100")  # looser than the config: the config stays in force
    usage_error(arena_project.run(), "reviews_gen.max_cost:", "more than max_cost 0.001")
    assert arena_project.server.request_count == 0

    config["reviews_gen"]["max_cost"] = 1.0
    arena_project.write(config)
    assert arena_project.run().ret == 0  # within both
    assert arena_project.server.request_count == 4


@pytest.mark.parametrize("value", ["ten", "-1", "nan", "inf"])
def test_a_malformed_arena_max_cost_is_a_usage_error(arena_project, monkeypatch, value):
    arena_project.write(fixed_answers_config(arena_project, 2, {"long": 6, "short": 2}, **PRICES))
    monkeypatch.setenv("ARENA_MAX_COST", value)
    usage_error(arena_project.run(), "ARENA_MAX_COST:", "expected a number >= 0", repr(value))
    assert arena_project.server.request_count == 0


def test_arena_max_cost_needs_the_judges_prices(arena_project, monkeypatch):
    arena(arena_project, 2)
    monkeypatch.setenv("ARENA_MAX_COST", "1")
    usage_error(arena_project.run(), "reviews_gen.reviewer.args:", "ARENA_MAX_COST is set", "prompt_cost_per_1m")


def test_cached_calls_are_free(arena_project):
    arena(arena_project, 4)
    assert arena_project.run().ret == 0
    assert arena_project.server.request_count == 4
    arena(arena_project, 4, max_calls=0)  # every call is in the review cache now
    rerun = arena_project.run()
    assert rerun.ret == 0
    rerun.stdout.fnmatch_lines(["arena: judge budget: 0 judge calls to make (4 cached, free); *; within max_calls 0"])
    assert arena_project.server.request_count == 4


def test_collect_only_prints_the_estimate(arena_project):
    arena(arena_project, 3, max_calls=10)
    result = arena_project.run("--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "arena: plan: 3 battles, 0 gates; 3 judge calls (0 cached, 3 to make)*",
        ("arena: judge budget: 3 judge calls to make (0 cached, free); * prompt tokens (characters/4: an API judge's "
         "tokenizer is not known here) + at most 300 completion tokens (max_tokens per call); within max_calls 10"),
    ])
    assert arena_project.server.request_count == 0


def test_a_run_never_makes_more_than_max_calls(arena_project):
    """The check before the first call counts one call a battle; a judge whose first replies cannot be
    read makes the run ask again (reask_unparseable), and the counter stops it at max_calls."""
    unreadable_first_reply(arena_project)
    config = fixed_answers_config(arena_project, 4, {"long": 6, "short": 2}, reask_unparseable=True)
    config["reviews_gen"]["max_calls"] = 5
    arena_project.write(config)
    result = arena_project.run("-v")
    assert arena_project.server.request_count == 5
    result.stdout.fnmatch_lines(["*not asked: the judge budget (reviews_gen.max_calls 5) is spent*"])
    assert result.ret == 1
    result.stdout.fnmatch_lines(["judge: 5 calls, *"])


def test_a_local_judge_counts_prompt_tokens_with_its_tokenizer(arena_project, tiny_models):
    """Refused before the local judge loads; its tokenizer counted the prompt tokens."""
    config = fixed_answers_config(arena_project, 3, {"long": 6, "short": 2})
    config["reviews_gen"]["reviewer"] = {"ref": "local", "args": {
        "model_id_or_path": str(tiny_models["tiny-a"]), "precision": "torch.float32", "max_tokens": 8,
        "prompt_cost_per_1m": 1.0, "completion_cost_per_1m": 2.0}}
    config["reviews_gen"]["max_calls"] = 2
    arena_project.write(config)
    result = arena_project.run()
    usage_error(result, "reviews_gen.max_calls:", "the run needs 3 judge calls", "counted by the local judge's tokenizer",
                "at most 24 completion tokens")
    assert "loading local model" not in result.stdout.str() + result.stderr.str()


def unreadable_first_reply(project):
    """The loopback judge answers each prompt first with a reply no parser reads, then with a verdict:
    every battle needs two calls (reask_unparseable), where the check before the first call counts one."""
    seen = set()

    def reply(body):
        key = str(body["messages"])
        first = key not in seen
        seen.add(key)
        return "I cannot decide." if first else "[[A]]"

    project.server.reply = reply


@pytest.mark.parametrize("previous_run", [False, True], ids=["fresh", "after-a-spent-run"])
def test_max_calls_holds_across_xdist_workers(arena_project, previous_run):
    """Each worker judges its own block; the count they share (a file beside the review file, under the
    run's id) stops the whole run at max_calls: 4 battles want 8 calls, the judge receives 5. Another
    run's count in that file (one that crashed with its budget spent) neither counts here nor is removed."""
    pytest.importorskip("xdist")
    unreadable_first_reply(arena_project)
    config = fixed_answers_config(arena_project, 4, {"long": 6, "short": 2}, reask_unparseable=True)
    config["reviews_gen"]["max_calls"] = 5
    arena_project.write(config)
    counter = arena_project.root / (REVIEWS + ".calls.json")
    if previous_run:
        counter.parent.mkdir(parents=True, exist_ok=True)
        counter.write_text(json.dumps({"an-earlier-run": 5}))
    result = arena_project.pytester.runpytest_subprocess(
        "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "-n", "2")
    assert arena_project.server.request_count == 5
    outcomes = result.parseoutcomes()
    # Each failed battle's section says why (the line its failure message holds).
    refused = [line for line in result.stdout.lines
               if line == "not asked: the judge budget (reviews_gen.max_calls 5) is spent"]
    # 5 calls finish at most 2 battles (2 calls each); every battle that did not finish was refused.
    assert outcomes.get("passed", 0) <= 2 and outcomes["failed"] == len(refused) == 4 - outcomes.get("passed", 0)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["judge: 5 calls, *"])  # the workers' counters, added up by the controller
    if previous_run:  # only this run's count went
        assert json.loads(counter.read_text()) == {"an-earlier-run": 5}
    else:
        assert not counter.exists()  # the run's count went, and the file with it


def test_a_run_without_a_budget_keeps_no_call_count(arena_project):
    pytest.importorskip("xdist")
    arena(arena_project, 2)
    result = arena_project.pytester.runpytest_subprocess(
        "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "-n", "2")
    assert result.ret == 0 and arena_project.server.request_count == 2
    assert sorted(p.name for p in (arena_project.root / "reviews").iterdir()) == ["review_gpt4.jsonl"]
