"""Facts of the MIB modules that ship compiled for pysnmp.

pysnmp carries SNMPv2-SMI/TC/CONF/MIB, RFC1213-MIB and the SNMP framework MIBs;
the ``pysnmp-mibs`` package carries ~275 IETF/IANA modules (IF-MIB,
HOST-RESOURCES-MIB, ENTITY-MIB, IP-MIB, IANAifType-MIB, ...). Neither comes with
MIB sources, so their facts are read from the loaded Python objects, once, and
cached by the caller. A module that fails to load is skipped and reported; it
never stops the others.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import traceback
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from netalert.mib.node import MibNode, ModuleFacts, TypeFacts, fixed_size

__all__ = [
    "builtin_dirs",
    "builtin_modules",
    "builtin_version",
    "extract_builtin",
    "once_builder",
]

# pysnmp's own framework modules that describe pysnmp itself, not devices.
_SKIP = frozenset({"__init__", "PYSNMP-MIB", "PYSNMP-SOURCE-MIB", "PYSNMP-USM-MIB"})
# Modules that only define macros or pyasn1 plumbing: nothing to name.
_PLUMBING = frozenset({"ASN1", "ASN1-ENUMERATION", "ASN1-REFINEMENT"})

# pyasn1/pysnmp classes that are SMI base types, most specific first in an MRO.
_BASES = {
    "Bits": "BITS",
    "IpAddress": "IpAddress",
    "Counter32": "Counter32",
    "Gauge32": "Gauge32",
    "Unsigned32": "Unsigned32",
    "TimeTicks": "TimeTicks",
    "Counter64": "Counter64",
    "Opaque": "Opaque",
    "Integer32": "Integer32",
    "Integer": "Integer32",
    "OctetString": "OCTET STRING",
    "ObjectIdentifier": "OBJECT IDENTIFIER",
}


def builtin_dirs() -> list[Path]:
    """The folders holding pysnmp-compiled modules, pysnmp's own first."""
    import pysnmp.smi.mibs

    dirs = [Path(pysnmp.smi.mibs.__file__).parent]
    try:
        import pysnmp_mibs

        dirs.append(Path(pysnmp_mibs.__file__).parent)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    return dirs


def builtin_modules() -> list[str]:
    """Names of the compiled modules available, first folder winning."""
    seen: dict[str, None] = {}
    for folder in builtin_dirs():
        for entry in sorted(os.listdir(folder)):
            if entry.endswith(".py"):
                name = entry[:-3]
                if name not in _SKIP and name not in _PLUMBING:
                    seen.setdefault(name, None)
    return list(seen)


def builtin_version() -> str:
    """Identifies the installed built-in set; the cache is keyed by it."""
    parts = []
    for dist in ("pysnmp", "pysnmp-mibs"):
        try:
            parts.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    # The listing guards against a package edited in place without a version bump.
    parts.append(str(len(builtin_modules())))
    return ";".join(parts)


def extract_builtin() -> tuple[list[ModuleFacts], dict[str, str]]:
    """Loads every built-in module with pysnmp and returns its facts.

    Returns:
        The facts of each module that loaded, and for each module that did not,
        the reason.
    """
    from pysnmp.smi import builder

    mib_builder = once_builder()
    mib_builder.add_mib_sources(*(builder.DirMibSource(str(d)) for d in builtin_dirs()[1:]))
    mib_builder.loadTexts = False
    failed: dict[str, str] = {}
    names = builtin_modules()
    with warnings.catch_warnings():
        # pysnmp-mibs' 2016 code calls pysnmp's deprecated camelCase API on every
        # line; the warning is about that package, and would abort its loading
        # wherever warnings are errors.
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in names:
            try:
                mib_builder.load_modules(name)
            except Exception as exc:
                failed[name] = _reason(exc)
    facts = [
        _module_facts(name, mib_builder.mibSymbols[name])
        for name in names
        if name in mib_builder.mibSymbols and name not in failed
    ]
    return facts, failed


