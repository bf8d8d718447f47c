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
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JudgeProcess, arena_config, bench_env, fixed_model, machine, run_pytest, summary_line  # noqa: E402

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


def best_of(repeat: int, args: list[str], cwd: Path) -> tuple[float, dict]:
    runs = [run_pytest(args, cwd, bench_env()) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["wall"])
    return best["wall"], best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per figure")
    parser.add_argument("--fill-via-pytest", action="store_true",
                        help="fill the review cache with a real pytest run against the loopback judge (slow)")
    parser.add_argument("--keep", metavar="DIR", help="build the projects here and keep them (for profiling)")
    args = parser.parse_args()

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

            figures = {}
            for label, argv, cwd in (("bare collect", [*bare, "--collect-only"], bare_dir),
                                     ("arena collect", [*arena, "--collect-only"], arena_dir),
                                     ("bare run", bare, bare_dir),
                                     ("arena run", arena, arena_dir)):
                figures[label], result = best_of(args.repeat, argv, cwd)
                print(f"  {label:<14} {figures[label]:7.2f} s", flush=True)
                if label == "arena run":
                    print(f"    {summary_line(result['stdout'], 'judge:')}; "
                          f"{summary_line(result['stdout'], 'models loaded:')}")
            requests, _ = server.counts()
        print(f"judge requests during the timed runs: {requests} (expected 0)")
        for kind in ("collect", "run"):
            ratio = figures[f"arena {kind}"] / figures[f"bare {kind}"]
            verdict = "met" if ratio <= GOAL else "MISSED"
            print(f"{kind:>8}: arena {figures[f'arena {kind}']:.2f} s / bare {figures[f'bare {kind}']:.2f} s = "
                  f"{ratio:.2f}x  (goal <= {GOAL}x: {verdict}); "
                  f"{(figures[f'arena {kind}'] - figures[f'bare {kind}']) / items * 1e6:.0f} us more per item")
    finally:
        if context is not None:
            context.cleanup()


if __name__ == "__main__":
    main()
