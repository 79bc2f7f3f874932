"""SNMPv1 Trap-PDU to SNMPv2 notification form (RFC 3584 section 3.1).

After this, every trap looks alike to the rules: sysUpTime.0, snmpTrapOID.0,
the trap's own varbinds, then the v1-only facts as snmpTrapAddress.0,
snmpTrapCommunity.0 and snmpTrapEnterprise.0.
"""

from __future__ import annotations

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import RawVarBind, V1Trap

__all__ = [
    "SNMP_TRAP_ADDRESS",
    "SNMP_TRAP_COMMUNITY",
    "SNMP_TRAP_ENTERPRISE",
    "SNMP_TRAP_OID",
    "SYS_UPTIME",
    "v1_to_v2",
    "v1_trap_oid",
    "v2_trap_oid",
]

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ENTERPRISE = "1.3.6.1.6.3.1.1.4.3.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"
SNMP_TRAP_COMMUNITY = "1.3.6.1.6.3.18.1.4.0"

# generic-trap 0..5: coldStart, warmStart, linkDown, linkUp,
# authenticationFailure, egpNeighborLoss (RFC 3418 snmpTraps, RFC 1907).
_GENERIC = tuple(f"1.3.6.1.6.3.1.1.5.{n}" for n in range(1, 7))


def v1_trap_oid(trap: V1Trap) -> str:
    """The snmpTrapOID.0 value RFC 3584 gives a v1 trap.

    Generic traps map to their standard OIDs; enterpriseSpecific (6) to
    ``enterprise.0.specific``.
    """
    if trap.generic < 6:
        return _GENERIC[trap.generic]
    return f"{trap.enterprise}.0.{trap.specific}"


def v1_to_v2(trap: V1Trap, community: bytes, varbinds: tuple[RawVarBind, ...]) -> list[RawVarBind]:
    """The varbinds of the SNMPv2 form of a v1 trap (RFC 3584 section 3.1 (2)).

    The three trailing objects are appended only when the trap does not
    already carry them (a proxy may have added them).
    """
    out: list[RawVarBind] = [
        (SYS_UPTIME, SnmpType.TIMETICKS, trap.timestamp),
        (SNMP_TRAP_OID, SnmpType.OID, v1_trap_oid(trap)),
    ]
    out.extend(varbinds)
    present = {vb[0] for vb in varbinds}
    if SNMP_TRAP_ADDRESS not in present:
        out.append((SNMP_TRAP_ADDRESS, SnmpType.IP_ADDRESS, trap.agent_addr))
    if SNMP_TRAP_COMMUNITY not in present:
        out.append((SNMP_TRAP_COMMUNITY, SnmpType.OCTET_STRING, community))
    if SNMP_TRAP_ENTERPRISE not in present:
        out.append((SNMP_TRAP_ENTERPRISE, SnmpType.OID, trap.enterprise))
    return out


def v2_trap_oid(varbinds: tuple[RawVarBind, ...] | list[RawVarBind]) -> tuple[str, int | None]:
    """snmpTrapOID.0 and sysUpTime.0 of a v2 notification ("" / None when absent).

    RFC 3416 puts them first and second; a sloppy agent may not, so the
    first two places are checked, then the rest.
    """
    trap_oid = ""
    uptime: int | None = None
    for oid, kind, value in varbinds[:2]:
        if oid == SNMP_TRAP_OID and kind is SnmpType.OID and isinstance(value, str):
            trap_oid = value
        elif oid == SYS_UPTIME and isinstance(value, int):
            uptime = value
    if not trap_oid:
        for oid, kind, value in varbinds[2:]:
            if oid == SNMP_TRAP_OID and kind is SnmpType.OID and isinstance(value, str):
                trap_oid = value
                break
    return trap_oid, uptime
