"""Judge throughput: judgments per second through MatchJudge + OpenAIJudge against a judge with latency.

    python bench/judge_throughput.py                  # 2,000 judgments at c=8/32/64, 300 at c=1 (~80 s)
    python bench/judge_throughput.py --pytest         # also a whole `pytest --arena-config` run (+~30 s)
    python bench/judge_throughput.py --concurrency 32 --judgments 500 --latency 0.1

The real code path: pytest_arena.judging.match_judge.MatchJudge with the real OpenAIJudge (the `openai`
client over real HTTP) against tests/support's JudgeServer, which waits `latency` seconds per request
and runs in a child process (as a hosted judge would, it does not share this process's GIL). Each
battle has its own question and answers, so nothing comes from the review cache. The ideal rate is
concurrency / latency; the goal is at least 85% of it at concurrency 32.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FAKE_KEY, JudgeProcess, arena_config, bench_env, fixed_model, machine, run_pytest, summary_line  # noqa: E402

GOAL = 0.85


def battles(count: int, offset: int = 0):
    from pytest_arena.generation.answers import Answer
    from pytest_arena.matches import Battle
    from pytest_arena.questions import Question

    for i in range(offset + 1, offset + count + 1):
        question = Question(i, (f"Tell me about topic number {i}, briefly.",), "generic")
        answers = {"model-a": Answer("model-a", i, (f"Topic {i} is interesting for reasons {i % 7}.",)),
                   "model-b": Answer("model-b", i, (f"I am not sure about topic {i}.",))}
        yield Battle(question, "model-a", "model-b", f"q{i:05d}-model-a--vs--model-b"), answers


def sdk_judge_class():
    """OpenAIJudge as it was before pytest_arena.openai_chat (the "before" row): one client shared by
    every thread, the request through ``client.chat.completions.create``, whose per-call TypedDict
    transform of the parameters and pydantic model of the reply cost most of the client's CPU per call.
    Same retries, backoff, timeout."""
    from pytest_arena.judging.openai_judge import JudgeCallError, JudgeReply, OpenAIJudge
    from pytest_arena.openai_chat import make_client

    class SdkOpenAIJudge(OpenAIJudge):
        def __init__(self, spec):
            super().__init__(spec)
            self.client = make_client(spec.api_key_env, spec.base_url, spec.max_retries, spec.timeout)

        def close(self) -> None:
            self.client.close()
            super().close()

        def complete(self, system_prompt: str, prompt: str, output_format: str = "") -> JudgeReply:
            messages = [{"role": "user", "content": prompt}]
            if system_prompt:
                messages.insert(0, {"role": "system", "content": system_prompt})
            try:
                response = self.client.chat.completions.create(
                    model=self.spec.model, messages=messages, temperature=self.spec.temperature,
                    max_tokens=self.spec.max_tokens)
            except Exception as exc:  # noqa: BLE001
                raise JudgeCallError(f"{type(exc).__name__}: {exc}") from None
            choice = response.choices[0]
            usage = response.usage
            return JudgeReply(choice.message.content or "", choice.finish_reason,
                              usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)

    return SdkOpenAIJudge


def judge_directly(base_url: str, concurrency: int, count: int, workdir: Path, offset: int,
                   sdk: bool = False) -> dict:
    """Submit ``count`` battles to a fresh MatchJudge and wait for every judgment."""
    from pytest_arena.config import DEFAULT_TEMPLATES, JudgeSpec
    from pytest_arena.judging.openai_judge import OpenAIJudge
    from pytest_arena.judging.match_judge import MatchJudge
    from pytest_arena.judging.templates import load_templates

    os.environ["OPENAI_API_KEY"] = FAKE_KEY
    spec = JudgeSpec(ref="openai", base_url=base_url, max_concurrency=concurrency, max_retries=2, timeout=60,
                     max_tokens=64)
    review_file = workdir / f"reviews-c{concurrency}.jsonl"
    review_file.unlink(missing_ok=True)
    judge_class = sdk_judge_class() if sdk else OpenAIJudge
    judge = MatchJudge(judge_class(spec), spec, load_templates(DEFAULT_TEMPLATES), review_file, "openai:gpt-4")
    work = list(battles(count, offset))
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        futures = [judge.submit(battle, answers) for battle, answers in work]
        judgments = [f.result() for f in futures]
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started  # this process only: the client side, not the server
    finally:
        judge.close()
        judge.judge.close()
    ok = sum(j.ok for j in judgments)
    if ok != count:
        errors = {j.error for j in judgments if not j.ok}
        raise RuntimeError(f"{count - ok} judgments failed: {sorted(errors)[:3]}")
    return {"seconds": seconds, "cpu": cpu, "calls": judge.counters.calls, "cached": judge.counters.cached}


def whole_run(base_url_server: JudgeProcess, latency: float, questions: int, concurrency: int) -> dict:
    """The same through `pytest --arena-config`: two `enable: false` models, every battle judged."""
    with tempfile.TemporaryDirectory(prefix="arena-bench-judge-") as tmp:
        root = Path(tmp)
        models = {name: fixed_model(name, questions, root) for name in ("model-a", "model-b")}
        cfg = arena_config(root, questions=questions, models=models, base_url=base_url_server.base_url,
                           max_concurrency=concurrency)
        args = ["-q", "-p", "no:cacheprovider", "--arena-config", str(cfg)]
        base_url_server.reset()
        first = run_pytest(args, root, bench_env())
        requests, in_flight = base_url_server.counts()
        second = run_pytest(args, root, bench_env())  # everything cached: the run's own cost
        requests_again, _ = base_url_server.counts()
        return {"first": first["wall"], "cached": second["wall"], "requests": requests,
                "max_in_flight": in_flight, "rerun_requests": requests_again - requests,
                "judge_line": summary_line(first["stdout"], "judge:")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the judge takes per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--judgments", type=int, default=2000)
    parser.add_argument("--judgments-c1", type=int, default=300,
                        help="judgments at concurrency 1 (2,000 x 100 ms would take 200 s)")
    parser.add_argument("--no-sdk", action="store_true",
                        help="skip the extra row at concurrency 32 with the request sent the old way, through "
                             "client.chat.completions.create (the figure before pytest_arena.openai_chat)")
    parser.add_argument("--pytest", action="store_true", help="also time a whole pytest --arena-config run")
    parser.add_argument("--pytest-judgments", type=int, default=2000)
    parser.add_argument("--pytest-concurrency", type=int, default=32)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"judge latency {args.latency * 1000:.0f} ms, loopback JudgeServer in a child process; "
          f"MatchJudge + OpenAIJudge (openai client)")
    print(f"{'concurrency':>11}  {'judgments':>9}  {'seconds':>8}  {'judgments/s':>11}  {'ideal/s':>8}  "
          f"{'of ideal':>8}  {'max in flight':>13}  {'CPU ms/judgment: client':>23}  {'server':>6}")
    rows = []

    def row(label, count: int, concurrency: int, result: dict, in_flight: int, server_cpu: float,
            note: str = "") -> float:
        rate = count / result["seconds"]
        share = rate / (concurrency / args.latency)
        print(f"{label:>11}  {count:>9}  {result['seconds']:>8.2f}  {rate:>11.1f}  {concurrency / args.latency:>8.0f}  "
              f"{share:>8.1%}  {in_flight:>13}  {1000 * result['cpu'] / count:>23.2f}  {1000 * server_cpu / count:>6.2f}"
              f"{note}", flush=True)
        return share

    with JudgeProcess(latency=args.latency) as server, tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        offset = 0
        for concurrency in args.concurrency:
            count = args.judgments_c1 if concurrency == 1 else args.judgments
            server.reset()
            server_cpu = server.cpu_seconds()
            result = judge_directly(server.base_url, concurrency, count, Path(tmp), offset)
            server_cpu = server.cpu_seconds() - server_cpu
            offset += count  # fresh prompts each round: no cache hits, no server-side reuse
            requests, in_flight = server.counts()
            rows.append((concurrency, row(str(concurrency), count, concurrency, result, in_flight, server_cpu)))
            assert requests == count == result["calls"], (requests, count, result)
        if not args.no_sdk:
            server.reset()
            server_cpu = server.cpu_seconds()
            result = judge_directly(server.base_url, 32, args.judgments, Path(tmp), offset, sdk=True)
            server_cpu = server.cpu_seconds() - server_cpu
            offset += args.judgments
            row("32 (before)", args.judgments, 32, result, server.counts()[1], server_cpu,
                "   <- the old way: client.chat.completions.create")
        for concurrency, share in rows:
            if concurrency == 32:
                print(f"goal: >= {GOAL:.0%} of ideal at concurrency 32: {'met' if share >= GOAL else 'MISSED'} "
                      f"({share:.1%})")
        if args.pytest:
            n, c = args.pytest_judgments, args.pytest_concurrency
            result = whole_run(server, args.latency, n, c)
            judging = result["first"] - result["cached"]
            ideal = n * args.latency / c
            print(f"\nwhole run: pytest --arena-config, 2 models x {n} questions (answers given), "
                  f"max_concurrency {c}, latency {args.latency * 1000:.0f} ms")
            print(f"  first run {result['first']:.2f} s ({result['requests']} judge requests, at most "
                  f"{result['max_in_flight']} in flight); same run all cached {result['cached']:.2f} s "
                  f"({result['rerun_requests']} requests)")
            print(f"  judging share {judging:.2f} s -> {n / judging:.1f} judgments/s = {ideal / judging:.1%} of ideal "
                  f"({c / args.latency:.0f}/s); end to end {n / result['first']:.1f} judgments/s")
            print(f"  {result['judge_line']}")


if __name__ == "__main__":
    main()
