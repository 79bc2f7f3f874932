"""Label matchers for silences and maintenance: ``K=V``, ``K!=V``, ``K=~RE``, ``K!~RE``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Matcher", "matches_all", "parse_matcher"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` satisfy this matcher (a missing label is "")."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parses ``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex``.

    Raises:
        ValueError: The text is not a matcher, the name is invalid or the regex
            does not compile; the message quotes the text.
    """
    for op in ("!~", "=~", "!=", "="):
        name, sep, value = text.partition(op)
        if sep:
            name = name.strip()
            if not _NAME.match(name):
                raise ValueError(f"invalid matcher {text!r}: bad label name {name!r}")
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"invalid matcher {text!r}: {exc}") from None
            return Matcher(name, op, value)
    raise ValueError(f"invalid matcher {text!r}: use name=value, name!=value, name=~regex")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
