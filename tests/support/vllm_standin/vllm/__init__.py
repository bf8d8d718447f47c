"""A stand-in for the ``vllm`` package, for tests only: vLLM cannot be installed on the CPU machines the
tests run on. It is not vLLM and proves nothing about vLLM itself; it implements, on top of transformers,
just the documented surface ``pytest_arena.generation.vllm_backend`` calls, so the arena's own wiring
(config -> preflight -> backend dispatch -> prompts as token ids -> records -> release) runs for real:

- ``LLM(model, *, dtype, trust_remote_code, revision, **engine_args)``, ``LLM.get_tokenizer()``;
- ``LLM.generate(prompts, sampling_params, *, use_tqdm)`` with ``{"prompt_token_ids": [...]}`` prompts
  and one ``SamplingParams`` (or a list, one per prompt), returning outputs with
  ``.prompt_token_ids`` and ``.outputs[0].text`` / ``.token_ids``;
- ``SamplingParams(max_tokens, min_tokens, temperature, top_p, top_k, min_p, repetition_penalty, stop, seed)``,
  temperature 0 meaning greedy and top_k -1 meaning no top-k.

Every ``LLM`` records its arguments in ``CREATED`` and every request its ``SamplingParams`` in ``REQUESTS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CREATED: list[dict] = []
REQUESTS: list["SamplingParams"] = []


@dataclass
class SamplingParams:
    max_tokens: int | None = 16
    min_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    stop: list[str] | None = None
    seed: int | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


class LLM:
    def __init__(self, model: str, *, dtype: str = "auto", trust_remote_code: bool = False,
                 revision: str | None = None, **engine_args):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        CREATED.append({"model": model, "dtype": dtype, "trust_remote_code": trust_remote_code,
                        "revision": revision, **engine_args})
        self._tokenizer = AutoTokenizer.from_pretrained(model)
        torch_dtype = torch.float32 if dtype == "auto" else getattr(torch, dtype)
        self._model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).eval()

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm: bool = True) -> list[RequestOutput]:
        import torch

        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()] * len(prompts)
        results = []
        for prompt, p in zip(prompts, params):
            REQUESTS.append(p)
            ids = torch.tensor([prompt["prompt_token_ids"]])
            settings = {"max_new_tokens": p.max_tokens, "min_new_tokens": p.min_tokens or None,
                        "do_sample": p.temperature > 0, "pad_token_id": self._tokenizer.pad_token_id}
            if p.temperature > 0:
                settings.update(temperature=p.temperature, top_p=p.top_p, top_k=None if p.top_k < 1 else p.top_k)
                if p.seed is not None:
                    torch.manual_seed(p.seed)
            with torch.inference_mode():
                row = self._model.generate(ids, attention_mask=torch.ones_like(ids), **settings)[0, ids.shape[1]:]
            new = row.tolist()
            text = self._tokenizer.decode(new, skip_special_tokens=True)
            results.append(RequestOutput(list(prompt["prompt_token_ids"]), [CompletionOutput(text, new)]))
        return results
