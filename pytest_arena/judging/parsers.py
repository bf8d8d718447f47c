"""Turn a judge's reply (its completion) into a verdict.

The parser is chosen by ``reviews_gen.reviewer.args.fn_completion_parser`` and the format by the prompt
template's ``output_format``:

* ``lmsys_parser`` reads the three formats of EvalScope's (FastChat's) templates:
  ``"[[A]]"`` (``[[A]]`` / ``[[B]]`` / ``[[C]]``), ``"[[rating]]"`` (``Rating: [[8]]``) and
  ``"[[rating_a,rating_b]]"`` (``[[8, 9]]``);
* ``ranking_parser`` reads AlpacaEval's ranking list ``[{'model': 'model_1', 'rank': 1}, ...]``;
* ``arena_hard_parser`` reads arena-hard's labels ``[[A>>B]]`` ... ``[[B>>A]]``.

Rules that differ from EvalScope and FastChat, on purpose:

* **The last verdict wins.** Judges often quote the instructions ("output "[[A]]" if assistant A is
  better, "[[B]]" if ...") before they answer, so the verdict is the last token in the reply, never the
  first substring checked.
* **Quoted instructions are not verdicts.** A token is skipped when it is plainly the format being quoted
  rather than an answer. In every format: a token that follows ``for example`` / ``e.g.`` /
  ``example output`` in the same sentence on its line (``for example: "Rating: [[5]]"``). For the label
  formats (``[[A]]``, arena-hard) also: a token followed on its line by ``if`` (``"[[A]]" if assistant A
  is better``); a quoted token followed by ``for a tie`` (``"[[C]]" for a tie``); and a menu of choices
  -- one line holding three or more tokens with all-different labels, or three or more consecutive lines
  holding one token each with all-different labels. So a reply cut off right after quoting the format is
  an error, not a tie.
* **Verdicts copied from an answer are not verdicts.** Given the answers' texts (``quoted``), a token
  (a label, a rating, a ranking list, a rating line read as a fallback) that the reply copied out of an
  answer is ignored (``quoted.py`` says what a copy is). A judge that decides ``[[A]]`` and then quotes
  B's answer ending in ``[[B]]`` gives A; a judge that only echoes its prompt gives no verdict at all.
  ``ParsedVerdict.source`` says what was read and what was ignored.
* **No verdict is an error**, never a win for B, a tie or a score of -1: the parsers raise
  :class:`VerdictParseError`, whose message says what was expected and quotes the end of the reply.
  A wrong ``output_format`` is a configuration error and raises a plain :class:`ValueError`.

Decisions on lenient input, documented in the parser docstrings: ``[[Tie]]`` is accepted as a tie in the
``"[[A]]"`` format; ratings may be decimals and must lie within 1-10; a rating without double brackets is
accepted only on the reply's last non-empty line and only in an unambiguous shape (``Rating: 8``,
``Score: 8/10``, ``[8]`` or ``8/10`` alone) -- never a bare number found somewhere in the text.

Pure standard library; no pytest.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from .quoted import Quoted, bracket_spans, without_quotes

__all__ = [
    "ParsedVerdict",
    "VerdictParseError",
    "lmsys_parser",
    "ranking_parser",
    "arena_hard_parser",
    "PARSERS",
    "LMSYS_OUTPUT_FORMATS",
    "parse_verdict",
]

RATING_MIN = 1.0
RATING_MAX = 10.0
EXCERPT_CHARS = 200

#: the output_format values lmsys_parser understands (as written in EvalScope's templates)
LMSYS_OUTPUT_FORMATS = ("[[A]]", "[[rating]]", "[[rating_a,rating_b]]")
_SCORE_FORMATS = ("[[rating]]", "[[rating_a,rating_b]]")


@dataclass(frozen=True)
class ParsedVerdict:
    """One judge verdict.

    ``winner`` is ``"A"``, ``"B"`` or ``"tie"`` for pairwise formats and None for a single score;
    ``strength`` is 2 for arena-hard's strong verdicts (``A>>B``, ``B>>A``), else 1; ``score`` is the
    ``[[rating]]`` value; ``scores`` the ``[[rating_a,rating_b]]`` pair (``winner`` is then derived from it).
    ``source`` says where in the reply the verdict was read, and what was ignored as quoted from an
    answer (``"last verdict token; ignored 1 token quoted from answer B"``); it is not part of the verdict.
    """

    winner: str | None = None
    strength: int = 1
    score: float | None = None
    scores: tuple[float, float] | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.winner not in (None, "A", "B", "tie"):
            raise ValueError(f"winner must be 'A', 'B', 'tie' or None, not {self.winner!r}")
        if self.strength not in (1, 2):
            raise ValueError(f"strength must be 1 or 2, not {self.strength!r}")


class VerdictParseError(ValueError):
    """The judge's reply holds no usable verdict.

    ``expected`` names the format that was looked for; ``excerpt`` is the end of the reply (at most
    200 characters); ``problem`` what was wrong. All are also in the message.
    """

    def __init__(self, message: str, *, expected: str | None = None, excerpt: str | None = None,
                 problem: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.excerpt = excerpt
        self.problem = problem


# --------------------------------------------------------------------------------------------------
# helpers


def _excerpt(completion: str) -> str:
    text = completion.rstrip()
    if len(text) <= EXCERPT_CHARS:
        return text
    return "..." + text[-(EXCERPT_CHARS - 3):]


def _error(problem: str, expected: str, completion: str) -> VerdictParseError:
    excerpt = _excerpt(completion)
    return VerdictParseError(
        f"{problem}: expected {expected}; the reply ends with: {excerpt!r}",
        expected=expected,
        excerpt=excerpt,
        problem=problem,
    )


def _require_text(completion: str | None, expected: str) -> str:
    if completion is None or (isinstance(completion, str) and not completion.strip()):
        raise VerdictParseError(f"empty reply: expected {expected}", expected=expected, excerpt="")
    if not isinstance(completion, str):
        raise TypeError(f"a judge completion must be a string, not {type(completion).__name__}")
    return completion


def _norm_format(output_format: str | None) -> str:
    if not isinstance(output_format, str):
        raise ValueError(
            f"output_format must be one of {', '.join(LMSYS_OUTPUT_FORMATS)} (or a label format such as "
            f"'[[A>B]]' for arena_hard_parser), not {output_format!r}"
        )
    return _squash_format(output_format)


@functools.lru_cache(maxsize=64)
def _squash_format(output_format: str) -> str:
    # Once per template's format, not once per reply: a run parses every stored reply.
    return re.sub(r"\s+", "", output_format).lower()


_NUM = r"[+-]?\d+(?:\.\d+)?"
_EXAMPLE_BEFORE = re.compile(
    r"(?:\bfor\s+(?:example|instance)\b|\be\.g\.|\bexample\s+output\b|\bexample\s*:)", re.IGNORECASE
)
_EXAMPLE_WINDOW = 60
_SENTENCE_END = re.compile(r"[.;!?](?:\s|$)")
_IF_AFTER = re.compile(r"[\"'`\u201d\u2019]?[ \t]*(?:if|when)\b", re.IGNORECASE)
_QUOTE_BEFORE = "\"'`\u201c\u2018"
_QUOTED_FOR_TIE_AFTER = re.compile(r"[\"'`\u201d\u2019][ \t]*for[ \t]+(?:a[ \t]+)?tie\b", re.IGNORECASE)


def _line_starts(text: str) -> list[int]:
    """Offsets at which the lines of ``text`` start (computed once per reply)."""
    return [0] + [m.end() for m in re.finditer(r"\n", text)]


def _line_no(line_starts: list[int], pos: int) -> int:
    return bisect_right(line_starts, pos) - 1


def _after_example(text: str, start: int, line_start: int) -> bool:
    """The token follows 'for example' / 'e.g.' / 'example output' closely on its line, in the same
    sentence: ``for example: "Rating: [[5]]"``, ``Example output: "My final verdict is tie: [[A=B]]"``."""
    window = text[max(line_start, start - _EXAMPLE_WINDOW):start]
    phrases = list(_EXAMPLE_BEFORE.finditer(window))
    # the example must still be running: no sentence ends between the phrase and the token
    return bool(phrases) and _SENTENCE_END.search(window, phrases[-1].end()) is None


def _is_instruction(text: str, start: int, end: int) -> bool:
    """The token is followed on its line by 'if'/'when' (``"[[A]]" if assistant A is better``), or it is
    quoted and followed by 'for a tie' (``"[[C]]" for a tie``)."""
    if _IF_AFTER.match(text, end):
        return True
    quoted = start > 0 and text[start - 1] in _QUOTE_BEFORE
    return quoted and _QUOTED_FOR_TIE_AFTER.match(text, end) is not None


def _menu_spans(tokens: list[tuple[re.Match, object]], line_starts: list[int]) -> set[int]:
    """Indexes of the tokens that form a quoted menu of choices (see the module docstring)."""
    by_line: dict[int, list[int]] = {}
    for i, (m, _) in enumerate(tokens):
        by_line.setdefault(_line_no(line_starts, m.start()), []).append(i)
    menu: set[int] = set()
    # one line holding >= 3 tokens, all labels different
    for idxs in by_line.values():
        labels = [tokens[i][1] for i in idxs]
        if len(idxs) >= 3 and len(set(labels)) == len(labels):
            menu.update(idxs)
    # >= 3 consecutive lines holding one token each, all labels different
    runs: list[list[int]] = []  # token indexes, one per line, of consecutive single-token lines
    previous = None
    for line in sorted(line for line, idxs in by_line.items() if len(idxs) == 1):
        if runs and previous == line - 1:
            runs[-1].append(by_line[line][0])
        else:
            runs.append([by_line[line][0]])
        previous = line
    for run in runs:
        labels = [tokens[i][1] for i in run]
        if len(run) >= 3 and len(set(labels)) == len(labels):
            menu.update(run)
    return menu


def _verdict_tokens(
    text: str,
    pattern: re.Pattern[str],
    label: Callable[[re.Match], object | None],
    *,
    labels_can_be_menus: bool,
) -> list[tuple[re.Match, object]]:
    """All matches of ``pattern`` that are answers, in order; quoted instructions are left out."""
    tokens = [(m, lab) for m in pattern.finditer(text) if (lab := label(m)) is not None]
    # The start of a token's line is just after the last newline before it (the same offset the
    # line_starts table gives); that table is built only for a possible menu, which needs >= 3 tokens.
    keep = [
        (m, lab)
        for m, lab in tokens
        if not _after_example(text, m.start(), text.rfind("\n", 0, m.start()) + 1)
    ]
    if labels_can_be_menus:
        menu = _menu_spans(keep, _line_starts(text)) if len(keep) >= 3 else set()
        keep = [
            (m, lab)
            for i, (m, lab) in enumerate(keep)
            if i not in menu and not _is_instruction(text, m.start(), m.end())
        ]
    return keep


def _last_line(text: str) -> str:
    """The last non-empty line, without markdown emphasis and quote/heading/bullet marks."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return _clean_line(lines[-1]) if lines else ""


