"""Rerun cost and peak memory of `pytest --arena-config` runs with two real (random-weight) checkpoints.

    python bench/rerun_cost.py                       # ~300 MB + ~540 MB float32 models (~1-2 min)
    python bench/rerun_cost.py --small 512 --large 768 --layers 4   # lighter

1. Rerun: run an arena (two generating models, the loopback judge) once, then again unchanged. The
   rerun should send no judge request and load no model (goal: 0 and 0); its wall time is printed, with
   and without pytest's cache folder (`-p no:cacheprovider` loses the checkpoint-digest memo, so the
   rerun hashes every weight file again).
2. Memory: peak RSS of the first two-model run against a run that generates with the larger model
   alone (the smaller model's answers given as an `enable: false` answers file). Models load one at
   a time and are released, so the goal is at most 1.2x. Peak RSS comes from `/usr/bin/time -v`
   (else getrusage of the children, which is a running maximum over every child so far).

The checkpoints are Llama models with the tiny test tokenizer (tests/support/tiny_models.py) and
`--layers` layers of the given hidden sizes (intermediate 4x hidden), saved with save_pretrained in
float32, so their weights dominate the Python + torch baseline of the process.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JudgeProcess, arena_config, bench_env, machine, run_pytest, summary_line  # noqa: E402

MEMORY_GOAL = 1.2


def build_model(path: Path, hidden: int, layers: int, seed: int) -> float:
    """A random-weight Llama checkpoint of the given size; returns its weight size in MiB."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from support.tiny_models import _make_tokenizer, _quiet_transformers

    with _quiet_transformers():
        tokenizer = _make_tokenizer(400, True)
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                             num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 64),
                             intermediate_size=4 * hidden, max_position_embeddings=512,
                             tie_word_embeddings=False, **ids)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(**ids)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        size = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return size


def model_entry(path: Path, name: str, tokens: int) -> dict:
    return {"model_id_or_path": str(path), "precision": "torch.float32", "enable": True, "batch_size": 4,
            "generation_config": {"do_sample": False, "max_new_tokens": tokens, "min_new_tokens": tokens},
            "output_file": f"answers/answer_{name}.jsonl"}


def loaded(stdout: str) -> str:
    return summary_line(stdout, "models loaded:").removeprefix("models loaded:").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=768, help="hidden size of the smaller model")
    parser.add_argument("--large", type=int, default=1024, help="hidden size of the larger model")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per answer")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="arena-bench-rerun-") as tmp, JudgeProcess(latency=0.0) as server:
        root = Path(tmp)
        started = time.perf_counter()
        small_mib = build_model(root / "models" / "small", args.small, args.layers, seed=1)
        large_mib = build_model(root / "models" / "large", args.large, args.layers, seed=2)
        print(f"models: small (hidden {args.small}) {small_mib:.0f} MiB, large (hidden {args.large}) {large_mib:.0f} MiB "
              f"float32, {args.layers} layers; built in {time.perf_counter() - started:.1f} s")

        both = root / "both"
        cfg = arena_config(both, questions=args.questions, base_url=server.base_url, max_concurrency=8,
                           models={"small": model_entry(root / "models" / "small", "small", args.tokens),
                                   "large": model_entry(root / "models" / "large", "large", args.tokens)})
        argv = ["-q", "--arena-config", str(cfg)]
        server.reset()
        first = run_pytest(argv, both, bench_env(), time_v=True)
        first_requests = server.counts()[0]
        server.reset()
        rerun = run_pytest(argv, both, bench_env(), time_v=True)
        rerun_requests = server.counts()[0]
        server.reset()
        bare_rerun = run_pytest([*argv, "-p", "no:cacheprovider"], both, bench_env(), time_v=True)
        bare_requests = server.counts()[0]
        print(f"first run : {first['wall']:6.2f} s, {first_requests} judge requests, models loaded: {loaded(first['stdout'])}; "
              f"peak RSS {first['peak_mib']:.0f} MiB")
        print(f"rerun     : {rerun['wall']:6.2f} s, {rerun_requests} judge requests, models loaded: {loaded(rerun['stdout'])}; "
              f"peak RSS {rerun['peak_mib']:.0f} MiB   (goal: 0 requests, no model)")
        print(f"rerun -p no:cacheprovider: {bare_rerun['wall']:6.2f} s, {bare_requests} judge requests, "
              f"models loaded: {loaded(bare_rerun['stdout'])} (no digest memo: weights hashed again)")
        # Which heavy libraries the rerun still imports (an extra, untimed rerun: -X importtime slows it).
        traced = run_pytest(argv, both, bench_env(PYTHONPROFILEIMPORTTIME="1"))
        imported = {line.rsplit("|", 1)[-1].strip() for line in traced["stderr"].splitlines() if "import time:" in line}
        heavy = [m for m in ("torch", "transformers", "openai", "numpy", "pandas", "scipy", "matplotlib") if m in imported]
        print(f"rerun imports: {', '.join(heavy) or 'none of torch, transformers, openai, pandas, matplotlib'}")

        alone = root / "alone"
        (alone / "answers").mkdir(parents=True)
        fixed = alone / "answers" / "answer_small.jsonl"
        shutil.copy(both / "answers" / "answer_small.jsonl", fixed)
        cfg_alone = arena_config(alone, questions=args.questions, base_url=server.base_url, max_concurrency=8,
                                 models={"small": {"model_id_or_path": str(root / "models" / "small"), "enable": False,
                                                   "output_file": str(fixed)},
                                         "large": model_entry(root / "models" / "large", "large", args.tokens)})
        single = run_pytest(["-q", "--arena-config", str(cfg_alone)], alone, bench_env(), time_v=True)
        print(f"large alone: {single['wall']:6.2f} s, models loaded: {loaded(single['stdout'])}; "
              f"peak RSS {single['peak_mib']:.0f} MiB")
        ratio = first["peak_mib"] / single["peak_mib"]
        summed = (single["peak_mib"] + small_mib) / single["peak_mib"]
        print(f"peak memory, two models / larger alone: {ratio:.2f}x (goal <= {MEMORY_GOAL}x: "
              f"{'met' if ratio <= MEMORY_GOAL else 'MISSED'}); both held at once would be about {summed:.2f}x")
        verdict = "met" if rerun_requests == 0 and "none" in loaded(rerun["stdout"]) else "MISSED"
        print(f"rerun goal (0 judge requests, 0 model loads): {verdict}")


if __name__ == "__main__":
    main()
