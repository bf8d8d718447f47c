"""Reliability: transient faults at volume, crashes (SIGKILL) and Ctrl-C mid-run, two runs at once."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.arena_project import FAKE_KEY, OWN_MARKERS, fixed_answers_config
from support.judge_server import Fault, JudgeServer, prefer_longer

from pytest_arena.record_files import read_jsonl


def spawn(project, config_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    with sigint_as_a_terminal_sends_it():
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "--arena-config", str(config_path), "-q", "-p", "no:randomly", *args],
            cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )


@contextlib.contextmanager
def sigint_as_a_terminal_sends_it():
    """The spawned run starts with SIGINT at its default, whatever started this suite.

    A shell without job control starts a background job (`.ci/run &`) with SIGINT ignored, and an ignored
    signal stays ignored across exec: the Ctrl-C test's run then never sees its SIGINT and finishes (stop
    30's local CI run). A handled signal is reset to its default on exec, so handling it here for the
    moment of the spawn is enough.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def assert_clean_jsonl(path: Path) -> list[dict]:
    """Every complete line is a JSON record (a torn last line is tolerated: the next append cuts it)."""
    lines = path.read_bytes().split(b"\n")
    for line in lines[:-1]:
        if line.strip():
            json.loads(line)
    return read_jsonl(path)


def test_a_thousand_judgments_with_20_percent_transient_faults(arena_project):
    rng = random.Random(7)
    lock = threading.Lock()
    faults = [0]
    good = prefer_longer(**OWN_MARKERS)

    def flaky(body):
        with lock:
            fail = rng.random() < 0.2
            faults[0] += fail
        if fail:  # 429 with a short Retry-After, or a 503: both retried by the client
            return Fault(status=429, retry_after=0.01) if rng.random() < 0.5 else Fault(status=503, retry_after=0.01)
        return good(body)

    arena_project.server.reply = flaky
    config = fixed_answers_config(arena_project, 1000, {"long": 6, "short": 2}, max_concurrency=32, max_retries=8)
    arena_project.write(config)
    result = arena_project.run("-p", "no:randomly")
    result.assert_outcomes(passed=1000)
    assert len(assert_clean_jsonl(arena_project.root / "reviews/review_gpt4.jsonl")) == 1000
    assert faults[0] > 150
    # Every request was a judgment or a retry of one: nothing lost, nothing paid twice.
    assert arena_project.server.request_count == 1000 + faults[0]
    result.stdout.fnmatch_lines(["judge: 1000 calls, 0 from cache, 0 failed*"])