def _first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return _clean_line(lines[0]) if lines else ""


_LINE_MARKS = re.compile(r"^(?:(?:#+|>+|[-*+])\s+)+")


def _clean_line(line: str) -> str:
    """Drop markdown emphasis, headings, quote marks and bullets (a bullet needs a space after it,
    so a negative number keeps its sign)."""
    line = line.replace("**", "").replace("__", "").replace("`", "").strip()
    return _LINE_MARKS.sub("", line).strip()


def _check_rating(value: float, raw: str, expected: str, completion: str) -> float:
    if not RATING_MIN <= value <= RATING_MAX:
        raise _error(f"rating {raw} is outside {RATING_MIN:g}-{RATING_MAX:g}", expected, completion)
    return value


# --------------------------------------------------------------------------------------------------
# verdicts copied from the answers

def _ranking_spans(text: str) -> list[tuple[int, int]]:
    starts = [m.start() for m in _RANKING_START.finditer(text)][-_MAX_RANKING_CANDIDATES:]
    return [(start, end + 1) for start in starts if (end := _matching_bracket(text, start)) is not None]


def _without_quotes(parse: Callable[[str], ParsedVerdict], text: str, quoted: Quoted | None,
                    spans: Callable[[str], list[tuple[int, int]]] = bracket_spans, *,
                    edge_lines: bool = False) -> ParsedVerdict:
    """``parse(text)`` with the spans copied from a quoted answer blanked out; the verdict's source
    (or the error) says what was ignored."""
    if not quoted:
        return parse(text)
    unquoted, note = without_quotes(text, quoted, spans, edge_lines=edge_lines)
    try:
        verdict = parse(unquoted)
    except VerdictParseError as exc:
        if not note:
            raise
        raise _error(f"{exc.problem} ({note})", exc.expected or "", text) from None
    return replace(verdict, source=f"{verdict.source}; {note}") if note else verdict


