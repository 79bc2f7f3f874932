"""A pysnmp command responder serving an :class:`~netalert.demo.table.OidTable`.

pysnmp's engine does the protocol work (community check, PDU decoding,
GETBULK repetition); this module plugs a small instrumentation controller into
it that reads the table instead of pysnmp's MIB tree. One engine per simulated
device, each on its own UDP socket, all on the running event loop.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as engine_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.smi.instrum import AbstractMibInstrumController

from netalert.demo.table import Miss, OidTable
from netalert.errors import NetalertError
from netalert.snmp.types import SnmpType, Value

__all__ = ["MAX_BULK_VARBINDS", "DemoAgentError", "SimulatedAgent", "to_pysnmp"]

# Caps one GETBULK answer (like pysnmp's responder): 64 small varbinds stay
# far below the 1472-byte datagram loopback and most LANs carry unfragmented.
MAX_BULK_VARBINDS = 64


class DemoAgentError(NetalertError):
    """A simulated device cannot start (its address cannot be bound)."""


_CLASSES: dict[SnmpType, Any] = {
    SnmpType.INTEGER: rfc1902.Integer32,
    SnmpType.OCTET_STRING: rfc1902.OctetString,
    SnmpType.OID: rfc1902.ObjectIdentifier,
    SnmpType.IP_ADDRESS: rfc1902.IpAddress,
    SnmpType.COUNTER32: rfc1902.Counter32,
    SnmpType.GAUGE32: rfc1902.Gauge32,
    SnmpType.TIMETICKS: rfc1902.TimeTicks,
    SnmpType.OPAQUE: rfc1902.Opaque,
    SnmpType.COUNTER64: rfc1902.Counter64,
}


def to_pysnmp(kind: SnmpType, value: Value) -> Any:
    """A table value as the pysnmp object the engine encodes.

    Raises:
        ValueError: for a type a device cannot serve as a value (NULL, exceptions).
    """
    cls = _CLASSES.get(kind)
    if cls is None:
        raise ValueError(f"a simulated device cannot serve {kind}")
    if kind is SnmpType.OID and isinstance(value, str):
        return cls(value.strip("."))
    return cls(value)


class _TableInstrum(AbstractMibInstrumController):  # type: ignore[misc]
    """Answers the engine's read requests from an :class:`OidTable`; refuses writes."""

    def __init__(self, table: OidTable) -> None:
        self.table = table

    def read_variables(self, *var_binds: Any, **_context: Any) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        for name, _ in var_binds:
            found = self.table.get(tuple(name))
            if found is Miss.NO_SUCH_OBJECT:
                out.append((name, rfc1905.noSuchObject))
            elif found is Miss.NO_SUCH_INSTANCE:
                out.append((name, rfc1905.noSuchInstance))
            else:
                kind, value = found
                out.append((name, to_pysnmp(kind, value)))
        return out

    def read_next_variables(self, *var_binds: Any, **context: Any) -> list[tuple[Any, Any]]:
        v1 = _is_v1(context)
        out: list[tuple[Any, Any]] = []
        for name, _ in var_binds:
            found = self.table.next(tuple(name))
            # SNMPv1 cannot carry Counter64: a v1 GETNEXT skips it (RFC 3584 section 4.2.2.1).
            while v1 and found is not None and found[1] is SnmpType.COUNTER64:
                found = self.table.next(found[0])
            if found is None:
                out.append((name, rfc1905.endOfMibView))
            else:
                oid, kind, value = found
                out.append((rfc1902.ObjectName(oid), to_pysnmp(kind, value)))
        return out


def _is_v1(context: dict[str, Any]) -> bool:
    engine = context.get("snmpEngine")
    if engine is None:
        return False
    request = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
    return bool(request.get("messageProcessingModel") == 0)


class _BulkResponder(cmdrsp.CommandResponderBase):  # type: ignore[misc]
    """GETBULK per RFC 3416 section 4.2.3, ending early once every column is past the end.

    pysnmp's own responder keeps repeating endOfMibView up to max-repetitions;
    net-snmp's agent stops, and walkers print less noise that way.
    """

    SUPPORTED_PDU_TYPES = (rfc1905.GetBulkRequestPDU.tagSet,)

    def handle_management_operation(
        self,
        snmpEngine: Any,
        stateReference: Any,
        contextName: Any,
        PDU: Any,
    ) -> None:
        non_repeaters = max(int(v2c.apiBulkPDU.get_non_repeaters(PDU)), 0)
        max_repetitions = max(int(v2c.apiBulkPDU.get_max_repetitions(PDU)), 0)
        requested = list(v2c.apiPDU.get_varbinds(PDU))
        read_next = self.snmpContext.get_mib_instrum(contextName).read_next_variables
        context = {"snmpEngine": snmpEngine}
        n = min(non_repeaters, len(requested))
        out: list[tuple[Any, Any]] = read_next(*requested[:n], **context) if n else []
        columns = requested[n:]
        if columns:
            rounds = min(max_repetitions, max(MAX_BULK_VARBINDS // len(columns), 1))
            for _ in range(rounds):
                columns = read_next(*columns, **context)
                out.extend(columns)
                if all(value.tagSet == rfc1905.endOfMibView.tagSet for _, value in columns):
                    break
        self.send_varbinds(snmpEngine, stateReference, 0, 0, out)
        self.release_state_information(stateReference)


class SimulatedAgent:
    """One simulated device: a pysnmp engine answering v1/v2c reads on one UDP port."""

    def __init__(self, table: OidTable, *, community: str = "public") -> None:
        self.table = table
        self.community = community
        self.host = ""
        self.port = 0
        self._engine: SnmpEngine | None = None
        self._transport: Any = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Binds ``host:port`` (0: a free port, see :attr:`port`) and starts answering.

        Raises:
            DemoAgentError: The address cannot be bound.
        """
        # Binding the socket here (not inside pysnmp) turns port 0 into a free
        # port without a race, and surfaces bind errors at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise DemoAgentError(f"simulated device cannot listen on {host}:{port}: {exc}") from exc
        sock.setblocking(False)
        self.host, self.port = sock.getsockname()[:2]
        engine = SnmpEngine()
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        engine_config.add_transport(engine, udp.DOMAIN_NAME, transport)
        engine_config.add_v1_system(engine, "demo-reader", self.community)
        snmp_context = context.SnmpContext(engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _TableInstrum(self.table))
        cmdrsp.GetCommandResponder(engine, snmp_context)
        cmdrsp.NextCommandResponder(engine, snmp_context)
        _BulkResponder(engine, snmp_context)
        await transport._lport  # the endpoint is created on the loop; wait for it
        self._engine = engine
        self._transport = transport

    async def stop(self) -> None:
        """Stops answering and closes the socket."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        engine.close_dispatcher()
        # Let the transport's close callbacks run before the loop may end.
        await asyncio.sleep(0)
