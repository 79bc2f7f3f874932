"""Hypothesis properties of the rule-expression compiler (netalert.rules.expr).

1. Whatever text a config holds, compiling it either succeeds or raises
   ExprError (a config error with a message), never anything else: no
   SyntaxError, ValueError, RecursionError or MemoryError escapes to crash
   ``check-config``, ``run`` or a SIGHUP reload.
2. Generated arithmetic, comparisons and boolean logic over names and numbers
   evaluate exactly as Python evaluates the same text: the checked, rewritten
   code means what it says.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netalert.rules.expr import ExprError, NameInfo, Scope, compile_expr
from netalert.rules.history import NO_HISTORY

NAMES = ("a", "b", "c")


def _lookup(name: str) -> NameInfo | str:
    return NameInfo("object") if name in NAMES else f"unknown name '{name}'"


SCOPE = Scope(lookup=_lookup, candidates=NAMES)
# Characters rule expressions are made of, so random text reaches past the tokenizer.
ALPHABET = "abc0123456789 +-*/%<>=!()'\",.:[]{}|&^~@\n\\_xyz" + "\x00\u00e9"


@given(st.one_of(st.text(alphabet=ALPHABET, max_size=80), st.text(max_size=40)))
@example("a\x00")
@example("-" * 400 + "1")
@example("a+" * 400 + "a")
@example("not " * 400 + "a")
@example("-" * 200_000 + "1")
@example("1" + "0" * 5000)
@example("'\\N{nope}'")
@settings(max_examples=400, deadline=None)
def test_compiling_any_text_raises_only_expr_error(source: str) -> None:
    try:
        compiled = compile_expr(source, SCOPE)
    except ExprError as exc:
        assert exc.message
        return
    assert compiled.names <= set(NAMES)


def _leaf() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NAMES), st.integers(-1000, 1000).map(str))


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner)
        compare = st.tuples(inner, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), inner)
        boolean = st.tuples(inner, st.sampled_from(["and", "or"]), inner)
        return st.one_of(
            binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            compare.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            boolean.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda x: f"(not {x})"),
            inner.map(lambda x: f"(-{x})"),
            inner.map(lambda x: f"abs({x})"),
            st.tuples(inner, inner).map(lambda t: f"min({t[0]}, {t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"max({t[0]}, {t[1]})"),
        )

    return st.recursive(_leaf(), extend, max_leaves=12)


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        return "value", run()
    except ArithmeticError as exc:
        return "error", type(exc).__name__


@given(
    _expressions(),
    st.fixed_dictionaries({name: st.integers(-(2**40), 2**40) for name in NAMES}),
)
@settings(max_examples=300, deadline=None)
def test_evaluates_like_python(source: str, values: dict[str, int]) -> None:
    compiled = compile_expr(source, SCOPE)
    namespace = {"__builtins__": {}, "abs": abs, "min": min, "max": max}
    expected = _outcome(lambda: eval(source, namespace, dict(values)))  # the test oracle
    got = _outcome(lambda: compiled.fn(values, NO_HISTORY))
    assert got == expected, source


@pytest.mark.parametrize("depth", [50, 150])
def test_reasonable_nesting_compiles(depth: int) -> None:
    compiled = compile_expr("a + " * depth + "b", SCOPE)
    assert compiled.fn({"a": 1, "b": 2}, NO_HISTORY) == depth + 2
