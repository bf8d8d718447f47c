"""Likelihood verdicts: each answer read as the judge model's own reply; the more fluent one wins.

No prompt about the answers at all. The judge model reads each answer as its own reply to the
question (the conversation in its chat template) and the answer with the higher mean
log-probability per token wins; equal to the three decimals shown is a tie. The reply is a line the
parser reads, e.g. ``Mean log-probability per answer token: A -1.234 (32 tokens), B -3.456 (32
tokens) -> [[A]]``. It is a fluency check, not a reading of the content (see :mod:`.local_judge`).
"""

from __future__ import annotations

import math

from .tokens import common_prefix, strip_trailing
from .verdict_labels import ARENA_HARD_LABELS, VerdictLabels

#: likelihood verdicts need full logits (rows x width x vocabulary floats): at most this much at once
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


def log_likelihoods(model, pad: int, calls: list[list[tuple[list[int], list[int]]]]) -> list[list[tuple[float, int]]]:
    """For each call's rows (context, target): the target's summed log-probability and length,
    in padded batches of at most ``LOGITS_BUDGET_BYTES`` of logits."""
    import torch

    rows = [row for call in calls for row in call]
    results: list[tuple[float, int]] = []
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


def mean_log_probability(rows: list[tuple[float, int]]) -> tuple[float, int]:
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
