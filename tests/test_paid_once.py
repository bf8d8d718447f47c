"""Paid once: a judge call is paid by one judgment of one run, whoever else needs it at the same time;
and a verdict whose review record cannot be written (a full disk) is never counted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from support.arena_project import fixed_answers_config
from test_reliability import spawn, wait_until

from pytest_arena.record_files import read_jsonl

REVIEWS = "reviews/review_gpt4.jsonl"


def distinct_prompts(server) -> int:
    return len({json.dumps(body["messages"], sort_keys=True) for body in server.requests})


def claims_folder(project) -> Path:
    return project.root / (REVIEWS + ".claims")


def assert_no_claim_litter(project) -> None:
    folder = claims_folder(project)
    assert not folder.exists() or not os.listdir(folder), sorted(os.listdir(folder))


@pytest.mark.parametrize("second", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_two_runs_started_at_once_pay_each_call_once(arena_project, second):
    """The issue's case: 20 battles judged in both orders (40 calls), two runs at once (a plain run
    and a plain one, or two xdist workers)."""
    arena_project.server.latency = 0.1  # calls overlap: both runs want every call while it is in flight
    config = fixed_answers_config(arena_project, 20, {"long": 6, "short": 2}, max_concurrency=4,
                                  position_bias_mitigation="swap_position")
    path = arena_project.write(config)
    runs = [spawn(arena_project, path), spawn(arena_project, path, *second)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    assert arena_project.server.request_count == distinct_prompts(arena_project.server) == 40
    stored = read_jsonl(arena_project.root / REVIEWS)
    assert sorted(r["question_id"] for r in stored) == list(range(1, 21))  # one record per battle
    assert all(r["win"] == "model_a" for r in stored)
    calls = [int(line.split()[1]) for out in outputs for line in out.splitlines() if line.startswith("judge: ")]
    assert sum(calls) == 40, outputs  # what each run says it paid adds up to what the judge saw
    assert_no_claim_litter(arena_project)


def test_a_run_killed_while_holding_claims_blocks_nobody(arena_project):
    arena_project.server.latency = 3.0
    config = fixed_answers_config(arena_project, 6, {"long": 6, "short": 2}, max_concurrency=6)
    path = arena_project.write(config)
    first = spawn(arena_project, path)
    wait_until(lambda: arena_project.server.in_flight == 6)  # every call claimed and being asked
    assert len(os.listdir(claims_folder(arena_project))) == 6
    first.send_signal(signal.SIGKILL)
    first.wait()
    # A crash's leftover for a call that no run asks again (the config changed since).
    (claims_folder(arena_project) / f"{'0' * 64}.lock").touch()

    arena_project.server.latency = 0.0
    second = spawn(arena_project, path)
    output = second.communicate(timeout=120)[0]
    assert second.returncode == 0, output
    assert arena_project.server.request_count == 6 + 6  # the dead run's calls, asked again once each
    assert len(read_jsonl(arena_project.root / REVIEWS)) == 6
    assert_no_claim_litter(arena_project)  # the dead run's claim files are reused or swept


@pytest.mark.parametrize("mitigation", [None, "swap_position"])
def test_identical_prompts_in_flight_are_sent_once(arena_project, mitigation):
    """Two names for one model (identical answers): their battles against a third model give the same
    judge prompts, and under swap_position the battle between the twins shows the same prompt twice."""
    arena_project.server.latency = 0.05
    questions = 10
    config = fixed_answers_config(arena_project, questions, {"twin": 6, "twin-copy": 6, "short": 2},
                                  max_concurrency=16, position_bias_mitigation=mitigation)
    path = arena_project.write(config)
    run = spawn(arena_project, path)
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 0 and f"{3 * questions} passed" in output, output

    calls = arena_project.server.request_count
    assert calls == distinct_prompts(arena_project.server)
    assert calls == (2 if mitigation is None else 3) * questions  # naive: 3 or 6 a question
    shared = 3 * questions * (1 if mitigation is None else 2) - calls
    assert f"judge: {calls} calls, {shared} from cache, 0 failed" in output, output
    # Every battle has its record; the battle whose calls were shared (as from the cache, like a reply
    # stored by an earlier run) names them in shared_call and paid nothing (no usage).
    stored = read_jsonl(arena_project.root / REVIEWS)
    assert sorted((r["question_id"], r["model_a"], r["model_b"]) for r in stored) == sorted(
        (q, a, b) for q in range(1, questions + 1) for a, b in [("twin", "twin-copy"), ("twin", "short"),
                                                                ("twin-copy", "short")])
    suffixes = [""] if mitigation is None else ["_1", "_2"]
    keys = [r[f"cache_key{s}"] for r in stored for s in suffixes]
    assert len(set(keys)) == calls
    paid = [(r[f"cache_key{s}"], r[f"usage{s}"]) for r in stored for s in suffixes if f"shared_call{s}" not in r]
    assert sorted(key for key, _ in paid) == sorted(set(keys))  # each call's usage on exactly one record
    assert all(usage and usage["prompt_tokens"] > 0 for _, usage in paid)
    for record in stored:
        for s in suffixes:
            if f"shared_call{s}" in record:
                assert record[f"shared_call{s}"] == record[f"cache_key{s}"] and record[f"usage{s}"] is None
    before = (arena_project.root / REVIEWS).read_bytes()

    rerun = spawn(arena_project, path)  # the review file is a complete cache
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0 and f"{3 * questions} passed" in output, output
    assert arena_project.server.request_count == calls
    assert (arena_project.root / REVIEWS).read_bytes() == before  # every verdict on file: nothing written


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_disk_that_fills_during_judging_fails_the_run_with_one_clear_error(arena_project):
    """The review file turns into /dev/full (every write: ENOSPC) once judging has begun."""
    reviews = arena_project.root / REVIEWS
    reviews.parent.mkdir()
    good_reply = arena_project.server.reply

    def fill_the_disk(body):
        if not reviews.is_symlink():
            swap = reviews.with_name("swap")
            os.symlink("/dev/full", swap)
            os.replace(swap, reviews)
        return good_reply(body)

    arena_project.server.reply = fill_the_disk
    config = fixed_answers_config(arena_project, 10, {"long": 6, "short": 2}, max_concurrency=1)
    path = arena_project.write(config)
    run = spawn(arena_project, path, "-rf")
    output = run.communicate(timeout=120)[0]

    assert run.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "Traceback" not in output and "OSError" not in output, output
    stopped = [line for line in output.splitlines() if "judging stopped" in line]
    assert len(stopped) == 1, output
    assert f"the review file {reviews} could not be written (ENOSPC: No space left on device)" in stopped[0]
    assert output.count("FAILED arena_tests/test_battles.py::test_battle") == 10, output
    assert arena_project.server.request_count == 1  # nothing more was paid for once nothing could be kept
    # No verdict was stored, so none was counted: no ratings, no report.
    assert "W/T/L" not in output, output
    assert not (arena_project.root / "reports/elo_rating.csv").exists()
    assert reviews.is_symlink()  # our test's doing; the run wrote nothing anywhere else
    assert_no_claim_litter(arena_project)
