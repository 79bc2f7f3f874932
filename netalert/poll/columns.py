"""Walking several table columns through shared GETBULK requests: the bookkeeping, no I/O.

The native backend (:mod:`netalert.poll.client_native`) asks for every column not yet
finished in one GETBULK; the answer's variable bindings take the columns in turn, row by
row. :class:`Columns` says what to ask next and takes each answer: a column ends at its
first value past its subtree (or endOfMibView), or at ``max_varbinds``; its OIDs must
increase, or a broken agent would loop the walk forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from netalert.snmp.types import SnmpType, VarBind, maker
from netalert.snmp.wire.ber import RawVarBind
from netalert.snmp.wire.berenc import encode_oid

__all__ = ["ColumnError", "Columns", "arcs", "encoded"]

_END = SnmpType.END_OF_MIB_VIEW
_varbind = maker(VarBind)
# Arcs of the OIDs walks return, for the check that a walk advances, and walks' roots
# encoded (where a decode may stop): the same ones device after device. Bounded.
_CACHE_LIMIT = 100_000
_arcs_seen: dict[str, tuple[int, ...]] = {}
_encoded_roots: dict[str, bytes] = {}


def arcs(oid: str) -> tuple[int, ...]:
    """The arcs of a dotted OID (cached)."""
    key = _arcs_seen.get(oid)
    if key is None:
        key = tuple(map(int, oid.split(".")))
        if len(_arcs_seen) >= _CACHE_LIMIT:
            _arcs_seen.clear()
        _arcs_seen[oid] = key
    return key


def encoded(root: str) -> bytes:
    """The BER contents of a dotted OID (cached): what a decode cut at its subtree needs."""
    found = _encoded_roots.get(root)
    if found is None:
        found = encode_oid(root)
        if len(_encoded_roots) >= _CACHE_LIMIT:
            _encoded_roots.clear()
        _encoded_roots[root] = found
    return found


class ColumnError(Exception):
    """An answer a walk cannot take: ``reason`` and the OID at fault."""

    def __init__(self, reason: str, oid: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.oid = oid


class Columns:
    """The walks of ``roots`` (dotted OIDs) under way; see the module docstring."""

    __slots__ = ("_currents", "_lasts", "active", "max_varbinds", "outs", "roots")

    def __init__(self, roots: Sequence[str], max_varbinds: int) -> None:
        self.roots = list(roots)
        self.max_varbinds = max_varbinds
        self.outs: list[list[VarBind]] = [[] for _ in self.roots]
        self.active = list(range(len(self.roots)))  # the columns not finished
        self._lasts: list[tuple[int, ...] | None] = [None] * len(self.roots)
        self._currents = list(self.roots)

    def asked(self) -> list[str]:
        """The OIDs the next GETBULK asks the successors of: each active column's last."""
        return [self._currents[i] for i in self.active]

    def subtrees(self) -> tuple[bytes, ...]:
        """The active columns' roots, encoded, in the order of :meth:`asked`."""
        return tuple(encoded(self.roots[i]) for i in self.active)

    def take(self, varbinds: Sequence[RawVarBind]) -> None:
        """Takes an answer's rows (non-repeaters removed).

        Raises:
            ColumnError: OIDs of a column that do not increase, or an answer that
                advances no column.
        """
        active, roots, outs, lasts = self.active, self.roots, self.outs, self._lasts
        width = len(active)
        ended: set[int] = set()
        grown = False
        for at, (name, kind, value) in enumerate(varbinds):
            column = active[at % width]
            if column in ended:
                continue
            root = roots[column]
            if kind is _END or not (name.startswith(root + ".") or name == root):
                ended.add(column)  # past its subtree: this column's walk ends
                continue
            key = arcs(name)
            last = lasts[column]
            if last is not None and key <= last:
                raise ColumnError("OIDs not increasing", name)
            lasts[column] = key
            outs[column].append(_varbind(name, kind, value, "", "", ""))
            grown = True
            if len(outs[column]) >= self.max_varbinds:
                ended.add(column)
        if not grown and not ended:
            raise ColumnError("a GETBULK answer advanced no column")
        self.active = [i for i in active if i not in ended]
        for i in self.active:
            if outs[i]:
                self._currents[i] = outs[i][-1].oid
