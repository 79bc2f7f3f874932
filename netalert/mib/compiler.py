"""Compiling MIB sources with pysmi into :class:`ModuleFacts`, one verdict per module.

pysmi parses the wanted modules and, for symbol resolution, every module they
import. An import is served from a source file when netalert has one, and
otherwise from a stand-in generated from the facts of the compiled built-in
modules (see :mod:`netalert.mib.standins`). pysmi's JSON code generator then
describes each wanted module; :mod:`netalert.mib.jsonfacts` resolves it.

pysmi runs with ``ignoreErrors`` so that one broken module never stops the
others; each failure becomes a :class:`CompileResult` naming the file, the line
and a reason a person can act on.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from netalert.mib.jsonfacts import FactsLookup, facts_from_pysmi
from netalert.mib.node import ModuleFacts
from netalert.mib.sources import MibSource

__all__ = ["CompileResult", "compile_modules"]

# SMI base types vendors often use without importing them; net-snmp tolerates
# that, and pysmi retries a module with these added when it cannot resolve it.
_TOLERATED_IMPORTS = [
    ("SNMPv2-SMI", name)
    for name in (
        "Integer32",
        "Unsigned32",
        "Counter32",
        "Counter64",
        "Gauge32",
        "TimeTicks",
        "IpAddress",
        "Opaque",
    )
]
_NO_MODULE = re.compile(r'no module "([^"]+)" in symbolTable')


@dataclass(frozen=True, slots=True)
class CompileResult:
    """The verdict on one module: ``compiled``, ``up to date`` or ``failed``."""

    module: str
    status: str
    path: Path | None = None
    line: int = 0
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True unless the module failed."""
        return self.status != "failed"

    def describe(self) -> str:
        """One line for ``netalert mib compile``."""
        where = str(self.path) if self.path else "(no file)"
        if self.line:
            where += f":{self.line}"
        if self.status == "failed":
            return f"{self.module}: failed: {where}: {self.reason}"
        return f"{self.module}: {self.status} ({where})"


class _Hooks:
    """pysmi's reader, searcher and writer, as one object with the run's state."""

    def __init__(
        self,
        sources: Mapping[str, MibSource],
        standin: Callable[[str], str | None],
        wanted: set[str],
    ) -> None:
        self.sources = sources
        self.standin = standin
        self.wanted = wanted
        self.documents: dict[str, str] = {}
        self.texts: dict[str, str] = {}

    def text(self, module: str) -> str | None:
        source = self.sources.get(module)
        if source is None:
            return None
        if module not in self.texts:
            raw = source.path.read_bytes()
            self.texts[module] = raw.decode("utf-8", errors="replace")
        return self.texts[module]


def _pysmi_parts(hooks: _Hooks) -> tuple[Any, Any, Any]:
    from pysmi import error
    from pysmi.mibinfo import MibInfo
    from pysmi.reader.base import AbstractReader
    from pysmi.searcher.base import AbstractSearcher
    from pysmi.writer.callback import CallbackWriter

    class Reader(AbstractReader):  # type: ignore[misc]
        def __str__(self) -> str:
            return "netalert sources and stand-ins"

        def get_data(self, mibname: str, **options: Any) -> tuple[Any, str]:
            del options
            text = hooks.text(mibname)
            if text is not None:
                path = hooks.sources[mibname].path
                info = MibInfo(path=str(path), file=path.name, name=mibname, mtime=0)
                return info, text
            text = hooks.standin(mibname)
            if text is not None:
                info = MibInfo(path=f"stand-in:{mibname}", file="", name=mibname, mtime=0)
                return info, text
            raise error.PySmiReaderFileNotFoundError(mibname=mibname, reader=self)

    class Searcher(AbstractSearcher):  # type: ignore[misc]
        # Tells pysmi which parsed modules to generate: only the wanted ones;
        # imports (sources or stand-ins) are parsed for their symbols only.
        def file_exists(self, mibname: str, mtime: float, rebuild: bool = False) -> None:
            del mtime, rebuild
            if mibname in hooks.wanted:
                raise error.PySmiFileNotFoundError(f"{mibname} is wanted", searcher=self)
            raise error.PySmiFileNotModifiedError(f"{mibname} is an import", searcher=self)

    def keep(name: str, data: str, ctx: object) -> None:
        del ctx
        hooks.documents[name] = data

    return Reader(), Searcher(), CallbackWriter(keep)


# One compile at a time per process: the parser is shared and pysmi's table of implicit
# imports is patched for the duration of a run.
_COMPILING = threading.Lock()


@functools.cache
def _parser() -> Any:
    """pysmi's SMI parser, built once per process: building its LALR tables takes about a
    third of a second of CPU, and the parser keeps nothing from one module to the next."""
    from pysmi.parser.dialect import smi_v1_relaxed
    from pysmi.parser.smi import parserFactory

    return parserFactory(**smi_v1_relaxed)()