# --------------------------------------------------------------------------------------------------
# lmsys_parser: "[[A]]", "[[rating]]", "[[rating_a,rating_b]]"

_AB_TOKEN = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_AB_EXPECTED = "a final verdict [[A]], [[B]] or [[C]] (tie)"
_AB_WINNER = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}


def _parse_ab(completion: str) -> ParsedVerdict:
    tokens = _verdict_tokens(
        completion, _AB_TOKEN, lambda m: _AB_WINNER[m.group(1).lower()], labels_can_be_menus=True
    )
    if not tokens:
        raise _error("no verdict found", _AB_EXPECTED, completion)
    return ParsedVerdict(winner=str(tokens[-1][1]), source="last verdict token")


_RATING_TOKEN = re.compile(rf"\[\[\s*({_NUM})\s*(?:/\s*10\s*)?\]\]")
_RATING_EXPECTED = f"a rating [[N]] with N from {RATING_MIN:g} to {RATING_MAX:g}, e.g. 'Rating: [[8]]'"
# fallbacks, only on the last non-empty line, anchored at its end
_RATING_LABELLED = re.compile(
    rf"\b(?:rating|score)\s*(?:is|of|:|=)?\s*:?\s*"  # "Rating:", "score of", "rating is"
    rf"\[?\s*({_NUM})\s*\]?\s*(?:/\s*10|out\s+of\s+10)?\s*[.!]?$",  # "8", "[8]", "8/10", "8 out of 10"
    re.IGNORECASE,
)
_RATING_BARE = re.compile(rf"(?:\[\s*({_NUM})\s*\]|({_NUM})\s*/\s*10)\s*[.!]?")


