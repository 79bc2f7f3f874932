"""The one table printer of the ``netalert`` commands, and when colour is allowed.

Every table a command prints (``alerts``, ``silence list``) goes through
:func:`format_table`: a header, columns padded to their widest cell, two
spaces between them, the last column unpadded. Cells come from devices and
users, so each is escaped (:func:`netalert.logtext.escape`): no control
character, escape sequence or line break reaches a terminal. No command
prints colour today; one that does must ask :func:`colour_wanted` first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

from netalert.logtext import escape

__all__ = ["colour_wanted", "format_table", "print_table"]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The table as text, lines joined by newlines, without a trailing newline.

    Every row has as many cells as ``headers``; trailing spaces are dropped.
    Never raises for text cells.
    """
    lines = [tuple(escape(cell) for cell in headers)]
    lines += [tuple(escape(cell) for cell in row) for row in rows]
    last = len(headers) - 1
    widths = [max(len(line[i]) for line in lines) for i in range(last)]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:last])]
        out.append("  ".join([*cells, line[last]]).rstrip())
    return "\n".join(out)


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, out: TextIO | None = None
) -> None:
    """Writes :func:`format_table` and a newline to ``out`` (default: stdout)."""
    print(format_table(headers, rows), file=out if out is not None else sys.stdout)


def colour_wanted(
    stream: TextIO, *, json_output: bool = False, environ: Mapping[str, str] | None = None
) -> bool:
    """True only when ``stream`` is a terminal, the output is not JSON, ``NO_COLOR`` is
    unset or empty (no-color.org) and ``TERM`` is not ``dumb``. Never raises."""
    env = os.environ if environ is None else environ
    if json_output or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: no colour
        return False
