"""The local judge: a Hugging Face checkpoint run with ``transformers``, for users with GPUs and no API
budget, and for the offline demo.

It is asked exactly like the OpenAI-compatible judge (same templates, same parsers) and gives its
verdict in one of four ways, chosen by ``reviews_gen.reviewer.args.verdict``:

* ``text``: it writes a review (greedy, or sampled when the judge temperature is > 0) that the
  configured parser reads, like any judge's reply;
* ``probability``: nothing is generated. The prompt is followed by the start of a verdict (e.g.
  ``Final verdict: [[``) and one forward pass reads the next-token probabilities of the verdict labels.
  The reply is a synthetic line the parser reads, e.g.
  ``Verdict from label probabilities: A 0.412, B 0.351, C 0.237 -> [[A]]``, so even a small judge
  that cannot follow the format always yields a verdict;
* ``text_or_probability`` (default): the review is written; when the parser cannot read a verdict in
  it, the probability verdict -- conditioned on the review -- is appended on a line of its own, so the
  record keeps both and the parser reads the final verdict.
* ``likelihood`` (pairwise modes only): no prompt about the answers at all. The judge model reads each
  answer as its own reply to the question (the conversation in its chat template) and the answer
  with the higher mean log-probability per token wins; means equal as float32 are a tie. The
  reply is a line the parser reads, e.g. ``Mean log-probability per answer token: A -1.234 (32 tokens),
  B -3.456 (32 tokens) -> [[A]]``. It is a fluency check, not a reading of the content: it catches
  a candidate that writes gibberish, drifts off language or degenerates, which a judge too small to
  follow a rubric (the offline demo's 135M model) cannot otherwise see; it cannot tell a correct
  answer from a fluent wrong one, and it favours bland, repetitive text. Two forward passes per
  judgment over short rows, so it is the cheapest verdict on a CPU.

How each works lives beside it: :mod:`.verdict_labels` (probability verdicts: the labels per parser
and format, scored exactly over their tokens), :mod:`.likelihood` (likelihood verdicts) and
:mod:`.batcher` (concurrent calls gathered into batches of up to the checkpoint's ``batch_size``;
the leader waits up to ``MAX_WAIT_SECONDS`` for a batch to fill, never for one that never fills).
"""

from __future__ import annotations

import inspect
import threading

from ..config import LOCAL_VERDICTS, JudgeSpec
from .batcher import Batcher
from .likelihood import answer_rows, likelihood_line, log_likelihoods, mean_log_probability
from .openai_judge import JudgeCallError, JudgeReply
from .parsers import VerdictParseError, parse_verdict
from .verdict_labels import (
    AB_LABELS, ARENA_HARD_LABELS, RATING_LABELS, LabelQuery, VerdictLabels, label_probabilities, label_query,
    read_label_distributions, verdict_labels, verdict_line,
)

VERDICTS = LOCAL_VERDICTS  # the one list, config.specs
#: the parsers whose formats a synthetic verdict line can be written in
PROBABILITY_PARSERS = ("lmsys_parser", "arena_hard_parser")
#: how long the leader of a batch waits for more concurrent calls to join it
MAX_WAIT_SECONDS = 0.02

__all__ = ["AB_LABELS", "ARENA_HARD_LABELS", "MAX_WAIT_SECONDS", "PROBABILITY_PARSERS", "RATING_LABELS", "VERDICTS",
           "LocalJudge", "VerdictLabels", "likelihood_line", "verdict_labels", "verdict_line"]


