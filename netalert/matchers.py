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
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

__all__ = [
    "MAX_REGEX_CHARS",
    "OPS",
    "Matcher",
    "check_regex",
    "compile_matchers",
    "first_miss",
    "matches_all",
    "parse_matcher",
]

OPS = ("=", "!=", "=~", "!~")
MAX_REGEX_CHARS = 1024  # a matcher's regular expression, at most
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
        if op in ("=~", "!~"):
            check_regex(value)
        return Matcher(name, op, value)
    except (re.error, ValueError) as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc}") from None


def check_regex(pattern: str) -> None:
    """Refuses a regular expression a label could make run for ever: one longer than
    :data:`MAX_REGEX_CHARS`, or of the forms that backtrack exponentially (a
    repetition inside a repetition, as ``(a+)+``; alternatives that can match the
    same text inside a repetition, as ``(a|aa)+``). Python's ``re`` has no time
    limit, so such a pattern is refused when it is written (config, ``silence add``).

    Raises:
        ValueError: Why, in words.
        re.error: The pattern does not compile.
    """
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regular expression longer than {MAX_REGEX_CHARS} characters")
    if _risky(sre_parse.parse(pattern), inside=False):
        raise ValueError(
            "the regular expression may take exponential time (a repetition inside a "
            "repetition, or alternatives that match the same text inside one): rewrite it, "
            "e.g. (a+)+ as a+"
        )


_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)}


def _risky(items: Any, *, inside: bool) -> bool:
    """True when ``items`` (parsed) hold a nested repetition, or, ``inside`` a repetition,
    an alternation whose branches overlap."""
    for op, arg in items:
        if op in _REPEATS:
            _, high, sub = arg
            repeats = high is sre.MAXREPEAT or high > 1
            if inside and high is sre.MAXREPEAT:
                return True
            # (\d+\.)+ is safe: each turn ends at a character its inner repetition cannot take
            if _risky(sub, inside=(inside or repeats) and not _separated(sub)):
                return True
        elif op is sre.SUBPATTERN:
            if _risky(arg[-1], inside=inside):
                return True
        elif op is sre.BRANCH:
            branches = arg[1]
            if inside and _overlap(branches):
                return True
            if any(_risky(b, inside=inside) for b in branches):
                return True
        elif op in (sre.ASSERT, sre.ASSERT_NOT) and _risky(arg[1], inside=inside):
            return True
    return False


def _separated(body: Any) -> bool:
    """True when ``body`` holds one character that must be there and that none of its
    unbounded repetitions can match: then a text splits into turns one way only."""
    while len(body) == 1 and body[0][0] is sre.SUBPATTERN:  # (...)+ : the group's content
        body = body[0][1][-1]
    loops: list[set[int] | None] = []
    marks: list[set[int]] = []
    for op, arg in body:
        if op in _REPEATS:
            if arg[1] is sre.MAXREPEAT:
                loops.append(_chars(arg[2]))
            elif not (arg[0] == arg[1] == 1):
                return False
        elif op is sre.LITERAL or op is sre.IN:
            chars = _chars([(op, arg)])
            if chars is not None:
                marks.append(chars)
        elif op is not sre.AT:
            return False
    return any(all(_disjoint(c, mark) for c in loops) for mark in marks)


def _disjoint(loop: set[int] | None, mark: set[int]) -> bool:
    if loop is None or loop & mark:
        return False
    # a category's characters past ASCII may include a non-ASCII mark
    return not (_NON_ASCII in loop and any(c > 0x7F for c in mark)) and _NON_ASCII not in mark


_NON_ASCII = -1  # in a character set: and characters past ASCII of its category
_CATEGORIES = {
    sre.CATEGORY_DIGIT: set(range(0x30, 0x3A)),
    sre.CATEGORY_WORD: {
        ord(c) for c in "0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    },
    sre.CATEGORY_SPACE: {ord(c) for c in " \t\n\r\f\v"},
}


def _chars(items: Any) -> set[int] | None:
    """The characters a one-character pattern matches (a category: its ASCII ones and
    :data:`_NON_ASCII`); None when unknown or more than one character."""
    if len(items) != 1:
        return None
    op, arg = items[0]
    if op is sre.LITERAL:
        return {arg}
    if op is not sre.IN:
        return None
    out: set[int] = set()
    for kind, value in arg:
        if kind is sre.LITERAL:
            out.add(value)
        elif kind is sre.RANGE and value[1] - value[0] < 256:
            out.update(range(value[0], value[1] + 1))
        elif kind is sre.CATEGORY and value in _CATEGORIES:
            out.update(_CATEGORIES[value])
            out.add(_NON_ASCII)  # \d, \w and \s take more than ASCII
        else:
            return None
    return out


def _overlap(branches: Sequence[Any]) -> bool:
    """True when two branches may start with the same character (or one may be empty)."""
    seen: set[int] = set()
    for branch in branches:
        first = _first(branch)
        if first is None or first & seen:
            return True
        seen |= first
    return False


def _first(items: Any) -> set[int] | None:
    """The characters ``items`` can start with; None when any, or when it may be empty."""
    for op, arg in items:
        if op is sre.LITERAL:
            return {arg}
        if op is sre.IN and all(o is sre.LITERAL for o, _ in arg):
            return {a for _, a in arg}
        if op is sre.SUBPATTERN:
            return _first(arg[-1])
        if op in _REPEATS and arg[0] > 0:
            return _first(arg[2])
        if op in (sre.AT,):  # an anchor takes no character: look further
            continue
        return None
    return None


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