def once_builder() -> Any:
    """A pysnmp ``MibBuilder`` that compiles each MIB module file at most once, and no more
    than importing it would.

    pysnmp's own ``MibBuilder.load_module`` compiles a module's source in
    ``MibSource.read``, then (unless Python runs with ``-O``) throws that away and has
    ``runpy.run_path`` compile the file again to run it; and a module already loaded is
    read, so compiled, again before it is found loaded. The extraction loads some 300
    modules: two thirds of its CPU were these compiles. This builder runs the code read,
    once per module, with the globals ``runpy.run_path`` gives (as pysnmp runs it under
    ``-O``, with ``exec``); a module file's code comes from its bytecode cache
    (``__pycache__``, as for an import: written when the package was installed, or by the
    first load), compiled only when that is missing or stale. A source pysnmp reads
    otherwise (a zip, a folder holding the module as ``.pyc``) is read by pysnmp. Only the
    extraction's own builder: the engines' builders load as pysnmp does.
    """
    from importlib.machinery import SourceFileLoader

    from pysnmp.smi import builder, error

    class OnceBuilder(builder.MibBuilder):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.loaded: dict[str, str] = {}  # module name: the file it was run from
            self._listings: dict[str, frozenset[str]] = {}

        def _code(self, source: Any, name: str) -> tuple[Any, str] | None:
            if isinstance(source, builder.DirMibSource):
                folder = source.full_path()
                if folder not in self._listings:
                    try:
                        self._listings[folder] = frozenset(os.listdir(folder))
                    except OSError:
                        self._listings[folder] = frozenset()
                listing = self._listings[folder]
                if name + ".py" in listing and name + ".pyc" not in listing:
                    path = os.path.join(folder, name + ".py")
                    return SourceFileLoader(name, path).get_code(name), path
            try:
                code, suffix = source.read(name)
            except OSError:
                return None
            return code, source.full_path(name, suffix)

        def load_module(self, name: str, **user_ctx: Any) -> Any:
            if name in self.loaded:
                return self
            for source in self.get_mib_sources():
                found = self._code(source, name)
                if found is None:
                    continue
                code, path = found
                run_globals = {
                    "__name__": "<run_path>",
                    "__file__": path,
                    "__cached__": None,
                    "__doc__": None,
                    "__loader__": None,
                    "__package__": "",
                    "__spec__": None,
                    "mibBuilder": self,
                    "userCtx": user_ctx,
                }
                try:
                    # pysnmp's own way to run a MIB module under -O (builder.py)
                    exec(code, run_globals)  # noqa: S102
                except Exception as exc:
                    raise error.MibLoadError(
                        f"MIB module '{path}' load error: "
                        f"{traceback.format_exception(*sys.exc_info())}"
                    ) from exc
                self.loaded[name] = path
                return self
            raise error.MibNotFoundError(
                f'MIB file "{name}.py[co]" not found in search path '
                f"({', '.join(str(s) for s in self.get_mib_sources())})"
            )

    return OnceBuilder()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    # pysnmp wraps the real error in a long traceback dump: keep the cause.
    if "caused by" in text:
        text = text.rsplit("caused by", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _module_facts(module: str, symbols: dict[str, Any]) -> ModuleFacts:
    from pyasn1.type.base import Asn1Type

    nodes: list[MibNode] = []
    types: list[TypeFacts] = []
    refs: dict[str, tuple[str, ...]] = {}
    seen: set[int] = set()
    rows: dict[tuple[int, ...], tuple[tuple[str, ...], bool, tuple[str, ...]]] = {}
    for key, obj in symbols.items():
        if id(obj) in seen or key.startswith("PYSNMP_MODULE_ID"):
            continue
        seen.add(id(obj))
        if isinstance(obj, type):
            if issubclass(obj, Asn1Type):
                facts = _type_facts(key, obj)
                if facts is not None:
                    types.append(facts)
            continue
        oid = getattr(obj, "name", None)
        if not isinstance(oid, tuple) or not oid:
            continue
        kind = _kind(obj)
        if kind is None:
            continue
        label = obj.getLabel() if hasattr(obj, "getLabel") else key
        node = _node(module, label or key, tuple(int(x) for x in oid), kind, obj)
        if kind == "row":
            names = obj.getIndexNames()
            full = tuple(f"{mod}::{sym}" for _, mod, sym in names)
            implied = bool(names and names[-1][0])
            rows[node.oid] = (full, implied, tuple(sym for _, _, sym in names))
            refs[node.name] = full
            node = _replace_index(node, rows[node.oid])
        nodes.append(node)
    # Columns share their row's INDEX; the row may be exported after them.
    out: list[MibNode] = []
    for node in nodes:
        if node.kind == "column" and node.oid[:-1] in rows:
            node = _replace_index(node, rows[node.oid[:-1]])
            refs[node.name] = rows[node.oid[:-1]][0]
        out.append(node)
    out.sort(key=lambda n: n.oid)
    return ModuleFacts(name=module, nodes=tuple(out), types=tuple(types), index_refs=refs)


def _replace_index(node: MibNode, row: tuple[tuple[str, ...], bool, tuple[str, ...]]) -> MibNode:
    from dataclasses import replace

    return replace(node, index=row[2], implied=row[1])


def _kind(obj: Any) -> str | None:
    # Order matters: each pysnmp class below subclasses the ones after it.
    for cls_name, kind in (
        ("MibTableColumn", "column"),
        ("MibTableRow", "row"),
        ("MibTable", "table"),
        ("MibScalar", "scalar"),
        ("NotificationType", "notification"),
    ):
        if any(c.__name__ == cls_name for c in type(obj).__mro__):
            return kind
    if any(c.__name__ == "MibNode" for c in type(obj).__mro__):
        return "node"
    return None


def _node(module: str, name: str, oid: tuple[int, ...], kind: str, obj: Any) -> MibNode:
    if kind == "notification":
        objects = tuple(f"{mod}::{sym}" for mod, sym in obj.getObjects())
        return MibNode(module=module, name=name, oid=oid, kind=kind, objects=objects)
    syntax = obj.getSyntax() if kind in ("scalar", "column") else None
    if syntax is None:
        return MibNode(module=module, name=name, oid=oid, kind=kind)
    base = base_syntax(type(syntax))
    if type(syntax).__name__ == "NetworkAddress":
        # SMIv1's CHOICE of one IpAddress; index decoding knows its encoding.
        return MibNode(module, name, oid, kind, syntax="IpAddress", tc="NetworkAddress")
    enums = dict(_enums(syntax))
    if base == "Integer32" and enums:
        base = "INTEGER"
    tc = type(syntax).__name__ if _is_tc(type(syntax)) else ""
    return MibNode(
        module=module,
        name=name,
        oid=oid,
        kind=kind,
        syntax=base,
        tc=tc,
        enums={v: k for k, v in enums.items()},
        display_hint=str(getattr(syntax, "displayHint", "") or ""),
        units=str(obj.getUnits() or "") if hasattr(obj, "getUnits") else "",
        fixed_size=fixed_size(sizes_of(getattr(syntax, "subtypeSpec", None))),
    )


def _type_facts(name: str, cls: type) -> TypeFacts | None:
    base = base_syntax(cls)
    if not base:
        return None
    enums = tuple(sorted((v, k) for k, v in _enums(cls)))
    if base == "Integer32" and enums:
        base = "INTEGER"
    return TypeFacts(
        name=name,
        base=base,
        display_hint=str(getattr(cls, "displayHint", "") or ""),
        enums=enums,
        sizes=sizes_of(getattr(cls, "subtypeSpec", None)),
        is_tc=_is_tc(cls),
    )


def base_syntax(cls: type) -> str:
    """The SMI base type of a pyasn1/pysnmp class, "" if it has none."""
    for klass in cls.__mro__:
        if klass.__module__.startswith(("pysnmp.proto", "pyasn1.type")):
            base = _BASES.get(klass.__name__)
            if base:
                return base
    return ""


def _is_tc(cls: type) -> bool:
    return any(c.__name__ == "TextualConvention" for c in cls.__mro__[1:])


def _enums(syntax: Any) -> Iterator[tuple[str, int]]:
    named = getattr(syntax, "namedValues", None)
    if not named:
        return
    for label, value in named.items():
        yield str(label), int(value)


def sizes_of(spec: Any) -> tuple[tuple[int, int], ...]:
    """The SIZE constraint in a pyasn1 constraint tree as a union of ranges."""
    ranges = _sizes(spec)
    return tuple(sorted(set(ranges))) if ranges is not None else ()


def _sizes(spec: Any) -> list[tuple[int, int]] | None:
    # None means "no SIZE constraint here"; a list is a union of allowed ranges.
    if spec is None:
        return None
    kind = type(spec).__name__
    values: Iterable[Any] = getattr(spec, "_values", ())
    if kind == "ValueSizeConstraint":
        low, high = values
        return [(int(low), int(high))]
    if kind == "ConstraintsUnion":
        parts = [_sizes(v) for v in values]
        if not parts or any(p is None for p in parts):
            return None
        return [r for p in parts if p for r in p]
    if kind == "ConstraintsIntersection":
        result: list[tuple[int, int]] | None = None
        for value in values:
            part = _sizes(value)
            if part is None:
                continue
            if result is None:
                result = part
            else:
                result = [
                    (max(a, c), min(b, d))
                    for a, b in result
                    for c, d in part
                    if max(a, c) <= min(b, d)
                ]
        return result
    return None
