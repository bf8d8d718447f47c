"""Likelihood verdicts: each answer read as the judge model's own reply; the more fluent one wins.

No prompt about the answers at all. The judge model reads each answer as its own reply to the
question (the conversation in its chat template) and the answer with the higher mean
log-probability per token wins; means equal as float32 are a tie. The reply is a line the
parser reads, e.g. ``Mean log-probability per answer token: A -1.234 (32 tokens), B -3.456 (32
tokens) -> [[A]]``. It is a fluency check, not a reading of the content (see :mod:`.local_judge`).
"""

from __future__ import annotations

import inspect
import math
import struct

from .tokens import common_prefix, strip_trailing
from .verdict_labels import ARENA_HARD_LABELS, VerdictLabels

#: the logits a likelihood batch holds (rows x scored positions x vocabulary floats): at most this much at once
LOGITS_BUDGET_BYTES = 1 << 28


def answer_rows(encoded: list[list[int]], specials: set[int]) -> list[tuple[list[int], list[int]]]:
    """(context, answer tokens) per turn, from the tokenized ``context, context + answer`` of each turn."""
    rows = []
    for i in range(0, len(encoded), 2):
        # An end-of-text token a plain-text tokenizer appends belongs to neither part.
        context, full = (strip_trailing(ids, specials) for ids in encoded[i:i + 2])
        # The answer is what tokenizing it after the context adds (the tokenizer's own split).
        start = common_prefix(context, full)
        rows.append((full[:start], full[start:]))
    return rows


def log_likelihoods(model, pad: int, calls: list[list[tuple[list[int], list[int]]]],
                    keeps_logits: bool | None = None) -> list[list[tuple[float, int]]]:
    """For each call's rows (context, target): the target's summed log-probability and length,
    in padded batches of at most ``LOGITS_BUDGET_BYTES`` of logits.

    Only the logits of the scored positions are needed: a model whose forward takes
    ``logits_to_keep`` (``keeps_logits``; found from its signature when None) keeps the positions from
    the first scored one on, so a batch holds rows x answer length x vocabulary floats, not rows x
    whole width (at a 152k vocabulary and 1,000-token rows, many rows per pass instead of one).
    """
    import torch

    if keeps_logits is None:
        keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    rows = [row for call in calls for row in call]
    results: list[tuple[float, int]] = []
    vocab = model.get_output_embeddings().weight.shape[0]
    width = max(len(c) + len(t) for c, t in rows)
    kept_width = width - _first_scored(rows) if keeps_logits else width
    chunk = max(1, LOGITS_BUDGET_BYTES // max(1, kept_width * vocab * 4))
    for first in range(0, len(rows), chunk):
        part = rows[first:first + chunk]
        part_width = max(len(c) + len(t) for c, t in part)
        input_ids = torch.full((len(part), part_width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(part), part_width), dtype=torch.long)
        for i, (context, target) in enumerate(part):
            ids = context + target
            input_ids[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, :len(ids)] = 1
        # The last positions from the first scored one: an int, which every transformers release with
        # logits_to_keep takes, and no index tensor to place when the model spans devices.
        start = _first_scored(part) if keeps_logits else 0
        extra = {"logits_to_keep": part_width - start} if keeps_logits else {}
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                           use_cache=False, **extra).logits
            for i, (context, target) in enumerate(part):
                if not target or not context:
                    results.append((0.0, 0))
                    continue
                # The logits at position p predict token p + 1; the kept ones start at position `start`.
                first_logit = len(context) - 1 - start
                span = logits[i, first_logit:first_logit + len(target)].float()
                wanted = torch.tensor(target, dtype=torch.long, device=span.device).unsqueeze(1)
                total = torch.log_softmax(span, dim=-1).gather(1, wanted).sum().item()
                results.append((total, len(target)))
        del logits
    out, at = [], 0
    for call in calls:
        out.append(results[at:at + len(call)])
        at += len(call)
    return out


def _first_scored(rows: list[tuple[list[int], list[int]]]) -> int:
    """The first position whose logits score a target: the earliest last context token (rows without
    a context or a target score nothing)."""
    return min((len(c) - 1 for c, t in rows if c and t), default=0)


def mean_log_probability(rows: list[tuple[float, int]]) -> tuple[float, int]:
    """(mean log-probability per token, tokens) over an answer's turns; an empty answer scores -inf."""
    tokens = sum(n for _, n in rows)
    if tokens == 0:
        return -math.inf, 0
    return sum(total for total, _ in rows) / tokens, tokens


def likelihood_line(labels: VerdictLabels, sides: list[tuple[float, int]]) -> str:
    """The synthetic reply of a likelihood verdict, in the format the parser reads.

    The higher mean wins; a tie is two means equal as float32 (the precision the log-probabilities
    are computed in), or two empty answers. Rounding first would make ties of near misses, and bf16
    logits on a GPU bunch the means closely. The means are shown with as many decimals (3 or more)
    as it takes to show the difference the verdict rests on.
    """
    (mean_a, tokens_a), (mean_b, tokens_b) = sides
    exact_a, exact_b = _float32(mean_a), _float32(mean_b)
    outcome = "tie" if exact_a == exact_b else "A" if exact_a > exact_b else "B"
    decimals = _decimals_to_tell_apart(mean_a, mean_b) if outcome != "tie" else 3
    if labels.labels == ARENA_HARD_LABELS.labels:
        label = {"A": "A>B", "B": "B>A", "tie": "A=B"}[outcome]  # a likelihood gap is never "much better"
    else:
        label = {"A": "A", "B": "B", "tie": "C"}[outcome]
    return (f"Mean log-probability per answer token: A {mean_a:.{decimals}f} ({tokens_a} tokens), "
            f"B {mean_b:.{decimals}f} ({tokens_b} tokens) -> [[{label}]]")


def _float32(value: float) -> float:
    """``value`` rounded to float32 (infinities stay as they are)."""
    return struct.unpack("f", struct.pack("f", value))[0] if math.isfinite(value) else value


def _decimals_to_tell_apart(a: float, b: float) -> int:
    for decimals in range(3, 10):  # float32 means of log-probabilities differ by the 9th decimal at most
        if f"{a:.{decimals}f}" != f"{b:.{decimals}f}":
            return decimals
    return 9
