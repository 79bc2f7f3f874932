"""A rule test's inputs as the agent's stages receive them: poll results and trap datagrams.

Polls: per device, the series of every instance are expanded; step *i* at
``i * interval`` becomes the varbinds a device would answer, turned into a
:class:`~netalert.snmp.rows.PollResult` by the poller's own
:class:`~netalert.snmp.rows.DeviceTracker` (names, rows, counter rates and
agent restarts, as the agent computes them). A ``timeout`` in any
series of the device at a step makes that poll unanswered; a step where every
series is ``_`` is no poll at all; a ``_`` among values is a value the device
did not return.

Traps: v1 and v2c traps are encoded as the datagram a device would send and
handed to the receiver (decode, access control, attribution, storm control);
a v3 trap is handed over as if authenticated as its ``user``.
"""

from __future__ import annotations

from dataclasses import dataclass

from netalert.mib import MibTree
from netalert.ruletest.series import MISSING, TIMEOUT, SeriesValue, expand_series
from netalert.ruletest.spec import TestTrap
from netalert.ruletest.values import raw_varbind
from netalert.snmp.ber import PduType, RawVarBind, V1Trap
from netalert.snmp.berenc import encode_message
from netalert.snmp.naming import Namer
from netalert.snmp.rows import DeviceTracker, PollResult
from netalert.snmp.trapconv import SNMP_TRAP_OID, SYS_UPTIME
from netalert.snmp.trapv3 import V3Notification
from netalert.snmp.types import SnmpType, VarBind

__all__ = ["PollStep", "device_polls", "poll_steps", "trap_datagram", "trap_v3"]

_SNMP_TRAPS = "1.3.6.1.6.3.1.1.5."  # the generic traps' OIDs (RFC 3584 section 3.2)


@dataclass(frozen=True, slots=True)
class PollStep:
    """What happens to one device at one step: a result, a timeout, or nothing."""

    time: float
    result: PollResult | None
    timeout: bool


def device_polls(
    tree: MibTree, device: str, series: dict[str, str], *, limit: int
) -> list[tuple[str, list[SeriesValue], list[RawVarBind | None]]]:
    """Expands and types every series of one device.

    Returns:
        Per instance name: the expanded values and, per value, its raw varbind
        (None for ``_`` and ``timeout``).

    Raises:
        ValueError: A series or a value is invalid (the message names the instance).
    """
    out = []
    for name, text in series.items():
        try:
            values = expand_series(text, limit=limit)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        raws: list[RawVarBind | None] = []
        cache: dict[object, RawVarBind] = {}
        for value in values:
            if value is MISSING or value is TIMEOUT:
                raws.append(None)
                continue
            assert isinstance(value, int | float | str)
            key = (type(value), value)
            if key not in cache:
                cache[key] = raw_varbind(tree, name, value)
            raws.append(cache[key])
        out.append((name, values, raws))
    return out


def poll_steps(
    tree: MibTree,
    device: str,
    series: dict[str, str],
    *,
    interval: float,
    until: float,
    start: float,
    limit: int,
) -> list[PollStep]:
    """The device's polls, one per ``interval`` from ``start`` up to ``until`` (inclusive).

    Raises:
        ValueError: A series or a value is invalid.
    """
    expanded = device_polls(tree, device, series, limit=limit)
    tracker = DeviceTracker(device, Namer(tree))
    steps = []
    length = max((len(values) for _, values, _ in expanded), default=0)
    for i in range(length):
        offset = i * interval
        if offset > until:
            break
        now = start + offset
        present = [(vals[i], raws[i]) for _, vals, raws in expanded if i < len(vals)]
        if any(value is TIMEOUT for value, _ in present):
            steps.append(PollStep(now, None, True))
            continue
        raws = [raw for _, raw in present if raw is not None]
        if not raws:
            continue  # every series is "_" here: no poll at this step
        result, _ = tracker.assemble(
            [VarBind(*raw) for raw in raws], address=device, started=now, answered=now, finished=now
        )
        steps.append(PollStep(now, result, False))
    return steps


def _varbinds(tree: MibTree, trap: TestTrap) -> list[RawVarBind]:
    out = []
    for name, value in trap.varbinds.items():
        try:
            out.append(raw_varbind(tree, name, value))
        except ValueError as exc:
            raise ValueError(f"varbinds: {exc}") from None
    return out


def _trap_oid(tree: MibTree, trap: TestTrap) -> str:
    try:
        return tree.oid_str(trap.trap)
    except Exception as exc:  # MibError: name it in the test file's terms
        raise ValueError(f"trap: {exc}") from None


def trap_datagram(tree: MibTree, trap: TestTrap, request_id: int) -> bytes:
    """The v1 or v2c datagram a device sends for ``trap`` (RFC 3584 mapping for v1).

    Raises:
        ValueError: Unknown trap or varbind names, or values that do not fit.
    """
    oid = _trap_oid(tree, trap)
    varbinds = _varbinds(tree, trap)
    community = trap.community.encode("utf-8")
    if trap.version == "1":
        if oid.startswith(_SNMP_TRAPS) and oid[len(_SNMP_TRAPS) :].isdigit():
            generic, specific, enterprise = int(oid[len(_SNMP_TRAPS) :]) - 1, 0, "1.3.6.1.4.1"
        else:
            enterprise, _, tail = oid.rpartition(".")
            enterprise = enterprise.removesuffix(".0")
            generic, specific = 6, int(tail)
        head = V1Trap(enterprise, trap.source, generic, specific, trap.uptime)
        return encode_message(
            version=0,
            community=community,
            pdu_type=PduType.TRAP_V1,
            varbinds=varbinds,
            v1_trap=head,
        )
    return encode_message(
        version=1,
        community=community,
        pdu_type=PduType.TRAP_V2,
        request_id=request_id,
        varbinds=[
            (SYS_UPTIME, SnmpType.TIMETICKS, trap.uptime),
            (SNMP_TRAP_OID, SnmpType.OID, oid),
            *varbinds,
        ],
    )


def trap_v3(tree: MibTree, trap: TestTrap) -> V3Notification:
    """A v3 trap from ``trap.user``, as the receiver's v3 engine hands it over once verified.

    Raises:
        ValueError: Unknown trap or varbind names, or values that do not fit.
    """
    varbinds: tuple[RawVarBind, ...] = (
        (SYS_UPTIME, SnmpType.TIMETICKS, trap.uptime),
        (SNMP_TRAP_OID, SnmpType.OID, _trap_oid(tree, trap)),
        *_varbinds(tree, trap),
    )
    return V3Notification(
        source=(trap.source, trap.port),
        user=trap.user,
        engine_id=b"",
        varbinds=varbinds,
        inform=False,
    )
