"""The facts the MIB layer knows about one object, one type and one module.

These are the values the cache stores and the tree serves. They are plain
data: a module's facts come either from a pysnmp-compiled module (the built-in
set) or from pysmi's JSON output for a source file, and both end up here in the
same shape, with every textual convention already resolved to its base type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "SYNTAXES", "MibNode", "ModuleFacts", "TypeFacts"]

KINDS = frozenset({"scalar", "column", "table", "row", "notification", "node"})

# Base SMI types as MibNode.syntax names them. "INTEGER" is an enumerated integer
# (or SMIv1 INTEGER); a plain SMIv2 integer is "Integer32".
SYNTAXES = frozenset(
    {
        "",
        "INTEGER",
        "Integer32",
        "Unsigned32",
        "Gauge32",
        "Counter32",
        "Counter64",
        "TimeTicks",
        "IpAddress",
        "Opaque",
        "OCTET STRING",
        "OBJECT IDENTIFIER",
        "BITS",
    }
)


@dataclass(frozen=True, slots=True)
class MibNode:
    """One named OID of a MIB module, with its type resolved.

    Read-only by contract: ``enums`` is a plain dict so that nodes pickle,
    copy and ``dataclasses.asdict`` cleanly; never modify it.

    ``fixed_size`` is the length of an OCTET STRING whose SIZE allows only one
    length (a MacAddress is 6): such a string is encoded in a row index without
    a length prefix, so index decoding needs it.
    """

    module: str
    name: str
    oid: tuple[int, ...]
    kind: str
    syntax: str = ""
    tc: str = ""
    enums: Mapping[int, str] = field(default_factory=dict, hash=False)
    display_hint: str = ""
    index: tuple[str, ...] = ()
    implied: bool = False
    units: str = ""
    objects: tuple[str, ...] = ()
    fixed_size: int = 0

    @property
    def full_name(self) -> str:
        """``MODULE::name``, e.g. ``IF-MIB::ifOperStatus``."""
        return f"{self.module}::{self.name}"


@dataclass(frozen=True, slots=True)
class TypeFacts:
    """A TEXTUAL-CONVENTION or type assignment, resolved to its base type.

    ``sizes`` is the SIZE constraint as a union of (min, max) ranges, empty
    when the type has none.
    """

    name: str
    base: str
    display_hint: str = ""
    enums: tuple[tuple[int, str], ...] = ()
    sizes: tuple[tuple[int, int], ...] = ()
    is_tc: bool = True

    @property
    def fixed_size(self) -> int:
        """The one allowed length, or 0 when the length varies."""
        return fixed_size(self.sizes)


def fixed_size(sizes: tuple[tuple[int, int], ...]) -> int:
    """Returns n when a SIZE union allows exactly one length n > 0, else 0."""
    lengths = {low for low, high in sizes if low == high}
    if len(sizes) == 1 and len(lengths) == 1:
        (length,) = lengths
        return length
    return 0


@dataclass(frozen=True, slots=True)
class ModuleFacts:
    """Everything the tree needs from one module.

    ``index_refs`` maps a row or column name to its INDEX objects as
    ``MODULE::name`` (an index object may live in another module);
    ``key`` identifies the inputs the facts were made from, for the cache.
    """

    name: str
    nodes: tuple[MibNode, ...]
    types: tuple[TypeFacts, ...] = ()
    index_refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    key: str = ""
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_json` reads it back."""
        return {
            "name": self.name,
            "key": self.key,
            "source": self.source,
            "nodes": [_node_row(node) for node in self.nodes],
            "types": [
                [t.name, t.base, t.display_hint, [list(e) for e in t.enums], t.sizes, t.is_tc]
                for t in self.types
            ],
            "index_refs": {name: list(refs) for name, refs in self.index_refs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModuleFacts:
        """Reads the form :meth:`to_json` writes.

        Raises:
            KeyError, TypeError, ValueError: The data is not in that form.
        """
        module = str(data["name"])
        nodes = tuple(_node_from_row(module, row) for row in data["nodes"])
        types = tuple(
            TypeFacts(
                name=str(name),
                base=str(base),
                display_hint=str(hint),
                enums=tuple((int(v), str(label)) for v, label in enums),
                sizes=tuple((int(low), int(high)) for low, high in sizes),
                is_tc=bool(is_tc),
            )
            for name, base, hint, enums, sizes, is_tc in data["types"]
        )
        refs = {str(k): tuple(str(r) for r in v) for k, v in data["index_refs"].items()}
        return cls(
            name=module,
            nodes=nodes,
            types=types,
            index_refs=refs,
            key=str(data["key"]),
            source=str(data["source"]),
        )


def _node_row(node: MibNode) -> list[Any]:
    # A list, not a dict: the cache of ~300 modules holds tens of thousands of
    # nodes and positional rows keep it small and quick to parse.
    return [
        node.name,
        ".".join(map(str, node.oid)),
        node.kind,
        node.syntax,
        node.tc,
        [[value, label] for value, label in node.enums.items()],
        node.display_hint,
        list(node.index),
        node.implied,
        node.units,
        list(node.objects),
        node.fixed_size,
    ]


def _node_from_row(module: str, row: list[Any]) -> MibNode:
    name, oid, kind, syntax, tc, enums, hint, index, implied, units, objects, size = row
    return MibNode(
        module=module,
        name=name,
        oid=tuple(int(x) for x in oid.split(".")) if oid else (),
        kind=kind,
        syntax=syntax,
        tc=tc,
        enums={int(v): str(label) for v, label in enums},
        display_hint=hint,
        index=tuple(index),
        implied=bool(implied),
        units=units,
        objects=tuple(objects),
        fixed_size=int(size),
    )
