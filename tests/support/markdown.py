"""Markdown as GitHub renders it, for the tests that read the docs.

Headings and their anchors (GitHub's rule: lower case, punctuation dropped,
spaces to hyphens, ``-1``, ``-2``... for repeats), inline links, and the text
of one section. Fenced code blocks and code spans are not prose: a heading or
a link inside them does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Heading", "Link", "anchors", "headings", "links", "section", "slug"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[([^\[\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


@dataclass(frozen=True, slots=True)
class Heading:
    line: int  # 1-based
    level: int
    title: str  # as written, Markdown included


@dataclass(frozen=True, slots=True)
class Link:
    line: int  # 1-based
    target: str  # as written: path, "#anchor" or "path#anchor"


def prose(text: str) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        found = _FENCE.match(line)
        if fence:
            if found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence):
                fence = ""
            continue
        if found:
            fence = found.group(1)
            continue
        yield number, line


def headings(text: str) -> list[Heading]:
    """Every ATX heading (``## Title``) outside code blocks, in order."""
    out = []
    for number, line in prose(text):
        found = _HEADING.match(line)
        if found:
            out.append(Heading(number, len(found.group(1)), found.group(2)))
    return out


def slug(title: str) -> str:
    """GitHub's anchor of a heading, before repeats are numbered."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), title)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link reads as its text
    text = text.replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor the headings of ``text`` make (``x``, then ``x-1``, ``x-2``...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(text):
        base = slug(heading.title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(text: str) -> list[Link]:
    """Targets of the inline links and images outside code blocks and code spans."""
    out = []
    for number, line in prose(text):
        plain = _CODE_SPAN.sub("code", line)
        out += [Link(number, found.group(2)) for found in _LINK.finditer(plain)]
    return out


def section(text: str, title: str) -> str:
    """The text under the heading titled ``title``, up to the next heading of its level or above.

    Raises:
        AssertionError: No heading, or more than one, has that title.
    """
    found = [h for h in headings(text) if h.title == title]
    assert len(found) == 1, f"{len(found)} headings titled {title!r}"
    start = found[0]
    lines = text.splitlines()
    end = len(lines)
    for heading in headings(text):
        if heading.line > start.line and heading.level <= start.level:
            end = heading.line - 1
            break
    return "\n".join(lines[start.line : end]) + "\n"
