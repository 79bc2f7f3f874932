"""A trap as a trap rule sees it: names, index labels, alert key, confirm instance.

Pure functions of a :class:`~netalert.snmp.types.TrapEvent` and the MIB cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netalert.present import octets_text
from netalert.rules.compile import TrapRule
from netalert.rules.mibview import MIB_ERRORS, short_name
from netalert.rules.scope import NodeCache
from netalert.rules.trapcache import Lru
from netalert.rules.values import Converter, render_value
from netalert.snmp.types import TrapEvent, maker

__all__ = ["Named", "TrapView", "confirm_index", "key_labels", "named", "trap_device", "view"]

# What a varbind's name and index say, whatever its value: its short name, how its
# value is shown to the rules, and its decoded index as (column, label, value) triples.
Named = tuple[str, Converter, tuple[tuple[str, str, Any], ...]]


@dataclass(frozen=True, slots=True)
class TrapView:
    """The names a trap rule's expressions and templates see, and the varbinds' index labels."""

    device: str
    names: Mapping[str, Any]
    index: Mapping[str, str]
    trap: str


_trap_view = maker(TrapView)  # one per trap a rule may match


def trap_device(event: TrapEvent) -> str:
    """The device a trap belongs to: the configured name, else the source address."""
    return event.device or event.source


def named(name: str, index: str, cache: NodeCache) -> Named:
    """What the varbind ``name``.``index`` says whatever its value (:data:`Named`).

    ``ifIndex`` = 3 comes from ``ifAdminStatus.3``: a column's index is decoded
    through the MIB; a malformed one from an untrusted sender decodes to nothing.
    """
    short = short_name(name)
    decoded: tuple[tuple[str, str, Any], ...] = ()
    if index and index != "0":
        node = cache.node(name)
        if node is not None and node.kind == "column":
            try:
                raw = cache.tree.decode_index(node, index)
            except MIB_ERRORS:  # a malformed index from an untrusted sender
                raw = {}
            decoded = tuple(
                (col, octets_text(v), octets_text(v)) if isinstance(v, bytes) else (col, str(v), v)
                for col, v in raw.items()
            )
    return short, cache.converter(short), decoded


def view(
    event: TrapEvent, cache: NodeCache, memo: Lru[tuple[str, str], Named] | None = None
) -> TrapView:
    """Builds the names of a trap: varbinds by short name, decoded indexes, specials.

    ``ifIndex`` is visible even when only ``ifAdminStatus.3`` was sent: the
    varbind's index is decoded through the MIB (``ifIndex`` = 3). ``memo`` keeps
    what :func:`named` says per varbind name and index, so that the next trap
    with the same ones does not decode them again (the view is the same).
    """
    device = trap_device(event)
    trap = short_name(event.trap_name) if event.trap_name else event.trap_oid.lstrip(".")
    names: dict[str, Any] = {}
    index: dict[str, str] = {}
    for vb in event.varbinds:
        if not vb.name or vb.value is None:
            continue
        if memo is None:
            short, conv, decoded = named(vb.name, vb.index, cache)
        else:
            key = (vb.name, vb.index)
            found = memo.get(key)
            short, conv, decoded = (
                found if found is not None else memo.put(key, named(vb.name, vb.index, cache))
            )
        names[short] = conv(vb.value, vb.label)
        for col, text, value in decoded:
            index.setdefault(col, text)
            names.setdefault(col, value)
    names.update(
        source=event.source,
        community=event.community,
        user=event.user,
        version=event.version,
        trap=trap,
        device=device,
    )
    return _trap_view(device, names, index, trap)


def key_labels(rule: TrapRule, trap: TrapView) -> dict[str, str]:
    """The labels that tell one alert of ``rule`` from another (besides rule and device).

    The default key is the varbinds' decoded indexes (``ifIndex``); a glob rule
    also keys on the trap's name. ``device`` is always a label of its own.
    """
    if rule.key is None:
        labels = dict(trap.index)
    else:
        labels = {
            name: render_value(trap.names.get(name, "")) for name in rule.key if name != "device"
        }
    if rule.trap.glob:
        labels["trap"] = trap.trap
    return labels


def clear_key(labels: Mapping[str, str]) -> str:
    """The part of the key a clearing trap must match: everything but the trap name."""
    return "|".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "trap")


def confirm_index(rule: TrapRule, event: TrapEvent, trap: TrapView, cache: NodeCache) -> str | None:
    """The instance to poll for ``confirm``: ``"0"`` for scalars, else the trap's row index.

    The row index is taken from a varbind of a table indexed like the confirm
    objects (``ifAdminStatus.3`` → ``3``), else from a varbind naming the index
    column itself (``ifIndex`` = 3). None when the trap does not say.
    """
    columns = [n for n in rule.confirm_nodes if n.kind == "column"]
    if not columns:
        return "0"
    wanted = columns[0].index
    for vb in event.varbinds:
        if not vb.name or not vb.index:
            continue
        node = cache.node(vb.name)
        if node is not None and node.kind == "column" and node.index == wanted:
            return vb.index
    if len(wanted) == 1:
        value = trap.names.get(wanted[0])
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(int(value))
    return None
