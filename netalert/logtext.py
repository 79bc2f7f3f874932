"""Escaping and bounding log text: the pure half of :mod:`netalert.logs`.

Every value a log line carries passes through here: :func:`escape` makes it
one line with no terminal control, :func:`quote` writes it after ``key=``,
and :func:`fit` cuts the longest values so a whole line stays within
``[agent] log_line_max`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Part", "escape", "fit", "json_cost", "quote", "render_measured", "render_text"]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/@[]+,")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_QUOTED = {**_SHORT, '"': '\\"', "\\": "\\\\"}
_MIN_KEPT = 16  # characters a cut value keeps even when the line is full of values


def _escape_char(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # a JSON surrogate pair, so a quoted value stays a JSON string
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def escape(text: str, *, quoted: bool = False) -> str:
    """Escapes every character :meth:`str.isprintable` refuses, except the space.

    That is every control character (C0 with CR, LF, TAB and NUL; DEL; C1 with
    NEL and CSI), format characters (bidi overrides, zero-width), separators
    other than the space (U+2028, U+2029, no-break spaces), unassigned code
    points and lone surrogates: as ``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f``
    or ``\\uXXXX``. With ``quoted``, ``"`` and ``\\`` are escaped too, so that
    ``"`` + the result + ``"`` is a JSON string literal of ``text``. Never raises.
    """
    if text.isprintable() and not (quoted and ('"' in text or "\\" in text)):
        return text
    table = _QUOTED if quoted else _SHORT
    return "".join(
        table.get(char) or (char if char.isprintable() else _escape_char(char)) for char in text
    )


def quote(value: str) -> str:
    """A value as written after ``key=``: bare when it has only letters, digits and
    ``_-.:/@[]+,``; otherwise a quoted JSON string literal (see :func:`escape`)."""
    if value and _SAFE.issuperset(value):
        return value
    # Device data is untrusted: quoted and escaped, one event stays one line
    # and cannot forge another (nor move the terminal's cursor).
    return '"' + escape(value, quoted=True) + '"'


Mode = Literal["value", "free", "tail"]


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a text line: ``prefix`` then ``text`` written as ``mode`` says.

    ``value``: :func:`quote`; ``free``: :func:`escape` without quotes (a
    message that is not an event); ``tail``: quoted, and cut from the front
    (a traceback ends with what went wrong).
    """

    prefix: str
    text: str
    mode: Mode = "value"


def _free_cost(text: str) -> int:
    return len(escape(text))


def _quoted_cost(text: str) -> int:
    return len(escape(text, quoted=True))


def json_cost(text: str) -> int:
    """Characters ``text`` takes inside a JSON string written with ``ensure_ascii``."""
    return len(json.dumps(text, ensure_ascii=True)) - 2


def _level(lengths: Sequence[int], budget: int) -> int:
    """The largest cap c with sum(min(length, c)) <= budget (at least _MIN_KEPT)."""
    remaining, left = budget, len(lengths)
    for length in sorted(lengths):
        if length * left > remaining:
            return max(_MIN_KEPT, remaining // left)
        remaining -= length
        left -= 1
    return max(lengths, default=0)


def _shorten(text: str, cap: int, cost: Callable[[str], int], tail: bool) -> str:
    """``text`` cut so that its cost with the ``...[+N]`` marker stays within ``cap``."""
    room = cap - len(f"...[+{len(text)}]")
    kept: list[str] = []
    for char in reversed(text) if tail else text:
        room -= cost(char)
        if room < 0:
            break
        kept.append(char)
    marker = f"...[+{len(text) - len(kept)}]"
    return marker + "".join(reversed(kept)) if tail else "".join(kept) + marker


def fit(
    texts: Sequence[str], budget: int, costs: Sequence[Callable[[str], int]], tails: Sequence[bool]
) -> tuple[list[str], bool]:
    """Cuts the longest of ``texts`` so that their total cost stays within ``budget``.

    A cost is the escaped length of a text, the sum of its characters' costs.

    Short values are kept whole; the long ones share what is left (each keeps
    at least a few characters, so a line with very many values may go over).
    Returns the texts, cut ones ending (or, with ``tails``, starting) with
    ``...[+N]`` for the N characters dropped, and whether any was cut.
    """
    lengths = [cost(t) for t, cost in zip(texts, costs, strict=True)]
    if sum(lengths) <= budget:
        return list(texts), False
    cap = _level(lengths, budget)
    out = [
        t if n <= cap else _shorten(t, cap, cost, tail)
        for t, n, cost, tail in zip(texts, lengths, costs, tails, strict=True)
    ]
    return out, True


def render_text(head: str, parts: Sequence[Part], line_max: int) -> tuple[str, bool]:
    """``head`` and the parts joined by spaces, at most ``line_max`` characters (see
    :func:`fit`; a line with so many values that even their shortest cuts do not
    fit is cut itself); returns the line and whether anything was cut. Never raises."""
    line, cut, _ = render_measured(head, parts, line_max)
    return line, cut


def render_measured(head: str, parts: Sequence[Part], line_max: int) -> tuple[str, bool, int]:
    """:func:`render_text`, plus what the parts need of a line: ``head`` and the parts
    are cut exactly when ``len(head)`` plus that is more than ``line_max``."""
    # Each text written whole, and what that needs: its prefix, the space before it,
    # the quotes a value may need, and its escaped length (its cost in fit).
    pieces = [head]
    need = 0
    for part in parts:
        text = part.text
        if part.mode == "free":
            written = escape(text)
            need += len(part.prefix) + 1 + len(written)
        else:
            written = quote(text)  # the text itself, or its escaped form in quotes
            need += len(part.prefix) + 3 + len(written) - (0 if written is text else 2)
        pieces.append(part.prefix + written)
    if len(head) + need <= line_max:  # what fit would find: every text whole
        line = " ".join(pieces)
        if len(line) <= line_max:
            return line, False, need
    costs = [_free_cost if p.mode == "free" else _quoted_cost for p in parts]
    fixed = sum(len(p.prefix) + (1 if p.mode == "free" else 3) for p in parts)
    texts, cut = fit(
        [p.text for p in parts],
        line_max - len(head) - fixed,
        costs,
        [p.mode == "tail" for p in parts],
    )
    pieces = [head]
    for part, text in zip(parts, texts, strict=True):
        pieces.append(part.prefix + (escape(text) if part.mode == "free" else quote(text)))
    line = " ".join(pieces)
    if len(line) > line_max:  # only with very many values: cut the line itself
        marker = f"...[+{len(line) - line_max}]"
        return line[: max(0, line_max - len(marker))] + marker, True, need
    return line, cut, need
