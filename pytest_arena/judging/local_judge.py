"""The local judge: a Hugging Face checkpoint run with ``transformers``, for users with GPUs and no API
budget, and for the offline demo.

It is asked exactly like the OpenAI-compatible judge (same templates, same parsers) and gives its
verdict in one of three ways, chosen by ``reviews_gen.reviewer.args.verdict``:

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
  with the higher mean log-probability per token wins; equal to the three decimals shown is a tie. The
  reply is a line the parser reads, e.g. ``Mean log-probability per answer token: A -1.234 (32 tokens),
  B -3.456 (32 tokens) -> [[A]]``. It is a fluency check, not a reading of the content: it catches
  a candidate that writes gibberish, drifts off language or degenerates, which a judge too small to
  follow a rubric (the offline demo's 135M model) cannot otherwise see; it cannot tell a correct
  answer from a fluent wrong one, and it favours bland, repetitive text. Two forward passes per
  judgment over short rows, so it is the cheapest verdict on a CPU.

Probability verdicts, per parser and output format:

* ``lmsys_parser`` + ``[[A]]``: labels ``A``, ``B``, ``C`` after ``Final verdict: [[``; the most probable
  label wins, an exact tie between the best labels is a tie (``C``).
* ``lmsys_parser`` + ``[[rating]]``: labels ``1`` ... ``10`` after ``Rating: [[``; the reply carries the
  expected rating, rounded to one decimal (``[[7.3]]``), with the distribution in the text.
* ``arena_hard_parser``: labels ``A>>B``, ``A>B``, ``A=B``, ``B>A``, ``B>>A`` after
  ``My final verdict is: [[``; the most probable label wins, an exact tie is ``A=B``.
* ``[[rating_a,rating_b]]`` is not supported (a JudgeCallError for that call), nor is ``ranking_parser``
  (a ValueError when the judge is built).

Labels that span several tokens (``10`` is often ``1`` + ``0``; ``A>>B`` is ``A`` + ``>`` + ...) are
scored exactly, not by their first token alone: each label's token sequence is found by tokenizing
the prompt with and without it (so the split is the tokenizer's own, whatever it merges), and the
labels form a trie. A label's probability is the product, along its path until it differs from every
other label, of the next token's probability normalised over the tokens that lead to a label -- the
probability of the label under decoding constrained to the labels. A label that is a prefix of
another (``1`` of ``10``) takes every continuation but the others' (``P(1) * (1 - P(0 | 1))``), so
the mass of ``10`` is never counted as a rating of 1; when the tokenizer has a single token for
``10`` it is simply a label of its own. The reads a trie needs come from one forward pass: a node's
distribution is read at its position in a row that runs through it (``[[A]]`` and ``1``...``10`` need
one row per prompt, arena-hard labels two -- one through ``A``, one through ``B``).

Concurrent ``complete`` calls (the judge pool's threads) are gathered into batches of up to the
checkpoint's ``batch_size``: the first waiting caller leads -- it waits up to ``MAX_WAIT_SECONDS`` for
the batch to fill, runs it for everyone, and hands the results back -- while the others wait; then
the next caller still waiting leads. A caller alone waits at most that long, never for a batch that
never fills. The model runs one batch at a time. A failing batch is retried prompt by prompt, so an
error reaches only the calls it belongs to, as a ``JudgeCallError``.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import JudgeSpec
from .openai_judge import JudgeCallError, JudgeReply
from .parsers import VerdictParseError, parse_verdict

VERDICTS = ("text", "probability", "text_or_probability", "likelihood")
#: the parsers whose formats a synthetic verdict line can be written in
PROBABILITY_PARSERS = ("lmsys_parser", "arena_hard_parser")
#: how long the leader of a batch waits for more concurrent calls to join it
MAX_WAIT_SECONDS = 0.02
#: likelihood verdicts need full logits (rows x width x vocabulary floats): at most this much at once
LOGITS_BUDGET_BYTES = 1 << 28


@dataclass(frozen=True)
class VerdictLabels:
    """How a probability verdict is asked for and written for one output format."""

    kind: str  # "choice" (the most probable label wins) or "rating" (the expected rating)
    prefix: str  # the start of the assistant's verdict; the labels follow it
    labels: tuple[str, ...]
    tie: str | None = None  # the label an exact tie between the best labels becomes


AB_LABELS = VerdictLabels("choice", "Final verdict: [[", ("A", "B", "C"), tie="C")
RATING_LABELS = VerdictLabels("rating", "Rating: [[", tuple(str(i) for i in range(1, 11)))
ARENA_HARD_LABELS = VerdictLabels(
    "choice", "My final verdict is: [[", ("A>>B", "A>B", "A=B", "B>A", "B>>A"), tie="A=B"
)


def verdict_labels(parser: str, output_format: str | None) -> VerdictLabels:
    """The labels of a probability verdict for this parser and output format.

    Raises ValueError for a combination no probability verdict exists for (a configuration error)
    and JudgeCallError for ``[[rating_a,rating_b]]``, which this judge cannot score in one pass.
    """
    if output_format is None:
        raise ValueError("probability verdicts need the prompt template's output_format")
    key = "".join(output_format.split()).lower()
    if key == "[[rating_a,rating_b]]":
        raise JudgeCallError(
            "probability verdicts do not support output_format '[[rating_a,rating_b]]' (two ratings in "
            "one reply); use verdict: text, or single-answer '[[rating]]' templates"
        )
    if parser == "arena_hard_parser":
        if key == "[[rating]]":
            raise ValueError("arena_hard_parser gives pairwise verdicts and cannot read output_format '[[rating]]'")
        return ARENA_HARD_LABELS
    if parser == "lmsys_parser":
        if key == "[[a]]":
            return AB_LABELS
        if key == "[[rating]]":
            return RATING_LABELS
    raise ValueError(
        f"probability verdicts support lmsys_parser with output_format '[[A]]' or '[[rating]]' and "
        f"arena_hard_parser; got {parser} with output_format {output_format!r}"
    )


# --------------------------------------------------------------------------------------------------
# Scoring labels: the trie of their token sequences after the verdict prefix


@dataclass
class _LabelQuery:
    """One prompt's probability verdict, planned: the rows to run and how labels are scored."""

    rows: list[list[int]]  # token ids; every row starts with the same context
    reads: list[tuple[int, int]]  # (row, position) whose next-token distribution is needed
    read_tokens: list[set[int]]  # per read: the token ids whose probabilities are needed
    # per label: factors (read, token) multiplied, and complements (read, tokens): 1 - their sum
    factors: list[list[tuple[int, int]]]
    complements: list[list[tuple[int, tuple[int, ...]]]]


