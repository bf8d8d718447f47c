"""Probability verdicts: the labels a verdict is read from, planned as a trie of their tokens.

A probability verdict runs no generation: the prompt is followed by the start of a verdict and one
forward pass reads the next-token probabilities of the verdict labels (see :mod:`.local_judge`).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import logsumexp

from .openai_judge import JudgeCallError
from .tokens import common_prefix

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
class LabelQuery:
    """One prompt's probability verdict, planned: the rows to run and how labels are scored."""

    rows: list[list[int]]  # token ids; every row starts with the same context
    reads: list[tuple[int, int]]  # (row, position) whose next-token distribution is needed
    read_tokens: list[set[int]]  # per read: the token ids whose probabilities are needed
    # per label: factors (read, token) multiplied, and complements (read, tokens): 1 - their sum
    factors: list[list[tuple[int, int]]]
    complements: list[list[tuple[int, tuple[int, ...]]]]


def plan_query(context: list[int], sequences: list[list[int]]) -> LabelQuery:
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
    return LabelQuery(rows, reads, read_tokens, factors, complements)


def label_probabilities(query: LabelQuery, distributions: list[dict[int, float]]) -> list[float]:
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
            log_norm[read] = float(logsumexp([distributions[read][t] for t in tokens]))
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


def label_query(encoded: list[list[int]], specials: set[int]) -> LabelQuery:
    """Plan a probability verdict from the tokenized context (``encoded[0]``) and the tokenized context
    followed by each label (``encoded[1:]``): each label's tokens are what it adds to the context."""
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
    start = min(common_prefix(context, ids) for ids in sequences)
    return plan_query(context[:start], [ids[start:] for ids in sequences])


def read_label_distributions(model, pad: int, queries: list[LabelQuery], keeps_logits: bool
                             ) -> list[list[dict[int, float]]]:
    """One forward pass over every row of every query; for each query, the log-probabilities of
    the tokens each of its reads needs. ``keeps_logits``: the model takes ``logits_to_keep``."""
    import torch

    rows = [row for query in queries for row in query.rows]
    width = max(len(row) for row in rows)
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
    if keeps_logits:
        extra["logits_to_keep"] = torch.tensor(positions, dtype=torch.long, device=model.device)
    with torch.inference_mode():
        logits = model(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            use_cache=False,
            **extra,
        ).logits
        kept = logits.shape[1] == len(positions) and keeps_logits
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
