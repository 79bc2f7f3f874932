"""Human renderings of TimeTicks and OBJECT IDENTIFIER values in traps and polls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.present import timeticks_text
from netalert.snmp.naming import opaque_value
from netalert.snmp.types import SnmpType, Value
from netalert.traps.names import TrapNamer
from tests.support.trees import builtin_tree


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
    namer = TrapNamer(builtin_tree())
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


NAMER = TrapNamer(builtin_tree())
# objects of every labelling kind: TimeTicks, an enumeration, an integer hint ("d"), a
# DisplayString, an octet hint (MAC), an OID-valued object, and no MIB at all
_LABELLED = [
    "1.3.6.1.2.1.1.3.0",
    "1.3.6.1.2.1.2.2.1.7.3",
    "1.3.6.1.2.1.2.2.1.1.3",
    "1.3.6.1.2.1.2.2.1.2.3",
    "1.3.6.1.2.1.2.2.1.6.3",
    "1.3.6.1.6.3.1.1.4.1.0",
    "1.3.6.1.4.1.99999.1.2",
]
_VALUES: st.SearchStrategy[Value] = st.one_of(
    st.integers(-(2**31), 2**32),
    st.binary(max_size=8),
    st.sampled_from(["1.3.6.1.6.3.1.1.5.3", "192.0.2.1", ""]),
    st.none(),
)


@given(st.sampled_from(_LABELLED), st.sampled_from(list(SnmpType)), _VALUES)
@settings(max_examples=400, deadline=None)
def test_the_namers_shortcuts_label_as_its_general_path(
    oid: str, kind: SnmpType, value: Value
) -> None:
    (vb,) = NAMER.varbinds([(oid, kind, value)])
    node, _, _ = NAMER._named(oid)
    shown, number = opaque_value(kind, value)
    assert (vb.value, vb.label) == (shown, number or NAMER._label(node, kind, shown))