def _plan_query(context: list[int], sequences: list[list[int]]) -> _LabelQuery:
    """Plan the reads for labels with these token sequences after ``context``."""
    if not context:
        raise ValueError("a probability verdict needs a non-empty prompt")
    as_tuples = [tuple(s) for s in sequences]
    if any(not s for s in as_tuples) or len(set(as_tuples)) != len(as_tuples):
        raise ValueError("the verdict labels are not distinguishable with this tokenizer")
    paths: dict[tuple[int, ...], int] = {}  # node path -> read index
    factors: list[list[tuple[int, int]]] = []
    complements: list[list[tuple[int, tuple[int, ...]]]] = []

    def read_at(path: tuple[int, ...]) -> int:
        return paths.setdefault(path, len(paths))

    for seq in as_tuples:
        others = [o for o in as_tuples if o != seq]
        mine: list[tuple[int, int]] = []
        for depth in range(len(seq)):
            mine.append((read_at(seq[:depth]), seq[depth]))
            if not any(o[:depth + 1] == seq[:depth + 1] for o in others):
                break  # unique from here on: the rest of the label is implied
        else:
            # the whole label is a prefix of others (`1` of `10`): it is this label only if none of
            # their continuations follows
            follow = tuple(sorted({o[len(seq)] for o in others if len(o) > len(seq) and o[:len(seq)] == seq}))
            complements.append([(read_at(seq), follow)])
            factors.append(mine)
            continue
        complements.append([])
        factors.append(mine)
    # rows: the node paths that no other needed path extends
    ends = [p for p in paths if not any(len(q) > len(p) and q[:len(p)] == p for q in paths)]
    rows = [list(context) + list(p) for p in ends]
    reads: list[tuple[int, int]] = [(0, 0)] * len(paths)
    for path, index in paths.items():
        row = next(i for i, end in enumerate(ends) if end[:len(path)] == path)
        reads[index] = (row, len(context) + len(path) - 1)
    read_tokens: list[set[int]] = [set() for _ in paths]
    for label_factors, label_complements in zip(factors, complements):
        for read, token in label_factors:
            read_tokens[read].add(token)
        for read, tokens in label_complements:
            read_tokens[read].update(tokens)
    return _LabelQuery(rows, reads, read_tokens, factors, complements)


