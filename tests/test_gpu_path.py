"""The GPU path, exercised on CPU (issue 18): devices pinned per xdist worker before its conftests
import, likelihood verdicts on bf16 models and with only the scored positions' logits, the
dependencies the GPU path needs, and the GPU bench without pytest. The vLLM checks and the stand-in
are tested in test_vllm_backend.py, the out-of-memory retry in test_local_judge.py."""

from __future__ import annotations

import pandas as pd  # imported here once: in-process runs must not import pandas afresh each time  # noqa: F401
import pytest
from support.arena_project import fixed_answers_config

# -------------------------------------------------------------------------------------------------
# 1. xdist: each worker's CUDA_VISIBLE_DEVICES is in its environment before pytest starts there

# A user conftest that reads the variable at import, as one calling torch.cuda.is_available() would
# freeze it: what it saw is written per worker.
DEVICE_READING_CONFTEST = """
import os, pathlib
seen = pathlib.Path(__file__).parent / "seen"
seen.mkdir(exist_ok=True)
worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
(seen / worker).write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
"""

# Kills the first worker that runs it (once per project), so xdist replaces that worker.
CRASH_ONCE = """
import os, pathlib

def test_crash_one_worker():
    marker = pathlib.Path(__file__).parent / "crashed"
    if not marker.exists():
        marker.write_text(os.environ["PYTEST_XDIST_WORKER"])
        os._exit(3)
"""


def seen_devices(project) -> dict[str, str]:
    return {path.name: path.read_text() for path in (project.root / "seen").iterdir()}


@pytest.fixture
def worker_project(arena_project, monkeypatch):
    pytest.importorskip("xdist")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    arena_project.write(fixed_answers_config(arena_project, questions=2, models={"long": 3, "short": 1}))
    arena_project.pytester.makeconftest(DEVICE_READING_CONFTEST)
    return arena_project


def run_workers(project, *args: str):
    return project.pytester.runpytest_subprocess("--arena-config", str(project.root / "cfg_arena.yaml"), *args)


def test_a_conftest_imported_by_a_worker_sees_that_workers_devices(worker_project):
    result = run_workers(worker_project, "-n", "2", "--arena-worker-gpus", "0+1,2+3")
    result.assert_outcomes(passed=2)
    assert seen_devices(worker_project) == {"main": "<unset>", "gw0": "0,1", "gw1": "2,3"}
    output = result.stdout.str() + result.stderr.str()
    assert "arena [gw0]: this worker sees CUDA devices 0,1 " in output
    assert "arena [gw1]: this worker sees CUDA devices 2,3 " in output


def test_a_worker_replacing_a_crashed_one_gets_its_devices(worker_project):
    worker_project.pytester.makepyfile(test_crash=CRASH_ONCE)
    result = run_workers(worker_project, "-n", "2", "--arena-worker-gpus", "0,1", "test_crash.py", "-p", "xdist")
    crashed = (worker_project.root / "crashed").read_text()
    assert "replacing crashed worker" in result.stdout.str()
    seen = seen_devices(worker_project)
    assert seen["gw2"] == {"gw0": "0", "gw1": "1"}[crashed], seen  # not none, not GPU 0 beside gw0
    assert {seen["gw0"], seen["gw1"]} == {"0", "1"}


# -------------------------------------------------------------------------------------------------
# 7. Likelihood ties are decided on the float32 means, not on the three decimals shown


def test_means_that_round_alike_but_differ_are_not_a_tie():
    from pytest_arena.judging.likelihood import likelihood_line
    from pytest_arena.judging.verdict_labels import AB_LABELS, ARENA_HARD_LABELS

    near = likelihood_line(AB_LABELS, [(-6.23412, 40), (-6.23398, 38)])
    assert near.endswith("A -6.2341 (40 tokens), B -6.2340 (38 tokens) -> [[B]]")  # the digits it rests on
    assert likelihood_line(ARENA_HARD_LABELS, [(-6.23398, 40), (-6.23412, 38)]).endswith("-> [[A>B]]")
    assert likelihood_line(AB_LABELS, [(-6.5, 40), (-6.5, 38)]).endswith("A -6.500 (40 tokens), B -6.500 (38 tokens) -> [[C]]")
    # Differences below float32's resolution are noise of the batch a row ran in: a tie.
    assert likelihood_line(AB_LABELS, [(-6.5, 40), (-6.5 + 1e-9, 38)]).endswith("-> [[C]]")


