"""A judge budget, end to end: reviews_gen.max_calls and max_cost stop a run before its first judge call
(none is made), ARENA_MAX_COST only tightens, cached calls are free, --collect-only prints the estimate,
and a run never makes more than max_calls (its xdist workers together)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from types import SimpleNamespace

import pandas as pd  # noqa: F401 - several in-process pytester arenas in one module (COMMON.md)
import pytest
from support.arena_project import fixed_answers_config
from support.judge_server import per_character

from pytest_arena.spend import CHAT_OVERHEAD_TOKENS, CallLimit, Tokens, prompt_bound, worst_case

REVIEWS = "reviews/review_gpt4.jsonl"
PRICES = {"prompt_cost_per_1m": 10.0, "completion_cost_per_1m": 30.0}
PRICE_PAIR = (PRICES["prompt_cost_per_1m"], PRICES["completion_cost_per_1m"])


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


def unreadable_first_reply(project, first_reply: str = "I cannot decide."):
    """The loopback judge answers each prompt first with a reply no parser reads, then with a verdict:
    every battle needs two calls (reask_unparseable), where the check before the first call counts one."""
    seen = set()

    def reply(body):
        key = str(body["messages"])
        first = key not in seen
        seen.add(key)
        return first_reply if first else "[[A]]"

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


# -------------------------------------------------------------------------------------------------
# max_cost as a bound during the run (pytest_arena/spend.py): the estimate before the first call can be
# low; the spend the replies report, with each call's worst case reserved before it is made, never passes
# max_cost. Each test first runs the arena without a bound (a max_cost no run reaches) to learn what the
# judge reports (U) and what the estimate said (E), then bounds a fresh run half way between the two.

CJK = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少"
COST_REFUSAL = "not asked: the judge budget (reviews_gen.max_cost "
ESTIMATE = re.compile(r"arena: judge budget: .*estimated cost ([0-9.]+); within max_cost")
SPENT = re.compile(r"has no room for this call: ([0-9.e-]+) spent, and it may cost up to ([0-9.e-]+)")


def quarter_characters(text: str) -> int:
    """The server's count where characters / 4 is right: the estimate is then low by the re-asks alone."""
    return -(-len(text) // 4)


def cjk_arena(project, questions: int, **judge_args) -> dict:
    """Questions and answers in Chinese: every battle's prompt is mostly CJK characters."""
    config = fixed_answers_config(project, questions, {"long": 6, "short": 2}, max_tokens=100, **PRICES, **judge_args)
    with open(project.root / "questions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(1, questions + 1):
            handle.write(json.dumps({"question_id": i, "text": f"第{i}题：{CJK}", "category": "writing"},
                                    ensure_ascii=False) + "\n")
    for name, repeat in (("long", 8), ("short", 2)):
        with open(project.root / "answers" / f"answer_{name}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(1, questions + 1):
                handle.write(json.dumps({"question_id": i, "model_id": name, "answer": f"{i}" + CJK * repeat},
                                        ensure_ascii=False) + "\n")
    return config


def reported_cost(server) -> float:
    """What the judge billed, by its own account: the usage of every reply it sent, at PRICES."""
    return sum(p * PRICES["prompt_cost_per_1m"] + c * PRICES["completion_cost_per_1m"]
               for p, c in server.usage_reported) / 1e6


def unbounded_then_bounded(project, config: dict, *args: str, script=lambda: None):
    """Run with a max_cost no run reaches (the estimate E printed, the judge's report U), then afresh
    with max_cost half way between: returns (E, U, max_cost, the bounded run's result). ``script`` sets
    the judge's replies up before each run."""
    script()
    config["reviews_gen"]["max_cost"] = 1000.0
    project.write(config)
    first = project.run()
    assert first.ret == 0, first.stdout.str()
    estimate = float(ESTIMATE.search(first.stdout.str()).group(1))
    full = reported_cost(project.server)
    assert estimate < full, "the estimate is not low for this arena: nothing to show"
    shutil.rmtree(project.root / "reviews")
    project.server.reset_counters()
    script()
    config["reviews_gen"]["max_cost"] = round((estimate + full) / 2, 6)
    project.write(config)
    return estimate, full, config["reviews_gen"]["max_cost"], project.run(*args)


def refusals(result) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith(COST_REFUSAL)]


def test_cjk_prompts_stop_at_max_cost_where_characters_over_4_underestimate(arena_project):
    """A token per CJK character, where the estimate guessed a quarter of one: the estimate passes, the
    run spends no more than max_cost, and each battle that did not fit fails with the reason."""
    arena_project.server.count_tokens = per_character
    config = cjk_arena(arena_project, 6)
    estimate, full, max_cost, result = unbounded_then_bounded(arena_project, config)

    result.stdout.fnmatch_lines([f"arena: judge budget: *; within max_cost {max_cost:g}"])  # the estimate passed
    assert reported_cost(arena_project.server) <= max_cost
    outcomes = result.parseoutcomes()
    refused = refusals(result)
    assert refused and outcomes["failed"] == len(refused) and outcomes["passed"] + len(refused) == 6
    assert arena_project.server.request_count == outcomes["passed"]  # a refused call was never sent
    assert result.ret == 1
    # Refused only when the call's worst case did not fit beside what was spent (our record is the judge's).
    spent, worst = map(float, SPENT.search(refused[-1]).groups())
    assert spent == pytest.approx(reported_cost(arena_project.server), rel=1e-3)
    assert spent + worst > max_cost
    # Nothing refused was cached: a run with room asks exactly the battles that failed.
    config["reviews_gen"]["max_cost"] = 1000.0
    arena_project.write(config)
    arena_project.server.reset_counters()
    assert arena_project.run().ret == 0
    assert arena_project.server.request_count == len(refused)


def test_a_reasking_judge_stops_at_max_cost(arena_project):
    """The estimate counts one call a battle; a judge whose first reply cannot be read makes each battle
    two (reask_unparseable), and the re-asks are held to max_cost like the first calls."""
    # A first reply that rambles to nearly max_tokens (100) without a verdict, as judges do.
    def script():
        unreadable_first_reply(arena_project, "I cannot decide. " + "Both answers have merit. " * 14)

    arena_project.server.count_tokens = quarter_characters
    config = fixed_answers_config(arena_project, 6, {"long": 6, "short": 2}, max_tokens=100, reask_unparseable=True,
                                  **PRICES)
    estimate, full, max_cost, result = unbounded_then_bounded(arena_project, config, "-v", script=script)

    assert reported_cost(arena_project.server) <= max_cost
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and outcomes["failed"] + outcomes.get("passed", 0) == 6
    assert len(refusals(result)) >= 1
    assert arena_project.server.request_count < 12
    result.stdout.fnmatch_lines(["judge: * re-asked*"])


def test_max_cost_holds_across_xdist_workers(arena_project):
    """Two workers, each judging its block, share one record of the spend: together they stay within max_cost."""
    pytest.importorskip("xdist")
    arena_project.server.count_tokens = per_character
    config = cjk_arena(arena_project, 6)
    arena_project.write(config)
    estimate, full, max_cost, _ = unbounded_then_bounded(arena_project, config)
    shutil.rmtree(arena_project.root / "reviews")
    arena_project.server.reset_counters()
    result = arena_project.pytester.runpytest_subprocess(
        "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "-n", "2")

    assert reported_cost(arena_project.server) <= max_cost
    outcomes = result.parseoutcomes()
    refused = refusals(result)
    assert refused and outcomes["failed"] == len(refused) and outcomes.get("passed", 0) + len(refused) == 6
    assert arena_project.server.request_count == outcomes.get("passed", 0)
    assert not (arena_project.root / (REVIEWS + ".calls.json")).exists()  # the run's record went with it


def test_replies_without_usage_are_counted_at_their_worst_case(arena_project):
    """A server that reports no usage: each call counts as its reservation (the prompt's UTF-8 bytes + the
    chat overhead, and max_tokens), so max_cost still bounds the run, by the most its calls could have cost.
    Room for two and a half worst cases: two calls are made, the other two battles fail with the reason."""
    arena_project.server.report_usage = False
    config = fixed_answers_config(arena_project, 4, {"long": 6, "short": 2}, max_tokens=100, **PRICES)
    config["reviews_gen"]["max_cost"] = 1000.0
    arena_project.write(config)
    first = arena_project.run()
    assert first.ret == 0
    # The summary does not call it free: the calls were paid, their cost is unknown.
    first.stdout.fnmatch_lines(["judge: * calls, 0 from cache, 0 failed; 0 prompt + 0 completion tokens; cost unknown: "
                                "the server reported no token usage"])
    assert "cost 0.0000" not in first.stdout.str()
    worst = max(Tokens(prompt_bound(*system_and_prompt(body)), 100).cost(PRICE_PAIR)
                for body in arena_project.server.requests)
    shutil.rmtree(arena_project.root / "reviews")
    arena_project.server.reset_counters()
    config["reviews_gen"]["max_cost"] = round(2.5 * worst, 6)
    arena_project.write(config)
    result = arena_project.run()
    result.stdout.fnmatch_lines(["arena: judge budget: *; within max_cost *"])  # the estimate passed
    assert arena_project.server.request_count == 2
    assert result.parseoutcomes()["failed"] == 2 == len(refusals(result))


def test_a_server_counting_past_the_worst_case_is_counted_as_reported_and_said(arena_project):
    """No tokenizer we know makes more tokens than bytes; a server that says it did is believed (its bill),
    and the run says once that max_cost then holds only as far as such counts go."""
    arena_project.server.count_tokens = lambda text: 2 * len(text.encode("utf-8")) + 300
    config = fixed_answers_config(arena_project, 3, {"long": 6, "short": 2}, max_tokens=100, **PRICES)
    config["reviews_gen"]["max_cost"] = 1000.0
    arena_project.write(config)
    result = arena_project.run()
    assert result.ret == 0
    said = [line for line in result.stdout.lines if "judge budget: a reply reported" in line]
    assert len(said) == 1 and "counted as reported" in said[0] and "reviews_gen.max_cost holds only" in said[0]
    prompt, completion = map(sum, zip(*arena_project.server.usage_reported))
    result.stdout.fnmatch_lines([f"judge: 3 calls, *; {prompt} prompt + {completion} completion tokens; *"])


def system_and_prompt(request_body: dict) -> tuple[str | None, str]:
    messages = {m["role"]: m["content"] for m in request_body["messages"]}
    return messages.get("system"), messages["user"]


# -------------------------------------------------------------------------------------------------
# The worst case itself (spend.py), and the bound without pytest


def test_the_worst_case_holds_for_a_real_byte_level_tokenizer(tiny_models):
    """The tiny judges' byte-level BPE, trained on English, makes three tokens of each CJK character (12 times
    characters / 4); the reservation (UTF-8 bytes + the chat overhead a message) is never below its count."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["tiny-a"])
    for system, prompt in [(None, CJK * 20), ("You are a fair judge.", f"Compare: {CJK * 5} and 🙂 naïve text"),
                           ("系统" * 50, "x")]:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        tokens = len(tokenizer(rendered)["input_ids"])  # (as the local judge counts its prompt)
        assert tokens <= prompt_bound(system, prompt)
        assert tokens > -(-len(f"{system}\n\n{prompt}" if system else prompt) // 4)  # where the estimate is low


def test_a_call_limit_settles_at_the_usage_and_keeps_the_worst_case_of_a_failed_call():
    call = SimpleNamespace(template=SimpleNamespace(system_prompt=None), prompt="汉" * 100, exchange=None)
    worst = Tokens(300 + CHAT_OVERHEAD_TOKENS, 50)  # 3 UTF-8 bytes a character, and max_tokens
    assert worst_case(call, 50) == worst
    prices = (10.0, 30.0)
    limit = CallLimit(None, max_cost=2 * worst.cost(prices), prices=prices, max_tokens=50)
    first, second = limit.take(call), limit.take(call)  # room for two worst cases
    assert first.refused is None and second.refused is None
    second.settle(None)  # failed: what it cost is not seen, its worst case stays spent
    first.settle(SimpleNamespace(prompt_tokens=100, completion_tokens=5))  # settled at its usage
    first.settle(SimpleNamespace(prompt_tokens=1, completion_tokens=1))  # (once only)
    # One worst case and 100 + 5 tokens spent, none in flight: another worst case does not fit, and waits for nothing.
    spent = worst + Tokens(100, 5)
    refused = limit.take(call).refused
    assert refused == (f"not asked: the judge budget (reviews_gen.max_cost {2 * worst.cost(prices):g}) has no room "
                       f"for this call: {spent.cost(prices):.4g} spent, and it may cost up to {worst.cost(prices):.4g}")
    assert limit.made == 2
    # max_calls is the other bound, with its own reason.
    calls = CallLimit(1, max_cost=None, prices=prices, max_tokens=50)
    calls.take(call).settle(None)
    assert calls.take(call).refused == "not asked: the judge budget (reviews_gen.max_calls 1) is spent"


def test_a_call_that_may_fit_waits_for_the_calls_in_flight():
    """One call in flight holds its worst case; a second that would fit once the first settles at its usage
    waits for it instead of being refused."""
    call = SimpleNamespace(template=SimpleNamespace(system_prompt=None), prompt="p" * 100, exchange=None)
    prices = (10.0, 30.0)
    worst = worst_case(call, 50)
    limit = CallLimit(None, max_cost=1.5 * worst.cost(prices), prices=prices, max_tokens=50)
    first = limit.take(call)
    granted = threading.Event()
    holds = []

    def second():
        holds.append(limit.take(call))
        granted.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not granted.wait(0.2)  # waiting, not refused
    first.settle(SimpleNamespace(prompt_tokens=30, completion_tokens=5))
    waiter.join(5)
    assert granted.is_set() and holds[0].refused is None


def test_a_panel_is_priced_at_a_bound_on_every_judges_prices():
    # The estimate and the running bound of a panel must not take the first judge's prices: a dearer
    # second judge would let a run past max_cost before the bound stops it.
    from pathlib import Path

    from pytest_arena.budget import priced_spec
    from pytest_arena.config.specs import JudgeSpec, ReviewSpec

    cheap = JudgeSpec("cheap", prompt_cost_per_1m=1.0, completion_cost_per_1m=2.0, max_tokens=100)
    dear = JudgeSpec("dear", prompt_cost_per_1m=5.0, completion_cost_per_1m=None, max_tokens=300)
    one = ReviewSpec(True, cheap, Path("p.jsonl"), Path("r.jsonl"))
    assert priced_spec(one) is cheap
    panel = ReviewSpec(True, cheap, Path("p.jsonl"), Path("r.jsonl"), panel=(cheap, dear))
    bound = priced_spec(panel)
    assert (bound.prompt_cost_per_1m, bound.completion_cost_per_1m, bound.max_tokens) == (5.0, 2.0, 300)
