"""The poll path's prepared plans give the values the generic code gives.

Samples are typed through a plan per OID instance (:meth:`Namer.sample`), rows and
counter points are made through their slots (``make_row``, ``make_point``), and
rate verdicts without figures are shared values. Each is checked here against the
plain construction: the MIB's syntax through :func:`syntax_type`, ``Row(...)``,
``Point(...)``, ``RateResult(...)``, over tables and generated values, and the
second sample of an OID (from the plan) against the first (that made it).
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.poll.counters import Point, RateResult, Verdict, make_point, rate
from netalert.poll.rows import Row, make_row
from netalert.snmp.naming import Namer, syntax_type
from netalert.snmp.types import Sample, SnmpType, Value, VarBind
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.unit

TREE = builtin_tree()

# instances of objects of each kind of syntax, and OIDs no MIB names
OIDS = [
    "1.3.6.1.2.1.1.3.0",  # sysUpTime: TimeTicks
    "1.3.6.1.2.1.1.5.0",  # sysName: DisplayString
    "1.3.6.1.2.1.1.2.0",  # sysObjectID: OBJECT IDENTIFIER
    "1.3.6.1.2.1.2.2.1.2.7",  # ifDescr
    "1.3.6.1.2.1.2.2.1.8.7",  # ifOperStatus: an enum
    "1.3.6.1.2.1.2.2.1.5.7",  # ifSpeed: Gauge32
    "1.3.6.1.2.1.2.2.1.10.7",  # ifInOctets: Counter32
    "1.3.6.1.2.1.31.1.1.1.6.7",  # ifHCInOctets: Counter64
    "1.3.6.1.2.1.4.20.1.1.10.0.0.1",  # ipAdEntAddr: IpAddress, an IpAddress index
    "1.3.6.1.4.1.2021.10.1.6.1",  # laLoadFloat: Opaque
    "1.3.6.1.4.1.99999.1.2.3",  # no MIB names it
    "1.3.6.1.2.1.1",  # an object's own OID, no instance
]
WIRES = list(SnmpType)


class IntLike(int):
    """An int subclass (what another backend might hand over)."""


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(0, 3).map(IntLike),
    st.binary(max_size=12),
    st.sampled_from(["10.0.0.1", "1.3.6.1.4.1.8072.3.2.10", "text", "256.1.1.1"]),
    st.floats(allow_nan=False),
)


def plain_type(vb: VarBind) -> SnmpType:
    """The sample's type as the generic code types it, without any plan."""
    node, _ = TREE.lookup(vb.oid)
    return syntax_type(node, vb.type, vb.value)


@settings(max_examples=200, deadline=None)
@given(oid=st.sampled_from(OIDS), wire=st.sampled_from(WIRES), value=values)
def test_sample_type_from_the_plan_is_the_syntax_type(
    oid: str, wire: SnmpType, value: Value
) -> None:
    vb = VarBind(oid, wire, value)
    namer = Namer(TREE)
    first, node = namer.sample("d", vb, 1.0)
    again, node_again = namer.sample("d", vb, 1.0)  # from the plan the first one made
    assert first == again and node is node_again
    kind = plain_type(vb)
    if kind is not SnmpType.OPAQUE:
        assert first.type is kind
        assert first.value == value or (first.value is value)
    looked, index = TREE.lookup(oid)
    assert node is looked
    assert (first.name, first.index) == ((looked.full_name, index) if looked else ("", ""))


@pytest.mark.parametrize(
    ("oid", "wire", "value", "kind", "label"),
    [
        ("1.3.6.1.2.1.1.3.0", SnmpType.INTEGER, 360000, SnmpType.TIMETICKS, "01:00:00.00"),
        ("1.3.6.1.2.1.2.2.1.8.7", SnmpType.INTEGER, 2, SnmpType.INTEGER, "down"),
        ("1.3.6.1.2.1.2.2.1.8.7", SnmpType.OCTET_STRING, b"up", SnmpType.OCTET_STRING, "up"),
        ("1.3.6.1.2.1.31.1.1.1.6.7", SnmpType.INTEGER, 2**64 - 1, SnmpType.COUNTER64, ""),
        ("1.3.6.1.2.1.2.2.1.10.7", SnmpType.INTEGER, True, SnmpType.COUNTER32, ""),
        ("1.3.6.1.2.1.2.2.1.10.7", SnmpType.NO_SUCH_INSTANCE, None, SnmpType.NO_SUCH_INSTANCE, ""),
        ("1.3.6.1.2.1.2.2.1.5.7", SnmpType.INTEGER, IntLike(5), SnmpType.GAUGE32, ""),
        ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", SnmpType.OID, "10.0.0.1", SnmpType.IP_ADDRESS, ""),
        ("1.3.6.1.2.1.1.2.0", SnmpType.OID, "1.3.6.1.4.1.8072.3.2.10", SnmpType.OID, None),
        ("1.3.6.1.4.1.99999.1.2.3", SnmpType.INTEGER, 7, SnmpType.INTEGER, ""),
    ],
)
def test_sample_table(
    oid: str, wire: SnmpType, value: Value, kind: SnmpType, label: str | None
) -> None:
    namer = Namer(TREE)
    for _ in range(2):  # the second from the plan
        sample, _ = namer.sample("sw1", VarBind(oid, wire, value), 5.0)
        assert (sample.device, sample.oid, sample.type, sample.timestamp) == ("sw1", oid, kind, 5.0)
        assert sample.value == value
        if label is not None:
            assert sample.label == label
        else:
            assert sample.label  # an OID value is named through the MIB
    assert isinstance(sample, Sample)