def _parse_rating(completion: str) -> ParsedVerdict:
    tokens = _verdict_tokens(
        completion, _RATING_TOKEN, lambda m: m.group(1), labels_can_be_menus=False
    )
    if tokens:
        raw, source = str(tokens[-1][1]), "last rating token"
    else:
        last = _last_line(completion)
        m = _RATING_LABELLED.search(last) or _RATING_BARE.fullmatch(last)
        if m is None:
            raise _error("no rating found", _RATING_EXPECTED, completion)
        raw, source = next(g for g in m.groups() if g is not None), "rating on the last line"
    return ParsedVerdict(score=_check_rating(float(raw), raw, _RATING_EXPECTED, completion), source=source)


_PAIR_TOKEN = re.compile(rf"\[\[\s*({_NUM})\s*(?:,\s*|\s+)({_NUM})\s*\]\]")
_PAIR_LINE = re.compile(rf"\[?\s*({_NUM})\s*(?:,\s*|\s+)({_NUM})\s*\]?\.?")
_PAIR_EXPECTED = (
    f"two ratings [[rating_a,rating_b]] from {RATING_MIN:g} to {RATING_MAX:g}, e.g. '[[8, 9]]'"
)


def _parse_rating_pair(completion: str) -> ParsedVerdict:
    tokens = _verdict_tokens(
        completion, _PAIR_TOKEN, lambda m: (m.group(1), m.group(2)), labels_can_be_menus=False
    )
    if tokens:
        raw_a, raw_b = tokens[-1][1]  # type: ignore[misc]
        source = "last pair of ratings token"
    else:
        # FastChat's original prompt asks for the pair alone on the first line; judges also put it last
        m, source = _PAIR_LINE.fullmatch(_last_line(completion)), "ratings on the last line"
        if m is None:
            m, source = _PAIR_LINE.fullmatch(_first_line(completion)), "ratings on the first line"
        if m is None:
            raise _error("no pair of ratings found", _PAIR_EXPECTED, completion)
        raw_a, raw_b = m.group(1), m.group(2)
    a = _check_rating(float(raw_a), raw_a, _PAIR_EXPECTED, completion)
    b = _check_rating(float(raw_b), raw_b, _PAIR_EXPECTED, completion)
    winner = "A" if a > b else "B" if b > a else "tie"
    return ParsedVerdict(winner=winner, scores=(a, b), source=source)


_LMSYS_DISPATCH: dict[str, tuple[Callable[[str], ParsedVerdict], str]] = {
    "[[a]]": (_parse_ab, _AB_EXPECTED),
    "[[rating]]": (_parse_rating, _RATING_EXPECTED),
    "[[rating_a,rating_b]]": (_parse_rating_pair, _PAIR_EXPECTED),
}


