"""Small shared pieces of evaluation: truth with "unknown", the shown value, rule scope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netalert.alerts import MAX_LABEL, label_text
from netalert.rules.compile import PollRule, TrapRule
from netalert.rules.expr import Expr
from netalert.rules.history import Unknown
from netalert.rules.values import render_value

__all__ = ["applies", "computed", "shown", "truth"]

# What evaluating an expression on device data may raise: the answer is "unknown".
_UNKNOWN = (KeyError, TypeError, ArithmeticError, ValueError, Unknown)


def truth(expr: Expr, names: Mapping[str, Any], history: Any) -> bool | None:
    """True/False, or None when a value is missing or of the wrong kind (unknown)."""
    try:
        return bool(expr.fn(names, history))
    except _UNKNOWN:
        return None


def shown(expr: Expr, names: Mapping[str, Any], history: Any, limit: int = MAX_LABEL) -> str:
    """The operand of the comparison that decided ``expr``, as people read it
    (see netalert.rules.deciding), cut to ``limit`` characters; "" when it cannot
    be computed."""
    try:
        return label_text(render_value(expr.value_fn(names, history)), limit)
    except _UNKNOWN:
        return ""


def computed(expr: Expr, names: Mapping[str, Any], history: Any, limit: int = MAX_LABEL) -> str:
    """The result of ``expr`` (a rule's ``value``) as people read it, cut to ``limit``
    characters; "" when unknown."""
    try:
        return label_text(render_value(expr.fn(names, history)), limit)
    except _UNKNOWN:
        return ""


def applies(rule: PollRule | TrapRule, device: str, labels: Mapping[str, str]) -> bool:
    """Whether ``rule`` applies to ``device`` (its ``devices`` and ``match``)."""
    if rule.devices and device not in rule.devices:
        return False
    return all((device if k == "device" else labels.get(k)) == v for k, v in rule.match.items())
