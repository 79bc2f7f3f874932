"""The series notation of rule tests: one value per evaluation interval.

``"up up down"`` is three polls; ``"0+100x4"`` expands to ``0 100 200 300 400``
(start, step, then *n* more values, as Prometheus' promtool does); ``"downx2"``
repeats a value *n* more times; ``_`` is a poll without that value and ``_x3``
three of them; ``timeout`` is a poll the device did not answer. Text with
spaces is quoted: ``'eth 0'x2``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MISSING", "TIMEOUT", "Missing", "SeriesValue", "Timeout", "expand_series"]


class Missing:
    """A poll that did not carry this value (``_``)."""

    def __repr__(self) -> str:
        return "_"


class Timeout:
    """A poll the device did not answer (``timeout``)."""

    def __repr__(self) -> str:
        return "timeout"


MISSING: Final = Missing()
TIMEOUT: Final = Timeout()
SeriesValue = int | float | str | Missing | Timeout

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_STEP = re.compile(rf"^(?P<start>{_NUMBER})(?P<step>[+-](?:\d+(?:\.\d*)?|\.\d+))x(?P<n>\d+)$")
_REPEAT = re.compile(r"^(?P<value>.+?)x(?P<n>\d+)$")
_NUM = re.compile(rf"^{_NUMBER}$")


def _scalar(word: str, quoted: bool) -> SeriesValue:
    if quoted:
        return word
    if word == "_":
        return MISSING
    if word == "timeout":
        return TIMEOUT
    if _NUM.match(word):
        number = float(word)
        return int(number) if number.is_integer() and not any(c in word for c in ".eE") else number
    return word


def expand_series(text: str, *, limit: int) -> list[SeriesValue]:
    """Expands a series into one value per interval.

    Args:
        text: The series as written in the test file.
        limit: The most values a series may expand to.

    Returns:
        Numbers (int when written without a point), text, :data:`MISSING` or
        :data:`TIMEOUT`, in order.

    Raises:
        ValueError: Empty series, an unclosed quote, or more than ``limit`` values.
    """
    tokens = _tokens(text)
    if not tokens:
        raise ValueError("an empty series: give one value per interval, e.g. 'up up down'")
    out: list[SeriesValue] = []
    for written in tokens:
        out.extend(_expand_token(written))
        if len(out) > limit:
            raise ValueError(f"series {text[:60]!r} expands to more than {limit} values")
    return out


def _tokens(text: str) -> list[str]:
    """Splits on whitespace outside quotes; the tokens keep their quotes."""
    tokens: list[str] = []
    current = ""
    quote = ""
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char.isspace():
            if current:
                tokens.append(current)
            current = ""
        else:
            current += char
    if quote:
        raise ValueError(f"unclosed quote in series {text!r}")
    if current:
        tokens.append(current)
    return tokens


def _unquote(text: str) -> tuple[str, bool]:
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        return text[1:-1], True
    return text, False


def _expand_token(written: str) -> list[SeriesValue]:
    step = _STEP.match(written)
    if step is not None:
        start, delta, n = float(step["start"]), float(step["step"]), int(step["n"])
        whole = "." not in written and "e" not in written.lower()
        values = [start + delta * i for i in range(n + 1)]
        return [int(v) if whole else v for v in values]
    repeat = _REPEAT.match(written)
    if repeat is not None:
        value_text, quoted = _unquote(repeat["value"])
        value, n = _scalar(value_text, quoted), int(repeat["n"])
        # As promtool: "_xn" is n missing values; any other "axn" is a and n more.
        return [value] * (n if value is MISSING else n + 1)
    token, quoted = _unquote(written)
    return [_scalar(token, quoted)]
