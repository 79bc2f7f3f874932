"""The one label-matcher language: ``K=V``, ``K!=V``, ``K=~RE``, ``K!~RE``.

Routes, silences, maintenance windows and inhibit rules all speak it. A
matcher is parsed and its regular expression compiled once, when the config is
loaded (or the silence read): a bad one is a config error naming where it is,
never a surprise at the first alert. Regular expressions are anchored at both
ends, as in Alertmanager (``device=~sw`` does not match ``sw12``), and a label
an alert does not carry reads as ``""``.

This module depends on nothing else of netalert, so ``config/`` validates
matchers with it and ``notify/`` evaluates them, without either importing the
other's internals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["OPS", "Matcher", "compile_matchers", "first_miss", "matches_all", "parse_matcher"]

OPS = ("=", "!=", "=~", "!~")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# the name ends at the first operator character: label names never contain one
_SPLIT = re.compile(r"^([^=!~]*)(=~|!~|!=|=)(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one label, its regular expression compiled.

    Raises:
        ValueError: ``op`` is not one of :data:`OPS`, or the regular expression
            does not compile.
    """

    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown matcher operator {self.op!r}")
        pattern = re.compile(self.value) if self.op in ("=~", "!~") else None
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` satisfy this matcher (a missing label is "")."""
        actual = labels.get(self.name, "")
        if self._pattern is None:
            return (actual == self.value) is (self.op == "=")
        return (self._pattern.fullmatch(actual) is not None) is (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parses ``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex``.

    Raises:
        ValueError: The text is not a matcher, the name is invalid or the regex
            does not compile; the message quotes the text.
    """
    found = _SPLIT.match(text)
    if found is None:
        raise ValueError(f"invalid matcher {text!r}: use name=value, name!=value, name=~regex")
    name, op, value = found.group(1).strip(), found.group(2), found.group(3)
    if not _NAME.match(name):
        raise ValueError(f"invalid matcher {text!r}: bad label name {name!r}")
    try:
        return Matcher(name, op, value)
    except re.error as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc}") from None


def compile_matchers(spec: Mapping[str, str] | Sequence[str]) -> tuple[Matcher, ...]:
    """The matchers of a config ``match``: a table (each key equals its value) or a list
    of matcher strings.

    Raises:
        ValueError: As :func:`parse_matcher`; a table key that is not a label name.
    """
    if isinstance(spec, Mapping):
        out = []
        for name, value in spec.items():
            if not _NAME.match(name):
                raise ValueError(f"bad label name {name!r}")
            out.append(Matcher(name, "=", value))
        return tuple(out)
    return tuple(parse_matcher(text) for text in spec)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


def first_miss(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> str | None:
    """Why ``labels`` fail ``matchers``, for people: the first matcher that does not hold
    (``site='lab', wants 'milano'``); None when all hold."""
    for matcher in matchers:
        if matcher.matches(labels):
            continue
        got = labels.get(matcher.name)
        have = f"{matcher.name}={got!r}" if got is not None else f"no {matcher.name}"
        wants = repr(matcher.value) if matcher.op == "=" else f"{matcher.op}{matcher.value!r}"
        return f"{have}, wants {wants}"
    return None