class LocalJudge:
    """A transformers checkpoint as the judge; ``complete`` is safe to call from many threads."""

    def __init__(self, spec: JudgeSpec):
        from ..generation.transformers_backend import TransformersGenerator

        if spec.checkpoint is None:
            raise ValueError("the local judge needs a checkpoint (reviews_gen.reviewer.args.model_id_or_path)")
        if spec.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {spec.verdict!r}")
        if spec.verdict in ("probability", "likelihood") and spec.fn_completion_parser not in PROBABILITY_PARSERS:
            raise ValueError(f"{spec.verdict} verdicts support {' and '.join(PROBABILITY_PARSERS)}, "
                             f"not {spec.fn_completion_parser}")
        self.spec = spec
        # (its max_tokens bounds each review: the config gave its checkpoint GenerationSettings.for_judge)
        self.generator = TransformersGenerator(spec.checkpoint)
        forward = inspect.signature(self.generator.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in forward
        # Fast tokenizers are not safe to use from several threads at once (padding settings are
        # shared state), and the model runs one batch at a time.
        self._tokenizer_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._closed = False
        #: batches run through the model (generation or forward passes), for tests and logs
        self.batches_run = 0
        batch_size = spec.checkpoint.batch_size
        alone = spec.max_concurrency <= 1 or batch_size <= 1  # nobody to wait for
        self._batcher = Batcher(self._run_batch, batch_size, 0.0 if alone else MAX_WAIT_SECONDS)

    # -- the interface shared with OpenAIJudge

    def complete(self, system_prompt: str, prompt: str, output_format: str | None = None) -> JudgeReply:
        """The judge's reply to one prompt; ``output_format`` is the template's (``[[A]]``, ...).

        Probability verdicts need it; a text verdict without it is returned without a fallback.
        Errors of the model are JudgeCallErrors; a format that cannot have a probability verdict is
        a ValueError (a configuration error), except ``[[rating_a,rating_b]]`` (module docstring).
        """
        if self._closed:
            raise JudgeCallError("the local judge is closed")
        rendered = self.render(system_prompt, prompt)
        if self.spec.verdict == "probability":
            labels = verdict_labels(self.spec.fn_completion_parser, output_format)
            prompt_tokens = self._count_tokens(rendered)
            line = self._probability_verdict(rendered, labels)
            return JudgeReply(line, "stop", prompt_tokens, 0)
        generated = self._batcher.submit("generate", rendered)
        finish = "length" if generated.completion_tokens >= self.spec.max_tokens else "stop"
        reply = JudgeReply(generated.text, finish, generated.prompt_tokens, generated.completion_tokens)
        if self.spec.verdict == "text" or output_format is None or self._readable(reply.text, output_format):
            return reply
        try:
            labels = verdict_labels(self.spec.fn_completion_parser, output_format)
        except (ValueError, JudgeCallError):
            return reply  # no probability verdict in this format: the parser reports the text as it is
        # The verdict follows the judge's own review, as if it had gone on to write it.
        try:
            line = self._probability_verdict(rendered + generated.text + "\n\n", labels)
        except ValueError:
            return reply  # this tokenizer cannot tell the labels apart: the text is all there is
        text = line
        if generated.text:
            for separator in ("\n", "\n\n"):  # a blank line keeps the verdict out of a quoted menu
                text = generated.text + separator + line
                if self._readable(text, output_format):
                    break
        return JudgeReply(text, finish, generated.prompt_tokens, generated.completion_tokens)

    def compare(self, question: tuple[str, ...], answer_a: tuple[str, ...], answer_b: tuple[str, ...],
                output_format: str | None = None) -> JudgeReply:
        """The likelihood verdict on two answers (turn by turn) to a question (module docstring)."""
        if self._closed:
            raise JudgeCallError("the local judge is closed")
        labels = verdict_labels(self.spec.fn_completion_parser, output_format)
        if labels.kind != "choice":
            raise ValueError("likelihood verdicts compare two answers: they need a pairwise template")
        rows_a, rows_b = self._answer_rows(question, answer_a), self._answer_rows(question, answer_b)
        scored = self._batcher.submit("likelihood", rows_a + rows_b)
        sides = [mean_log_probability(scored[:len(rows_a)]), mean_log_probability(scored[len(rows_a):])]
        prompt_tokens = sum(len(context) + len(target) for context, target in rows_a + rows_b)
        return JudgeReply(likelihood_line(labels, sides), "stop", prompt_tokens, 0)

    def close(self) -> None:
        """Release the model (and its GPU memory); later calls fail with JudgeCallError."""
        with self._model_lock:
            if self._closed:
                return
            with self._tokenizer_lock:
                self._closed = True
                self.generator.close()

    # -- prompts

    def render(self, system_prompt: str, prompt: str) -> str:
        """The judge's prompt: its chat template with a generation prompt, or ``system\\n\\nprompt\\n\\n``."""
        if not self.generator.uses_chat_template:
            return "\n\n".join(part for part in (system_prompt, prompt) if part) + "\n\n"
        messages = [{"role": "user", "content": prompt}]
        if not system_prompt:
            return self.generator.render(messages)
        try:
            return self.generator.render([{"role": "system", "content": system_prompt}] + messages)
        except Exception:  # noqa: BLE001 - templates without a system role (e.g. Gemma's) refuse one
            return self.generator.render([{"role": "user", "content": f"{system_prompt}\n\n{prompt}"}])

    def _readable(self, text: str, output_format: str) -> bool:
        """The configured parser finds a verdict in ``text`` (or cannot be helped by a fallback)."""
        try:
            parse_verdict(self.spec.fn_completion_parser, text, output_format)
        except VerdictParseError:
            return False
        except (ValueError, KeyError):
            return True  # a configuration problem; the runner's own parse reports it
        return True

    def _encode(self, texts: list[str]) -> tuple[list[list[int]], set[int]]:
        with self._tokenizer_lock:
            if self._closed:
                raise JudgeCallError("the local judge is closed")
            tokenizer = self.generator.tokenizer
            encoded = tokenizer(texts, add_special_tokens=not self.generator.uses_chat_template)["input_ids"]
            specials = set(tokenizer.all_special_ids)
        return [list(ids) for ids in encoded], specials

    def _count_tokens(self, rendered: str) -> int:
        (ids,), _ = self._encode([rendered])
        return len(ids)

    # -- likelihood verdicts

    def _answer_rows(self, question: tuple[str, ...], answer: tuple[str, ...]) -> list[tuple[list[int], list[int]]]:
        """(context, answer tokens) per turn: the conversation so far, rendered as the judge's own
        prompt, then the answer's turn as the reply it would score."""
        messages: list[dict] = []
        texts = []
        for asked, answered in zip(question, answer):
            messages.append({"role": "user", "content": asked})
            # The prompt the candidate itself would have seen, so the answer is scored as its reply.
            context = self.generator.render(messages)
            texts += [context, context + answered]
            messages.append({"role": "assistant", "content": answered})
        return answer_rows(*self._encode(texts))

    # -- probability verdicts

    def _probability_verdict(self, rendered: str, labels: VerdictLabels) -> str:
        query = self.plan_labels(rendered + labels.prefix, labels.labels)
        distributions = self._batcher.submit("probability", query)
        return verdict_line(labels, label_probabilities(query, distributions))

    def plan_labels(self, context_text: str, labels: tuple[str, ...]) -> LabelQuery:
        """The reads a probability verdict on ``labels`` after ``context_text`` needs (the trie of the
        labels' tokens, as this judge's tokenizer splits them)."""
        return label_query(*self._encode([context_text] + [context_text + label for label in labels]))

    # -- running batches

    def _run_batch(self, kind: str, payloads: list) -> list:
        with self._model_lock:
            if self._closed:
                raise JudgeCallError("the local judge is closed")
            self.batches_run += 1
            if kind == "generate":
                with self._tokenizer_lock:  # generation pads and decodes with the shared tokenizer
                    return self.generator.generate_prompts(payloads, seed=self.spec.random_seed)
            if kind == "likelihood":
                return log_likelihoods(self.generator.model, self._pad_token, payloads, self._keeps_logits)
            return self.read_labels(payloads)

    def read_labels(self, queries: list[LabelQuery]) -> list[list[dict[int, float]]]:
        """Run a batch of probability verdicts through the model: one forward pass over every row."""
        return read_label_distributions(self.generator.model, self._pad_token, queries, self._keeps_logits)

    @property
    def _pad_token(self) -> int:
        return self.generator.generation_config.pad_token_id or 0
