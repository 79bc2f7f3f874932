"""What an operator typed: the first line of a reply that is not quoted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from netalert.config.types import parse_duration

__all__ = ["Command", "Verb", "command_line", "parse_command"]

_COMMENT_MAX = 200
# Lines mail clients put above the quote ("On Mon, ... wrote:") or under a signature.
_NOT_TYPED = re.compile(r"^(on .* wrote:|-- ?|_{5,}|-{5,}.*)$", re.IGNORECASE)


class Verb(StrEnum):
    """The commands a reply may give."""

    ACK = "ack"
    UNACK = "unack"
    SILENCE = "silence"
    RESOLVE = "resolve"
    HELP = "help"  # anything else: answered with the list of commands


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command; ``seconds`` only for ``silence``."""

    verb: Verb
    comment: str = ""
    seconds: float = 0.0


def command_line(body: str) -> str:
    """The first line of ``body`` that is neither empty nor quoted (``>``), stripped."""
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.startswith(">"):
            continue
        if _NOT_TYPED.match(line):
            return ""
        return line
    return ""


def _comment(text: str) -> str:
    text = " ".join(text.split())
    cleaned = "".join(c for c in text if c.isprintable())
    return cleaned[:_COMMENT_MAX]


def parse_command(body: str) -> Command:
    """The command in a reply's text body, case-insensitive; ``help`` when there is none.

    ``ack [comment]``, ``unack``, ``silence DURATION [comment]`` (``2h``, ``30m``),
    ``resolve``. A ``silence`` whose duration does not parse is ``help``.
    """
    line = command_line(body)
    word, _, rest = line.partition(" ")
    verb = word.lower().rstrip(".!:,")
    if verb == "ack":
        return Command(Verb.ACK, _comment(rest))
    if verb == "unack" and not rest.strip():
        return Command(Verb.UNACK)
    if verb == "resolve" and not rest.strip():
        return Command(Verb.RESOLVE)
    if verb == "silence":
        length, _, comment = rest.strip().partition(" ")
        try:
            seconds = parse_duration(length.lower()).total_seconds()
        except ValueError:
            return Command(Verb.HELP)
        if seconds <= 0:
            return Command(Verb.HELP)
        return Command(Verb.SILENCE, _comment(comment), seconds)
    return Command(Verb.HELP)