def _label_probabilities(query: _LabelQuery, distributions: list[dict[int, float]]) -> list[float]:
    """The labels' probabilities, from the log-probabilities read for ``query``.

    At each trie node the next token is normalised over the tokens that lead to a label (the model
    is asked *which* label, not whether it writes one), so a label that is told apart after one
    token is not favoured over one that needs three. Where a label ends and others go on (``1`` of
    ``10``), that label takes every continuation but the others' (``1 - P(0 | 1)``).
    """
    ending = {read for label in query.complements for read, _ in label}
    log_norm = {}
    for read, tokens in enumerate(query.read_tokens):
        if read not in ending:
            log_norm[read] = _logsumexp([distributions[read][t] for t in tokens])
    scores = []
    for label_factors, label_complements in zip(query.factors, query.complements):
        score = 0.0
        for read, token in label_factors:
            score += distributions[read][token] - log_norm.get(read, 0.0)
        for read, tokens in label_complements:
            rest = 1.0 - sum(math.exp(distributions[read][t]) for t in tokens)
            score += math.log(rest) if rest > 0 else -math.inf
        scores.append(score)
    if not all(math.isfinite(v) or v == -math.inf for v in scores) or max(scores) == -math.inf:
        raise JudgeCallError("the judge gave its verdict labels no probability (non-finite scores)")
    top = max(scores)
    weights = [math.exp(v - top) for v in scores]
    total = sum(weights)
    return [w / total for w in weights]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if not math.isfinite(top):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def verdict_line(labels: VerdictLabels, probabilities: list[float]) -> str:
    """The synthetic, human-readable reply of a probability verdict, in the format the parser reads."""
    shown = ", ".join(f"{label} {p:.3f}" for label, p in zip(labels.labels, probabilities))
    if labels.kind == "rating":
        expected = sum(float(label) * p for label, p in zip(labels.labels, probabilities))
        return f"Rating from label probabilities: {shown} -> expected rating [[{expected:.1f}]]"
    best = max(probabilities)
    winners = [label for label, p in zip(labels.labels, probabilities) if p == best]
    winner = winners[0] if len(winners) == 1 else labels.tie
    return f"Verdict from label probabilities: {shown} -> [[{winner}]]"


# --------------------------------------------------------------------------------------------------
# Batching concurrent calls


@dataclass(eq=False)
class _Request:
    kind: str
    payload: Any
    arrived: float = field(default_factory=time.monotonic)
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class _Batcher:
    """Gathers concurrent calls into batches; a waiting caller leads (runs) each batch.

    ``run(kind, payloads)`` returns one result per payload. Only requests of one kind share a batch
    (the kind of the oldest waiting request goes first), at most ``max_batch`` of them; the leader
    waits until the oldest request has waited ``max_wait`` seconds or the batch is full.
    """

    def __init__(self, run: Callable[[str, list], list], max_batch: int, max_wait: float):
        self._run = run
        self._max_batch = max(1, max_batch)
        self._max_wait = max_wait
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False

    def submit(self, kind: str, payload: Any) -> Any:
        request = _Request(kind, payload)
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
            try:
                while not request.done:
                    if self._leading:
                        self._cond.wait()
                        continue
                    self._lead()
            except BaseException:
                if request in self._queue:  # interrupted before its batch ran: nobody runs it now
                    self._queue.remove(request)
                raise
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self) -> None:
        """Gather one batch and run it, with the lock held on entry and exit (not while running)."""
        self._leading = True
        taken: list[_Request] = []
        try:
            first = self._queue[0]
            deadline = first.arrived + self._max_wait
            while True:
                batch = [r for r in self._queue if r.kind == first.kind][: self._max_batch]
                remaining = deadline - time.monotonic()
                if len(batch) >= self._max_batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            for request in batch:
                self._queue.remove(request)
            taken = batch
            self._cond.release()
            try:
                self._execute(first.kind, taken)
            finally:
                self._cond.acquire()
        finally:
            for request in taken:
                if not request.done:  # only when running was interrupted
                    request.error = JudgeCallError("the judge was interrupted")
                    request.done = True
            self._leading = False
            self._cond.notify_all()

    def _execute(self, kind: str, batch: list[_Request]) -> None:
        try:
            results = self._run(kind, [r.payload for r in batch])
        except Exception as exc:  # noqa: BLE001 - reported to the calls of this batch
            if len(batch) == 1:
                batch[0].error = _as_call_error(exc)
                batch[0].done = True
                return
            # One bad prompt (too long, say) must not fail the others: run them one by one.
            for request in batch:
                self._execute(kind, [request])
            return
        for request, result in zip(batch, results):
            request.result = result
            request.done = True


