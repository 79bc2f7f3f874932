"""Rule expressions: parsed with Python's ``ast``, checked against a whitelist, compiled once.

Why not an evaluator library: simpleeval and cel-python walk the tree on every
evaluation (tens of thousands of evaluations per second); compiling the
checked tree to a Python code object runs at interpreter speed (about a
million evaluations per second for a typical rule, see bench/bench_rules.py),
and the whitelist is small enough to read in one screen. Safety comes from
what the checked tree cannot contain: no attribute access, no indexing, no
imports, no lambdas or comprehensions, no calls except the listed functions,
and names are never looked up in Python's namespaces: each becomes a lookup in
the row's mapping (``ifOperStatus`` → ``_v['ifOperStatus']``). The code runs
with empty builtins. ``**`` is refused and ``*``/``%`` refuse text operands, so
no expression can build a huge number or string from device data.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from netalert.rules.deciding import Evaluator, deciding_value
from netalert.rules.exprtypes import NUMERIC_OID, Kind, TypeChecker

__all__ = [
    "FUNCTIONS",
    "NUMERIC_OID",
    "Expr",
    "ExprError",
    "HistoryFunctions",
    "NameInfo",
    "Scope",
    "compile_expr",
]

HISTORY = ("rate", "delta", "changed", "prev")
FUNCTIONS = (*HISTORY, "abs", "min", "max", "value")


class ExprError(Exception):
    """A rule expression is invalid; ``message`` already names the position."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HistoryFunctions(Protocol):
    """What ``rate()``, ``delta()``, ``changed()`` and ``prev()`` call at run time."""

    def rate(self, name: str) -> Any: ...
    def delta(self, name: str) -> Any: ...
    def changed(self, name: str) -> Any: ...
    def prev(self, name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What a name in an expression stands for.

    ``kind`` is ``"object"`` for a MIB object (history functions accept only
    these), ``"special"`` for ``device``/``source``/``trap``..., ``"label"``
    for a device label. ``enums`` lets the compiler reject misspelt enum labels;
    ``value`` and ``syntax`` let it refuse text compared with a number.
    """

    kind: Literal["object", "special", "label"]
    enums: Mapping[int, str] = field(default_factory=dict)
    value: Kind = "any"  # number, text or any (exprtypes): text never compares with a number
    syntax: str = ""  # how messages name its type: "DisplayString", "Integer32"


@dataclass(frozen=True, slots=True)
class Scope:
    """The names an expression may use.

    ``lookup`` returns a :class:`NameInfo`, or a sentence saying why the name
    cannot be used (it must contain the quoted name, e.g. ``unknown name 'x'``).
    ``candidates`` feed the "did you mean" hint.
    """

    lookup: Callable[[str], NameInfo | str]
    candidates: Iterable[str] = ()


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled expression.

    ``fn(values, history)`` evaluates it; it raises (KeyError, TypeError,
    ArithmeticError, ValueError) when a value is missing or of the wrong kind,
    which the engine treats as "unknown". ``value_fn`` evaluates what people
    are shown as the alert's value: the operand of the comparison that decided
    the expression (see :mod:`netalert.rules.deciding`), e.g. the percentage
    of ``size > 0 and used * 100 / size > 90``.
    """

    source: str
    names: frozenset[str]
    history: frozenset[str]
    fn: Evaluator
    value_fn: Evaluator


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes | tuple) or isinstance(b, str | bytes | tuple):
        raise TypeError("'*' needs numbers")
    return a * b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes | tuple) or isinstance(b, str | bytes | tuple):
        raise TypeError("'%' needs numbers")
    return a % b


_GLOBALS: dict[str, Any] = {
    "__builtins__": {},
    "_abs": abs,
    "_min": min,
    "_max": max,
    "_mul": _mul,
    "_mod": _mod,
}

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access ('.')",
    ast.Subscript: "indexing ('[...]')",
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Dict: "a dict",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "':='",
    ast.Starred: "'*' unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Slice: "a slice",
}
_OPNAMES: dict[type[ast.AST], str] = {
    ast.Pow: "'**'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.BitOr: "'|' (use 'or')",
    ast.BitAnd: "'&' (use 'and')",
    ast.BitXor: "'^'",
    ast.MatMult: "'@'",
    ast.Invert: "'~'",
    ast.Is: "'is' (use '==')",
    ast.IsNot: "'is not' (use '!=')",
}


