"""What a PromQL expression names: metrics, label matchers, grouping labels.

Not a PromQL parser: enough of the grammar to list the series an expression reads,
so a test can check each against a real ``/metrics`` (promtool is not installed with
the test's Debian packages). An expression it cannot read raises :class:`ValueError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["FUNCTIONS", "Matcher", "Names", "names"]

FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg", "avg_over_time", "ceil", "changes",
        "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv", "floor",
        "histogram_quantile", "idelta", "increase", "irate", "label_replace", "last_over_time",
        "max", "max_over_time", "min", "min_over_time", "predict_linear", "quantile",
        "rate", "resets", "round", "scalar", "sort", "sort_desc", "sum", "sum_over_time",
        "time", "topk", "bottomk", "vector",
    }
)  # fmt: skip
_OPERATORS = frozenset({"and", "or", "unless", "bool", "offset"})
_GROUPING = ("by", "without", "on", "ignoring", "group_left", "group_right")

_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = re.compile(rf"\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*({_STRING})\s*,?")
_SELECTOR = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUP = re.compile(rf"\b({'|'.join(_GROUPING)})\s*\(([^()]*)\)")
_WORD = re.compile(r"[A-Za-z_:][\w:]*")


@dataclass(frozen=True, slots=True)
class Matcher:
    """``metric{label op "value"}``; ``metric`` is "" for a selector without a name."""

    metric: str
    label: str
    op: str
    value: str


@dataclass(slots=True)
class Names:
    """What an expression reads."""

    metrics: set[str] = field(default_factory=set)
    matchers: list[Matcher] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # labels of by / without / on / ignoring


def names(expr: str) -> Names:
    """The metrics, matchers and grouping labels of ``expr``.

    Raises:
        ValueError: A selector's matchers or a word are not what PromQL allows there.
    """
    found = Names()
    text = _RANGE.sub(" ", expr)  # [5m], [$__rate_interval], [1h:5m]
    for match in _GROUP.finditer(text):
        found.grouping |= {w.strip() for w in match[2].split(",") if w.strip()}
    text = _GROUP.sub(" ", text)
    out: list[str] = []
    last = 0
    for match in _SELECTOR.finditer(text):
        before = text[last : match.start()]
        name = _WORD.findall(before + " ")[-1] if before.rstrip()[-1:].isalnum() else ""
        body = match[1]
        parsed = list(_MATCHER.finditer(body))
        if "".join(m[0] for m in parsed).strip() != body.strip():
            raise ValueError(f"cannot read the matchers {{{body}}} in {expr!r}")
        found.matchers += [Matcher(name, m[1], m[2], m[3][1:-1]) for m in parsed]
        out.append(before)
        last = match.end()
    out.append(text[last:])
    text = re.sub(_STRING, " ", " ".join(out))  # label_replace's arguments, not names
    for word in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        if word[2]:  # a call
            if word[1] not in FUNCTIONS:
                raise ValueError(f"unknown function {word[1]!r} in {expr!r}")
        elif word[1] not in _OPERATORS and not re.fullmatch(r"[0-9.e+-]+", word[1]):
            found.metrics.add(word[1])
    return found
