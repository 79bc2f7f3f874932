"""Type-checking rule expressions at load: comparisons that can never be what was meant.

Each name has a kind of value from its MIB syntax: a *number* (INTEGER,
Integer32, Gauge32, Counter32/64, TimeTicks, Unsigned32, an Opaque float),
*text* (OCTET STRING and its textual conventions such as DisplayString, IpAddress,
OBJECT IDENTIFIER, BITS, device labels, ``device``) or *any* (an enumeration,
which equals both its label and its number; ``value('1.3.6...')``; an unknown
syntax). Text never equals, and never orders with, a number: ``laLoad > 4``
(laLoad is a DisplayString) would be unknown at every poll and never fire, and
``ifDescr != 5`` would always hold. Such a comparison, and arithmetic on text,
is refused with the names, the kinds and the position.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Literal

__all__ = ["NUMERIC_OID", "Kind", "TypeChecker", "kind_of_syntax"]

# value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1'): a polled instance by number (no MIB needed)
NUMERIC_OID = re.compile(r"[0-9]+(\.[0-9]+)+")

Kind = Literal["number", "text", "any"]

_NUMBERS = frozenset(
    {"INTEGER", "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks"}
)
_TEXTS = frozenset({"OCTET STRING", "IpAddress", "OBJECT IDENTIFIER", "BITS"})
# net-snmp's UCD-SNMP-MIB and its followers wrap floats in an Opaque with these conventions
_FLOAT_TCS = frozenset({"Float", "Double", "Float32", "Float64"})
_ORDERED = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}


def kind_of_syntax(syntax: str, tc: str, has_enums: bool) -> Kind:
    """The kind of value a MIB object of this base syntax and textual convention holds."""
    if has_enums:
        return "any"
    if syntax in _NUMBERS:
        return "number"
    if syntax == "Opaque":
        return "number" if tc in _FLOAT_TCS else "any"
    if syntax in _TEXTS:
        return "text"
    return "any"


# (kind, how to name it in a message) of a name; None for a name the checker already refused
NameKinds = Callable[[str], tuple[Kind, str] | None]
# fail(node, what, after): an error saying "{what} at column N{after}"
Fail = Callable[[ast.AST, str, str], Exception]


class TypeChecker:
    """Infers the kind of each subexpression and refuses mismatches (see the module text)."""

    def __init__(self, names: NameKinds, fail: Fail) -> None:
        self._names = names
        self._fail = fail

    def check(self, node: ast.expr) -> Kind:
        """The kind of ``node``'s value; raises ``fail(...)`` where text meets a number."""
        if isinstance(node, ast.Constant):
            return "text" if isinstance(node.value, str) else "number"
        if isinstance(node, ast.Name):
            found = self._names(node.id)
            return found[0] if found is not None else "any"
        if isinstance(node, ast.Compare):
            self._compare(node)
            return "number"
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value)
            return "any"
        if isinstance(node, ast.UnaryOp):
            kind = self.check(node.operand)
            if isinstance(node.op, ast.Not):
                return "number"
            if kind == "text":
                what = self._describe(node.operand, kind)
                raise self._fail(node, f"a sign needs a number, not {what}", "")
            return kind
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.IfExp):
            self.check(node.test)
            body, other = self.check(node.body), self.check(node.orelse)
            return body if body == other else "any"
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            for elt in node.elts:
                self.check(elt)
            return "any"
        return "any"

    def _call(self, node: ast.Call) -> Kind:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name == "value":
            return "any"
        kinds = [self.check(arg) for arg in node.args]
        if name in ("rate", "delta", "changed", "abs"):
            return "number"
        if name == "prev":
            return kinds[0] if kinds else "any"
        if name in ("min", "max"):
            return "number" if kinds and all(k == "number" for k in kinds) else "any"
        return "any"

    def _binop(self, node: ast.BinOp) -> Kind:
        left, right = self.check(node.left), self.check(node.right)
        if "any" in (left, right):
            return "any"
        if left == right == "number":
            return "number"
        if left == right == "text" and isinstance(node.op, ast.Add):
            return "text"
        symbol = _SYMBOLS.get(type(node.op), "this operator")
        culprit, kind = (node.left, left) if left == "text" else (node.right, right)
        raise self._fail(
            node,
            f"'{symbol}' needs numbers, not {self._describe(culprit, kind)}",
            " (the result would never be known)",
        )

    def _compare(self, node: ast.Compare) -> None:
        left = node.left
        left_kind = self.check(left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            right_kind = self.check(right)
            self._pair(left, left_kind, op, right, right_kind)
            left, left_kind = right, right_kind

    def _pair(self, left: ast.expr, lk: Kind, op: ast.cmpop, right: ast.expr, rk: Kind) -> None:
        if isinstance(op, ast.In | ast.NotIn):
            if isinstance(right, ast.Tuple | ast.List | ast.Set):
                kinds = [self.check(e) for e in right.elts]
                if kinds and all(_clash(lk, k) for k in kinds):
                    self._refuse(left, lk, right.elts[0], kinds[0], isinstance(op, ast.NotIn))
            elif rk == "text" and lk == "number":
                self._refuse(left, lk, right, rk, isinstance(op, ast.NotIn))
            return
        if _clash(lk, rk):
            self._refuse(left, lk, right, rk, isinstance(op, ast.NotEq))

    def _refuse(self, left: ast.expr, lk: Kind, right: ast.expr, rk: Kind, always: bool) -> None:
        outcome = "always true" if always else "never true"
        hint = ""
        for side in (left, right):
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                text = side.value.strip().lstrip(".")
                if NUMERIC_OID.fullmatch(text):
                    hint = f" (to read a polled instance by its OID, use value('{text}'))"
        raise self._fail(
            left,
            f"{self._describe(left, lk)} is compared with {self._describe(right, rk)}",
            f": that is {outcome}{hint}",
        )

    def _describe(self, node: ast.expr, kind: Kind) -> str:
        if isinstance(node, ast.Constant):
            shown = repr(node.value)
            return f"the text {shown}" if kind == "text" else f"the number {shown}"
        what = "text" if kind == "text" else "a number"
        if isinstance(node, ast.Name):
            found = self._names(node.id)
            syntax = found[1] if found is not None else ""
            return f"{node.id} ({what}, {syntax})" if syntax else f"{node.id} ({what})"
        return f"{ast.unparse(node)} ({what})"


def _clash(a: Kind, b: Kind) -> bool:
    return {a, b} == {"number", "text"}