def lmsys_parser(completion: str, output_format: str, quoted: Quoted | None = None) -> ParsedVerdict:
    """Parse a reply in one of EvalScope's (FastChat's) formats, chosen by ``output_format``.

    ``"[[A]]"``: the last ``[[A]]``/``[[B]]``/``[[C]]`` token wins (case and inner spaces do not
    matter); ``[[C]]`` and ``[[Tie]]`` are ties. Quoted instructions are skipped (module docstring).

    ``"[[rating]]"``: the last numeric ``[[8]]``/``[[7.5]]``/``[[ 9 ]]``/``[[8/10]]`` wins; a literal
    ``[[rating]]`` is skipped. Without one, the last non-empty line may carry the rating as
    ``Rating: 8``, ``Rating: [8]``, ``Score: 8/10``, ``rating of 8 out of 10`` (label first, number at the
    end of the line) or be just ``[8]`` or ``8/10``. A rating outside 1-10 is an error.

    ``"[[rating_a,rating_b]]"``: the last ``[[8, 9]]`` (comma or space between) wins; without one, a
    last (or else first) line that is only the two numbers (``8, 9``, ``8 9``). Both in 1-10; the
    higher rating wins, equal ratings are a tie. What the reply copied from the ``quoted`` answers is ignored.
    """
    key = _norm_format(output_format)
    if key not in _LMSYS_DISPATCH:
        raise ValueError(
            f"lmsys_parser does not know output_format {output_format!r}; "
            f"expected one of {', '.join(LMSYS_OUTPUT_FORMATS)}"
        )
    parse, expected = _LMSYS_DISPATCH[key]
    text = _require_text(completion, expected)
    return _without_quotes(parse, text, quoted, edge_lines=key in _SCORE_FORMATS)


# --------------------------------------------------------------------------------------------------
# ranking_parser: AlpacaEval's / EvalScope's ranking list

_RANKING_EXPECTED = (
    "a ranking list like [{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"
)
_RANKING_START = re.compile(r"\[\s*\{")
_MAX_RANKING_CANDIDATES = 50
# AlpacaEval names the two answers model_1/model_2, EvalScope model_a/model_b
_RANKING_MODELS = {"model_1": "A", "model_a": "A", "model_2": "B", "model_b": "B"}


