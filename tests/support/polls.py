"""Poll results for tests of the rules, made the way the poller makes them.

A :class:`Device` answers with the varbinds of the values it is given and
turns them into a :class:`~netalert.poll.rows.PollResult` through the
poller's own :class:`~netalert.poll.rows.DeviceTracker`: names and types from
the MIB, rows joined by index, counter rates across its polls, agent
restarts from ``sysUpTime``. No sockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from netalert.mib import MibTree
from netalert.poll.rows import DeviceTracker, PollResult, PollStatus, Row
from netalert.snmp.naming import Namer
from netalert.snmp.types import SnmpType, VarBind
from tests.support.trees import builtin_tree

__all__ = ["Device", "unlabelled"]


def _varbind(tree: MibTree, name: str, index: str, value: Any) -> VarBind:
    oid = tree.oid_str(f"{name}.{index}")
    if isinstance(value, bytes):
        return VarBind(oid, SnmpType.OCTET_STRING, value)
    if isinstance(value, str):
        return VarBind(oid, SnmpType.OCTET_STRING, value.encode())
    return VarBind(oid, SnmpType.INTEGER, int(value))


class Device:
    """One virtual device; its polls share counters, as a real device's do."""

    def __init__(self, name: str, tree: MibTree | None = None) -> None:
        """``tree`` names the device's objects (default: the built-in modules')."""
        self.name = name
        tree = tree if tree is not None else builtin_tree()
        self.tree = tree
        self.tracker = DeviceTracker(name, Namer(tree))

    def poll(
        self,
        t: float,
        rows: Mapping[str, Mapping[str, Any]] = {},  # read only
        *,
        scalars: Mapping[str, Any] | None = None,
        status: PollStatus = "ok",
    ) -> PollResult:
        """The result of a poll answered at ``t``: ``scalars`` by short name, ``rows`` by index."""
        varbinds = [_varbind(self.tree, n, "0", v) for n, v in (scalars or {}).items()]
        for index, columns in rows.items():
            varbinds += [_varbind(self.tree, n, index, v) for n, v in columns.items()]
        result, _ = self.tracker.assemble(
            varbinds, address="192.0.2.1:161", started=t, answered=t, finished=t, status=status
        )
        return result


def unlabelled(result: PollResult) -> PollResult:
    """``result`` as from a device whose MIB gives no label or DISPLAY-HINT (raw values only)."""

    def bare(row: Row) -> Row:
        columns = {name: replace(s, label="") for name, s in row.columns.items()}
        return replace(row, columns=columns)

    return replace(result, scalars=bare(result.scalars), rows=tuple(bare(r) for r in result.rows))
