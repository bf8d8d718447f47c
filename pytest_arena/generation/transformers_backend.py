"""Answer generation with a local Hugging Face checkpoint through ``transformers``.

One ``TransformersGenerator`` holds one loaded model; ``close()`` releases it (and its GPU memory)
so the next model can load into the same space. Prompts are batched and left-padded, which is what
decoder-only models need for batched generation.
"""

from __future__ import annotations

import gc
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import ModelSpec


@dataclass(frozen=True)
class GeneratedText:
    text: str
    prompt_tokens: int
    completion_tokens: int


def generation_config_for(spec: ModelSpec):
    """The model's ``GenerationConfig``; unknown keys are refused (transformers would keep them silently)."""
    from transformers import GenerationConfig

    known = set(GenerationConfig().to_dict())
    unknown = sorted(set(spec.generation.given) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"generation_config.{unknown[0]}: unknown generation setting; {hint}"
                         "expected a transformers GenerationConfig field")
    config = GenerationConfig(**spec.generation.for_transformers())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. temperature set with do_sample false: harmless, not our business
        config.validate()
    return config


def cut_at_stop(text: str, stop_strings) -> str:
    """The text before the first stop string: generate() stops once one is written and keeps it, while
    vLLM and chat APIs leave it out; answers read the same whichever backend wrote them."""
    if not stop_strings:
        return text
    ends = [text.find(stop) for stop in ([stop_strings] if isinstance(stop_strings, str) else stop_strings)]
    found = [end for end in ends if end >= 0]
    return text[:min(found)] if found else text


def accelerate_installed() -> bool:
    """Whether ``accelerate`` can be imported (found without importing it); transformers needs it for
    any ``device_map``."""
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def check_device(spec: ModelSpec) -> None:
    """``device: auto`` spreads the model over the GPUs through accelerate: missing, it is a
    configuration error before anything loads (ValueError naming the key), not a failure at load."""
    if spec.device == "auto" and not accelerate_installed():
        raise ValueError('device: auto needs the accelerate package: pip install "pytest-arena[gpu]" '
                         "(or name one device, such as cuda or cuda:1)")


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class ChatPrompts:
    """How a conversation becomes prompt text, shared by the generators of every backend so all of them
    prompt a checkpoint alike. Needs ``spec``, ``tokenizer`` and ``chat_template_missing``."""

    @property
    def uses_chat_template(self) -> bool:
        """Prompts are rendered with the tokenizer's chat template (which holds its own special tokens)."""
        return self.spec.use_chat_template and not self.chat_template_missing

    def render(self, messages: list[dict]) -> str:
        """The prompt text for a conversation: the chat template, or the plain question."""
        if self.uses_chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # Base models see the conversation as plain text; a single question is just its text.
        if len(messages) == 1:
            return messages[0]["content"]
        return "\n\n".join(m["content"] for m in messages) + "\n\n"


class TransformersGenerator(ChatPrompts):
    def __init__(self, spec: ModelSpec):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.spec = spec
        self.device = pick_device(spec.device)
        started = time.perf_counter()
        common = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code)
        if spec.gguf_file:
            common["gguf_file"] = spec.gguf_file
        self.tokenizer = AutoTokenizer.from_pretrained(spec.path, **common)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            # Padding positions are masked out, so any token serves; eos is the usual stand-in.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if spec.precision == "auto" else getattr(torch, spec.precision)
        if self.device == "auto" or accelerate_installed():
            # Straight onto the device(s): loading on the host first would need host memory the model's size.
            self.model = AutoModelForCausalLM.from_pretrained(spec.path, dtype=dtype, device_map=self.device, **common)
            self.device = str(self.model.device) if self.device == "auto" else self.device
        else:  # transformers places weights itself only with accelerate
            self.model = AutoModelForCausalLM.from_pretrained(spec.path, dtype=dtype, **common).to(self.device)
        self.model.eval()
        self.generation_config = generation_config_for(spec)
        if self.generation_config.pad_token_id is None:
            self.generation_config.pad_token_id = self.tokenizer.pad_token_id
        self.load_seconds = time.perf_counter() - started
        self.chat_template_missing = spec.use_chat_template and not getattr(self.tokenizer, "chat_template", None)

    def generate(self, conversations: list[list[dict]], seed: int) -> list[GeneratedText]:
        """Answers for each conversation (its last message is the user's), batched."""
        return self.generate_prompts([self.render(c) for c in conversations], seed)

    def generate_prompts(self, rendered: list[str], seed: int) -> list[GeneratedText]:
        """Continuations of prompts that are already rendered (see ``render``), batched."""
        import torch

        torch.manual_seed(seed)
        results: list[GeneratedText] = []
        size = self.spec.batch_size
        for start in range(0, len(rendered), size):
            prompts = rendered[start:start + size]
            # Chat templates already contain the special tokens they need.
            add_special = not self.uses_chat_template
            batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special)
            batch = {k: v.to(self.model.device) for k, v in batch.items()}
            with torch.inference_mode():
                # The tokenizer lets generate() find stop_strings in the text, whatever tokens spell them.
                output = self.model.generate(**batch, generation_config=self.generation_config,
                                             tokenizer=self.tokenizer)
            prompt_width = batch["input_ids"].shape[1]
            for row, mask in zip(output, batch["attention_mask"]):
                new_tokens = row[prompt_width:]
                pad = self.generation_config.pad_token_id
                eos = self.generation_config.eos_token_id
                eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
                produced = int(sum(1 for t in new_tokens.tolist() if t != pad and t not in eos_ids))
                text = cut_at_stop(self.tokenizer.decode(new_tokens, skip_special_tokens=True),
                                   self.generation_config.stop_strings).strip()
                results.append(GeneratedText(text, int(mask.sum()), produced))
        return results

    def close(self) -> None:
        """Release the model so the next one fits: drop every reference, then free cached GPU memory."""
        import torch

        self.model = None
        self.tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
