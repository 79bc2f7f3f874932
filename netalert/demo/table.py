"""An in-memory OID table: what a simulated device answers to GET and GETNEXT.

Each instance maps to a :data:`Cell`, a function called at request time, so
counters, uptime and temperatures are computed when asked instead of being
updated by a timer. The set of instances is fixed when the table is built
(a device does not grow interfaces during a demo), so lookups bisect one
sorted list.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from enum import Enum

from netalert.snmp.types import SnmpType, Value

__all__ = ["Cell", "Miss", "Oid", "OidTable", "const", "parse_oid"]

Oid = tuple[int, ...]
Cell = Callable[[], tuple[SnmpType, Value]]


class Miss(Enum):
    """Why a GET found nothing (RFC 3416 section 4.2.1)."""

    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"


def parse_oid(text: str) -> Oid:
    """``"1.3.6.1.2.1.1.3.0"`` (a leading dot is fine) as a tuple of ints.

    Raises:
        ValueError: for an empty OID or a non-numeric arc.
    """
    parts = text.strip().strip(".").split(".")
    if parts == [""]:
        raise ValueError("empty OID")
    return tuple(int(p) for p in parts)


def const(kind: SnmpType, value: Value) -> Cell:
    """A cell whose value never changes."""
    return lambda: (kind, value)


class OidTable:
    """Instances in OID order, answering exact and next lookups."""

    __slots__ = ("_cells", "_keys", "_objects")

    def __init__(self, cells: Mapping[Oid, Cell]) -> None:
        self._cells = dict(cells)
        self._keys = sorted(self._cells)
        # An instance's object is its OID minus the last arc for scalars (.0)
        # and single-index columns; good enough to tell noSuchObject from
        # noSuchInstance for the demo's data set.
        self._objects = {key[:-1] for key in self._keys}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, oid: Oid) -> tuple[SnmpType, Value] | Miss:
        """The value of exactly ``oid``, or why there is none."""
        cell = self._cells.get(oid)
        if cell is not None:
            return cell()
        if oid[:-1] in self._objects:
            return Miss.NO_SUCH_INSTANCE
        return Miss.NO_SUCH_OBJECT

    def next(self, oid: Oid) -> tuple[Oid, SnmpType, Value] | None:
        """The first instance after ``oid`` and its value; None past the last one."""
        at = bisect.bisect_right(self._keys, oid)
        if at >= len(self._keys):
            return None
        key = self._keys[at]
        kind, value = self._cells[key]()
        return key, kind, value