def _as_call_error(exc: BaseException) -> JudgeCallError:
    if isinstance(exc, JudgeCallError):
        return exc
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:300] + "..."
    # Not chained: the original's traceback would keep the batch's tensors (and the model) alive.
    return JudgeCallError(f"{type(exc).__name__}: {text}")


# --------------------------------------------------------------------------------------------------
# The judge


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
        self.generator = TransformersGenerator(spec.checkpoint)
        # The judge's max_tokens bounds its reviews, whatever the checkpoint's own defaults say.
        self.generator.generation_config.max_new_tokens = spec.max_tokens
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
        self._batcher = _Batcher(self._run_batch, batch_size, 0.0 if alone else MAX_WAIT_SECONDS)

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
        sides = [_mean_log_probability(scored[:len(rows_a)]), _mean_log_probability(scored[len(rows_a):])]
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
            texts.append((context, answered))
            messages.append({"role": "assistant", "content": answered})
        encoded, specials = self._encode([t for context, answered in texts for t in (context, context + answered)])
        rows = []
        for i in range(len(texts)):
            # An end-of-text token a plain-text tokenizer appends belongs to neither part.
            context, full = (_strip_trailing(ids, specials) for ids in encoded[2 * i:2 * i + 2])
            # The answer is what tokenizing it after the context adds (the tokenizer's own split).
            start = _common_prefix(context, full)
            rows.append((full[:start], full[start:]))
        return rows

    # -- probability verdicts

    def _probability_verdict(self, rendered: str, labels: VerdictLabels) -> str:
        query = self._plan(rendered + labels.prefix, labels.labels)
        distributions = self._batcher.submit("probability", query)
        return verdict_line(labels, _label_probabilities(query, distributions))

    def _plan(self, context_text: str, labels: tuple[str, ...]) -> _LabelQuery:
        """Each label's tokens are what tokenizing the context with the label adds to it."""
        encoded, specials = self._encode([context_text] + [context_text + label for label in labels])
        # Special tokens a plain-text tokenizer appends (an EOS) are not part of anything we compare.
        trailing = 0
        context = encoded[0]
        while trailing < len(context) and context[len(context) - 1 - trailing] in specials:
            trailing += 1
        context = context[:len(context) - trailing]
        sequences = []
        for ids in encoded[1:]:
            if trailing and ids[-trailing:] == encoded[0][-trailing:]:
                ids = ids[:-trailing]
            sequences.append(ids)
        # The labels start where the first of them leaves the context; a tokenizer that merges the
        # label with the end of the prefix (`[[A` as one token) moves that point back.
        start = min(_common_prefix(context, ids) for ids in sequences)
        return _plan_query(context[:start], [ids[start:] for ids in sequences])

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
                return self._log_likelihoods(payloads)
            return self._forward(payloads)

    def _log_likelihoods(self, calls: list[list[tuple[list[int], list[int]]]]) -> list[list[tuple[float, int]]]:
        """For each call's rows (context, target): the target's summed log-probability and length."""
        import torch

        model = self.generator.model
        rows = [row for call in calls for row in call]
        results: list[tuple[float, int]] = []
        pad = self.generator.generation_config.pad_token_id or 0
        vocab = model.get_output_embeddings().weight.shape[0]
        width = max(len(c) + len(t) for c, t in rows)
        chunk = max(1, LOGITS_BUDGET_BYTES // max(1, width * vocab * 4))
        for first in range(0, len(rows), chunk):
            part = rows[first:first + chunk]
            part_width = max(len(c) + len(t) for c, t in part)
            input_ids = torch.full((len(part), part_width), pad, dtype=torch.long)
            attention_mask = torch.zeros((len(part), part_width), dtype=torch.long)
            for i, (context, target) in enumerate(part):
                ids = context + target
                input_ids[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[i, :len(ids)] = 1
            with torch.inference_mode():
                logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                               use_cache=False).logits
                for i, (context, target) in enumerate(part):
                    if not target or not context:
                        results.append((0.0, 0))
                        continue
                    # The logits at position p predict token p + 1.
                    span = logits[i, len(context) - 1:len(context) + len(target) - 1].float()
                    wanted = torch.tensor(target, dtype=torch.long, device=span.device).unsqueeze(1)
                    total = torch.log_softmax(span, dim=-1).gather(1, wanted).sum().item()
                    results.append((total, len(target)))
            del logits
        out, at = [], 0
        for call in calls:
            out.append(results[at:at + len(call)])
            at += len(call)
        return out

    def _forward(self, queries: list[_LabelQuery]) -> list[list[dict[int, float]]]:
        """One forward pass over every row of every query; for each query, the log-probabilities of
        the tokens each of its reads needs."""
        import torch

        model = self.generator.model
        rows = [row for query in queries for row in query.rows]
        width = max(len(row) for row in rows)
        pad = self.generator.generation_config.pad_token_id or 0
        # Right padding: real tokens never see the padding after them, so positions need no care.
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, :len(row)] = 1
        positions = sorted({pos for query in queries for _, pos in query.reads})
        # Only the logits of the positions read are computed: a full [rows, width, vocab] tensor can
        # take gigabytes for long prompts and large vocabularies.
        extra = {}
        if self._keeps_logits:
            extra["logits_to_keep"] = torch.tensor(positions, dtype=torch.long, device=model.device)
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids.to(model.device),
                attention_mask=attention_mask.to(model.device),
                use_cache=False,
                **extra,
            ).logits
            kept = logits.shape[1] == len(positions) and self._keeps_logits
            column = {pos: i for i, pos in enumerate(positions)} if kept else {pos: pos for pos in positions}
            results = []
            first_row = 0
            for query in queries:
                distributions = []
                for (row, pos), tokens in zip(query.reads, query.read_tokens):
                    log_probs = torch.log_softmax(logits[first_row + row, column[pos]].float(), dim=-1)
                    wanted = sorted(tokens)
                    values = log_probs[wanted].tolist()
                    distributions.append(dict(zip(wanted, values)))
                results.append(distributions)
                first_row += len(query.rows)
        return results


