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
_NO_SUCH = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE})
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
    """An answer a walk cannot take: ``reason`` and the OID at fault; ``fault`` names
    the reason for counting (``not_increasing``, ``no_progress``)."""

    def __init__(self, reason: str, oid: str = "", *, fault: str = "not_increasing") -> None:
        super().__init__(reason)
        self.reason = reason
        self.oid = oid
        self.fault = fault


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

    def take(self, varbinds: Sequence[RawVarBind]) -> int:
        """Takes an answer's rows (non-repeaters removed). A noSuchObject or
        noSuchInstance inside a column (no GETBULK answer's, but some agents send them)
        is no value: that instance is left out and its walk goes on past it.

        Returns:
            How many such exception values were left out.

        Raises:
            ColumnError: OIDs of a column that do not increase (also an OID past its
                subtree that is not past what was asked: the answer's values are not
                where its columns are), or an answer that advances no column.
        """
        active, roots, outs, lasts = self.active, self.roots, self.outs, self._lasts
        currents = self._currents
        width = len(active)
        ended: set[int] = set()
        grown = False
        skipped = 0
        for at, (name, kind, value) in enumerate(varbinds):
            column = active[at % width]
            if column in ended:
                continue
            if kind is _END:
                ended.add(column)  # the agent's MIB view ends: so does this walk
                continue
            root = roots[column]
            key = arcs(name)
            if not (name.startswith(root + ".") or name == root):
                # past its subtree: this column's walk ends, at a successor of what it asked
                if key <= (lasts[column] or arcs(currents[column])):
                    raise ColumnError("OIDs not increasing", name)
                ended.add(column)
                continue
            last = lasts[column]
            if last is not None and key <= last:
                raise ColumnError("OIDs not increasing", name)
            lasts[column] = key
            currents[column] = name
            grown = True
            if kind in _NO_SUCH:
                skipped += 1
                continue
            outs[column].append(_varbind(name, kind, value, "", "", ""))
            if len(outs[column]) >= self.max_varbinds:
                ended.add(column)
        if not grown and not ended:
            raise ColumnError("a GETBULK answer advanced no column", fault="no_progress")
        self.active = [i for i in active if i not in ended]
        return skipped
