"""Turning pysmi's JSON document of a module into :class:`ModuleFacts`.

pysmi's JSON code generator leaves a column's syntax as written (``DisplayString``,
``ShortName``, ``Counter``); here every type is followed through the module's own
TEXTUAL-CONVENTIONs and its IMPORTS to a base type, its enumeration, SIZE and
DISPLAY-HINT, using the facts of the modules already known. AUGMENTS rows take
the INDEX of the row they extend, columns the INDEX of their row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from netalert.mib.node import MibNode, ModuleFacts, TypeFacts, fixed_size

__all__ = ["FactsLookup", "facts_from_pysmi"]

# Type names pysmi leaves in a syntax for the SMI base types, SMIv1 ones included.
_BASE_NAMES = {
    "INTEGER": "Integer32",
    "Integer": "Integer32",
    "Integer32": "Integer32",
    "OCTET STRING": "OCTET STRING",
    "OctetString": "OCTET STRING",
    "OBJECT IDENTIFIER": "OBJECT IDENTIFIER",
    "ObjectIdentifier": "OBJECT IDENTIFIER",
    "Bits": "BITS",
    "BITS": "BITS",
    "IpAddress": "IpAddress",
    "NetworkAddress": "IpAddress",
    "Counter32": "Counter32",
    "Counter": "Counter32",
    "Gauge32": "Gauge32",
    "Gauge": "Gauge32",
    "Unsigned32": "Unsigned32",
    "TimeTicks": "TimeTicks",
    "Opaque": "Opaque",
    "Counter64": "Counter64",
}
_NODE_CLASSES = frozenset(
    {
        "moduleidentity",
        "objectidentity",
        "objectgroup",
        "notificationgroup",
        "modulecompliance",
        "agentcapabilities",
    }
)


class FactsLookup(Protocol):
    """What the conversion needs to know about other modules."""

    def type_facts(self, module: str, name: str) -> TypeFacts | None:
        """The type ``name`` defined by ``module``, if known."""

    def row_index(self, module: str, name: str) -> tuple[tuple[str, ...], bool] | None:
        """INDEX (``MODULE::name`` each) and IMPLIED of row ``module::name``, if known."""


def facts_from_pysmi(doc: Mapping[str, Any], lookup: FactsLookup) -> ModuleFacts:
    """Converts one pysmi JSON document (already parsed with ``json.loads``).

    Raises:
        KeyError, TypeError, ValueError: The document is not pysmi JSON.
    """
    module = str(doc["meta"]["module"])
    imports: dict[str, str] = {}
    for source, symbols in (doc.get("imports") or {}).items():
        if source != "class" and isinstance(symbols, list):
            for symbol in symbols:
                imports.setdefault(str(symbol), str(source))
    resolver = _Resolver(module, doc, imports, lookup)
    types = tuple(
        resolver.own_type(name)
        for name, entry in doc.items()
        if isinstance(entry, dict) and entry.get("class") in ("textualconvention", "type")
    )
    nodes: list[MibNode] = []
    augments: dict[str, str] = {}
    refs: dict[str, tuple[str, ...]] = {}
    for name, entry in doc.items():
        if not isinstance(entry, dict) or "oid" not in entry:
            continue
        node = resolver.node(str(entry.get("name", name)), entry)
        if node is None:
            continue
        if node.kind == "row":
            aug = entry.get("augmention")
            if isinstance(aug, dict) and aug.get("object"):
                augments[node.name] = str(aug["object"])
            else:
                full = tuple(
                    f"{i.get('module') or module}::{i['object']}" for i in entry.get("indices", [])
                )
                implied = bool(entry.get("indices")) and bool(entry["indices"][-1].get("implied"))
                refs[node.name] = full
                node = replace(node, index=_short(full), implied=implied)
        nodes.append(node)
    rows = {n.name: n for n in nodes if n.kind == "row"}
    for i, node in enumerate(nodes):
        if node.name in augments:
            target = augments[node.name]
            if target in rows and target in refs:
                found: tuple[tuple[str, ...], bool] | None = (refs[target], rows[target].implied)
            else:
                found = lookup.row_index(imports.get(target, module), target)
            if found is not None:
                refs[node.name] = found[0]
                nodes[i] = replace(node, index=_short(found[0]), implied=found[1])
    by_oid = {n.oid: n for n in nodes if n.kind == "row"}
    for i, node in enumerate(nodes):
        row = by_oid.get(node.oid[:-1]) if node.kind == "column" else None
        if row is not None and row.name in refs:
            refs[node.name] = refs[row.name]
            nodes[i] = replace(node, index=row.index, implied=row.implied)
    nodes.sort(key=lambda n: n.oid)
    return ModuleFacts(name=module, nodes=tuple(nodes), types=types, index_refs=refs)


def _short(full: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ref.split("::", 1)[-1] for ref in full)


class _Resolver:
    def __init__(
        self,
        module: str,
        doc: Mapping[str, Any],
        imports: Mapping[str, str],
        lookup: FactsLookup,
    ) -> None:
        self.module = module
        self.doc = doc
        self.imports = imports
        self.lookup = lookup
        self.done: dict[str, TypeFacts] = {}
        self.busy: set[str] = set()

    def own_type(self, name: str) -> TypeFacts:
        if name in self.done:
            return self.done[name]
        entry = self.doc[name]
        spec = entry.get("type") if isinstance(entry.get("type"), dict) else {}
        if name in self.busy:  # a type defined through itself: broken, keep it opaque
            return TypeFacts(name=name, base="", is_tc=True)
        self.busy.add(name)
        try:
            base, hint, enums, sizes = self.syntax(spec)
        finally:
            self.busy.discard(name)
        facts = TypeFacts(
            name=name,
            base=base,
            display_hint=str(entry.get("displayhint") or hint),
            enums=tuple(sorted((v, k) for k, v in enums.items())),
            sizes=sizes,
            is_tc=entry.get("class") == "textualconvention",
        )
        self.done[name] = facts
        return facts

    def named_type(self, name: str) -> TypeFacts | None:
        entry = self.doc.get(name)
        if isinstance(entry, dict) and entry.get("class") in ("textualconvention", "type"):
            return self.own_type(name)
        if name in self.imports:
            found = self.lookup.type_facts(self.imports[name], name)
            if found is not None:
                return found
        return None

    def syntax(
        self, spec: Mapping[str, Any]
    ) -> tuple[str, str, dict[str, int], tuple[tuple[int, int], ...]]:
        """Base type, display hint, enumeration and SIZE of a pysmi syntax."""
        type_name = str(spec.get("type", ""))
        constraints = spec.get("constraints") or {}
        enums = {str(k): int(v) for k, v in (constraints.get("enumeration") or {}).items()}
        if spec.get("bits"):
            enums = {str(k): int(v) for k, v in spec["bits"].items()}
        sizes = tuple(
            (int(r["min"]), int(r["max"])) for r in constraints.get("size") or () if "min" in r
        )
        named = self.named_type(type_name) if type_name not in _BASE_NAMES else None
        if named is None and type_name in _BASE_NAMES and type_name in self.doc:
            named = self.named_type(type_name)
        if named is not None:
            base, hint = named.base, named.display_hint
            enums = enums or {label: value for value, label in named.enums}
            sizes = sizes or named.sizes
        else:
            base, hint = _BASE_NAMES.get(type_name, ""), ""
        if base == "Integer32" and enums:
            base = "INTEGER"
        return base, hint, enums, sizes

    def node(self, name: str, entry: Mapping[str, Any]) -> MibNode | None:
        cls = entry.get("class")
        oid = tuple(int(x) for x in str(entry["oid"]).split("."))
        if cls == "notificationtype":
            objects = tuple(
                f"{o.get('module') or self.module}::{o['object']}" for o in entry.get("objects", [])
            )
            return MibNode(self.module, name, oid, "notification", objects=objects)
        if cls in _NODE_CLASSES:
            return MibNode(self.module, name, oid, "node")
        if cls != "objecttype":
            return None
        kind = str(entry.get("nodetype") or "node")
        spec = entry.get("syntax")
        if kind not in ("scalar", "column") or not isinstance(spec, dict):
            return MibNode(self.module, name, oid, kind if kind in ("table", "row") else "node")
        base, hint, enums, sizes = self.syntax(spec)
        type_name = str(spec.get("type", ""))
        tc = type_name if type_name not in _BASE_NAMES else ""
        return MibNode(
            module=self.module,
            name=name,
            oid=oid,
            kind=kind,
            syntax=base,
            tc=tc,
            enums={v: k for k, v in enums.items()},
            display_hint=hint,
            units=str(entry.get("units") or ""),
            fixed_size=fixed_size(sizes),
        )
