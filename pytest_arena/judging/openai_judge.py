"""The OpenAI-compatible judge: GPT-4 or any server that speaks the chat-completions API.

The call itself is ``pytest_arena.openai_chat.chat`` (shared with API-served candidate models): retries
(429 with Retry-After, 5xx, connection errors, timeouts) and their exponential backoff are the official
``openai`` client's own, configured by ``max_retries`` and ``timeout``. The API key is read from the
environment variable the config names and is held only by the client.
"""

from __future__ import annotations

import os

from ..config import JudgeSpec
from ..openai_chat import ChatCallError, ChatReply, chat
from ..redact import url_secret_problem
from ..replicas import ReplicaSet

# One class each, under the judge's names too: local judges raise JudgeCallError and the runner catches
# it, so an error from chat() must be the same class, not a sibling.
JudgeReply = ChatReply
JudgeCallError = ChatCallError


def missing_credentials(spec: JudgeSpec) -> str | None:
    """Why this judge cannot be called, or None: checked before anything is loaded."""
    if not os.environ.get(spec.api_key_env):
        return (f"the judge needs an API key in the environment variable {spec.api_key_env} "
                f"(set it, or set reviews_gen.reviewer.args.api_key_env to the variable that holds it)")
    # Without base_url the openai client reads OPENAI_BASE_URL: the config's rule holds for it too.
    env_url = os.environ.get("OPENAI_BASE_URL") if spec.base_url is None else None
    problem = url_secret_problem(env_url) if env_url else None
    if env_url and not problem and not env_url.strip().lower().startswith(("http://", "https://")):
        problem = "is not a URL starting with http:// or https://"
    if problem:
        return f"the environment variable OPENAI_BASE_URL (the judge's URL, as no base_url is set) {problem}"
    return None


class OpenAIJudge:
    def __init__(self, spec: JudgeSpec):
        self.spec = spec
        # MatchJudge calls from a pool of max_concurrency threads: a client each (see ThreadClients), per
        # replica when base_url lists several (see ReplicaSet).
        self.replicas = ReplicaSet.of_threads(spec.urls, spec.api_key_env, spec.max_retries, spec.timeout)

    def complete(self, system_prompt: str, prompt: str, output_format: str = "") -> JudgeReply:
        """One chat completion; ``output_format`` is for judges that read label probabilities."""
        messages = [{"role": "user", "content": prompt}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return self.replicas.call(
            lambda client: chat(client, self.spec.model, messages, self.spec.temperature, self.spec.max_tokens))

    def close(self) -> None:
        self.replicas.close()
