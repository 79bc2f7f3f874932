"""Human renderings of TimeTicks and OBJECT IDENTIFIER values in traps and polls."""

from __future__ import annotations

import pytest

from netalert.mib import MibTree
from netalert.present import timeticks_text
from netalert.snmp.trapnames import TrapNamer
from netalert.snmp.types import SnmpType


@pytest.mark.parametrize(
    ("ticks", "text"),
    [
        (0, "00:00:00.00"),
        (2, "00:00:00.02"),
        (360_000, "01:00:00.00"),
        (8_640_000, "1d 00:00:00.00"),
        (104_863_397, "12d 03:17:13.97"),
        (4_294_967_295, "497d 02:27:52.95"),
    ],
)
def test_timeticks(ticks: int, text: str) -> None:
    assert timeticks_text(ticks) == text


def test_trap_varbind_labels() -> None:
    namer = TrapNamer(MibTree.builtin())
    vbs = namer.varbinds(
        [
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 104_863_397),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.2.1.2.2.1.8.7"),
            ("1.3.6.1.2.1.2.2.1.8.2", SnmpType.INTEGER, 2),
        ]
    )
    assert [vb.label for vb in vbs] == [
        "12d 03:17:13.97",
        "IF-MIB::linkDown",
        "IF-MIB::ifOperStatus.7",
        "down",
    ]
