"""Which parts of a judge's reply were copied from the answers it judged.

A candidate's answer is text the judge repeats: a judge that quotes answer B ("B concludes: ... so my
verdict is [[B]]") or one that echoes its whole prompt would otherwise hand the battle to whoever
wrote a verdict token into their answer. A span of the reply (a verdict token, a ranking list, a
line) counts as copied from an answer when the answer holds the same text *and* the reply repeats the
answer's text around it: at least ``CONTEXT_CHARS`` characters of it before and after together, or
all there is when the answer is shorter. The judge's own ``My verdict: [[A]]`` is not a copy of an
answer that says ``I win. [[A]]``; a judge copying ``verdict is [[B]]`` out of answer B is.

Whitespace runs count as one space and markdown quote marks (``> ``) at line starts are ignored, so a
judge that re-wraps or block-quotes an answer still copies it. Pure standard library; no pytest.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Mapping, Sequence

__all__ = ["CONTEXT_CHARS", "Quoted", "QuoteFinder", "bracket_spans", "without_quotes"]

#: a label (``"answer B"``) -> the text of an answer the judge was shown, or its turns
Quoted = Mapping[str, "str | Sequence[str]"]

#: how much of an answer's own text around a token the reply must repeat for the token to be a copy
CONTEXT_CHARS = 8
# the reply's text looked at on each side of a span (enough for CONTEXT_CHARS after squeezing blanks)
_WINDOW = 200
# a token written many times in a long answer: the first ones are enough to tell a copy
_MAX_OCCURRENCES = 100
# markdown quote marks at the start of a line
_QUOTE_MARKS = re.compile(r"\n[ \t]*>[> \t]*")


def _squeeze(text: str) -> str:
    """Each run of whitespace as one space (a blank at either end kept), quote marks dropped."""
    if ">" in text:
        text = _QUOTE_MARKS.sub("\n", text)
    core = " ".join(text.split())
    if not core:
        return " " if text else ""
    return (" " if text[0].isspace() else "") + core + (" " if text[-1].isspace() else "")


@functools.lru_cache(maxsize=1024)
def _squeezed_answer(text: str) -> str:
    # An answer is judged in several battles (and both orders under swap_position): squeezed once.
    return _squeeze(text).strip()


class QuoteFinder:
    """Tells, for spans of one reply, which answer (if any) each was copied from.

    ``quoted`` maps a label (``"answer A"``) to that answer's text, or to its turns.
    """

    def __init__(self, reply: str, quoted: Mapping[str, str | Sequence[str]]):
        self.reply = reply
        self._answers: list[tuple[str, str]] = [
            (label, text)
            for label, texts in quoted.items()
            for text in ([texts] if isinstance(texts, str) else texts)
            if text.strip()
        ]

    def __bool__(self) -> bool:
        return bool(self._answers)

    def source(self, start: int, end: int) -> str | None:
        """The label of the answer that ``reply[start:end]`` was copied from, or None."""
        token = _squeeze(self.reply[start:end]).strip()
        if not token:
            return None
        first_word = token.split(" ", 1)[0]
        before = after = None
        for label, answer in self._answers:
            # Squeezing only changes blanks: an answer without the token's first word cannot hold it
            # (most answers hold no verdict token at all, and are never squeezed).
            if first_word not in answer:
                continue
            if before is None:
                before = _squeeze(self.reply[max(0, start - _WINDOW):start])
                after = _squeeze(self.reply[end:end + _WINDOW])
            if _copied(token, before, after, _squeezed_answer(answer)):
                return label
        return None


def _copied(token: str, before: str, after: str, answer: str) -> bool:
    found = answer.find(token)
    for _ in range(_MAX_OCCURRENCES):
        if found < 0:
            return False
        end = found + len(token)
        # what the answer has around this occurrence, and how much of it the reply repeats
        available = min(CONTEXT_CHARS, found + len(answer) - end)
        repeated = _common_suffix(before, answer[:found]) + _common_prefix(after, answer[end:])
        if repeated >= available:
            return True
        found = answer.find(token, found + 1)
    return False


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < CONTEXT_CHARS and n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < CONTEXT_CHARS and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


# --------------------------------------------------------------------------------------------------
# blanking the copies out of a reply, for the parsers

# every double-bracket token of every format: [[A]], [[8]], [[8, 9]], [[A>>B]], ...
_BRACKET_TOKEN = re.compile(r"\[\[[^\[\]\n]{1,40}\]\]")
_LINE = re.compile(r"[^\n]*\S[^\n]*")


def bracket_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _BRACKET_TOKEN.finditer(text)]


def without_quotes(text: str, quoted: Quoted, spans: Callable[[str], list[tuple[int, int]]], *,
                   edge_lines: bool = False) -> tuple[str, str]:
    """``text`` with each of its ``spans`` copied from a quoted answer blanked out, and a note of what
    was (``"ignored 1 token quoted from answer B"``, or ``""``). With ``edge_lines``, the lines copied
    at the end and at the start of the reply too (where a rating fallback would read one)."""
    finder = QuoteFinder(text, quoted)
    if not finder:
        return text, ""
    cuts: list[tuple[int, int]] = []
    ignored: dict[tuple[str, str], int] = {}
    for start, end in spans(text):
        label = finder.source(start, end)
        if label is not None:
            cuts.append((start, end))
            ignored[(label, "token")] = ignored.get((label, "token"), 0) + 1
    if edge_lines:
        for label, start, end in _copied_edge_lines(text, finder):
            cuts.append((start, end))
            ignored[(label, "line")] = ignored.get((label, "line"), 0) + 1
    return _blank(text, cuts), _note(ignored)


def _copied_edge_lines(text: str, finder: QuoteFinder) -> list[tuple[str, int, int]]:
    """The lines at the end (and at the start) of the reply copied from an answer, up to the first
    line that is the judge's own: (label, start, end) of those holding a number."""
    lines = []
    for m in _LINE.finditer(text):
        stripped = m.group().strip()
        start = m.start() + m.group().index(stripped)
        lines.append((start, start + len(stripped)))
    found: dict[int, tuple[str, int, int]] = {}
    for ordered in (reversed(lines), lines):
        for start, end in ordered:
            label = finder.source(start, end)
            if label is None:
                break
            if any(ch.isdigit() for ch in text[start:end]):
                found[start] = (label, start, end)
    return list(found.values())


def _blank(text: str, cuts: list[tuple[int, int]]) -> str:
    """``text`` with each cut replaced by spaces (line breaks kept, so lines stay lines)."""
    if not cuts:
        return text
    chars = list(text)
    for start, end in cuts:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def _note(ignored: dict[tuple[str, str], int]) -> str:
    if not ignored:
        return ""
    parts = [f"{n} {kind}{'s' if n > 1 else ''} quoted from {label}" for (label, kind), n in ignored.items()]
    return "ignored " + ", ".join(parts)
