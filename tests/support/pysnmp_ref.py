"""pysnmp/pyasn1 as the reference decoder the fast BER decoder is compared against."""

from __future__ import annotations

from typing import Any

from pyasn1.codec.ber import decoder as asn1_decoder
from pysnmp.proto import api, rfc1155

from netalert.snmp.types import SnmpType
from netalert.traps.v3pysnmp import TYPES

__all__ = ["reference_decode"]

_TYPES = {**TYPES, rfc1155.IpAddress.tagSet: SnmpType.IP_ADDRESS}


def _plain(value: Any) -> tuple[SnmpType, Any]:
    while hasattr(value, "getComponent"):  # unwrap the CHOICE layers
        value = value.getComponent()
    kind = _TYPES[value.tagSet]
    if kind in (SnmpType.NULL, SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE):
        return kind, None
    if kind is SnmpType.END_OF_MIB_VIEW:
        return kind, None
    if kind is SnmpType.IP_ADDRESS:
        return kind, ".".join(str(x) for x in value.asNumbers())
    if kind is SnmpType.OID:
        return kind, ".".join(str(x) for x in value)
    if kind in (SnmpType.OCTET_STRING, SnmpType.OPAQUE):
        return kind, value.asOctets()
    return kind, int(value)


def reference_decode(data: bytes) -> dict[str, Any] | None:
    """Decodes with pysnmp's message specs; None when pysnmp rejects the datagram."""
    try:
        version = int(api.decodeMessageVersion(data))
        module = api.PROTOCOL_MODULES[version]
        msg, rest = asn1_decoder.decode(data, asn1Spec=module.Message())
        if rest:
            return None
        pdu = msg["data"].getComponent()
        out: dict[str, Any] = {
            "version": version,
            "community": msg["community"].asOctets(),
            "pdu_type": pdu.tagSet[-1][2] | 0xA0,
        }
        if out["pdu_type"] == 0xA4:
            agent = pdu["agent-addr"].getComponent()
            out["v1_trap"] = (
                ".".join(str(x) for x in pdu["enterprise"]),
                ".".join(str(x) for x in agent.asNumbers()),
                int(pdu["generic-trap"]),
                int(pdu["specific-trap"]),
                int(pdu["time-stamp"]),
            )
        else:
            fields = [int(pdu[i]) for i in range(3)]
            out["request_id"], out["error_status"], out["error_index"] = fields
        varbinds = []
        for vb in pdu["variable-bindings"]:
            kind, value = _plain(vb[1])
            varbinds.append((".".join(str(x) for x in vb[0]), kind, value))
        out["varbinds"] = tuple(varbinds)
        return out
    except Exception:
        return None
