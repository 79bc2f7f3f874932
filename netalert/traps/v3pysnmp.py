"""pysnmp's side of :mod:`netalert.traps.v3`, imported when a V3Engine is built.

pysnmp (and the pyasn1 and cryptography modules it pulls in) takes tens of
milliseconds to import; a process with no SNMPv3 trap user never needs it.
The engine is built without MIB lookups by name (:func:`build_engine`), so
pysnmp's MIB compiler, whose default sources include a web address, is never
made: every module the engine reads is compiled into pysnmp.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import RawVarBind

with warnings.catch_warnings():
    # pysnmp 7 imports pyasn1 modules that warn about deprecated APIs at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pysnmp.carrier.base import AbstractTransportDispatcher
    from pysnmp.entity import config as pconfig
    from pysnmp.entity import engine as pengine
    from pysnmp.proto import rfc1902, rfc1905, rfc3411
    from pysnmp.proto.api import v2c

__all__ = [
    "AUTH_PROTOCOLS",
    "CONFIRMED",
    "PRIV_PROTOCOLS",
    "TYPES",
    "UDP",
    "UDP6",
    "Dispatcher",
    "pconfig",
    "pengine",
    "plain",
    "v2c",
]

AUTH_PROTOCOLS: dict[str, Any] = {
    "MD5": pconfig.USM_AUTH_HMAC96_MD5,
    "SHA": pconfig.USM_AUTH_HMAC96_SHA,
    "SHA-224": pconfig.USM_AUTH_HMAC128_SHA224,
    "SHA-256": pconfig.USM_AUTH_HMAC192_SHA256,
    "SHA-384": pconfig.USM_AUTH_HMAC256_SHA384,
    "SHA-512": pconfig.USM_AUTH_HMAC384_SHA512,
}
# AES-192/256 as net-snmp does them: key extension of draft-blumenthal-aes-usm-04.
PRIV_PROTOCOLS: dict[str, Any] = {
    "DES": pconfig.USM_PRIV_CBC56_DES,
    "AES-128": pconfig.USM_PRIV_CFB128_AES,
    "AES-192": pconfig.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES-256": pconfig.USM_PRIV_CFB256_AES_BLUMENTHAL,
}

UDP = pconfig.SNMP_UDP_DOMAIN
UDP6 = pconfig.SNMP_UDP6_DOMAIN
CONFIRMED = rfc3411.CONFIRMED_CLASS_PDUS

# pysnmp's value classes (by tag) → netalert's types.
TYPES: dict[Any, SnmpType] = {
    rfc1902.Integer32.tagSet: SnmpType.INTEGER,
    rfc1902.OctetString.tagSet: SnmpType.OCTET_STRING,
    rfc1902.ObjectIdentifier.tagSet: SnmpType.OID,
    rfc1902.IpAddress.tagSet: SnmpType.IP_ADDRESS,
    rfc1902.Counter32.tagSet: SnmpType.COUNTER32,
    rfc1902.Gauge32.tagSet: SnmpType.GAUGE32,
    rfc1902.TimeTicks.tagSet: SnmpType.TIMETICKS,
    rfc1902.Opaque.tagSet: SnmpType.OPAQUE,
    rfc1902.Counter64.tagSet: SnmpType.COUNTER64,
    rfc1902.Null.tagSet: SnmpType.NULL,
    rfc1905.NoSuchObject.tagSet: SnmpType.NO_SUCH_OBJECT,
    rfc1905.NoSuchInstance.tagSet: SnmpType.NO_SUCH_INSTANCE,
    rfc1905.EndOfMibView.tagSet: SnmpType.END_OF_MIB_VIEW,
}


def plain(oid: Any, value: Any) -> RawVarBind:
    """One of pysnmp's varbinds as the wire decoder's (OID text, type, value)."""
    while hasattr(value, "getComponent"):  # unwrap the CHOICE layers
        value = value.getComponent()
    kind = TYPES.get(value.tagSet, SnmpType.OCTET_STRING)
    text = ".".join(map(str, oid))
    if kind in (SnmpType.INTEGER, SnmpType.COUNTER32, SnmpType.GAUGE32, SnmpType.TIMETICKS):
        return text, kind, int(value)
    if kind is SnmpType.COUNTER64:
        return text, kind, int(value)
    if kind is SnmpType.IP_ADDRESS:
        return text, kind, ".".join(map(str, value.asNumbers()))
    if kind is SnmpType.OID:
        return text, kind, ".".join(map(str, value))
    if kind in (SnmpType.OCTET_STRING, SnmpType.OPAQUE):
        return text, kind, value.asOctets()
    return text, kind, None


class Dispatcher(AbstractTransportDispatcher):  # type: ignore[misc]
    """pysnmp's transport seam: its outgoing messages go to our sockets."""

    def __init__(self, send: Callable[[bytes, tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send = send

    def send_message(
        self, outgoingMessage: Any, transportDomain: Any, transportAddress: Any
    ) -> None:
        self._send(bytes(outgoingMessage), tuple(transportAddress))
