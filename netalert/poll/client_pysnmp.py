"""The pysnmp 7 hlapi adapter of :class:`~netalert.poll.client.SnmpClient` (the reference).

One :class:`pysnmp.hlapi.v3arch.asyncio.SnmpEngine` serves every device: creating
one costs ~0.1 s and ~700 KB, so never one per device. Transport targets and
auth data are cached per target; MIB lookups are off (``lookupMib=False``, 2.4x
faster walks): naming is netalert's MIB layer's job.

pysnmp reports the wire type of each value exactly, and v3 failures by the USM
report's name; it does its own retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as hlauth
from pysnmp.proto import errind

from netalert.poll.client import (
    Backend,
    EngineCallback,
    SnmpAuthError,
    SnmpClient,
    SnmpProtocolError,
    SnmpTimeoutError,
    Target,
    oid_in_subtree,
)
from netalert.snmp.nomibcompiler import refuse_mib_compiler
from netalert.snmp.types import SnmpType, Value, VarBind

__all__ = ["PysnmpClient", "pysnmp_value"]

_AUTH = {
    "MD5": hlauth.usmHMACMD5AuthProtocol,
    "SHA": hlauth.usmHMACSHAAuthProtocol,
    "SHA-224": hlauth.usmHMAC128SHA224AuthProtocol,
    "SHA-256": hlauth.usmHMAC192SHA256AuthProtocol,
    "SHA-384": hlauth.usmHMAC256SHA384AuthProtocol,
    "SHA-512": hlauth.usmHMAC384SHA512AuthProtocol,
}
# AES-192/256: the Blumenthal key extension, as net-snmp's AES192/AES256 and gufo's default.
_PRIV = {
    "DES": hlauth.usmDESPrivProtocol,
    "AES-128": hlauth.usmAesCfb128Protocol,
    "AES-192": hlauth.usmAesBlumenthalCfb192Protocol,
    "AES-256": hlauth.usmAesBlumenthalCfb256Protocol,
}
_REPORTS: dict[type[errind.ErrorIndication], str] = {
    errind.UnknownUserName: "unknownUserName",
    errind.WrongDigest: "wrongDigest",
    errind.NotInTimeWindow: "notInTimeWindow",
    errind.UnsupportedSecurityLevel: "unsupportedSecLevel",
    errind.UnknownEngineID: "unknownEngineID",
    errind.DecryptionError: "decryptionError",
    errind.AuthenticationFailure: "authenticationFailed",
    errind.AuthenticationError: "authenticationFailed",
}
_TYPES = {
    "Integer": SnmpType.INTEGER,
    "Integer32": SnmpType.INTEGER,
    "OctetString": SnmpType.OCTET_STRING,
    "Bits": SnmpType.OCTET_STRING,
    "ObjectIdentifier": SnmpType.OID,
    "ObjectName": SnmpType.OID,
    "IpAddress": SnmpType.IP_ADDRESS,
    "Counter32": SnmpType.COUNTER32,
    "Gauge32": SnmpType.GAUGE32,
    "Unsigned32": SnmpType.GAUGE32,
    "TimeTicks": SnmpType.TIMETICKS,
    "Opaque": SnmpType.OPAQUE,
    "Counter64": SnmpType.COUNTER64,
    "Null": SnmpType.NULL,
    "NoSuchObject": SnmpType.NO_SUCH_OBJECT,
    "NoSuchInstance": SnmpType.NO_SUCH_INSTANCE,
    "EndOfMibView": SnmpType.END_OF_MIB_VIEW,
}
_GET_CHUNK = 32


def pysnmp_value(value: Any) -> tuple[SnmpType, Value]:
    """Converts a pysnmp value object into (wire type, Python value)."""
    kind = _TYPES.get(type(value).__name__)
    if kind is None:  # a subclass (TEXTUAL-CONVENTION) of a base type
        for cls in type(value).__mro__:
            kind = _TYPES.get(cls.__name__)
            if kind is not None:
                break
        else:
            return SnmpType.OCTET_STRING, bytes(value.asOctets())
    if kind in (SnmpType.OCTET_STRING, SnmpType.OPAQUE):
        return kind, bytes(value.asOctets())
    if kind in (SnmpType.OID, SnmpType.IP_ADDRESS):
        return kind, value.prettyPrint()
    if kind in (
        SnmpType.NULL,
        SnmpType.NO_SUCH_OBJECT,
        SnmpType.NO_SUCH_INSTANCE,
        SnmpType.END_OF_MIB_VIEW,
    ):
        return kind, None
    return kind, int(value)


class PysnmpClient(SnmpClient):
    """The pysnmp hlapi over one shared SnmpEngine; see the module docstring."""

    backend: Backend = "pysnmp"

    def __init__(self, *, on_engine_id: EngineCallback | None = None) -> None:
        self._engine: Any = None
        self._transports: dict[tuple[str, int, float, int], Any] = {}
        self._auth: dict[Target, Any] = {}
        self._by_address: dict[tuple[str, int], Target] = {}
        self._on_engine_id = on_engine_id

    def _snmp_engine(self) -> Any:
        if self._engine is None:
            self._engine = SnmpEngine()
            refuse_mib_compiler(self._engine)  # no pysmi parser, no MIB downloads
            if self._on_engine_id is not None:
                self._engine.observer.register_observer(
                    self._observe, "rfc3412.prepareDataElements:response"
                )
        return self._engine

    def _observe(self, _engine: Any, _point: str, variables: Any, _ctx: Any) -> None:
        engine_id = bytes(variables.get("securityEngineId") or b"")
        address = variables.get("transportAddress")
        if not engine_id or address is None or self._on_engine_id is None:
            return
        target = self._by_address.get((str(address[0]), int(address[1])))
        if target is not None and target.version == "3":
            self._on_engine_id(target, engine_id)

    async def _setup(self, target: Target) -> tuple[Any, Any, Any, Any]:
        engine = self._snmp_engine()
        key = (target.host, target.port, target.timeout, target.retries)
        transport = self._transports.get(key)
        if transport is None:
            cls = Udp6TransportTarget if ":" in target.host else UdpTransportTarget
            transport = await cls.create(
                (target.host, target.port), timeout=target.timeout, retries=target.retries
            )
            self._transports[key] = transport
        auth = self._auth.get(target)
        if auth is None:
            if target.version == "3":
                auth = UsmUserData(
                    target.user,
                    authKey=target.auth_password or None,
                    privKey=target.priv_password or None,
                    authProtocol=_AUTH[target.auth_protocol]
                    if target.auth_protocol
                    else hlauth.usmNoAuthProtocol,
                    privProtocol=_PRIV[target.priv_protocol]
                    if target.priv_protocol
                    else hlauth.usmNoPrivProtocol,
                )
            else:
                auth = CommunityData(target.community, mpModel=0 if target.version == "1" else 1)
            self._auth[target] = auth
            self._by_address[(target.host, target.port)] = target
        return engine, auth, transport, ContextData(contextName=target.context)

    def _check(self, target: Target, indication: Any, status: Any, index: Any, oids: Any) -> None:
        if indication:
            if isinstance(indication, errind.RequestTimedOut):
                raise SnmpTimeoutError(target)
            for cls, name in _REPORTS.items():
                if isinstance(indication, cls):
                    raise SnmpAuthError(target, name)
            raise SnmpProtocolError(target, str(indication))
        if status:
            at = int(index)
            oid = oids[at - 1] if 0 < at <= len(oids) else ""
            raise SnmpProtocolError(target, status.prettyPrint(), oid)

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get`."""
        clean = [o.lstrip(".") for o in oids]
        out: list[VarBind] = []
        for start in range(0, len(clean), _GET_CHUNK):
            out += await self._get_chunk(target, clean[start : start + _GET_CHUNK])
        return out

    async def _ask(self, command: Any, target: Target, query: list[str]) -> Any:
        """One GET or GETNEXT of ``query``: pysnmp's (indication, status, index, varbinds)."""
        engine, auth, transport, context = await self._setup(target)
        objects = [ObjectType(ObjectIdentity(o)) for o in query]
        return await command(engine, auth, transport, context, *objects, lookupMib=False)

    async def _get_chunk(self, target: Target, oids: list[str]) -> list[VarBind]:
        asked = list(oids)
        absent: set[str] = set()
        while True:
            query = [o for o in asked if o not in absent]
            if not query:
                break
            indication, status, index, vbs = await self._ask(get_cmd, target, query)
            if not indication and status and status.prettyPrint() == "noSuchName":
                # SNMPv1: the whole PDU fails on one missing OID; drop it and ask again.
                absent.add(query[int(index) - 1])
                continue
            self._check(target, indication, status, index, query)
            got = {str(name): pysnmp_value(value) for name, value in vbs}
            break
        else:  # pragma: no cover
            got = {}
        out = []
        for oid in asked:
            if oid in absent:
                out.append(VarBind(oid, SnmpType.NO_SUCH_OBJECT, None))
            else:
                kind, value = got.get(oid, (SnmpType.NO_SUCH_INSTANCE, None))
                out.append(VarBind(oid, kind, value))
        return out

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get_next`."""
        query = [o.lstrip(".") for o in oids]
        indication, status, index, vbs = await self._ask(next_cmd, target, query)
        if not indication and status and status.prettyPrint() == "noSuchName":
            return [VarBind(o, SnmpType.END_OF_MIB_VIEW, None) for o in query]  # v1 end of view
        self._check(target, indication, status, index, query)
        return [VarBind(str(name), *pysnmp_value(value)) for name, value in vbs]

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        """See :meth:`SnmpClient.walk`."""
        root = oid.lstrip(".")
        engine, auth, transport, context = await self._setup(target)
        out: list[VarBind] = []
        cursor, last = root, tuple(int(p) for p in root.split("."))
        done = False
        while not done and len(out) < max_varbinds:
            if target.version == "1":
                batch = await self.get_next(target, [cursor])
            else:
                indication, status, index, vbs = await bulk_cmd(
                    engine,
                    auth,
                    transport,
                    context,
                    0,
                    target.max_repetitions,
                    ObjectType(ObjectIdentity(cursor)),
                    lookupMib=False,
                )
                self._check(target, indication, status, index, [cursor])
                batch = [VarBind(str(name), *pysnmp_value(value)) for name, value in vbs]
            if not batch:
                break
            for vb in batch:
                if vb.type is SnmpType.END_OF_MIB_VIEW or not oid_in_subtree(vb.oid, root):
                    done = True
                    break
                key = tuple(int(p) for p in vb.oid.split("."))
                if key <= last:
                    raise SnmpProtocolError(target, "OIDs not increasing", vb.oid)
                last = key
                out.append(vb)
            cursor = out[-1].oid if out else cursor
        if not out:
            got = await self.get(target, [root])
            out = [
                vb
                for vb in got
                if vb.type
                not in (
                    SnmpType.NO_SUCH_OBJECT,
                    SnmpType.NO_SUCH_INSTANCE,
                    SnmpType.END_OF_MIB_VIEW,
                )
            ]
        return out[:max_varbinds]

    async def close(self) -> None:
        """Closes the shared engine's dispatcher."""
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        self._transports.clear()
        self._auth.clear()