def compile_expr(source: str, scope: Scope) -> Expr:
    """Parses, checks and compiles one rule expression.

    Raises:
        ExprError: A syntax error, an unknown or unusable name, a function
            other than rate/delta/changed/prev/abs/min/max/value, a construct that is
            not allowed, an enum compared with a label it does not have, or
            text compared with (or computed with) a number; the
            message ends with the position (``at column 5``, or ``at line 2,
            column 5`` for an expression over several lines). Also nesting too
            deep for Python's parser (no position).
    """
    try:
        checker = _Checker(source, scope)
        tree = checker.parse()
        checker.visit(tree.body)
        TypeChecker(checker.kind_of_name, checker.fail).check(tree.body)
        value_fn = deciding_value(tree.body, lambda part: _lambda(_Rewriter().visit(part), source))
        body = _Rewriter().visit(tree.body)
        return Expr(
            source=source,
            names=frozenset(checker.names),
            history=frozenset(checker.history),
            fn=_lambda(body, source),
            value_fn=value_fn,
        )
    except (RecursionError, MemoryError):
        # Python's parser, the checker and compile() recurse once per nesting level:
        # a few hundred chained operators ("a+a+...", "--...-1") exhaust the stack.
        # A config error, not a crash of check-config, run or a SIGHUP reload.
        raise ExprError("expression nests too deeply: split it into simpler rules") from None


def _lambda(body: ast.expr, source: str) -> Evaluator:
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg("_v"), ast.arg("_c")],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    node = ast.fix_missing_locations(ast.Expression(ast.Lambda(args, body)))
    code = compile(node, f"<rule {source[:40]!r}>", "eval")
    fn: Evaluator = eval(code, dict(_GLOBALS))  # noqa: S307 - a checked, rewritten tree
    return fn


class _Checker:
    def __init__(self, source: str, scope: Scope) -> None:
        self.source = source
        self.scope = scope
        self.names: set[str] = set()
        self.history: set[str] = set()
        self.multiline = "\n" in source.strip()
        self.lines = source.split("\n")

    def parse(self) -> ast.Expression:
        text = self.source.strip("\n")
        self.lines = text.split("\n")
        if not text.strip():
            raise ExprError("empty expression")
        # Wrapping in parentheses lets an expression span lines without backslashes.
        wrapped = f"(\n{text}\n)" if self.multiline else text
        try:
            return ast.parse(wrapped, mode="eval")
        except SyntaxError as exc:
            line = (exc.lineno or 1) - (1 if self.multiline else 0)
            line = min(max(line, 1), len(self.lines))
            reason = (exc.msg or "invalid syntax").removesuffix("?")
            if not exc.offset:
                # Python reports an incomplete expression at offset 0: point past its end.
                line, column = len(self.lines), len(self.lines[-1]) + 1
                reason = "unexpected end of expression"
            else:
                column = exc.offset
            rest = self.lines[line - 1][column - 1 :]
            hint = (
                " (use '==' to compare)"
                if rest.startswith("=") and reason == "invalid syntax"
                else ""
            )
            raise ExprError(f"syntax error: {reason} {self._where(line, column)}{hint}") from None

    def _where(self, line: int, column: int) -> str:
        if self.multiline:
            return f"at line {line}, column {column}"
        return f"at column {column}"

    def at(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", 1) - (1 if self.multiline else 0)
        offset = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        # ast offsets count UTF-8 bytes; people count characters.
        column = len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1
        return self._where(line, column)

    def fail(self, node: ast.AST, what: str, hint: str = "") -> ExprError:
        return ExprError(f"{what} {self.at(node)}{hint}")

    def kind_of_name(self, name: str) -> tuple[Kind, str] | None:
        """The kind of value a name holds and its type's name, for :class:`TypeChecker`."""
        info = self.scope.lookup(name)
        if isinstance(info, str):
            return None
        return info.value, info.syntax

    def visit(self, node: ast.AST) -> None:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            refused = _REFUSED.get(type(node), f"'{type(node).__name__}'")
            raise self.fail(node, f"{refused} is not allowed")
        method(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for value in node.values:
            self.visit(value)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise self.fail(node, f"{_OPNAMES.get(type(node.op), 'this operator')} is not allowed")
        self.visit(node.operand)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not isinstance(node.op, _BINOPS):
            raise self.fail(node, f"{_OPNAMES.get(type(node.op), 'this operator')} is not allowed")
        self.visit(node.left)
        self.visit(node.right)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op in node.ops:
            if not isinstance(op, _CMPOPS):
                raise self.fail(node, f"{_OPNAMES.get(type(op), 'this comparison')} is not allowed")
        self.visit(node.left)
        for side in node.comparators:
            self.visit(side)
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            self._check_labels(left, op, right)
            self._check_labels(right, op, left)
            left = right

    def _check_labels(self, name: ast.expr, op: ast.cmpop, other: ast.expr) -> None:
        """Rejects ``ifOperStatus == 'dwon'``: a label the enum does not have."""
        if not isinstance(name, ast.Name):
            return
        info = self.scope.lookup(name.id)
        if not isinstance(info, NameInfo) or not info.enums:
            return
        if isinstance(op, ast.Eq | ast.NotEq):
            constants = [other]
        elif isinstance(op, ast.In | ast.NotIn) and isinstance(
            other, ast.Tuple | ast.List | ast.Set
        ):
            constants = list(other.elts)
        else:
            return
        known = set(info.enums.values())
        for const in constants:
            if (
                isinstance(const, ast.Constant)
                and isinstance(const.value, str)
                and const.value not in known
            ):
                labels = ", ".join(info.enums[k] for k in sorted(info.enums))
                close = difflib.get_close_matches(const.value, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {labels})"
                raise self.fail(const, f"{name.id} has no value {const.value!r}", hint)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self.visit(node.body)
        self.visit(node.orelse)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, int | float | str):  # bool is an int
            return
        raise self.fail(node, f"the constant {node.value!r} is not allowed")

    def visit_Tuple(self, node: ast.Tuple | ast.List | ast.Set) -> None:
        for elt in node.elts:
            self.visit(elt)

    visit_List = visit_Tuple
    visit_Set = visit_Tuple

    def visit_Name(self, node: ast.Name) -> None:
        self.resolve(node)

    def resolve(self, node: ast.Name) -> NameInfo:
        info = self.scope.lookup(node.id)
        if isinstance(info, str):
            hint = ""
            if info.startswith("unknown name"):
                close = difflib.get_close_matches(node.id, list(self.scope.candidates), n=1)
                if close:
                    hint = f" (did you mean '{close[0]}'?)"
            raise self.fail(node, info, hint)
        self.names.add(node.id)
        return info

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name):
            self.visit(func)  # names the real culprit: '.', lambda, indexing
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            what = f"unknown function '{func.id}'" if isinstance(func, ast.Name) else "this call"
            raise self.fail(node, f"{what} (use {', '.join(FUNCTIONS)})")
        if node.keywords:
            raise self.fail(node, f"{func.id}() takes no keyword arguments")
        if func.id == "value":
            self._value_call(node)
            return
        if func.id in HISTORY:
            arg = node.args[0] if len(node.args) == 1 else None
            if not isinstance(arg, ast.Name):
                raise self.fail(node, f"{func.id}() takes one MIB object name, e.g. {func.id}(x)")
            if self.resolve(arg).kind != "object":
                raise self.fail(arg, f"{func.id}() needs a polled MIB object, not {arg.id!r}")
            self.history.add(arg.id)
            return
        if func.id == "abs" and len(node.args) != 1:
            raise self.fail(node, "abs() takes one argument")
        if func.id in ("min", "max") and not node.args:
            raise self.fail(node, f"{func.id}() needs arguments")
        for arg in node.args:
            self.visit(arg)

    def _value_call(self, node: ast.Call) -> None:
        """``value('1.3.6...')``: one quoted numeric OID, which the scope must allow."""
        arg = node.args[0] if len(node.args) == 1 else None
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise self.fail(
                node,
                "value() takes one numeric OID in quotes, e.g. value('1.3.6.1.4.1.9.2.1.58.0')",
            )
        oid = arg.value.strip().lstrip(".")
        if not NUMERIC_OID.fullmatch(oid):
            raise self.fail(arg, f"value() takes a numeric OID, not {arg.value!r}")
        info = self.scope.lookup(oid)
        if isinstance(info, str):
            raise self.fail(arg, info)
        self.names.add(oid)


