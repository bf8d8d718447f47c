"""The OpenAI-compatible judge: GPT-4 or any server that speaks the chat-completions API.

Retries (429 with Retry-After, 5xx, connection errors, timeouts) and their exponential backoff are the
official ``openai`` client's own, configured by ``max_retries`` and ``timeout``. The API key is read
from the environment variable the config names and is held only by the client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import JudgeSpec


@dataclass(frozen=True)
class JudgeReply:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class JudgeCallError(Exception):
    """The judge gave no usable reply, after the client's retries."""


def missing_credentials(spec: JudgeSpec) -> str | None:
    """Why this judge cannot be called, or None: checked before anything is loaded."""
    if not os.environ.get(spec.api_key_env):
        return (f"the judge needs an API key in the environment variable {spec.api_key_env} "
                f"(set it, or set reviews_gen.reviewer.args.api_key_env to the variable that holds it)")
    return None


class OpenAIJudge:
    def __init__(self, spec: JudgeSpec):
        import openai

        self.spec = spec
        self.client = openai.OpenAI(
            api_key=os.environ[spec.api_key_env],
            base_url=spec.base_url,  # None: the client reads OPENAI_BASE_URL, else api.openai.com
            max_retries=spec.max_retries,
            timeout=spec.timeout,
        )

    def complete(self, system_prompt: str, prompt: str, output_format: str = "") -> JudgeReply:
        """One chat completion; ``output_format`` is for judges that read label probabilities."""
        messages = [{"role": "user", "content": prompt}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        try:
            response = self.client.chat.completions.create(
                model=self.spec.model,
                messages=messages,
                temperature=self.spec.temperature,
                max_tokens=self.spec.max_tokens,
            )
        except Exception as exc:  # noqa: BLE001 - any failure of one call fails that judgment only
            # The client has already retried what is worth retrying; a body that is not JSON
            # surfaces as a plain ValueError, not an openai error, and must not crash the pool.
            raise JudgeCallError(f"{type(exc).__name__}: {_short(str(exc))}") from None
        if not getattr(response, "choices", None):
            raise JudgeCallError("the judge's reply has no choices")
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return JudgeReply(
            text=(choice.message.content or "") if choice.message else "",
            finish_reason=choice.finish_reason,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    def close(self) -> None:
        self.client.close()


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