def _matching_bracket(text: str, start: int) -> int | None:
    """Index of the ``]`` closing the ``[`` at ``start``, skipping quoted strings; None if unclosed."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
            if depth == 0:
                return i if ch == "]" else None
        i += 1
    return None


def _literal(candidate: str) -> object:
    """json first, then Python literal syntax -- never eval."""
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    try:
        return ast.literal_eval(candidate)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _ranking_candidates(text: str) -> Iterator[tuple[int, object]]:
    """(start, parsed list) for each list of dicts with a 'model' key, last first."""
    starts = [m.start() for m in _RANKING_START.finditer(text)]
    # each candidate costs a scan to its closing bracket: look at the last few only
    for start in reversed(starts[-_MAX_RANKING_CANDIDATES:]):
        end = _matching_bracket(text, start)
        if end is None:
            if start == starts[-1]:
                yield start, None  # the last ranking is cut off
            continue
        value = _literal(text[start:end + 1])
        if (
            isinstance(value, list)
            and value
            and all(isinstance(item, dict) and "model" in item for item in value)
        ):
            yield start, value


def _rank(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def ranking_parser(completion: str, output_format: str, quoted: Quoted | None = None) -> ParsedVerdict:
    """Parse the last ranking list in the reply (JSON or Python literal syntax; ``ast.literal_eval``,
    never ``eval``).

    ``model_1`` (or EvalScope's ``model_a``) is assistant A, ``model_2`` (``model_b``) assistant B; the
    lower rank wins (rank 1 beats rank 2), equal ranks are a tie. The last list of dicts with a
    ``model`` key is the answer; if it is malformed (missing model, duplicate, rank not a positive
    integer) or cut off, that is an error -- an earlier list is not used instead. A list that closely
    follows ``for example`` / ``e.g.`` is skipped. ``output_format`` is not needed, but a single-score
    format (``[[rating]]``, ``[[rating_a,rating_b]]``) is a configuration error. A list copied from one
    of the ``quoted`` answers is ignored.
    """
    _reject_score_format("ranking_parser", output_format)
    text = _require_text(completion, _RANKING_EXPECTED)
    return _without_quotes(_parse_ranking, text, quoted, _ranking_spans)


def _parse_ranking(text: str) -> ParsedVerdict:
    for start, value in _ranking_candidates(text):
        if value is None:
            raise _error("the ranking list is cut off", _RANKING_EXPECTED, text)
        if _after_example(text, start, text.rfind("\n", 0, start) + 1):
            continue
        return _ranking_verdict(value, text)  # type: ignore[arg-type]
    raise _error("no ranking list found", _RANKING_EXPECTED, text)


def _ranking_verdict(items: list[dict], text: str) -> ParsedVerdict:
    ranks: dict[str, int] = {}
    for item in items:
        name = item["model"]
        side = _RANKING_MODELS.get(name.strip().lower()) if isinstance(name, str) else None
        if side is None:
            raise _error(f"unknown model {name!r} in the ranking", _RANKING_EXPECTED, text)
        if side in ranks:
            raise _error(f"model {name!r} is ranked twice", _RANKING_EXPECTED, text)
        rank = _rank(item.get("rank"))
        if rank is None or rank < 1:
            raise _error(
                f"rank {item.get('rank')!r} of {name!r} is not a positive integer", _RANKING_EXPECTED, text
            )
        ranks[side] = rank
    if set(ranks) != {"A", "B"}:
        raise _error("the ranking does not rank both models", _RANKING_EXPECTED, text)
    a, b = ranks["A"], ranks["B"]
    return ParsedVerdict(winner="A" if a < b else "B" if b < a else "tie", source="last ranking list")


# --------------------------------------------------------------------------------------------------
# arena_hard_parser: [[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]]

_ARENA_TOKEN = re.compile(r"\[\[\s*([AB])\s*(>>|<<|>|<|=)\s*([AB])\s*\]\]", re.IGNORECASE)
_ARENA_EXPECTED = "a final verdict label [[A>>B]], [[A>B]], [[A=B]], [[B>A]] or [[B>>A]]"


def _arena_label(m: re.Match) -> tuple[str, int] | None:
    left, op, right = m.group(1).upper(), m.group(2), m.group(3).upper()
    if left == right:
        return None  # [[A>A]] is not a verdict
    if op == "=":
        return ("tie", 1)
    winner = left if op.startswith(">") else right
    return (winner, 2 if len(op) == 2 else 1)


def arena_hard_parser(completion: str, output_format: str, quoted: Quoted | None = None) -> ParsedVerdict:
    """Parse arena-hard's verdict labels; the last label wins.

    ``[[A>>B]]``/``[[B>>A]]`` are strong verdicts (strength 2), ``[[A>B]]``/``[[B>A]]`` weak ones,
    ``[[A=B]]`` a tie. The mirrored spellings ``[[A<B]]``, ``[[A<<B]]``, ``[[B<A]]``, ``[[B=A]]`` are
    read as what they say. Case and inner spaces do not matter. A quoted menu of the choices or the
    template's "Example output" is skipped (module docstring). ``output_format`` is not needed, but a
    single-score format is a configuration error. A label copied from a ``quoted`` answer is ignored.
    """
    _reject_score_format("arena_hard_parser", output_format)
    text = _require_text(completion, _ARENA_EXPECTED)
    return _without_quotes(_parse_arena_hard, text, quoted)


def _parse_arena_hard(text: str) -> ParsedVerdict:
    tokens = _verdict_tokens(text, _ARENA_TOKEN, _arena_label, labels_can_be_menus=True)
    if not tokens:
        raise _error("no verdict label found", _ARENA_EXPECTED, text)
    winner, strength = tokens[-1][1]  # type: ignore[misc]
    return ParsedVerdict(winner=winner, strength=strength, source="last verdict label")


def _reject_score_format(parser: str, output_format: str | None) -> None:
    if output_format is None:
        return
    if _norm_format(output_format) in _SCORE_FORMATS:
        raise ValueError(
            f"{parser} gives pairwise verdicts and cannot read output_format {output_format!r}; "
            "use lmsys_parser for score formats"
        )


# --------------------------------------------------------------------------------------------------

PARSERS: dict[str, Callable[..., ParsedVerdict]] = {
    "lmsys_parser": lmsys_parser,
    "ranking_parser": ranking_parser,
    "arena_hard_parser": arena_hard_parser,
}


def parse_verdict(parser_name: str, completion: str, output_format: str, quoted: Quoted | None = None) -> ParsedVerdict:
    """Parse ``completion`` with the parser named in the config (``fn_completion_parser``); ``quoted``
    maps a label (``"answer B"``) to an answer the judge was shown: verdicts copied from it do not count."""
    try:
        parser = PARSERS[parser_name]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown fn_completion_parser {parser_name!r}; expected one of: {', '.join(PARSERS)}"
        ) from None
    return parser(completion, output_format, quoted)