def test_sigkill_mid_judging_then_rerun_completes_with_the_same_report(arena_project, tmp_path):
    judgments, concurrency = 60, 4
    arena_project.server.latency = 0.05
    config = fixed_answers_config(arena_project, judgments // 3, {"a": 6, "b": 4, "c": 2},
                                  max_concurrency=concurrency)
    path = arena_project.write(config)
    process = spawn(arena_project, path)
    wait_until(lambda: arena_project.server.request_count >= judgments // 2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = arena_project.server.request_count
    stored = assert_clean_jsonl(arena_project.root / "reviews/review_gpt4.jsonl")
    assert 0 < len(stored) < judgments
    assert not (arena_project.root / "reports/elo_rating.csv").exists()

    rerun = spawn(arena_project, path)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert arena_project.server.request_count <= judgments + concurrency  # at most the calls in flight were lost
    assert arena_project.server.request_count - first <= judgments - len(stored) + concurrency  # stored: not asked again
    assert len(assert_clean_jsonl(arena_project.root / "reviews/review_gpt4.jsonl")) >= judgments

    # The same arena, never interrupted, in another folder: the same report, byte for byte.
    with JudgeServer(reply=prefer_longer(**OWN_MARKERS)) as server:
        clean = tmp_path / "clean"
        clean.mkdir()
        (clean / "answers").mkdir()
        for name in ("a", "b", "c"):
            source = arena_project.root / "answers" / f"answer_{name}.jsonl"
            (clean / "answers" / source.name).write_bytes(source.read_bytes())
        clean_config = json.loads(json.dumps(config))
        for name, entry in clean_config["answers_gen"].items():
            entry["output_file"] = str(clean / "answers" / f"answer_{name}.jsonl")
        clean_config["reviews_gen"]["reviewer"]["args"]["base_url"] = server.base_url
        (clean / "questions.jsonl").write_bytes((arena_project.root / "questions.jsonl").read_bytes())
        import yaml

        (clean / "cfg.yaml").write_text(yaml.safe_dump(clean_config))
        run = subprocess.run([sys.executable, "-m", "pytest", "--arena-config", str(clean / "cfg.yaml"), "-q"],
                             cwd=clean, env={**os.environ, "OPENAI_API_KEY": FAKE_KEY}, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout
    assert (clean / "reports/elo_rating.csv").read_bytes() == (arena_project.root / "reports/elo_rating.csv").read_bytes()


def test_sigkill_mid_generation_then_rerun_completes(arena_project):
    config = arena_project.config(questions=24, models=("tiny-a", "tiny-b"))
    config["answers_gen"]["tiny-a"]["batch_size"] = 2
    config["answers_gen"]["tiny-a"]["generation_config"]["max_new_tokens"] = 64
    config["answers_gen"]["tiny-a"]["generation_config"]["min_new_tokens"] = 64
    path = arena_project.write(config)
    answers = arena_project.root / "answers/answer_tiny-a.jsonl"
    process = spawn(arena_project, path)
    wait_until(lambda: answers.exists() and len(answers.read_bytes().split(b"\n")) > 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = assert_clean_jsonl(answers)
    assert 2 <= len(kept) < 24

    rerun = spawn(arena_project, path)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    records = assert_clean_jsonl(answers)
    assert sorted(r["question_id"] for r in records) == list(range(1, 25))  # the kept answers were reused
    assert "tiny-a: loaded" in output and f"generating {24 - len(kept)} answers" in output


def test_ctrl_c_stops_cleanly_keeps_work_and_claims_no_report(arena_project):
    # 0.2 s a call, 2 at a time: 4 s for all 40, so the interrupt after the sixth call finds work left.
    arena_project.server.latency = 0.2
    config = fixed_answers_config(arena_project, 40, {"a": 5, "b": 3}, max_concurrency=2)
    path = arena_project.write(config)
    process = spawn(arena_project, path)
    wait_until(lambda: arena_project.server.request_count >= 6)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "interrupted: no report written" in output
    assert not (arena_project.root / "reports/elo_rating.csv").exists()
    kept = assert_clean_jsonl(arena_project.root / "reviews/review_gpt4.jsonl")
    assert len(kept) >= 4
    rerun = spawn(arena_project, path)
    assert rerun.wait(timeout=120) == 0
    assert arena_project.server.request_count <= 40 + 2 + 2  # in-flight calls may be asked again


def test_two_runs_at_once_share_the_caches(arena_project):
    arena_project.server.latency = 0.05
    config = arena_project.config(questions=30, models=("tiny-a", "tiny-c"), max_concurrency=4)
    path = arena_project.write(config)
    reviews = arena_project.root / "reviews/review_gpt4.jsonl"
    first = spawn(arena_project, path)
    wait_until(lambda: reviews.exists() and reviews.read_bytes().count(b"\n") >= 10)
    second = spawn(arena_project, path)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    answers = assert_clean_jsonl(arena_project.root / "answers/answer_tiny-a.jsonl")
    assert len(answers) == 30  # generated once: the second run found them in the cache
    assert "loading model" not in outputs[1]
    stored = assert_clean_jsonl(reviews)
    assert {r["question_id"] for r in stored} == set(range(1, 31))
    # What the first run had stored when the second started, the second did not pay for again.
    assert arena_project.server.request_count <= 30 + 20
