"""Helpers shared by the bench scripts: the loopback judge in its own process, arena projects on disk,
timed subprocess runs, and a line that says which machine the figures came from.

Not a benchmark itself. The judge server runs in a separate process so that, as with a hosted judge,
its HTTP handling does not compete with the client for the GIL of the process being measured.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
for _folder in (REPO, TESTS):  # the package without an install (e.g. bench/gpu.sh), and tests/support
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))



def write_questions(path: Path, count: int) -> Path:
    """tests/support's question file, imported here only: that module imports pytest, which the GPU
    bench (bench/gpu.sh, generation.py, vllm_generation.py) does not install and does not need."""
    from support.arena_project import write_questions as write

    return write(path, count)

FAKE_KEY = "sk-arena-bench-0123456789abcdef"
JUDGE_REF = "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4"
VERDICT = "Both answers are short; assistant A is more direct. [[A]]"

_SERVER_CODE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from support.judge_server import JudgeServer
server = JudgeServer(reply=sys.argv[3], latency=float(sys.argv[2]))
print(server.base_url, flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "count":
        print(server.request_count, server.max_in_flight, flush=True)
    elif command == "cpu":
        print(time.process_time(), flush=True)
    elif command == "reset":
        server.reset_counters()
        print("ok", flush=True)
    elif command == "quit":
        break
server.stop()
"""


class JudgeProcess:
    """tests/support JudgeServer, served from a child process; talks over its stdin/stdout."""

    def __init__(self, latency: float = 0.0, reply: str = VERDICT):
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER_CODE, str(TESTS), str(latency), reply],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the judge server did not start")

    def _ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def counts(self) -> tuple[int, int]:
        """(requests received, most requests in flight at once) since the last reset."""
        requests, in_flight = self._ask("count").split()
        return int(requests), int(in_flight)

    def reset(self) -> None:
        self._ask("reset")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (all its threads): what a loopback judge takes
        from the cores the measured client also needs, which a hosted judge would not."""
        return float(self._ask("cpu"))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "JudgeProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def machine() -> str:
    """CPU model, cores, memory, Python/torch-free versions and the load when measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = "? RAM"
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def bench_env(**extra) -> dict:
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = FAKE_KEY
    env.pop("OPENAI_BASE_URL", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra)
    return env


def write_fixed_answers(path: Path, model: str, count: int, words: int = 12) -> Path:
    """EvalScope answer records for questions 1..count, as an `enable: false` model's output_file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(1, count + 1):
            answer = " ".join(f"{model}-word{j}-{i}" for j in range(words))
            handle.write(json.dumps({"question_id": i, "text": f"question {i}", "category": "generic",
                                     "model_id": model, "answer": answer, "metadata": {}}) + "\n")
    return path


def judge_args(base_url: str, max_concurrency: int) -> dict:
    return {"model": "gpt-4", "max_tokens": 64, "temperature": 0.0, "mode": "pairwise",
            "position_bias_mitigation": None, "fn_completion_parser": "lmsys_parser",
            "base_url": base_url, "max_concurrency": max_concurrency, "max_retries": 2, "timeout": 60}


def arena_config(root: Path, *, questions: int, models: dict[str, dict], base_url: str,
                 max_concurrency: int = 32, bootstrap_rounds: int = 100) -> Path:
    """Write questions.jsonl and cfg_arena.yaml under ``root``; ``models``: name -> answers_gen entry."""
    root.mkdir(parents=True, exist_ok=True)
    write_questions(root / "questions.jsonl", questions)
    config = {
        "question_file": "questions.jsonl",
        "answers_gen": models,
        "reviews_gen": {
            "enable": True,
            "reviewer": {"ref": JUDGE_REF, "args": judge_args(base_url, max_concurrency)},
            "review_file": "reviews/review_gpt4.jsonl",
        },
        "rating_gen": {"enable": True, "metrics": ["elo"], "report_file": "reports/elo_rating.csv",
                       "bootstrap_rounds": bootstrap_rounds},
    }
    path = root / "cfg_arena.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def fixed_model(name: str, questions: int, root: Path) -> dict:
    """An answers_gen entry with enable: false whose answers file already holds every answer."""
    output = write_fixed_answers(root / "answers" / f"answer_{name}.jsonl", name, questions)
    return {"model_id_or_path": f"bench/{name}", "enable": False, "output_file": str(output)}


def perf_available() -> bool:
    """Whether ``perf stat`` can count this user's instructions here (not in every container)."""
    if shutil.which("perf") is None:
        return False
    done = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", "--", "true"], capture_output=True, text=True)
    return done.returncode == 0 and "instructions" in done.stderr and "<not" not in done.stderr


def run_pytest(args: list[str], cwd: Path, env: dict | None = None, time_v: bool = False,
               check: bool = True, instructions: bool = False) -> dict:
    """Run ``python -m pytest ARGS`` in ``cwd``: wall seconds, CPU seconds (user + system of the finished
    child: steadier than wall time on a shared machine), output, and peak RSS (MiB) when asked.

    ``instructions``: also the user-space instructions the run executed (``perf stat``), which other
    processes on the machine do not change, unlike wall and CPU time (with shared caches and memory
    bandwidth, even CPU time grows with the machine's load).
    """
    command = [sys.executable, "-m", "pytest", *args]
    if time_v and Path("/usr/bin/time").exists():
        command = ["/usr/bin/time", "-v", *command]
    perf_file = None
    if instructions:
        perf_file = Path(tempfile.mkstemp(prefix="arena-perf-", suffix=".csv")[1])
        command = ["perf", "stat", "-x,", "-e", "instructions:u", "-o", str(perf_file), "--", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env or bench_env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    executed = None
    if perf_file is not None:
        rows = [line.split(",") for line in perf_file.read_text().splitlines() if "instructions" in line]
        perf_file.unlink()
        executed = int(rows[0][0]) if rows and rows[0][0].isdigit() else None
    if check and done.returncode not in (0,):
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"pytest exited {done.returncode}: {' '.join(args)}")
    result = {"wall": wall, "cpu": cpu, "instructions": executed, "stdout": done.stdout, "stderr": done.stderr,
              "rc": done.returncode}
    if time_v:
        for line in done.stderr.splitlines():
            if "Maximum resident set size" in line:
                result["peak_mib"] = int(line.split(":")[1]) / 1024
        if "peak_mib" not in result:  # no /usr/bin/time: the largest child so far (a ceiling, not exact)
            result["peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def summary_line(stdout: str, prefix: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return line
    return ""
