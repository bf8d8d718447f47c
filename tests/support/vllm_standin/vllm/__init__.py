"""A stand-in for the ``vllm`` package, for tests only: vLLM cannot be installed on the CPU machines the
tests run on. It is not vLLM and proves nothing about vLLM itself; on top of transformers, it mirrors
the signatures and the validation of vLLM 0.33 for the surface ``pytest_arena.generation.vllm_backend``
calls, so the arena's wiring (config -> preflight -> backend dispatch -> prompts as token ids ->
records -> release) runs for real and the arena's mistakes fail here as they would in vLLM:

- ``LLM(model, *, dtype, trust_remote_code, revision, seed, **kwargs)`` builds an
  ``EngineArgs(model=..., **kwargs)`` (vllm/engine/arg_utils.py): an unknown engine argument is a
  ``TypeError``, as in vLLM. ``dtype="auto"`` takes the checkpoint's dtype, except that a float32
  checkpoint runs in bfloat16, as vLLM does. ``LLM.get_tokenizer()``; ``LLM.llm_engine.engine_core
  .shutdown()`` (the V1 engine core; recorded in ``SHUTDOWNS`` with the teardown functions of
  ``vllm.distributed.parallel_state``).
- ``LLM.generate(prompts, sampling_params, *, use_tqdm)`` with ``{"prompt_token_ids": [...]}`` prompts
  and one ``SamplingParams`` (or a list, one per prompt). A prompt longer than ``max_model_len`` (the
  engine argument, else the checkpoint's ``max_position_embeddings``) is a ``ValueError``, as in vLLM.
  Outputs carry ``.prompt_token_ids`` and ``.outputs[0].text`` / ``.token_ids``; ``stop`` strings end
  the text and are left out of it.
- ``SamplingParams(...)`` with vLLM 0.33's defaults and the ranges its ``_verify_args`` checks
  (``ValueError`` otherwise); temperature 0 means greedy; top_k 0 or -1 means no top-k; ``min_p`` and
  ``repetition_penalty`` are applied.

Every ``LLM`` records its arguments in ``CREATED``, every request its ``SamplingParams`` in ``REQUESTS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .engine.arg_utils import EngineArgs

__version__ = "0.33.0+standin"

CREATED: list[dict] = []
REQUESTS: list[SamplingParams] = []
SHUTDOWNS: list[str] = []


@dataclass
class SamplingParams:
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        self.stop = [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)
        self._verify_args()

    def _verify_args(self) -> None:  # the checks of vLLM 0.33's SamplingParams._verify_args
        checks = [
            (self.n >= 1, f"n must be at least 1, got {self.n}."),
            (-2.0 <= self.presence_penalty <= 2.0, f"presence_penalty must be in [-2, 2], got {self.presence_penalty}."),
            (-2.0 <= self.frequency_penalty <= 2.0, f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}."),
            (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0.0,
             f"repetition_penalty must be greater than zero, got {self.repetition_penalty}."),
            (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 2.0,
             f"temperature must be in [0, 2], got {self.temperature}."),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}."),
            (isinstance(self.top_k, int) and self.top_k >= -1, f"top_k must be 0 (disable), or at least 1, got {self.top_k}."),
            (0.0 <= self.min_p <= 1.0, f"min_p must be in [0, 1], got {self.min_p}."),
            (self.max_tokens is None or self.max_tokens >= 1, f"max_tokens must be at least 1, got {self.max_tokens}."),
            (self.min_tokens >= 0, f"min_tokens must be greater than or equal to 0, got {self.min_tokens}."),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens,
             f"min_tokens must be less than or equal to max_tokens={self.max_tokens}, got {self.min_tokens}."),
            (all(self.stop), "stop cannot contain an empty string."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


class _EngineCore:
    def __init__(self):
        self.running = True

    def shutdown(self) -> None:
        self.running = False
        SHUTDOWNS.append("engine_core")


class _LLMEngine:
    def __init__(self, args: EngineArgs, max_model_len: int):
        self.engine_args = args
        self.max_model_len = max_model_len
        self.engine_core = _EngineCore()


def _run_dtype(dtype: str, config):
    """vLLM's reading of ``dtype``: "auto" is the checkpoint's, but float32 checkpoints run in bfloat16."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    found = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    found = getattr(torch, found) if isinstance(found, str) else found
    return torch.bfloat16 if found == torch.float32 else found


class LLM:
    def __init__(self, model: str, *, dtype: str = "auto", trust_remote_code: bool = False,
                 revision: str | None = None, seed: int = 0, **kwargs):
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        # Unknown engine arguments are refused here, as vLLM's EngineArgs(**kwargs) refuses them.
        args = EngineArgs(model=model, dtype=dtype, trust_remote_code=trust_remote_code, revision=revision,
                          seed=seed, **kwargs)
        CREATED.append({"model": model, "dtype": dtype, "trust_remote_code": trust_remote_code,
                        "revision": revision, **kwargs})
        config = AutoConfig.from_pretrained(model)
        max_model_len = args.max_model_len or getattr(config, "max_position_embeddings", None) or 2048
        self._tokenizer = AutoTokenizer.from_pretrained(model)
        self.dtype = _run_dtype(dtype, config)
        self._model = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype).eval()
        self.llm_engine = _LLMEngine(args, max_model_len)

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm: bool = True) -> list[RequestOutput]:
        if not self.llm_engine.engine_core.running:
            raise RuntimeError("the engine core was shut down")
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()] * len(prompts)
        limit = self.llm_engine.max_model_len
        for prompt in prompts:  # vLLM refuses the request before running any
            if len(prompt["prompt_token_ids"]) > limit:
                raise ValueError(f"The decoder prompt (length {len(prompt['prompt_token_ids'])}) is longer than the "
                                 f"maximum model length of {limit}.")
        return [self._one(prompt, p) for prompt, p in zip(prompts, params)]

    def _one(self, prompt: dict, p: SamplingParams) -> RequestOutput:
        import torch

        REQUESTS.append(p)
        ids = torch.tensor([prompt["prompt_token_ids"]])
        settings = {"max_new_tokens": p.max_tokens, "min_new_tokens": p.min_tokens or None,
                    "do_sample": p.temperature > 0, "pad_token_id": self._tokenizer.pad_token_id,
                    "repetition_penalty": p.repetition_penalty}
        if p.temperature > 0:
            settings.update(temperature=p.temperature, top_p=p.top_p, top_k=p.top_k if p.top_k > 0 else None,
                            min_p=p.min_p or None)
            if p.seed is not None:
                torch.manual_seed(p.seed)
        with torch.inference_mode():
            row = self._model.generate(ids, attention_mask=torch.ones_like(ids), **settings)[0, ids.shape[1]:]
        new = row.tolist()
        text = self._tokenizer.decode(new, skip_special_tokens=p.skip_special_tokens)
        ends = [text.find(stop) for stop in p.stop if stop in text]
        if ends:  # vLLM stops at a stop string and leaves it out
            text = text[:min(ends)]
            new = self._tokenizer.encode(text, add_special_tokens=False)
        return RequestOutput(list(prompt["prompt_token_ids"]), [CompletionOutput(text, new)])
