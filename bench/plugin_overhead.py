"""Plugin overhead: a fully cached arena of 20,000 battle items against a bare pytest run of 20,000
trivial parametrized tests, for collection (`--collect-only`) and for the whole run.

    python bench/plugin_overhead.py                        # 5 models x 2,000 questions = 20,000 battles
    python bench/plugin_overhead.py --models 2 --questions 20000
    python bench/plugin_overhead.py --repeat 1 --questions 400   # a quick look

The arena's models are `enable: false` with every answer already in their output_file, so nothing is
generated; the review file is filled by running the arena once against the loopback judge (latency 0),
so the timed runs make no judge call (checked). Each side runs as a subprocess
`python -m pytest -q -p no:cacheprovider ...`, best of --repeat. Goal: at most 1.5x the bare run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (JudgeProcess, arena_config, bench_env, fixed_model, machine, perf_available,  # noqa: E402
                     run_pytest, summary_line)

GOAL = 1.5
BARE_TEST = '''import pytest


@pytest.mark.parametrize("i", range({count}))
def test_item(i, record_property):
    record_property("i", i)
'''


def fill_reviews_in_process(cfg: Path) -> dict:
    """Judge every battle once through the real ArenaSession/MatchJudge code, with an instant stand-in
    for the HTTP call, so the review file holds exactly the records (and cache keys) a real run writes.
    (--fill-via-pytest does it with a real pytest run against the loopback judge instead: slower.)"""
    import os

    from pytest_arena.judging import openai_judge
    from pytest_arena.session import ArenaSession

    class InstantJudge:
        def __init__(self, spec):
            self.spec = spec

        def complete(self, system_prompt, prompt, output_format=""):
            return openai_judge.JudgeReply("Assistant A answers more directly. [[A]]", "stop", 100, 10)

        def close(self):
            pass

    os.environ.setdefault("OPENAI_API_KEY", "sk-arena-bench")
    real, openai_judge.OpenAIJudge = openai_judge.OpenAIJudge, InstantJudge
    try:
        session = ArenaSession.from_file(cfg, log=lambda message: None)
        session.preflight()
        session.prepare()
        judgments = [session.judgment(match) for match in session.matches]
        session.close()
    finally:
        openai_judge.OpenAIJudge = real
    return {"judged": sum(j is not None and j.ok for j in judgments), "calls": session.counters.calls}


def best(runs: list[dict]) -> dict:
    """The fastest run (wall), with the least CPU time and instruction count of any of them."""
    fastest = dict(min(runs, key=lambda r: r["wall"]))
    fastest["cpu"] = min(r["cpu"] for r in runs)
    counts = [r["instructions"] for r in runs if r["instructions"]]
    fastest["instructions"] = min(counts) if counts else None
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per figure")
    parser.add_argument("--fill-via-pytest", action="store_true",
                        help="fill the review cache with a real pytest run against the loopback judge (slow)")
    parser.add_argument("--collect-only", action="store_true", help="time --collect-only only (not the runs)")
    parser.add_argument("--keep", metavar="DIR", help="build the projects here and keep them (for profiling)")
    parser.add_argument("--also-package", metavar="DIR",
                        help="also time the arena with the pytest_arena package found in DIR (on PYTHONPATH), "
                             "e.g. an earlier version: git archive HEAD pytest_arena arena_tests | tar -x -C DIR")
    args = parser.parse_args()
    count_instructions = perf_available()

    pairs = args.models * (args.models - 1) // 2
    items = pairs * args.questions
    print(f"machine: {machine()}")
    print(f"arena: {args.models} models x {args.questions} questions = {items} battle items, all cached; "
          f"bare: {items} parametrized tests (record_property, like a battle item); best of {args.repeat}")
    context = tempfile.TemporaryDirectory(prefix="arena-bench-overhead-") if not args.keep else None
    root = Path(args.keep or context.name)
    try:
        arena_dir, bare_dir = root / "arena", root / "bare"
        bare_dir.mkdir(parents=True, exist_ok=True)
        (bare_dir / "test_bare.py").write_text(BARE_TEST.format(count=items), encoding="utf-8")
        with JudgeProcess(latency=0.0) as server:
            names = [f"model-{chr(ord('a') + i)}" for i in range(args.models)]
            models = {name: fixed_model(name, args.questions, arena_dir) for name in names}
            cfg = arena_config(arena_dir, questions=args.questions, models=models, base_url=server.base_url,
                               max_concurrency=32)
            arena = ["-q", "-p", "no:cacheprovider", "--arena-config", str(cfg)]
            bare = ["-q", "-p", "no:cacheprovider", "test_bare.py"]
            started = time.perf_counter()
            if args.fill_via_pytest:
                fill = run_pytest(arena, arena_dir, bench_env())
                print(f"filling the review cache with a pytest run: {time.perf_counter() - started:.1f} s, "
                      f"{server.counts()[0]} judge requests ({summary_line(fill['stdout'], 'judge:')})", flush=True)
            else:
                fill = fill_reviews_in_process(cfg)
                print(f"filling the review cache in process (real MatchJudge, instant judge): "
                      f"{time.perf_counter() - started:.1f} s, {fill['judged']} judgments", flush=True)
            server.reset()

            clock = root / "collect-clock.txt"
            bench_dir = str(Path(__file__).resolve().parent)  # for -p _collect_clock
            sides = [("bare", bare, bare_dir, bench_env(PYTHONPATH=bench_dir)),
                     ("arena", arena, arena_dir, bench_env(PYTHONPATH=bench_dir))]
            if args.also_package:
                package = str(Path(args.also_package).resolve())
                sides.append(("arena*", arena, arena_dir, bench_env(PYTHONPATH=os.pathsep.join([package, bench_dir]))))
            # The exact count of cached judge calls, as every --collect-only made it before the counts
            # were kept beside the review file (cached_count.py): the kept file removed before each run.
            # (It also holds which review bytes passed preflight's checks: arena-exact reads and checks
            # the whole review file again too, as the first --collect-only after the reviews change does.)
            from pytest_arena.file_names import cached_count_file as count_file

            kept_counts = count_file(arena_dir / "reviews" / "review_gpt4.jsonl")
            sides.insert(2, ("arena-exact", arena, arena_dir, bench_env(PYTHONPATH=bench_dir)))
            kinds = [("collect", ["--collect-only"])] + ([] if args.collect_only else [("run", ["-p", "_collect_clock"])])
            runs: dict[str, list[dict]] = {}
            # Round-robin, so that each side sees the same spells of load from other processes.
            for _ in range(args.repeat):
                for kind, extra in kinds:
                    for side, argv, cwd, env in sides:
                        if side == "arena-exact" and kind != "collect":
                            continue
                        if side == "arena-exact":
                            kept_counts.unlink(missing_ok=True)
                        clock.unlink(missing_ok=True)
                        result = run_pytest([*argv, *extra], cwd, {**env, "ARENA_BENCH_CLOCK": str(clock)},
                                            instructions=count_instructions)
                        runs.setdefault(f"{side} {kind}", []).append(result)
                        if kind == "run":
                            runs.setdefault(f"{side} collection in run", []).append(
                                {"wall": float(clock.read_text()), "cpu": float(clock.read_text()),
                                 "instructions": None, "stdout": ""})
            figures = {label: best(found) for label, found in runs.items()}
            for label, result in figures.items():
                counted = f"  {result['instructions'] / 1e9:6.2f} G instructions" if result["instructions"] else ""
                if label.endswith("collection in run"):
                    print(f"  {label:<24} {'':>14}  {result['cpu']:7.2f} s CPU (process start to the end of collection)")
                    continue
                print(f"  {label:<24} {result['wall']:7.2f} s wall  {result['cpu']:7.2f} s CPU{counted}", flush=True)
                if label.endswith(" run") and label.startswith("arena"):
                    print(f"    {summary_line(result['stdout'], 'judge:')}; "
                          f"{summary_line(result['stdout'], 'models loaded:')}")
            requests, _ = server.counts()
        print(f"judge requests during the timed runs: {requests} (expected 0)")
        if args.also_package:
            print(f"arena*: the pytest_arena package from {args.also_package}")
        for side in [s[0] for s in sides[1:]]:
            for kind in ("collect", "collection in run", "run"):
                for measure in ("wall", "cpu", "instructions"):
                    if kind == "collection in run" and measure != "cpu" or f"{side} {kind}" not in figures:
                        continue
                    arena_x, bare_x = figures[f"{side} {kind}"][measure], figures[f"bare {kind}"][measure]
                    if not arena_x or not bare_x:
                        continue
                    ratio = arena_x / bare_x
                    verdict = "met" if ratio <= GOAL else "MISSED"
                    scale, shown = (1e9, "G") if measure == "instructions" else (1, "s")
                    per_item = "" if measure == "instructions" else f"; {(arena_x - bare_x) / items * 1e6:.0f} us more per item"
                    print(f"{side:>6} {kind:>17} {measure:>12}: {arena_x / scale:.2f} {shown} / bare {bare_x / scale:.2f} {shown} "
                          f"= {ratio:.2f}x  (goal <= {GOAL}x: {verdict}){per_item}")
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if context is not None:
            context.cleanup()


if __name__ == "__main__":
    main()
