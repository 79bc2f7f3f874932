"""The runtime MIB tree: name ⇄ OID, enum labels, DISPLAY-HINTs, row indexes.

Built once from :class:`ModuleFacts` at start (from the cache: no parsing),
then read-only. OID → name lookups go through a bounded memo, because the same
few hundred OIDs come back on every poll and every trap.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from netalert.errors import MibError
from netalert.gcpause import collector_paused
from netalert.mib.hints import render_date_and_time, render_inet_address, render_int, render_octets
from netalert.mib.indexes import IndexPart, IndexValue, decode_index
from netalert.mib.node import MibNode, ModuleFacts

if TYPE_CHECKING:
    from netalert.mib.report import CompileReport

__all__ = ["MibTree", "TreeState"]

# MibTree.state(): module names; one row per node, in MibNode's field order; the
# OID index as positions in the rows; its dotted-text keys; INDEX references; depth.
NodeRow = tuple[
    str,
    str,
    tuple[int, ...],
    str,
    str,
    str,
    dict[int, str],
    str,
    tuple[str, ...],
    bool,
    str,
    tuple[str, ...],
    int,
]
TreeState = tuple[
    tuple[str, ...],
    tuple[NodeRow, ...],
    tuple[int, ...],
    tuple[str, ...],
    dict[str, tuple[str, ...]],
    int,
]

_T = TypeVar("_T")
_ROW_FIELDS = 13  # NodeRow's, MibNode's fields
_NUMERIC = re.compile(r"^\.?\d+(?:\.\d+)*$")
_LEADING_ZERO = re.compile(r"(?:^|\.)0\d")
_SUFFIX = re.compile(r"^\d+(?:\.\d+)*$")
_MEMO_LIMIT = 50_000  # ~10 MB at most; polled OIDs repeat, trap OIDs rarely vary
_INET = frozenset(
    {"InetAddress", "InetAddressIPv4", "InetAddressIPv6", "InetAddressIPv4z", "InetAddressIPv6z"}
)
# INTEGER hints that render a number as its decimal text: no label (InterfaceIndex has "d")
_PLAIN_INT_HINTS = frozenset({"d", "d-0"})
_NET_SNMP_MODULES = frozenset({"UCD-SNMP-MIB", "NET-SNMP-AGENT-MIB", "NET-SNMP-MIB"})
_NET_SNMP_HINT = "its MIB comes with net-snmp (Debian/Ubuntu: apt install libsnmp-base)"


class MibTree:
    """Every loaded module's names, OIDs and types. Thread-compatible, read-only."""

    def __init__(self, modules: Iterable[ModuleFacts], report: CompileReport | None = None) -> None:
        """Indexes ``modules``; the first module naming an OID gives its name."""
        self.report = report
        # The nodes, by position; the indexes below hold positions. A tree loaded from
        # its state makes a node from its row the first time it is asked for (most of
        # the 23,000 built-in ones never are): a hundredth of a second less per start.
        self._nodes: list[MibNode | None] = []
        self._rows: tuple[NodeRow, ...] | None = None
        self._by_oid: dict[tuple[int, ...], int] = {}
        self._by_full: dict[str, int] = {}
        self._by_short: dict[str, list[int]] = {}
        self._index_refs: dict[str, tuple[str, ...]] = {}
        self._modules: list[str] = []
        nodes: list[MibNode] = []
        for facts in modules:
            self._modules.append(facts.name)
            module = facts.name
            for name, refs in facts.index_refs.items():
                self._index_refs[f"{module}::{name}"] = refs
            for node in facts.nodes:
                full = f"{module}::{node.name}"
                if full in self._by_full:
                    continue
                self._by_full[full] = len(nodes)
                self._by_short.setdefault(node.name, []).append(len(nodes))
                self._by_oid.setdefault(node.oid, len(nodes))
                nodes.append(node)
        # An OBJECT IDENTIFIER value below a scalar or column (DISMAN-EVENT-MIB's
        # sysUpTimeInstance is sysUpTime.0) names an instance: let the object
        # name it, as "SNMPv2-MIB::sysUpTime.0".
        for oid, at in list(self._by_oid.items()):
            if nodes[at].kind == "node" and any(
                self._by_oid.get(oid[:size]) is not None
                and nodes[self._by_oid[oid[:size]]].kind in ("scalar", "column")
                for size in range(len(oid) - 1, 0, -1)
            ):
                del self._by_oid[oid]
        self._nodes = list(nodes)
        self._depth = max((len(oid) for oid in self._by_oid), default=0)
        self._by_text = {".".join(map(str, oid)): at for oid, at in self._by_oid.items()}
        self._memo: dict[str | tuple[int, ...], tuple[MibNode | None, str]] = {}

    def _at(self, position: int) -> MibNode:
        """The node at ``position``, made from its row the first time."""
        node = self._nodes[position]
        if node is None:
            assert self._rows is not None  # only a tree from a state has unmade nodes
            node = self._nodes[position] = MibNode(*self._rows[position])
        return node

    # --- the tree as plain data: the cache's snapshot and pickling ----------

    def state(self) -> TreeState:
        """The built tree as tuples, strings, ints and dicts only (marshal can store it).

        :meth:`from_state` rebuilds the same tree from it, without indexing again.
        Equal strings, tuples and enum maps are one object each, so that marshal
        writes each once and a loaded tree shares them (enum maps are read-only).
        """
        if self._rows is not None:  # loaded from a state: the same rows, shared as they were
            return (
                tuple(self._modules),
                self._rows,
                tuple(self._by_oid.values()),
                tuple(self._by_text),
                dict(self._index_refs),
                self._depth,
            )
        nodes = [self._at(i) for i in range(len(self._nodes))]
        shared: dict[object, object] = {}
        maps: dict[tuple[tuple[int, str], ...], dict[int, str]] = {}

        def one(value: _T) -> _T:
            return shared.setdefault(value, value)  # type: ignore[return-value]

        def one_map(enums: Mapping[int, str]) -> dict[int, str]:
            items = tuple(enums.items())
            if items not in maps:
                maps[items] = {value: one(label) for value, label in items}
            return maps[items]

        rows = tuple(
            (
                one(n.module),
                n.name,
                n.oid,
                one(n.kind),
                one(n.syntax),
                one(n.tc),
                one_map(n.enums),
                one(n.display_hint),
                one(tuple(one(x) for x in n.index)),
                n.implied,
                one(n.units),
                one(tuple(one(x) for x in n.objects)),
                n.fixed_size,
            )
            for n in nodes
        )
        return (
            tuple(self._modules),
            rows,
            tuple(self._by_oid.values()),
            tuple(self._by_text),
            dict(self._index_refs),
            self._depth,
        )

    @classmethod
    def from_state(cls, state: TreeState, report: CompileReport | None = None) -> MibTree:
        """The tree :meth:`state` described.

        Raises:
            TypeError, ValueError, IndexError: ``state`` is not in that form.
        """
        tree = cls.__new__(cls)
        tree._install(state, report)
        return tree

    def _install(self, state: TreeState, report: CompileReport | None) -> None:
        modules, rows, by_oid, texts, index_refs, depth = state
        if len(texts) != len(by_oid) or not isinstance(index_refs, dict):
            raise ValueError("not a MIB tree state")
        rows = tuple(rows)
        if any(len(row) != _ROW_FIELDS for row in rows):
            raise ValueError("not a MIB tree state")
        by_short: dict[str, list[int]] = {}
        for at, row in enumerate(rows):
            by_short.setdefault(row[1], []).append(at)
        self.report = report
        self._rows = rows
        self._nodes = [None] * len(rows)
        self._modules = list(modules)
        self._by_full = {f"{row[0]}::{row[1]}": at for at, row in enumerate(rows)}
        if len(self._by_full) != len(rows):
            raise ValueError("not a MIB tree state")
        self._by_short = by_short
        self._by_oid = {rows[at][2]: at for at in by_oid}
        self._by_text = dict(zip(texts, by_oid, strict=True))
        self._index_refs = index_refs
        self._depth = int(depth)
        self._memo = {}

    def __getstate__(self) -> tuple[TreeState, CompileReport | None]:
        # Pickled as its state: a trap worker unpickles plain tuples (fast, in C)
        # and rebuilds its indexes from positions, instead of one object per node.
        return self.state(), self.report

    def __setstate__(self, pickled: tuple[TreeState, CompileReport | None]) -> None:
        with collector_paused():
            self._install(*pickled)

    @classmethod
    def builtin(cls) -> MibTree:
        """A tree of the built-in modules only (SNMPv2-MIB, IF-MIB, ...).

        The facts are extracted once per process (a few seconds) and kept.
        """
        from netalert.mib.loader import builtin_facts, rank_modules

        facts, _ = builtin_facts(None)
        by_name = {f.name: f for f in facts}
        return cls(by_name[name] for name in rank_modules(by_name))

    @property
    def modules(self) -> tuple[str, ...]:
        """Names of the loaded modules."""
        return tuple(self._modules)

    def __len__(self) -> int:
        return len(self._by_full)

    # --- names to OIDs -------------------------------------------------------

    def find(self, name: str) -> MibNode | None:
        """The node ``MODULE::name`` or unambiguous ``name``, else None."""
        try:
            return self.node(name)
        except MibError:
            return None

    def node(self, name: str) -> MibNode:
        """The node ``MODULE::name`` or an unambiguous short ``name``.

        Raises:
            MibError: Unknown or ambiguous name.
        """
        module, sep, short = name.strip().rpartition("::")
        if sep:
            found = self._by_full.get(f"{module}::{short}")
            if found is None:
                raise MibError(self._unknown(name, module, short))
            return self._at(found)
        positions = self._by_short.get(short)
        if not positions:
            raise MibError(self._unknown(name, "", short))
        candidates = [self._at(at) for at in positions]
        if len({n.oid for n in candidates}) > 1:
            places = ", ".join(n.full_name for n in candidates[:4])
            raise MibError(
                f"ambiguous MIB name '{short}': defined in {places}; write MODULE::{short}"
            )
        return candidates[0]

    def _unknown(self, text: str, module: str, short: str) -> str:
        message = f"unknown MIB name '{text}'"
        if module and module not in self._modules:
            extra = (
                f"; {_NET_SNMP_HINT}" if module in ("UCD-SNMP-MIB", "NET-SNMP-AGENT-MIB") else ""
            )
            return f"{message} (module {module} is not loaded{extra})"
        pool = (
            [full.rpartition("::")[2] for full in self._by_full if full.startswith(f"{module}::")]
            if module
            else list(self._by_short)
        )
        close = difflib.get_close_matches(short, pool, n=1, cutoff=0.8)
        if close:
            hint = f"{module}::{close[0]}" if module else close[0]
            return f"{message} (did you mean '{hint}'?)"
        return message

    def oid(self, name: str) -> tuple[int, ...]:
        """The numeric OID of ``IF-MIB::ifOperStatus.3``, ``ifOperStatus.3`` or ``1.3.6...``.

        Raises:
            MibError: Unknown name, ambiguous short name or a non-numeric index.
        """
        text = name.strip()
        if _NUMERIC.match(text):
            return tuple(int(x) for x in text.lstrip(".").split("."))
        module, sep, rest = text.rpartition("::")
        short, dot, suffix = rest.partition(".")
        node = self.node(f"{module}::{short}" if sep else short)
        if not dot:
            return node.oid
        if not _SUFFIX.match(suffix):
            raise MibError(f"'{name}': the index after the name must be numeric, like .3 or .1.4")
        return node.oid + tuple(int(x) for x in suffix.split("."))

    def oid_str(self, name: str) -> str:
        """The dotted numeric OID of a name, without a leading dot.

        Raises:
            MibError: As :meth:`oid`.
        """
        return ".".join(map(str, self.oid(name)))

    # --- OIDs to names -------------------------------------------------------

    def lookup(self, oid: str | tuple[int, ...]) -> tuple[MibNode | None, str]:
        """The node of the longest known prefix of ``oid`` and the rest, dotted.

        ``1.3.6.1.2.1.2.2.1.8.3`` gives (ifOperStatus, "3"); an OID no module
        covers gives (None, the OID dotted).

        Raises:
            MibError: ``oid`` is a string but not a numeric OID.
        """
        hit = self._memo.get(oid)
        if hit is not None:
            return hit
        if isinstance(oid, str):
            text = oid[1:] if oid[:1] == "." else oid
            # isascii + isdigit on the joined digits is the cheap exact check
            # (int() would accept " 1", "+1" and "1_0").
            digits = text.replace(".", "")
            if not (digits.isascii() and digits.isdigit()) or ".." in text or text[-1] == ".":
                raise MibError(f"not a numeric OID: {oid!r}")
            if "0" in text and _LEADING_ZERO.search(text):  # "1.3.06": not a text key
                result = self._lookup_parts(tuple(map(int, text.split("."))))
            else:
                result = self._lookup_text(text)
        else:
            result = self._lookup_parts(oid)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[oid] = result
        return result

    def _lookup_text(self, text: str) -> tuple[MibNode | None, str]:
        # Dotted-string prefixes, cut at the last dot each time: no int
        # conversion and no tuple building on the hot path of trap naming.
        by_text = self._by_text
        end = len(text)
        while end > 0:
            at = by_text.get(text[:end] if end < len(text) else text)
            if at is not None:
                return self._at(at), text[end + 1 :]
            end = text.rfind(".", 0, end)
        return None, text

    def _lookup_parts(self, parts: tuple[int, ...]) -> tuple[MibNode | None, str]:
        by_oid = self._by_oid
        for size in range(min(len(parts), self._depth), 0, -1):
            at = by_oid.get(parts[:size])
            if at is not None:
                return self._at(at), ".".join(map(str, parts[size:]))
        return None, ".".join(map(str, parts))

    def name(self, oid: str | tuple[int, ...]) -> str:
        """``IF-MIB::ifOperStatus.3`` for an OID; the numeric OID if no module covers it.

        Raises:
            MibError: As :meth:`lookup`.
        """
        node, suffix = self.lookup(oid)
        if node is None:
            return suffix
        return f"{node.module}::{node.name}.{suffix}" if suffix else f"{node.module}::{node.name}"

    def notification_objects(self, trap_oid: str | tuple[int, ...]) -> list[str]:
        """The ``MODULE::object`` names a NOTIFICATION-TYPE lists, [] if unknown."""
        if isinstance(trap_oid, str) and not _NUMERIC.match(trap_oid):
            node = self.find(trap_oid)
        else:
            key = trap_oid if isinstance(trap_oid, tuple) else self.oid(trap_oid)
            at = self._by_oid.get(key)
            node = None if at is None else self._at(at)
        if node is None or node.kind != "notification":
            return []
        return list(node.objects)

    # --- values --------------------------------------------------------------

    def label(self, node: MibNode, value: int | float | bytes | str | None) -> str:
        """The enum label or DISPLAY-HINT rendering of ``value``; "" if none applies."""
        if value is None or isinstance(value, (str, bool, float)):
            return ""
        if isinstance(value, int):
            if node.syntax == "BITS":
                return ""
            if node.enums:
                return node.enums.get(value, "")
            if node.display_hint and node.display_hint not in _PLAIN_INT_HINTS:
                text = render_int(node.display_hint, value)
                return "" if text == str(value) else text
            return ""
        if node.syntax == "BITS" and node.enums:
            return " ".join(
                label
                for bit, label in sorted(node.enums.items())
                if bit // 8 < len(value) and value[bit // 8] & (0x80 >> (bit % 8))
            )
        if node.tc == "DateAndTime":
            return render_date_and_time(value) or render_octets(node.display_hint, value)
        if node.tc in _INET:
            return render_inet_address(value)
        if node.display_hint:
            return render_octets(node.display_hint, value)
        return ""

    def enum_value(self, node: MibNode, label: str) -> int | None:
        """The number of an enum label (``'down'`` → 2), None if not a label of ``node``."""
        for value, name in node.enums.items():
            if name == label:
                return value
        return None

    def index_nodes(self, node: MibNode) -> tuple[MibNode, ...]:
        """The INDEX objects of a table, row or column, in INDEX order.

        Raises:
            MibError: ``node`` has no INDEX, or an INDEX object is not loaded.
        """
        refs = self._index_refs.get(node.full_name)
        if refs is None and node.kind == "table":
            at = self._by_oid.get((*node.oid, 1))
            if at is not None and self._at(at).kind == "row":
                return self.index_nodes(self._at(at))
        if not refs:
            raise MibError(f"{node.full_name} is not a table row or column: it has no INDEX")
        out = []
        for ref in refs:
            at = self._by_full.get(ref)
            if at is None:
                raise MibError(f"cannot decode the index of {node.full_name}: {ref} is not loaded")
            out.append(self._at(at))
        return tuple(out)

    def index_parts(self, node: MibNode) -> tuple[tuple[IndexPart, ...], bool]:
        """The INDEX objects of a row or column, ready for :func:`decode_index`.

        Raises:
            MibError: As :meth:`index_nodes`.
        """
        nodes = self.index_nodes(node)
        if node.kind == "table":
            at = self._by_oid.get((*node.oid, 1))
            node = node if at is None else self._at(at)
        parts = tuple(
            IndexPart(
                name=n.name,
                syntax=n.syntax,
                fixed_size=n.fixed_size,
                text=IndexPart.is_text(n.tc, n.display_hint),
                network_address=n.tc == "NetworkAddress",
            )
            for n in nodes
        )
        return parts, node.implied

    def decode_index(self, node: MibNode, index: str) -> dict[str, IndexValue]:
        """The INDEX values of a row instance, by INDEX object short name.

        Raises:
            MibError: ``node`` has no INDEX, or ``index`` does not fit it.
        """
        parts, implied = self.index_parts(node)
        if not _SUFFIX.match(index.strip(".")) and index.strip("."):
            raise MibError(f"not a numeric index: {index!r}")
        subids = [int(x) for x in index.strip(".").split(".")] if index.strip(".") else []
        return decode_index(parts, subids, implied)

    def nodes(self) -> Mapping[str, MibNode]:
        """Every node by ``MODULE::name`` (read-only view)."""
        from types import MappingProxyType

        return MappingProxyType({full: self._at(at) for full, at in self._by_full.items()})
