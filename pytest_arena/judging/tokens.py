"""Token-sequence helpers shared by the local judge's probability and likelihood verdicts."""

from __future__ import annotations


def strip_trailing(ids: list[int], specials: set[int]) -> list[int]:
    """``ids`` without the special tokens (an EOS a plain-text tokenizer appends) at its end."""
    end = len(ids)
    while end and ids[end - 1] in specials:
        end -= 1
    return ids[:end]


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