class _Rewriter(ast.NodeTransformer):
    """Turns the checked tree into code reading the row mapping and the history."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(
            ast.Subscript(ast.Name("_v", ast.Load()), ast.Constant(node.id), ast.Load()), node
        )

    def visit_Call(self, node: ast.Call) -> ast.AST:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name in HISTORY:
            arg = node.args[0]
            assert isinstance(arg, ast.Name)
            call = ast.Call(
                ast.Attribute(ast.Name("_c", ast.Load()), name, ast.Load()),
                [ast.Constant(arg.id)],
                [],
            )
            return ast.copy_location(call, node)
        if name == "value":  # the row mapping holds polled instances by their number too
            arg = node.args[0]
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            key = ast.Constant(arg.value.strip().lstrip("."))
            return ast.copy_location(
                ast.Subscript(ast.Name("_v", ast.Load()), key, ast.Load()), node
            )
        node.func = ast.Name(f"_{name}", ast.Load())
        node.args = [self.visit(a) for a in node.args]
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Mult | ast.Mod):
            helper = "_mul" if isinstance(node.op, ast.Mult) else "_mod"
            call = ast.Call(ast.Name(helper, ast.Load()), [node.left, node.right], [])
            return ast.copy_location(call, node)
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        # A set would hash an enum by its number and miss its label: use a tuple.
        return ast.copy_location(ast.Tuple([self.visit(e) for e in node.elts], ast.Load()), node)

    def visit_List(self, node: ast.List) -> ast.AST:
        return ast.copy_location(ast.Tuple([self.visit(e) for e in node.elts], ast.Load()), node)
