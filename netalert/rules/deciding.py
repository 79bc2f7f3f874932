"""Which value an alert shows: the operand of the comparison that decided its rule.

A rule without ``value`` shows one operand of one comparison of its
expression. Which one is decided at each evaluation, the way ``and``/``or``
evaluate (short-circuit, left to right):

* the **deciding comparisons** of ``A and B and C`` are those of every
  operand when all are true, else those of the first false operand alone;
  of ``A or B or C``, those of the first true operand, else of every operand;
  of ``not A``, those of ``A``; anything else (a comparison, a call, a name)
  decides for itself;
* among them the **last threshold comparison** (``<``, ``<=``, ``>``, ``>=``)
  wins, else the **first** comparison (``==``, ``!=``, ``in``, ``not in``);
  when no comparison decided, the value is that of the last deciding operand;
* of that comparison the alert shows the first side that is not a constant
  (``x`` of ``80 < x < 90``).

So ``hrStorageSize > 0 and hrStorageUsed * 100 / hrStorageSize > 90`` shows
the used percentage whether it fires (both true: the last threshold) or clears
(the percentage test is the false one), and ``ifOperStatus == 'down' and
ifAdminStatus == 'up'`` shows ``down`` firing and ``up`` once the port is up.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Evaluator", "deciding_value"]

Evaluator = Callable[[Mapping[str, Any], Any], Any]
_THRESHOLDS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_CONSTANTS = (ast.Constant, ast.Tuple, ast.List, ast.Set)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """An operand of ``and``/``or``/``not``: its truth decides; comparisons have a side."""

    test: Evaluator
    side: Evaluator | None  # the operand people read, for a comparison
    threshold: bool


@dataclass(frozen=True, slots=True)
class _Branch:
    every: bool  # and: every part must be true; or: one part suffices
    parts: tuple[_Leaf | _Branch | _Not, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    part: _Leaf | _Branch | _Not


_Part = _Leaf | _Branch | _Not


def deciding_value(node: ast.expr, compile_part: Callable[[ast.expr], Evaluator]) -> Evaluator:
    """Returns the evaluator of the value shown for the checked expression ``node``.

    ``compile_part`` turns a subtree of ``node`` into an evaluator (it may
    change the subtree: each call gets its own). The returned function raises
    what the expression's own evaluation raises for missing or mistyped values.
    """
    root = _build(node, compile_part)

    def value(names: Mapping[str, Any], history: Any) -> Any:
        _, leaves = _decide(root, names, history)
        compared = [leaf for leaf in leaves if leaf.side is not None]
        thresholds = [leaf for leaf in compared if leaf.threshold]
        chosen = thresholds[-1] if thresholds else (compared[0] if compared else None)
        if chosen is None or chosen.side is None:
            return leaves[-1].test(names, history)
        return chosen.side(names, history)

    return value


def _build(node: ast.expr, compile_part: Callable[[ast.expr], Evaluator]) -> _Part:
    if isinstance(node, ast.BoolOp):
        every = isinstance(node.op, ast.And)
        return _Branch(every, tuple(_build(v, compile_part) for v in node.values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _Not(_build(node.operand, compile_part))
    side = None
    threshold = False
    if isinstance(node, ast.Compare):
        threshold = any(isinstance(op, _THRESHOLDS) for op in node.ops)
        sides = (node.left, *node.comparators)
        chosen = next((s for s in sides if not isinstance(s, _CONSTANTS)), node.left)
        side = compile_part(_copy(chosen))
    return _Leaf(compile_part(_copy(node)), side, threshold)


def _copy(node: ast.expr) -> ast.expr:
    # compile_part may rewrite the tree in place; the parts must not share nodes
    return copy.deepcopy(node)


def _decide(part: _Part, names: Mapping[str, Any], history: Any) -> tuple[bool, list[_Leaf]]:
    """The part's truth and the leaves that decided it (see the module docstring)."""
    if isinstance(part, _Leaf):
        return bool(part.test(names, history)), [part]
    if isinstance(part, _Not):
        truth, leaves = _decide(part.part, names, history)
        return not truth, leaves
    gathered: list[_Leaf] = []
    for sub in part.parts:
        truth, leaves = _decide(sub, names, history)
        if truth is not part.every:
            return truth, leaves
        gathered += leaves
    return part.every, gathered