samples = st.builds(
    Sample,
    device=st.just("sw1"),
    oid=st.just("1.3.6.1.2.1.2.2.1.2.1"),
    name=st.just("IF-MIB::ifDescr"),
    index=st.just("1"),
    type=st.sampled_from(WIRES),
    value=values,
    label=st.sampled_from(["", "up", "eth0"]),
    timestamp=st.floats(0, 1e9),
)


@settings(max_examples=200, deadline=None)
@given(
    columns=st.dictionaries(st.sampled_from(["ifDescr", "ifOperStatus", "ifSpeed"]), samples),
    scalars=st.dictionaries(st.sampled_from(["sysName", "sysUpTime"]), samples),
    rates=st.dictionaries(st.sampled_from(["ifInOctets"]), st.floats(0, 1e9)),
    table=st.sampled_from(["", "IF-MIB::ifEntry"]),
)
def test_make_row_is_row(
    columns: dict[str, Sample], scalars: dict[str, Sample], rates: dict[str, float], table: str
) -> None:
    cols, scal = MappingProxyType(columns), MappingProxyType(scalars)
    deltas = {k: int(v) for k, v in rates.items()}
    plain = Row("3", cols, scal, {"ifIndex": 3}, rates, deltas, table=table)
    fast = make_row("3", cols, scal, {"ifIndex": 3}, rates, deltas, table)
    assert fast == plain
    assert (fast.values, fast.labels) == (plain.values, plain.labels)
    assert fast.get("sysName") is plain.get("sysName")


def test_points_and_verdicts_are_the_plain_values() -> None:
    assert make_point(5, 1.5, 100, 2, None) == Point(5, 1.5, 100, 2, None)
    first = make_point(10, 100.0, 10_000, None, None)
    later = make_point(1010, 110.0, 11_000, None, None)
    assert rate(first, later, SnmpType.COUNTER32) == RateResult(Verdict.OK, 1000, 100.0)
    assert rate(None, later, SnmpType.COUNTER32) == RateResult(Verdict.FIRST)
    assert rate(first, later, SnmpType.GAUGE32) == RateResult(Verdict.NOT_COUNTER)
    restarted = make_point(5, 110.0, 50, None, None)
    assert rate(first, restarted, SnmpType.COUNTER64) == RateResult(Verdict.RESTARTED)
    same_time = make_point(20, 100.0, 10_000, None, None)
    assert rate(first, same_time, SnmpType.COUNTER32) == RateResult(Verdict.NO_INTERVAL)
    assert rate(first, later, SnmpType.COUNTER32, max_rate=10.0) == RateResult(Verdict.IMPLAUSIBLE)
    moved = make_point(1010, 110.0, 11_000, None, 7)
    assert rate(make_point(10, 100.0, 10_000, None, 6), moved, SnmpType.COUNTER32) == (
        RateResult(Verdict.DISCONTINUITY)
    )


@pytest.mark.parametrize("value", [3.4025e38, -1e300, 3.4028235e38])
def test_an_opaque_double_beyond_float32_is_labelled_not_raised(value: float) -> None:
    """A backend hands an Opaque's number as a float: one beyond float32's range used
    to raise OverflowError while labelling, which failed the whole poll."""
    namer = Namer(TREE)
    sample, _ = namer.sample("d", VarBind("1.3.6.1.4.1.2021.10.1.6.1", SnmpType.OPAQUE, value), 1.0)
    assert (sample.type, sample.value) == (SnmpType.OPAQUE, value)
    assert float(sample.label) == value