def _mean_log_probability(rows: list[tuple[float, int]]) -> tuple[float, int]:
    """(mean log-probability per token, tokens) over an answer's turns; an empty answer scores -inf."""
    tokens = sum(n for _, n in rows)
    if tokens == 0:
        return -math.inf, 0
    return sum(total for total, _ in rows) / tokens, tokens


def likelihood_line(labels: VerdictLabels, sides: list[tuple[float, int]]) -> str:
    """The synthetic reply of a likelihood verdict, in the format the parser reads.

    The higher mean wins; means equal to the three decimals shown (or two empty answers) are a tie,
    so the line never claims a difference it does not show.
    """
    (mean_a, tokens_a), (mean_b, tokens_b) = sides
    shown_a, shown_b = (round(v, 3) if math.isfinite(v) else v for v in (mean_a, mean_b))
    if shown_a == shown_b:
        outcome = "tie"
    else:
        outcome = "A" if shown_a > shown_b else "B"
    if labels.labels == ARENA_HARD_LABELS.labels:
        label = {"A": "A>B", "B": "B>A", "tie": "A=B"}[outcome]  # a likelihood gap is never "much better"
    else:
        label = {"A": "A", "B": "B", "tie": "C"}[outcome]
    return (f"Mean log-probability per answer token: A {mean_a:.3f} ({tokens_a} tokens), "
            f"B {mean_b:.3f} ({tokens_b} tokens) -> [[{label}]]")


def _strip_trailing(ids: list[int], specials: set[int]) -> list[int]:
    end = len(ids)
    while end and ids[end - 1] in specials:
        end -= 1
    return ids[:end]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
