"""The demo's simulated devices: a four-port switch and an environment monitor.

The data set is netalert's own. Values are computed when a manager asks:
sysUpTime and the octet counters advance with the clock, the chassis
temperature drifts toward a target the scenario sets. The scenario changes a
device through its methods (:meth:`DemoSwitch.set_oper`,
:meth:`DemoEnvMonitor.heat_to`); the next poll sees the change.

OIDs are the standard ones (SNMPv2-MIB system group, IF-MIB ifTable and
ifXTable) and those of mibs/NETALERT-DEMO-MIB.mib (enterprise 32473, which
RFC 5612 reserves for documentation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from netalert.demo.table import Cell, Oid, OidTable, const
from netalert.snmp.types import SnmpType

__all__ = [
    "DEMO_ENTERPRISE",
    "DemoEnvMonitor",
    "DemoSwitch",
    "Port",
    "oid_text",
]

Clock = Callable[[], float]

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
DEMO_ENTERPRISE = (1, 3, 6, 1, 4, 1, 32473)
DEMO_MIB = (*DEMO_ENTERPRISE, 1)  # netalertDemoMIB
DEMO_CHASSIS = (*DEMO_MIB, 1, 1)  # demoChassis
DEMO_PORT_ENTRY = (*DEMO_MIB, 1, 2, 1)  # demoPortEntry
DEMO_SENSOR_ENTRY = (*DEMO_MIB, 1, 3, 1)  # demoSensorEntry

UP, DOWN = 1, 2  # ifAdminStatus / ifOperStatus
ETHERNET = 6  # IANAifType ethernetCsmacd
POE_DELIVERING, POE_DISABLED = 3, 1
SENSOR_TEMPERATURE, SENSOR_FAN = 1, 2
SENSOR_OK, SENSOR_WARNING = 1, 2

_C32 = 1 << 32
_C64 = 1 << 64


def oid_text(oid: Oid) -> str:
    """``(1, 3, 6)`` as ``"1.3.6"``."""
    return ".".join(str(arc) for arc in oid)


def _system(clock: Clock, boot: float, descr: str, name: str, location: str) -> dict[Oid, Cell]:
    def uptime() -> tuple[SnmpType, int]:
        return SnmpType.TIMETICKS, int((clock() - boot) * 100) % _C32

    return {
        (*SYSTEM, 1, 0): const(SnmpType.OCTET_STRING, descr.encode()),
        (*SYSTEM, 2, 0): const(SnmpType.OID, oid_text(DEMO_MIB)),
        (*SYSTEM, 3, 0): uptime,
        (*SYSTEM, 4, 0): const(SnmpType.OCTET_STRING, b"noc@example.org"),
        (*SYSTEM, 5, 0): const(SnmpType.OCTET_STRING, name.encode()),
        (*SYSTEM, 6, 0): const(SnmpType.OCTET_STRING, location.encode()),
        (*SYSTEM, 7, 0): const(SnmpType.INTEGER, 2),  # sysServices: a layer-2 device
    }


@dataclass(slots=True)
class Port:
    """One switch port: its identity, state and traffic (octets per second while up)."""

    index: int
    descr: str
    alias: str
    admin: int = UP
    oper: int = UP
    in_rate: int = 0
    out_rate: int = 0
    in_octets: int = 0
    out_octets: int = 0
    last_change: float = 0.0  # clock time of the last oper status change
    poe: int = POE_DELIVERING


class DemoSwitch:
    """``demo-sw1``: four gigabit ports, PoE, counters that grow while a port is up."""

    def __init__(self, name: str = "demo-sw1", *, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        now = clock()
        # Up for a little over twelve days, as a switch in a closet usually is.
        self.boot = now - 12 * 86400 - 3 * 3600 - 17 * 60
        self.ports = {
            p.index: p
            for p in (
                # Port 1 starts just below the 32-bit wrap: ifInOctets wraps in the
                # first half minute while ifHCInOctets keeps counting.
                Port(
                    1,
                    "GigabitEthernet0/1",
                    "uplink to core-sw1",
                    in_rate=2_500_000,
                    out_rate=1_200_000,
                    in_octets=_C32 * 7 - 50_000_000,
                    out_octets=9_876_543_210,
                ),
                Port(
                    2,
                    "GigabitEthernet0/2",
                    "printer 2nd floor",
                    in_rate=40_000,
                    out_rate=15_000,
                    in_octets=123_456_789,
                    out_octets=98_765_432,
                ),
                Port(
                    3,
                    "GigabitEthernet0/3",
                    "access point 3F-east",
                    in_rate=900_000,
                    out_rate=2_100_000,
                    in_octets=4_400_000_000,
                    out_octets=17_000_000_000,
                ),
                Port(4, "GigabitEthernet0/4", "spare", admin=DOWN, oper=DOWN, poe=POE_DISABLED),
            )
        }
        for port in self.ports.values():
            port.last_change = self.boot + 30.0
        self._advanced = now
        self.table = self._build()

    # --- what the scenario changes -------------------------------------------------

    def set_oper(self, index: int, up: bool) -> None:
        """Brings a port's link up or down (ifOperStatus, ifLastChange, traffic)."""
        self._advance()
        port = self.ports[index]
        new = UP if up else DOWN
        if port.oper != new:
            port.oper = new
            port.last_change = self.clock()

    def uptime_ticks(self) -> int:
        """sysUpTime now, in hundredths of a second."""
        return int((self.clock() - self.boot) * 100) % _C32

    # --- the data set ------------------------------------------------------------------

    def _advance(self) -> None:
        """Adds the traffic since the last call to the counters of the ports that are up."""
        now = self.clock()
        elapsed = max(now - self._advanced, 0.0)
        self._advanced = now
        for port in self.ports.values():
            if port.oper == UP:
                port.in_octets = (port.in_octets + int(port.in_rate * elapsed)) % _C64
                port.out_octets = (port.out_octets + int(port.out_rate * elapsed)) % _C64

    def _counter(self, index: int, attr: str, modulo: int) -> Cell:
        kind = SnmpType.COUNTER32 if modulo == _C32 else SnmpType.COUNTER64

        def read() -> tuple[SnmpType, int]:
            self._advance()
            return kind, getattr(self.ports[index], attr) % modulo

        return read

    def _field(self, index: int, attr: str, kind: SnmpType) -> Cell:
        return lambda: (kind, getattr(self.ports[index], attr))

    def _last_change(self, index: int) -> Cell:
        def read() -> tuple[SnmpType, int]:
            since_boot = self.ports[index].last_change - self.boot
            return SnmpType.TIMETICKS, max(int(since_boot * 100), 0) % _C32

        return read

    def _build(self) -> OidTable:
        cells = _system(
            self.clock,
            self.boot,
            "netalert demo switch, 4 x 1000BASE-T with PoE",
            self.name,
            "demo rack, closet 3F",
        )
        cells[IF_NUMBER] = const(SnmpType.INTEGER, len(self.ports))
        for i, port in self.ports.items():
            mac = bytes((0x02, 0x00, 0x5E, 0x10, 0x00, i))  # locally administered
            cells.update(
                {
                    (*IF_ENTRY, 1, i): const(SnmpType.INTEGER, i),
                    (*IF_ENTRY, 2, i): const(SnmpType.OCTET_STRING, port.descr.encode()),
                    (*IF_ENTRY, 3, i): const(SnmpType.INTEGER, ETHERNET),
                    (*IF_ENTRY, 4, i): const(SnmpType.INTEGER, 1500),
                    (*IF_ENTRY, 5, i): const(SnmpType.GAUGE32, 1_000_000_000),
                    (*IF_ENTRY, 6, i): const(SnmpType.OCTET_STRING, mac),
                    (*IF_ENTRY, 7, i): self._field(i, "admin", SnmpType.INTEGER),
                    (*IF_ENTRY, 8, i): self._field(i, "oper", SnmpType.INTEGER),
                    (*IF_ENTRY, 9, i): self._last_change(i),
                    (*IF_ENTRY, 10, i): self._counter(i, "in_octets", _C32),
                    (*IF_ENTRY, 16, i): self._counter(i, "out_octets", _C32),
                    (*IFX_ENTRY, 1, i): const(SnmpType.OCTET_STRING, f"Gi0/{i}".encode()),
                    (*IFX_ENTRY, 6, i): self._counter(i, "in_octets", _C64),
                    (*IFX_ENTRY, 10, i): self._counter(i, "out_octets", _C64),
                    (*IFX_ENTRY, 15, i): const(SnmpType.GAUGE32, 1000),
                    (*IFX_ENTRY, 18, i): const(SnmpType.OCTET_STRING, port.alias.encode()),
                    # NETALERT-DEMO-MIB demoPortTable, indexed by ifIndex
                    (*DEMO_PORT_ENTRY, 1, i): const(SnmpType.INTEGER, 2 if i == 1 else 1),
                    (*DEMO_PORT_ENTRY, 2, i): self._field(i, "poe", SnmpType.INTEGER),
                    (*DEMO_PORT_ENTRY, 3, i): const(SnmpType.GAUGE32, 6_500 if i == 3 else 0),
                    (*DEMO_PORT_ENTRY, 4, i): const(SnmpType.COUNTER64, 3 * i),
                }
            )
        return OidTable(cells)


