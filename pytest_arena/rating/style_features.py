"""Per-answer style features for style-controlled ratings: length and markdown counts.

What an answer's style is, as the two reference implementations measure it:

* **markdown counts** follow arena-hard-auto's ``utils/add_markdown_info.py`` (``count_markdown_elements``;
  FastChat's ``fastchat/serve/monitor/add_markdown_info.py`` has the same regexes): fenced code blocks
  are removed first, so a ``#`` comment or a ``- x`` line inside code is not style; then headers are lines
  opening with one to six ``#`` and a space (the six levels added up), list items are lines opening with
  ``1.``-style numbers or ``-``/``*``/``+`` bullets, bold spans are ``**...**`` or ``__...__`` on one line.
  arena-hard removes a block by deleting each block's *content* wherever it occurs in the answer; here
  the whole fenced block is removed, which counts the same on any answer whose code does not reappear
  outside its block, and never deletes a list marker outside code because a block happened to hold one.
* **length** is in tokens when a tokenizer (any callable from text to a token count or a token list) or
  the count itself is given, else in characters; :func:`answer_style` says which in ``length_unit``.
  arena-hard counts tokens of the whole answer, code included (tiktoken's gpt-4o encoding); so does this.
* **multi-turn answers** combine as FastChat combines a conversation's assistant turns: lengths add up
  over turns (``sum_assistant_a_tokens``), and the markdown counts are taken on the turns joined by a
  newline (its ``get_element_counts``). arena-hard-auto's answers are single-turn (its last message).

Densities (count per token) and the normalised differences between two answers are the rating's
business (:mod:`.style_control`): the per-answer features stay raw counts so that both conventions,
arena-hard's densities and FastChat's counts, work from the same table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence

import pandas as pd

STYLE_FEATURES = ("length", "headers", "list_items", "bold")
LENGTH_UNITS = ("tokens", "characters")

# The regexes of arena-hard-auto's count_markdown_elements (the same in FastChat).
_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADERS = tuple(re.compile(rf"^#{{{level}}}\s", re.MULTILINE) for level in range(1, 7))
_LIST_ITEMS = (re.compile(r"^\s*\d+\.\s", re.MULTILINE), re.compile(r"^\s*[-*+]\s", re.MULTILINE))
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))

Tokenizer = Callable[[str], "int | Sequence"]


def strip_code_blocks(text: str) -> str:
    """``text`` without its fenced (```) code blocks."""
    return _CODE_BLOCK.sub("", text)


def markdown_counts(text: str) -> dict[str, int]:
    """Headers, list items and bold spans of one text, code blocks stripped first."""
    prose = strip_code_blocks(text)
    return {
        "headers": sum(len(p.findall(prose)) for p in _HEADERS),
        "list_items": sum(len(p.findall(prose)) for p in _LIST_ITEMS),
        "bold": sum(len(p.findall(prose)) for p in _BOLD),
    }


def _turns(answer: str | Sequence[str]) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    turns = list(answer)
    odd = [t for t in turns if not isinstance(t, str)]
    if odd:
        raise TypeError(f"an answer's turns must be str, got {type(odd[0]).__name__}")
    return turns


def _count_tokens(tokenizer: Tokenizer, text: str) -> int:
    out = tokenizer(text)
    count = out if isinstance(out, int) else len(out)
    if isinstance(count, bool) or count < 0:
        raise ValueError(f"tokenizer returned {out!r} for a text; expected a count or a list of tokens")
    return int(count)


def answer_length(
    answer: str | Sequence[str], tokenizer: Tokenizer | None = None, token_count: int | None = None
) -> tuple[int, str]:
    """``(length, unit)`` of an answer: tokens summed over turns, else characters.

    ``token_count`` (the whole answer's, e.g. the ``completion_tokens`` a backend reported) wins over
    ``tokenizer``, which is applied to each turn separately (FastChat's sum over assistant turns).
    """
    turns = _turns(answer)
    if token_count is not None:
        if isinstance(token_count, bool) or not isinstance(token_count, int) or token_count < 0:
            raise ValueError(f"token_count must be an integer >= 0, got {token_count!r}")
        return token_count, "tokens"
    if tokenizer is not None:
        return sum(_count_tokens(tokenizer, t) for t in turns), "tokens"
    return sum(len(t) for t in turns), "characters"


def answer_style(
    answer: str | Sequence[str], tokenizer: Tokenizer | None = None, token_count: int | None = None
) -> dict:
    """One answer's style: ``length``, ``headers``, ``list_items``, ``bold`` and ``length_unit``.

    ``answer`` is a string or the list of a multi-turn answer's assistant turns (see the module
    docstring for how turns combine).
    """
    length, unit = answer_length(answer, tokenizer=tokenizer, token_count=token_count)
    return {"length": length, **markdown_counts("\n".join(_turns(answer))), "length_unit": unit}


def style_table(
    answers: Mapping[tuple[str, Hashable], str | Sequence[str]],
    tokenizer: Tokenizer | None = None,
    token_counts: Mapping[tuple[str, Hashable], int] | None = None,
) -> pd.DataFrame:
    """Style of every answer, indexed by ``(model, question_id)``.

    Columns :data:`STYLE_FEATURES` and ``length_unit``. An answer whose key is in ``token_counts`` uses
    that count; the others use ``tokenizer``, else characters. One table mixing units is refused: a
    length ratio between a token count and a character count means nothing.
    """
    token_counts = token_counts or {}
    rows = {key: answer_style(text, tokenizer=tokenizer, token_count=token_counts.get(key))
            for key, text in answers.items()}
    index = pd.MultiIndex.from_arrays([[k[0] for k in rows], [k[1] for k in rows]], names=["model", "question_id"])
    table = pd.DataFrame(list(rows.values()), index=index, columns=[*STYLE_FEATURES, "length_unit"])
    units = set(table["length_unit"])
    if len(units) > 1:
        raise ValueError("answers are measured in both tokens and characters: give a token count for every "
                         "answer, or a tokenizer")
    return table


def add_style_columns(battles: pd.DataFrame, styles: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``battles`` with ``<feature>_a`` / ``<feature>_b`` columns from ``styles``.

    ``styles`` is :func:`style_table`'s output; each battle's two answers are looked up by
    ``(model_a, question_id)`` and ``(model_b, question_id)``. A battle whose answer has no style row is
    an error naming it, since a missing length would silently fall out of the fit.
    """
    out = battles.copy()
    for side in ("a", "b"):
        keys = pd.MultiIndex.from_arrays([out[f"model_{side}"], out["question_id"]])
        found = styles.reindex(keys)
        missing = found["length"].isna().to_numpy()
        if missing.any():
            first = keys[missing.argmax()]
            raise ValueError(f"no style features for the answer of {first[0]!r} to question {first[1]!r}")
        for feature in STYLE_FEATURES:
            out[f"{feature}_{side}"] = found[feature].to_numpy(dtype=float)
    return out
