"""GGUF checkpoints, converted once to a plain transformers folder and reused.

transformers reads a GGUF file by dequantizing every tensor, which is slow (SmolLM2-135M: ~15 s on two
CPU cores, each time a model loads). The arena may load the same file several times (candidates with
different generation settings, a local judge), so the first load writes the dequantized weights as
safetensors in the arena's cache folder, keyed by the GGUF file's digest; later loads take ~2 s.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .fingerprint import DigestMemo

if TYPE_CHECKING:  # a hint only: config imports the generation settings
    from ..config import ModelSpec


def loadable(spec: ModelSpec, cache_dir: Path | None, memo: DigestMemo, log: Callable[[str], None]) -> ModelSpec:
    """The spec to load: for a local GGUF file, its converted folder (made now if missing)."""
    source = Path(spec.path) / spec.gguf_file if spec.gguf_file else None
    if source is None or cache_dir is None or not source.is_file():
        return spec
    dtype = "float32" if spec.precision == "auto" else spec.precision  # GGUF dequantizes to float32
    target = Path(cache_dir) / "gguf" / f"{memo.digest(source)[:20]}-{dtype}"
    if not (target / "config.json").is_file():
        log(f"{spec.name}: converting {source.name} to a {dtype} folder once (later loads reuse it)")
        _convert(spec, dtype, target)
    return dataclasses.replace(spec, path=str(target), gguf_file=None, precision=dtype)


def _convert(spec: ModelSpec, dtype: str, target: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    common = dict(gguf_file=spec.gguf_file, trust_remote_code=spec.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(spec.path, **common)
    quantized = AutoModelForCausalLM.from_pretrained(spec.path, dtype=torch.float32, **common)
    # save_pretrained refuses a model that still carries its GGUF quantization config, so the same
    # architecture is built from a clean config and given the dequantized weights.
    settings = {k: v for k, v in quantized.config.to_dict().items() if k != "quantization_config"}
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**settings), dtype=getattr(torch, dtype))
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(partial, target)  # complete folders only: a crash mid-way leaves just a .partial
    except OSError:  # another run converted the same file meanwhile; theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