def test_a_bf16_judge_decides_on_unrounded_means(tmp_path):
    from pathlib import Path

    import torch
    from support.tiny_models import build_tiny_model

    from pytest_arena.config import JudgeSpec, ModelSpec
    from pytest_arena.judging.local_judge import LocalJudge

    folder = build_tiny_model(tmp_path / "judge", seed=11)
    checkpoint = ModelSpec(name="bf16-judge", path=str(folder), output_file=Path("/dev/null"), precision="bfloat16",
                           generation_config={"max_new_tokens": 4, "do_sample": False}, batch_size=4, device="cpu")
    judge = LocalJudge(JudgeSpec(ref="local", model="bf16-judge", fn_completion_parser="lmsys_parser", max_tokens=4,
                                 temperature=0.0, max_concurrency=1, checkpoint=checkpoint, verdict="likelihood"))
    try:
        assert judge.generator.model.dtype == torch.bfloat16
        answers = ["Paris.", "Paris is the capital.", "paris", "It is Paris.", "Lyon.", "The capital is Paris."]
        lines = {(a, b): judge.compare(("What is the capital of France?",), (a,), (b,), "[[A]]").text
                 for i, a in enumerate(answers) for b in answers[i + 1:]}
    finally:
        judge.close()
    import re

    for pair, line in lines.items():
        a, b, label = re.search(r"A (-?[\d.]+) .*B (-?[\d.]+) .*\[\[(.)\]\]$", line).groups()
        # Different answers are told apart, however close bf16 logits put them; the line shows the gap.
        assert label in "AB" and a != b, (pair, line)
        assert label == ("A" if float(a) > float(b) else "B"), (pair, line)


# -------------------------------------------------------------------------------------------------
# 6. Likelihood verdicts materialise only the scored positions' logits


def test_likelihood_passes_hold_only_the_scored_positions_logits(tmp_path):
    import torch
    from support.tiny_models import build_tiny_model
    from transformers import AutoModelForCausalLM

    from pytest_arena.judging.likelihood import log_likelihoods

    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "m", seed=5), dtype=torch.float32).eval()
    long_context = list(range(10, 90))
    calls = [[(long_context, [7, 8, 9])], [(long_context[:70], [11, 12, 13, 14, 15])]]
    shapes = []
    hook = model.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.logits.shape)))
    try:
        kept = log_likelihoods(model, 0, calls)
        full = log_likelihoods(model, 0, calls, keeps_logits=False)
    finally:
        hook.remove()
    vocab = model.get_output_embeddings().weight.shape[0]
    # From the shorter context's last token (position 69) to the end of the batch (82): 14, not 83.
    assert shapes == [(2, 14, vocab), (2, 83, vocab)]
    for kept_call, full_call in zip(kept, full):
        for (total, count), (expected, expected_count) in zip(kept_call, full_call):
            assert count == expected_count and total == pytest.approx(expected, abs=1e-4)


# -------------------------------------------------------------------------------------------------
# 5. device: auto needs accelerate: a configuration error before anything loads


def test_device_auto_without_accelerate_is_refused_before_any_load(arena_project, monkeypatch):
    import sys

    config = arena_project.config(questions=1, models=("tiny-a", "tiny-b"))
    config["answers_gen"]["tiny-b"]["device"] = "auto"
    arena_project.write(config)
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if it were not installed
    result = arena_project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([('ERROR: *cfg_arena.yaml: answers_gen.tiny-b: device: auto needs the accelerate '
                                  'package: pip install "pytest-arena?gpu?"*')])
    assert "loading model" not in result.stdout.str()


# -------------------------------------------------------------------------------------------------
# 8. The GPU bench runs where pytest is not installed


def test_the_generation_benches_import_without_pytest():
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    code = ("import sys; sys.modules['pytest'] = None; sys.path.insert(0, sys.argv[1]); "
            "import _common, generation, vllm_generation; print('imported')")
    done = subprocess.run([sys.executable, "-c", code, str(bench)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr


def test_the_dependency_bounds_name_what_the_gpu_path_was_written_against():
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    core = {r.name: r for r in map(Requirement, project["dependencies"])}
    # from_pretrained(dtype=...) arrived in transformers 4.56; older releases read only torch_dtype.
    assert not core["transformers"].specifier.contains("4.55.9") and core["transformers"].specifier.contains("4.56.0")
    extras = {name: {r.name: r for r in map(Requirement, reqs)} for name, reqs in project["optional-dependencies"].items()}
    vllm = extras["vllm"]["vllm"].specifier
    # One vLLM minor: its pins (torch==2.14.0, transformers<5.21) are the ones docs/scaling.md states.
    assert vllm.contains("0.33.0") and not vllm.contains("0.34.0") and not vllm.contains("0.32.9")
    assert "accelerate" in extras["gpu"]
