"""Answer generation with vLLM in this process (``backend: vllm``; ``pip install "pytest-arena[vllm]"``).

A drop-in for ``TransformersGenerator``: the same checkpoint, the same prompts and the same
``generation_config`` meaning, but vLLM's engine (paged attention, continuous batching, tensor
parallelism through ``vllm_args``). ``vllm`` is imported only when such a model loads; the mapping
onto ``vllm.SamplingParams`` (``GenerationSettings.for_vllm``, config/generation.py) is plain Python, so config
validation and tests need no vLLM.

Prompts are rendered with the tokenizer's chat template exactly as the transformers backend renders
them and sent as token ids, so both backends see the same tokens (vLLM would otherwise add a BOS token
in front of a template that already starts with one). Sampling follows transformers' reading of the
config: greedy unless ``do_sample: true``; settings the config leaves out come from the checkpoint's
own ``generation_config.json``, then from transformers' defaults (temperature 1.0, top_k 50, top_p 1.0).
"""

from __future__ import annotations

import gc
import importlib.util
import time

# The mapping onto vllm.SamplingParams is plain Python, kept with the settings the config reader checks
# (GenerationSettings.for_vllm).
from ..errors import UnsupportedSetting
from ..config.generation import MODEL_DEFAULT_KEYS
from .transformers_backend import ChatPrompts, GeneratedText

INSTALL_HINT = 'pip install "pytest-arena[vllm]"'
# vllm.LLM arguments that change speed and memory, not the answers: left out of the answer cache key.
RESOURCE_ARGS = frozenset({
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "gpu_memory_utilization",
    "cpu_offload_gb", "enforce_eager", "max_num_seqs", "max_num_batched_tokens",
    "disable_custom_all_reduce", "disable_log_stats", "distributed_executor_backend",
    "enable_prefix_caching", "enable_chunked_prefill", "block_size", "kv_cache_dtype", "compilation_config",
    "download_dir",
})


def vllm_installed() -> bool:
    """Whether ``import vllm`` could work, found without importing it (that takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def llm_kwargs(spec) -> dict:
    """``vllm.LLM`` keyword arguments: the checkpoint's settings, then ``vllm_args`` as given."""
    kwargs = {"model": spec.path, "trust_remote_code": spec.trust_remote_code,
              "dtype": spec.precision}  # "auto", "float16", "bfloat16" or "float32": vLLM's names too
    if spec.revision:
        kwargs["revision"] = spec.revision
    return {**kwargs, **spec.vllm_args}


def cache_relevant_args(vllm_args: dict) -> dict:
    """The ``vllm_args`` that can change what the model writes (quantization, max_model_len, ...)."""
    return {k: v for k, v in sorted(vllm_args.items()) if k not in RESOURCE_ARGS}


def check_before_load(spec) -> None:
    """What vLLM would refuse only once the engine is being built: engine arguments its ``EngineArgs``
    does not have (``EngineArgs(**kwargs)`` raises TypeError), and sampling settings out of
    ``SamplingParams``' ranges once the checkpoint's generation_config.json fills in what the config
    leaves out. Raises ValueError naming the key; imports vLLM's argument module, not the engine."""
    import dataclasses
    import difflib

    from vllm.engine.arg_utils import EngineArgs

    known = {f.name for f in dataclasses.fields(EngineArgs)}
    for key in spec.vllm_args:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"vllm_args.{key}: not an argument of this vLLM's EngineArgs; {hint}"
                             "expected a vllm.LLM engine argument")
    try:
        spec.generation.for_vllm(_model_defaults(spec), 0)
    except UnsupportedSetting as exc:
        raise ValueError(f"generation_config.{exc.key}: {exc.problem} (with the checkpoint's "
                         "generation_config.json filling in what the config leaves out)") from None


def _model_defaults(spec) -> dict:
    """The checkpoint's generation_config.json (empty when it has none)."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(spec.path, revision=spec.revision)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in config.to_dict().items() if k in MODEL_DEFAULT_KEYS}


class VllmGenerator(ChatPrompts):
    """One ``vllm.LLM``; the same interface, and the same prompts, as ``TransformersGenerator``."""

    def __init__(self, spec):
        import vllm

        self.spec = spec
        started = time.perf_counter()
        self.model_defaults = _model_defaults(spec)
        check_before_load(spec)  # preflight did; this also holds for a generator built by hand
        self.llm = vllm.LLM(**llm_kwargs(spec))
        self.tokenizer = self.llm.get_tokenizer()
        self.load_seconds = time.perf_counter() - started
        self.device = f"vllm (tensor_parallel_size {spec.vllm_args.get('tensor_parallel_size', 1)})"
        self.chat_template_missing = spec.use_chat_template and not getattr(self.tokenizer, "chat_template", None)
        self._sampling_params = vllm.SamplingParams

    def generate(self, conversations: list[list[dict]], seed: int) -> list[GeneratedText]:
        """Answers for each conversation; vLLM schedules the whole list itself."""
        # A chat template carries its own special tokens; a plain prompt gets the tokenizer's (BOS).
        add_special = not self.uses_chat_template
        prompts = [{"prompt_token_ids": self.tokenizer.encode(self.render(c), add_special_tokens=add_special)}
                   for c in conversations]
        # vLLM seeds each request on its own: an answer does not depend on which others share its batch.
        params = self._sampling_params(**self.spec.generation.for_vllm(self.model_defaults, seed))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for prompt, output in zip(prompts, outputs):
            completion = output.outputs[0]
            results.append(GeneratedText(completion.text.strip(), len(prompt["prompt_token_ids"]),
                                         len(completion.token_ids)))
        return results

    def close(self) -> None:
        """Shut the engine down and free its GPU memory, so the next model fits."""
        llm, self.llm = self.llm, None
        self.tokenizer = None
        if llm is not None:
            _shutdown(llm)
        del llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _shutdown(llm) -> None:
    """Best effort across vLLM versions: the V1 engine core runs in its own process; older engines keep
    a model-parallel group in this one."""
    engine = getattr(llm, "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if callable(getattr(core, "shutdown", None)):
        try:
            core.shutdown()
        except Exception:  # noqa: BLE001 - releasing must not fail the run
            pass
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception:  # noqa: BLE001 - absent or already torn down in this vLLM version
        pass
