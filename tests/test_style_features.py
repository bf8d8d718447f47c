"""Tests for pytest_arena.rating.style_features: per-answer length and markdown counts."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pytest_arena.rating.style_features import (add_style_columns, answer_length, answer_style, markdown_counts,
                                                strip_code_blocks, style_table)

DATA = Path(__file__).parent / "data" / "style_control_reference.json"


def words(text):
    """The stand-in tokenizer of bench/style_reference.py: words and single punctuation marks."""
    return len(re.findall(r"\w+|[^\w\s]", text))


MARKDOWN = """# Title
## Section
###### Deepest
####### seven hashes is not a header
#no space is not a header

Some **bold** and __also bold__ and **not
bold across lines**.

1. first
2. second
   - nested bullet
* star bullet
+ plus bullet
-not a bullet

```python
# a comment, not a header
- a line of code, not a list item
**not bold either**
```
"""


def test_markdown_counts_follow_arena_hard_regexes_with_code_stripped():
    # headers: "# Title", "## Section", "###### Deepest"; list items: 2 ordered + 3 bullets;
    # bold: "**bold**", "__also bold__" (a span across a newline does not count)
    assert markdown_counts(MARKDOWN) == {"headers": 3, "list_items": 5, "bold": 2}
    assert "# a comment" not in strip_code_blocks(MARKDOWN)
    # the same text without its code block counts the same: the block contributed nothing
    assert markdown_counts(MARKDOWN.split("```python")[0]) == markdown_counts(MARKDOWN)


def test_code_block_content_elsewhere_is_kept():
    # arena-hard deletes a block's content wherever it occurs; here only the block goes
    text = "```\n- item\n```\n- item\n"
    assert markdown_counts(text)["list_items"] == 1


def test_length_units_and_multi_turn_answers():
    turns = ["# One\nfirst turn.", "second turn, with **bold**"]
    style = answer_style(turns, tokenizer=words)
    # tokens add up over turns (FastChat's sum_assistant_tokens); markdown counted on the joined turns
    assert style == {"length": words(turns[0]) + words(turns[1]), "headers": 1, "list_items": 0, "bold": 1,
                     "length_unit": "tokens"}
    assert answer_length(turns) == (len(turns[0]) + len(turns[1]), "characters")
    assert answer_length("abc", tokenizer=lambda s: list(s)) == (3, "tokens")  # a tokenizer returning tokens
    assert answer_length("abc", tokenizer=words, token_count=7) == (7, "tokens")  # a reported count wins
    with pytest.raises(ValueError, match="token_count"):
        answer_length("abc", token_count=-1)


def test_style_table_refuses_mixed_units_and_add_columns_names_missing_answers():
    answers = {("m1", "q1"): "short", ("m2", "q1"): "a longer answer"}
    with pytest.raises(ValueError, match="both tokens and characters"):
        style_table(answers, token_counts={("m1", "q1"): 2})
    table = style_table(answers)
    battles = pd.DataFrame({"model_a": ["m1"], "model_b": ["m2"], "winner": ["tie"], "question_id": ["q1"]})
    out = add_style_columns(battles, table)
    assert out.loc[0, "length_a"] == 5 and out.loc[0, "length_b"] == len("a longer answer")
    with pytest.raises(ValueError, match="'m2' to question 'q2'"):
        add_style_columns(battles.assign(question_id="q2"), table.rename(index={"q1": "q2"}, level=1).iloc[:1])


def test_counts_equal_arena_hard_on_the_reference_answers():
    # Summed per model as printed by `python bench/style_reference.py` (arena-hard-auto's
    # add_markdown_info.py reimplemented there): (tokens, headers, list items, bold).
    reference = {
        "base-model": (1326, 10, 18, 17),
        "markdown-model": (3148, 63, 160, 68),
        "padded-model": (4264, 27, 206, 42),
        "plain-model": (667, 0, 0, 0),
        "strong-model": (1810, 6, 37, 21),
    }
    data = json.loads(DATA.read_text())
    answers = {(m, u): text for m, by_uid in data["answers"].items() for u, text in by_uid.items()}
    assert any("```" in text for text in answers.values())  # the set exercises code stripping
    sums = style_table(answers, tokenizer=words).groupby(level="model")[["length", "headers", "list_items", "bold"]].sum()
    assert {m: tuple(int(v) for v in row) for m, row in sums.iterrows()} == reference