class DemoEnvMonitor:
    """``demo-env1``: a NETALERT-DEMO-MIB device whose chassis temperature drifts.

    The temperature moves toward :attr:`target` at :attr:`slope` degrees per
    second and wobbles by a degree around it, like a real sensor.
    """

    def __init__(
        self,
        name: str = "demo-env1",
        *,
        clock: Clock = time.monotonic,
        temperature: float = 42.0,
        limit: int = 60,
    ) -> None:
        self.name = name
        self.clock = clock
        now = clock()
        self.boot = now - 41 * 86400 - 5 * 3600
        self.limit = limit
        self.target = temperature
        self.slope = 3.0
        self._temperature = temperature
        self._at = now
        self.table = self._build()

    def heat_to(self, target: float, slope: float = 3.0) -> None:
        """Lets the temperature climb (or fall) toward ``target`` at ``slope`` degrees/s."""
        self._drift()
        self.target = target
        self.slope = slope

    @property
    def temperature(self) -> int:
        """The chassis temperature a manager reads now (whole degrees Celsius)."""
        self._drift()
        wobble = math.sin(self.clock() / 5.0)  # about one degree, slowly
        return max(round(self._temperature + wobble), 0)

    def _drift(self) -> None:
        now = self.clock()
        step = self.slope * max(now - self._at, 0.0)
        self._at = now
        gap = self.target - self._temperature
        self._temperature = (
            self.target if abs(gap) <= step else self._temperature + math.copysign(step, gap)
        )

    def _sensor_index(self, kind: int, name: str) -> Oid:
        # INDEX { demoSensorKind, IMPLIED demoSensorName }: no length before the name.
        return (kind, *name.encode())

    def _build(self) -> OidTable:
        cells = _system(
            self.clock,
            self.boot,
            "netalert demo environment monitor (NETALERT-DEMO-MIB)",
            self.name,
            "demo rack, server room",
        )
        state = lambda: (  # noqa: E731 - one line reads better than a def here
            SnmpType.INTEGER,
            SENSOR_WARNING if self.temperature > self.limit else SENSOR_OK,
        )
        cells.update(
            {
                (*DEMO_CHASSIS, 1, 0): lambda: (SnmpType.GAUGE32, self.temperature),
                (*DEMO_CHASSIS, 2, 0): lambda: (SnmpType.GAUGE32, self.limit),
                (*DEMO_CHASSIS, 3, 0): const(SnmpType.OCTET_STRING, b"NA-DEMO-000042"),
                (*DEMO_CHASSIS, 4, 0): const(SnmpType.OCTET_STRING, bytes.fromhex("02005e2000aa")),
                # DateAndTime 2026-11-02 09:30:00.0 +01:00
                (*DEMO_CHASSIS, 5, 0): const(
                    SnmpType.OCTET_STRING, bytes((0x07, 0xEA, 11, 2, 9, 30, 0, 0, 43, 1, 0))
                ),
            }
        )
        inlet = self._sensor_index(SENSOR_TEMPERATURE, "inlet")
        exhaust = self._sensor_index(SENSOR_TEMPERATURE, "exhaust")
        fan = self._sensor_index(SENSOR_FAN, "fan1")
        cells.update(
            {
                (*DEMO_SENSOR_ENTRY, 3, *inlet): lambda: (SnmpType.INTEGER, self.temperature - 4),
                (*DEMO_SENSOR_ENTRY, 3, *exhaust): lambda: (SnmpType.INTEGER, self.temperature + 6),
                (*DEMO_SENSOR_ENTRY, 3, *fan): lambda: (
                    SnmpType.INTEGER,
                    2400 + 40 * max(self.temperature - 40, 0),
                ),
                (*DEMO_SENSOR_ENTRY, 4, *inlet): state,
                (*DEMO_SENSOR_ENTRY, 4, *exhaust): state,
                (*DEMO_SENSOR_ENTRY, 4, *fan): const(SnmpType.INTEGER, SENSOR_OK),
            }
        )
        return OidTable(cells)
