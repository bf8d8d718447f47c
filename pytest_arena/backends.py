"""What a backend must offer (``Generator``, ``Judge``), and which class serves each name.

The registry maps a name to a ``"module:Class"`` string and imports the module on the first lookup
(as lm-evaluation-harness does), so importing this file costs nothing and a run that never loads a
model never imports torch, vLLM or openai. A new backend is one line here (and its module).

Candidates behind an OpenAI-compatible server (``api:``) are not generators: their server answers
(``generation.api_backend.ServedModel``), and no model loads in this process.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol


class Generator(Protocol):
    """A loaded candidate model (``generation.answers.ModelAnswers.generate`` drives it)."""

    spec: object  # its ModelSpec: the batch size comes from it
    chat_template_missing: bool
    load_seconds: float
    device: str

    def generate(self, conversations: list[list[dict]], seed: int) -> list: ...  # GeneratedText each

    def close(self) -> None: ...  # releases the model (and its memory)


class Judge(Protocol):
    """What ``judging.match_judge.MatchJudge`` asks (a local judge also offers ``compare``)."""

    def complete(self, system_prompt: str, prompt: str, output_format: str = ""): ...  # a JudgeReply

    def close(self) -> None: ...


@dataclass(frozen=True)
class Backend:
    target: str  # "module:Class"
    converts_gguf: bool  # the class takes a loadable checkpoint: a GGUF file is converted first
    loading: str = ""  # how the progress line names the load

    def load(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


GENERATORS = {
    "transformers": Backend("pytest_arena.generation.transformers_backend:TransformersGenerator", converts_gguf=True),
    "vllm": Backend("pytest_arena.generation.vllm_backend:VllmGenerator", converts_gguf=False, loading=" with vLLM"),
}

JUDGES = {
    "local": Backend("pytest_arena.judging.local_judge:LocalJudge", converts_gguf=True),
    "openai": Backend("pytest_arena.judging.openai_judge:OpenAIJudge", converts_gguf=False),
}


def generator_backend(spec) -> Backend:
    """The backend of a candidate ModelSpec (its ``backend`` key)."""
    return GENERATORS[spec.backend]


def judge_backend(spec) -> Backend:
    """The backend of the JudgeSpec: a local checkpoint, or an OpenAI-compatible API."""
    return JUDGES["local" if spec.is_local else "openai"]
