"""The demo's trap sender: SNMPv2c traps built with netalert's own BER encoder.

Traps leave from the simulated switch's address, so the agent attributes them
to ``demo-sw1`` like traps from a real device. A storm is paced in small
batches (a real storm is a few hundred traps a second, not one burst that only
measures the kernel's receive buffer).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

from netalert.demo.devices import DEMO_MIB, DEMO_PORT_ENTRY, IF_ENTRY, DemoSwitch, oid_text
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType, RawVarBind
from netalert.snmp.wire.berenc import encode_message

__all__ = [
    "LINK_DOWN",
    "LINK_UP",
    "POE_FAULT",
    "TrapSender",
    "link_trap",
    "poe_fault_trap",
]

SYS_UPTIME_0 = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"  # IF-MIB::linkDown
LINK_UP = "1.3.6.1.6.3.1.1.5.4"  # IF-MIB::linkUp
POE_FAULT = oid_text((*DEMO_MIB, 0, 3))  # NETALERT-DEMO-MIB::demoPoeFault


def _head(switch: DemoSwitch, trap_oid: str) -> list[RawVarBind]:
    return [
        (SYS_UPTIME_0, SnmpType.TIMETICKS, switch.uptime_ticks()),
        (SNMP_TRAP_OID_0, SnmpType.OID, trap_oid),
    ]


def link_trap(switch: DemoSwitch, index: int, *, up: bool) -> list[RawVarBind]:
    """linkUp/linkDown for a port (RFC 2863: OBJECTS ifIndex, ifAdminStatus, ifOperStatus)."""
    port = switch.ports[index]
    return [
        *_head(switch, LINK_UP if up else LINK_DOWN),
        (oid_text((*IF_ENTRY, 1, index)), SnmpType.INTEGER, index),
        (oid_text((*IF_ENTRY, 7, index)), SnmpType.INTEGER, port.admin),
        (oid_text((*IF_ENTRY, 8, index)), SnmpType.INTEGER, 1 if up else 2),
    ]


def poe_fault_trap(switch: DemoSwitch, index: int) -> list[RawVarBind]:
    """demoPoeFault for a port (OBJECTS ifDescr, demoPortPoeState = fault)."""
    port = switch.ports[index]
    return [
        *_head(switch, POE_FAULT),
        (oid_text((*IF_ENTRY, 2, index)), SnmpType.OCTET_STRING, port.descr.encode()),
        (oid_text((*DEMO_PORT_ENTRY, 2, index)), SnmpType.INTEGER, 4),
    ]


class TrapSender:
    """Sends v2c traps from ``source`` (host, port 0 = any) to the agent's listener."""

    def __init__(
        self, target: tuple[str, int], *, source: str = "127.0.0.1", community: str = "public"
    ) -> None:
        self.target = target
        self.community = community.encode()
        self.sent = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((source, 0))
        self._sock.setblocking(False)
        self._request_id = 1000

    def send(self, varbinds: Sequence[RawVarBind]) -> None:
        """Sends one trap.

        Raises:
            OSError: The datagram cannot be sent (not for a closed port on
                loopback, which UDP never reports on send).
        """
        self._request_id += 1
        data = encode_message(
            version=1,  # SNMPv2c
            community=self.community,
            pdu_type=PduType.TRAP_V2,
            varbinds=varbinds,
            request_id=self._request_id,
        )
        try:
            self._sock.sendto(data, self.target)
        except BlockingIOError:
            return  # a full send buffer drops the trap, as the network would
        except ConnectionRefusedError:
            return  # an earlier datagram's ICMP port-unreachable; nobody listens yet
        self.sent += 1

    async def storm(
        self,
        make: Callable[[], Sequence[RawVarBind]],
        *,
        count: int,
        seconds: float,
        batches_per_second: int = 20,
    ) -> int:
        """Sends ``count`` traps evenly over ``seconds``; returns how many left."""
        batches = max(int(seconds * batches_per_second), 1)
        before = self.sent
        for batch in range(batches):
            size = count * (batch + 1) // batches - count * batch // batches
            for _ in range(size):
                self.send(make())
            await asyncio.sleep(seconds / batches)
        return self.sent - before

    def close(self) -> None:
        """Closes the socket."""
        self._sock.close()
