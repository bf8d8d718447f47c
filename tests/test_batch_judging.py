"""Judging in provider batches, end to end (batch_judging.py): the real ``openai`` client over real HTTP to
the loopback Batch API server (tests/support/batch_server.py), arenas whose candidates answer from files.

Covered: a batch that completes (progress, records with batch_id, the estimate and the spend at the batch
price, a rerun that pays nothing), both orders of a swap in one batch, failed requests asked live or left
failed, a batch that expires, batch_timeout with and without the fallback, the split mode (submit pending
with exit 75, a second submit paying nothing, a live run meanwhile not asking the pending calls, collect),
a submit killed by SIGKILL and collected by a fresh process, ``-n 2`` paying once, max_calls counted before
the upload, and no key in any file. Every count is the server's own (uploads, batches created, requests
answered, live calls, cancels).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd  # noqa: F401 - several in-process pytester arenas in one module (COMMON.md)
import scipy.sparse  # noqa: F401 - the same: the ratings import it, and numpy.fft loads once a process
import pytest
from support.arena_project import FAKE_KEY, OWN_MARKERS, ArenaProject, fixed_answers_config
from support.batch_server import BatchServer
from support.judge_server import Fault, prefer_longer

from pytest_arena.batch_judging import PENDING_EXIT

REVIEWS = "reviews/review_gpt4.jsonl"
STATE = REVIEWS + ".batch.json"
MODELS = {"long": 6, "short": 2}  # prefer_longer: long wins every battle


@pytest.fixture
def server():
    with BatchServer(reply=prefer_longer(**OWN_MARKERS), api_key=FAKE_KEY) as batch_server:
        yield batch_server


@pytest.fixture
def project(pytester, monkeypatch, server) -> ArenaProject:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return ArenaProject(pytester, {"tiny-a": Path("unused")}, server)  # (no model: answers from files)


def arena(project, questions: int = 3, **judge_args) -> Path:
    """One battle, one judge call, per question; batches polled every 10 ms."""
    args = dict(batch=True, batch_poll_s=0.01, max_tokens=64)
    args.update(judge_args)
    return project.write(fixed_answers_config(project, questions, MODELS, **args))


def records(project) -> list[dict]:
    return project.read_jsonl(REVIEWS)


def no_key_anywhere(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_a_batch_that_completes_is_merged_and_a_rerun_pays_nothing(project, server):
    server.validating_polls, server.per_poll = 1, 1  # progress over several polls
    arena(project, prompt_cost_per_1m=10.0, completion_cost_per_1m=30.0)
    plan = project.run("--collect-only")
    plan.stdout.fnmatch_lines(["arena: judge budget: 3 judge calls to make*at the batch price "
                               "(half the live price, by default)"])
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert len(server.uploads) == len(server.batches_created) == 1 and len(server.answered_bodies) == 3
    assert server.live_bodies == []
    batch_id = next(iter(server.batches))
    assert result.parseoutcomes()["passed"] == 3
    found = records(project)
    assert [r["batch_id"] for r in found] == [batch_id] * 3 and {r["win"] for r in found} == {"model_a"}
    assert all(r["usage"]["prompt_tokens"] > 0 for r in found)
    # The spend at the batch price: half the live prices (10 and 30 per million tokens).
    cost = sum(r["usage"]["prompt_tokens"] * 5.0 + r["usage"]["completion_tokens"] * 15.0 for r in found) / 1e6
    result.stdout.fnmatch_lines(["arena: judge batch: 3 requests sent in batch_*",
                                 "arena: judge batch: 1 of 3 requests done, in_progress, *",
                                 "arena: judge batch: 3 replies merged into *",
                                 f"judge: 3 calls, 0 from cache, 0 failed, 3 in provider batches; *; cost {cost:.4f}"])
    assert not (project.root / STATE).exists()  # merged: forgotten, request file too
    assert not list((project.root / "reviews").glob("*.batch-*.jsonl"))

    again = project.run()
    assert again.ret == 0
    assert len(server.uploads) == 1 and len(server.answered_bodies) == 3 and server.live_bodies == []
    assert len(records(project)) == 3  # nothing new to record
    no_key_anywhere(project.root)
    assert set(server.auth_headers) == {f"Bearer {FAKE_KEY}"}


def failing_second_question(body: dict):
    return Fault(status=500, message="scripted failure") if " w2 " in f" {body['messages'][-1]['content']} " \
        else prefer_longer(**OWN_MARKERS)(body)


def test_failed_requests_are_asked_live_with_the_fallback(project, server):
    server.reply = failing_second_question
    server.live_reply = prefer_longer(**OWN_MARKERS)
    arena(project)
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert len(server.answered_bodies) == 3 and len(server.live_bodies) == 1  # only the failed one, live
    assert " w2 " in f" {server.live_bodies[0]['messages'][-1]['content']} "
    result.stdout.fnmatch_lines(["*2 replies merged into *; 1 requests failed or expired: asked live"])
    by_question = {r["question_id"]: r for r in records(project)}
    assert "batch_id" not in by_question[2] and by_question[1]["batch_id"] == by_question[3]["batch_id"]
    assert result.parseoutcomes()["passed"] == 3


def test_failed_requests_stay_failed_without_the_fallback(project, server):
    server.reply = failing_second_question
    arena(project, batch_fallback=False)
    result = project.run()
    assert result.ret == 1
    assert server.live_bodies == []
    assert result.parseoutcomes() == {"passed": 2, "failed": 1}
    batch_id = next(iter(server.batches))
    result.stdout.fnmatch_lines([f"*batch failed: HTTP 500: scripted failure (batch {batch_id})*"])
    failed = [r for r in records(project) if r.get("error")]
    assert len(failed) == 1 and failed[0]["question_id"] == 2 and batch_id in failed[0]["error"]


def test_an_expired_batch_is_merged_and_the_rest_asked_live(project, server):
    server.expire_after = 1
    arena(project)
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert len(server.answered_bodies) == 1 and len(server.live_bodies) == 2
    assert sum("batch_id" in r for r in records(project)) == 1
    assert result.parseoutcomes()["passed"] == 3


def test_at_batch_timeout_the_batch_is_cancelled_and_its_calls_asked_live(project, server):
    arena(project, batch_timeout=0)  # one poll, then the timeout
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert server.cancels == 1 and server.answered_bodies == [] and len(server.live_bodies) == 3
    result.stdout.fnmatch_lines(["arena: judge batch batch_* not finished after batch_timeout 0s: cancelled; *"])
    assert not any("batch_id" in r for r in records(project)) and not (project.root / STATE).exists()


def test_without_the_fallback_a_timed_out_batch_fails_naming_it_and_a_collect_reads_it(project, server):
    server.validating_polls = 10**6
    arena(project, batch_timeout=0, batch_fallback=False)
    result = project.run()
    assert result.ret == 1 and result.parseoutcomes()["errors"] == 3  # (each item reports the preparation's error)
    batch_id = next(iter(server.batches))
    result.stdout.fnmatch_lines([f"*judge batch {batch_id} not finished after batch_timeout 0s (batch_fallback false)*"])
    assert server.cancels == 0 and server.live_bodies == [] and (project.root / STATE).exists()
    server.batches[batch_id].polls_left = 0
    while (collected := project.run("--arena-batch=collect")).ret == PENDING_EXIT:
        assert server.retrieves < 10
    assert collected.ret == 0 and len(server.answered_bodies) == 3 and server.live_bodies == []
    assert len(server.uploads) == 1


def test_max_calls_counts_the_batch_before_anything_is_uploaded(project, server):
    written = fixed_answers_config(project, 3, MODELS, batch=True, batch_poll_s=0.01, max_tokens=64)
    written["reviews_gen"]["max_calls"] = 2
    project.write(written)
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "reviews_gen.max_calls" in errors[0] and "max_calls 2" in errors[0], errors
    assert server.uploads == [] and server.batches_created == []


def test_split_mode_submits_once_then_collects(project, server):
    arena(project, batch=False)  # (the command line asks for batches)
    submitted = project.run("--arena-batch=submit")
    assert submitted.ret == PENDING_EXIT
    batch_id = next(iter(server.batches))
    submitted.stdout.fnmatch_lines([f"arena: judge batch {batch_id} pending: 3 requests; run again with "
                                    "--arena-batch=collect*"])
    assert "passed" not in submitted.parseoutcomes() and "failed" not in submitted.parseoutcomes()
    assert not (project.root / "reports").exists()  # no report, no gate verdict
    assert (project.root / STATE).exists() and len(list((project.root / "reviews").glob("*.batch-*.jsonl"))) == 1
    no_key_anywhere(project.root)  # the request file, the state file and its lock hold no key
    # Paid at submit: a budget set afterwards does not count the pending calls again (max_calls 0 holds).
    written = fixed_answers_config(project, 3, MODELS, batch_poll_s=0.01, max_tokens=64)
    written["reviews_gen"]["max_calls"] = 0
    project.write(written)
    again = project.run("--arena-batch=submit")  # still pending: nothing paid again
    assert again.ret == PENDING_EXIT and len(server.uploads) == len(server.batches_created) == 1
    live = project.run()  # a live run meanwhile: the pending calls are claims, not asked again
    assert live.ret == 1 and server.live_bodies == []
    live.stdout.fnmatch_lines([f"*pending in judge batch {batch_id}*"])
    while (collected := project.run("--arena-batch=collect")).ret == PENDING_EXIT:  # one poll a run
        assert server.retrieves < 10
    assert collected.ret == 0, collected.stdout.str()
    assert len(server.answered_bodies) == 3 and server.live_bodies == []
    assert not (project.root / STATE).exists()
    assert {r.get("batch_id") for r in records(project) if not r.get("error")} == {batch_id}
    no_key_anywhere(project.root)


def test_a_submit_killed_by_sigkill_is_collected_by_a_fresh_process(project, server):
    server.validating_polls = 10**6  # the batch waits until the test lets it go
    arena(project, batch_poll_s=0.05)
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--arena-config",
                                str(project.root / "cfg_arena.yaml")], cwd=project.root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while server.retrieves < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # created, recorded, and polled: it is waiting
        assert process.poll() is None
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert (project.root / STATE).exists() and len(server.batches_created) == 1
    for batch in server.batches.values():
        batch.polls_left = 0
    result = project.run()  # blocking: finds the killed run's batch, pays nothing new
    assert result.ret == 0, result.stdout.str()
    assert len(server.uploads) == 1 and len(server.answered_bodies) == 3 and server.live_bodies == []
    assert not (project.root / STATE).exists()


def test_both_orders_of_a_swap_are_one_batch(project, server):
    arena(project, 2, position_bias_mitigation="swap_position")
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert len(server.batches_created) == 1 and len(server.answered_bodies) == 4 and server.live_bodies == []
    batch_id = next(iter(server.batches))
    assert all(r["batch_id_1"] == r["batch_id_2"] == batch_id and "batch_id" not in r for r in records(project))


def test_a_battle_judged_per_turn_sends_every_turns_calls_in_one_batch(project, server):
    from test_judge_turns import arena as per_turn_arena

    per_turn_arena(project, models=("alpha", "beta"), batch=True, batch_poll_s=0.01)  # 2 questions x 2 turns
    result = project.run()
    assert result.ret == 0, result.stdout.str()
    assert len(server.batches_created) == 1 and len(server.answered_bodies) == 4 and server.live_bodies == []
    found = records(project)
    assert sorted((r["question_id"], r["turn"]) for r in found) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert len({r["batch_id"] for r in found}) == 1


def test_two_xdist_workers_send_one_batch(project, server):
    pytest.importorskip("xdist")
    arena(project, 4)
    result = project.pytester.runpytest_subprocess("--arena-config", str(project.root / "cfg_arena.yaml"),
                                                   "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert len(server.uploads) == len(server.batches_created) == 1
    assert len(server.answered_bodies) == 4 and server.live_bodies == []
    assert result.parseoutcomes()["passed"] == 4
    assert len(records(project)) == 4  # each battle recorded once


def test_batch_calls_count_towards_the_live_calls_bounds():
    """A batch is paid at submit: its calls count towards max_calls and its worst case towards max_cost, settled
    at the usage read back; a live call after it (a fallback) finds that spend there."""
    from types import SimpleNamespace

    from pytest_arena.spend import CallLimit, Tokens, worst_case

    call = SimpleNamespace(template=SimpleNamespace(system_prompt=None), prompt="p" * 100, exchange=None)
    prices = (10.0, 30.0)
    live = worst_case(call, 50).cost(prices)
    limit = CallLimit(4, max_cost=3 * live, prices=prices, max_tokens=50)
    assert limit.take_batch(5, 0.0).startswith("not sent: the judge batch of 5 calls would pass the judge budget "
                                               "(reviews_gen.max_calls 4, 0 made)")
    assert "may cost up to" in limit.take_batch(2, 3.5 * live)
    assert limit.take_batch(2, 2.5 * live) is None and limit.made == 2
    assert "has no room for this call" in limit.take(call).refused  # the batch's worst case, and this one: over
    limit.settle_batch(2.5 * live, Tokens(10, 1).cost(prices))  # read back: it cost its usage
    for _ in range(2):  # calls 3 and 4
        granted = limit.take(call)
        assert granted.refused is None
        granted.settle(None)
    assert limit.take(call).refused == "not asked: the judge budget (reviews_gen.max_calls 4) is spent"