def compile_modules(
    wanted: Iterable[str],
    sources: Mapping[str, MibSource],
    standin: Callable[[str], str | None],
    lookup: FactsLookup,
    unavailable: Callable[[str], str | None],
) -> tuple[dict[str, ModuleFacts], dict[str, CompileResult]]:
    """Compiles the ``wanted`` modules (all in ``sources``) in one pysmi run.

    Args:
        wanted: Module names to compile.
        sources: Every module with a source file netalert may use.
        standin: Stand-in text of a module known only compiled, or None.
        lookup: Facts of modules outside this run (for TCs and AUGMENTS).
        unavailable: Why an imported module cannot be used ("which was not
            found (searched ...)"), or None when it can.

    Returns:
        The facts of each module that compiled, and a verdict for every wanted one.
    """
    from pysmi import implicit_imports
    from pysmi.codegen.jsondoc import JsonCodeGen
    from pysmi.compiler import MibCompiler

    names = list(dict.fromkeys(wanted))
    hooks = _Hooks(sources, standin, set(names))
    reader, searcher, writer = _pysmi_parts(hooks)
    with _COMPILING:
        compiler = MibCompiler(_parser(), JsonCodeGen(), writer)
        compiler.add_sources(reader)
        compiler.add_searchers(searcher)
        table = implicit_imports.IMPLICIT_IMPORTS
        saved = {name: table[name] for name in names if name in table}
        for name in names:
            table.setdefault(name, list(_TOLERATED_IMPORTS))
        try:
            statuses = compiler.compile(*names, ignoreErrors=True, genTexts=False)
        finally:
            for name in names:
                table.pop(name, None)
            table.update(saved)

    results: dict[str, CompileResult] = {}
    for name in names:
        results[name] = _verdict(name, statuses, hooks, unavailable)
    facts: dict[str, ModuleFacts] = {}
    chained = _Chained(facts, lookup)
    for name in _import_order([n for n in names if results[n].ok], sources):
        try:
            doc = json.loads(hooks.documents[name])
            facts[name] = replace(facts_from_pysmi(doc, chained), source=str(sources[name].path))
        except (KeyError, TypeError, ValueError) as exc:
            results[name] = _failed(name, f"pysmi output unusable: {exc}", hooks)
    return facts, results


class _Chained:
    """Facts of this run first, then everything known before it."""

    def __init__(self, facts: Mapping[str, ModuleFacts], lookup: FactsLookup) -> None:
        self.facts = facts
        self.lookup = lookup

    def type_facts(self, module: str, name: str) -> Any:
        if module in self.facts:
            return next((t for t in self.facts[module].types if t.name == name), None)
        return self.lookup.type_facts(module, name)

    def row_index(self, module: str, name: str) -> tuple[tuple[str, ...], bool] | None:
        if module in self.facts:
            mod = self.facts[module]
            row = next((n for n in mod.nodes if n.name == name and n.kind == "row"), None)
            if row is not None and name in mod.index_refs:
                return mod.index_refs[name], row.implied
            return None
        return self.lookup.row_index(module, name)


def _import_order(names: list[str], sources: Mapping[str, MibSource]) -> list[str]:
    # Imports first, so a module's TCs are known when its importers convert.
    wanted = set(names)
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in sources[name].imports:
            if dep in wanted:
                visit(dep)
        order.append(name)

    for name in names:
        visit(name)
    return order


def _verdict(
    name: str,
    statuses: Mapping[str, Any],
    hooks: _Hooks,
    unavailable: Callable[[str], str | None],
) -> CompileResult:
    source = hooks.sources[name]
    for dep in source.imports:
        why = unavailable(dep)
        if why is None and dep in hooks.wanted and str(statuses.get(dep)) == "failed":
            why = "which failed to compile (see its own line)"
        if why is not None:
            return _import_failed(name, dep, why, hooks)
    status = statuses.get(name)
    if name in hooks.documents and str(status) == "compiled":
        return CompileResult(name, "compiled", source.path)
    error = getattr(status, "error", None)
    if error is None:
        return _failed(name, f"not compiled (pysmi says {status})", hooks)
    message = str(getattr(error, "msg", "") or error)
    message = re.sub(r"( at MIB [\w-]+)+$", "", message)
    missing = _NO_MODULE.search(message)
    if missing:
        dep = missing.group(1)
        return _import_failed(name, dep, unavailable(dep) or "which could not be parsed", hooks)
    line = getattr(error, "lineno", 0)
    if isinstance(line, int) and line > 0:
        reason = _syntax_reason(error.__cause__, message)
        return CompileResult(name, "failed", source.path, line, reason)
    return _failed(name, message, hooks)


def _import_failed(name: str, dep: str, why: str, hooks: _Hooks) -> CompileResult:
    source = hooks.sources[name]
    line = _line_of(hooks.text(name) or "", rf"FROM\s+{re.escape(dep)}(?![\w-])")
    return CompileResult(name, "failed", source.path, line or source.line, f"imports {dep}, {why}")


def _syntax_reason(cause: Any, message: str) -> str:
    token = getattr(cause, "token", None)
    column = getattr(cause, "column", None)
    if token is not None:
        where = f"column {column}: " if column else ""
        expected = sorted(getattr(cause, "expected", ()) or ())
        hint = f" (expected one of {', '.join(expected[:6])})" if 0 < len(expected) <= 6 else ""
        return f"syntax error: {where}unexpected {str(token)!r}{hint}"
    if "Bad grammar" in message:
        where = f"column {column}: " if column else ""
        return f"syntax error: {where}the text does not follow the SMI grammar"
    return message


def _failed(name: str, reason: str, hooks: _Hooks) -> CompileResult:
    source = hooks.sources[name]
    line = 0
    # pysmi's semantic errors name symbols but no line: point at the first one.
    text = hooks.text(name) or ""
    for symbol in re.findall(r"[a-zA-Z][\w-]*", reason.split(":", 1)[-1]):
        # Its definition if it has one, else its first use (an unknown parent).
        line = _line_of(text, rf"^\s*{re.escape(symbol)}\s+[A-Z]") or _line_of(
            text, rf"(?<![\w-]){re.escape(symbol)}(?![\w-])"
        )
        if line:
            break
    return CompileResult(name, "failed", source.path, line or source.line, reason)


def _line_of(text: str, pattern: str) -> int:
    match = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 0
