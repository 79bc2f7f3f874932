"""The v2c fast path (netalert.traps.v2c) reads what the general path reads, or leaves it.

1. For random v2c messages (every value type, random and MIB-known OIDs, short and
   long lengths, other PDUs, other communities, negative error-index, too many
   varbinds) the fast reader either leaves the message to the general path or
   gives exactly the varbinds, names and labels of ``decode_message`` and the namer;
   every well-formed v2c Trap of a configured community it takes itself. Read
   again from its cache (small enough to be emptied on the way), the same.
2. Mutated messages: whatever the fast reader takes, the general decoder accepts
   alike; nothing raises.
3. A whole receiver with and without the fast path makes the same events and the
   same counters from the same datagrams (v1, informs, storms, relays included).
4. The cache is bounded by ``[traps] varbind_cache_entries`` and what it drops is
   counted (``netalert_trap_varbind_cache_evictions_total``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netalert.config.models import TrapsConfig
from netalert.snmp.types import SnmpType, TrapEvent
from netalert.snmp.wire.ber import (
    DecodeError,
    Message,
    PduType,
    RawVarBind,
    V1Trap,
    decode_message,
    decode_varbind,
)
from netalert.snmp.wire.berenc import encode_message, encode_oid, encode_tlv, encode_value
from netalert.traps.names import TrapNamer
from netalert.traps.receiver import TrapReceiver
from netalert.traps.stats import TrapStats
from netalert.traps.v2c import V2cReader
from netalert.web.sources import traps_source
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.unit

TREE = builtin_tree()
NAMER = TrapNamer(TREE)
COMMUNITIES = frozenset({b"public", b"caf\xc3\xa9", b"\xff\xfe"})
LIMIT = 12
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
# OIDs the built-in MIBs name (enumerations, DISPLAY-HINTs, TimeTicks columns, scalars,
# an index of addresses), each with an instance suffix
KNOWN = [
    SYS_UPTIME,
    TRAP_OID,
    "1.3.6.1.2.1.1.1.0",  # sysDescr (DisplayString)
    "1.3.6.1.2.1.1.2.0",  # sysObjectID
    "1.3.6.1.2.1.2.2.1.1.3",  # ifIndex
    "1.3.6.1.2.1.2.2.1.2.3",  # ifDescr
    "1.3.6.1.2.1.2.2.1.6.3",  # ifPhysAddress (hint 1x:)
    "1.3.6.1.2.1.2.2.1.7.3",  # ifAdminStatus (enumeration)
    "1.3.6.1.2.1.2.2.1.8.300",  # ifOperStatus
    "1.3.6.1.2.1.2.2.1.9.3",  # ifLastChange (TimeTicks)
    "1.3.6.1.2.1.4.20.1.1.10.0.0.1",  # ipAdEntAddr
    "1.3.6.1.2.1.31.1.1.1.6.3",  # ifHCInOctets
    "1.3.6.1.6.3.18.1.3.0",  # snmpTrapAddress
    "1.3.6.1.2.1.25.1.2.0",  # hrSystemDate (DateAndTime)
    "1.3.6.1.4.1.99999.1.0",  # no MIB
]
TRAPS = ["1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.4.1.9.9.41.2.0.1", "1.3.6.1"]

INT32 = st.integers(-(2**31), 2**31 - 1)
RANDOM_OIDS = st.builds(
    lambda first, second, rest: ".".join(map(str, [first, second, *rest])),
    st.integers(0, 2),
    st.integers(0, 39),
    st.lists(st.integers(0, 2**32 - 1), max_size=12),
)
OIDS = st.one_of(st.sampled_from(KNOWN), RANDOM_OIDS)
FLOATS = st.floats(width=32, allow_nan=False).map(lambda x: b"\x9f\x78\x04" + struct.pack(">f", x))
VALUES: dict[SnmpType, st.SearchStrategy[Any]] = {
    SnmpType.INTEGER: st.integers(-(2**31), 2**31 - 1),
    SnmpType.OCTET_STRING: st.one_of(st.binary(max_size=200), st.text(max_size=40).map(str.encode)),
    SnmpType.OID: st.one_of(st.sampled_from(TRAPS + KNOWN), RANDOM_OIDS),
    SnmpType.IP_ADDRESS: st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    SnmpType.COUNTER32: st.integers(0, 2**32 - 1),
    SnmpType.GAUGE32: st.integers(0, 2**32 - 1),
    SnmpType.TIMETICKS: st.integers(0, 2**32 - 1),
    SnmpType.OPAQUE: st.one_of(FLOATS, st.binary(max_size=12)),
    SnmpType.COUNTER64: st.integers(0, 2**64 - 1),
    SnmpType.NULL: st.none(),
    SnmpType.NO_SUCH_OBJECT: st.none(),
    SnmpType.NO_SUCH_INSTANCE: st.none(),
    SnmpType.END_OF_MIB_VIEW: st.none(),
}
VARBINDS = st.sampled_from(list(VALUES)).flatmap(
    lambda kind: st.tuples(OIDS, st.just(kind), VALUES[kind])
)
HEAD = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(TRAPS)).map(
    lambda t: [(SYS_UPTIME, SnmpType.TIMETICKS, t[0]), (TRAP_OID, SnmpType.OID, t[1])]
)
MESSAGES = st.builds(
    lambda head, rest, community, pdu, ids: encode_message(
        version=1,
        community=community,
        pdu_type=pdu,
        varbinds=head + rest,
        request_id=ids[0],
        error_status=ids[1],
        error_index=ids[2],
    ),
    HEAD,
    st.lists(VARBINDS, max_size=LIMIT),
    st.sampled_from([*COMMUNITIES, b"private", b""]),
    st.sampled_from([PduType.TRAP_V2] * 6 + [PduType.INFORM, PduType.GET, PduType.RESPONSE]),
    st.tuples(*[st.integers(-(2**31), 2**31 - 1)] * 2, st.one_of(st.integers(-5, 5), INT32)),
)


def reader(entries: int = 4096, stats: TrapStats | None = None) -> V2cReader:
    return V2cReader(
        NAMER, COMMUNITIES, max_varbinds=LIMIT, entries=entries, stats=stats or TrapStats()
    )


def general(data: bytes) -> Message | DecodeError:
    return decode_message(data, max_varbinds=LIMIT, communities=COMMUNITIES)


def same(fast: Any, data: bytes) -> bool:
    """Checks a fast read against the general path; returns whether the fast path took it."""
    msg = general(data)
    if fast is None:
        return False
    assert isinstance(msg, Message), (msg, data.hex())
    assert (msg.version, msg.pdu_type) == (1, PduType.TRAP_V2)
    community, raw, named = fast
    assert community == msg.community.decode("utf-8", "replace")
    assert raw == list(msg.varbinds)
    # repr: an Opaque NaN is not equal to itself
    assert repr(named) == repr(NAMER.varbinds(msg.varbinds))
    return True


def common(data: bytes) -> bool:
    """True for a message the fast path must take: a v2c Trap the general path accepts
    whose varbinds are shorter than 256 bytes each and whose request-id and error-status
    take 4 bytes at most (berenc writes -2**31 in 5)."""
    msg = general(data)
    if not isinstance(msg, Message) or msg.pdu_type != PduType.TRAP_V2:
        return False
    if -(2**31) in (msg.request_id, msg.error_status):
        return False
    return all(
        len(encode_oid(oid)) + len(encode_value(kind, value)) < 250
        for oid, kind, value in msg.varbinds
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(MESSAGES, min_size=1, max_size=6), entries=st.integers(1, 12))
def test_the_fast_path_reads_what_the_general_path_decodes(
    messages: list[bytes], entries: int
) -> None:
    fast = reader(entries)
    for data in messages * 2:  # the second time round, varbinds come from the cache
        took = same(fast.read(data), data)
        assert took == common(data), data.hex()
    assert len(fast) <= 3 * entries


def _mutations(data: bytes, edits: Iterable[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, at, byte in edits:
        at %= len(buf) + 1
        if kind == 0 and at < len(buf):
            buf[at] = byte
        elif kind == 1:
            buf.insert(at, byte)
        elif at < len(buf):
            del buf[at]
    return bytes(buf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=MESSAGES,
    edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400), st.integers(0, 255)),
                   min_size=1, max_size=4),
)  # fmt: skip
def test_mutated_messages_are_taken_only_as_the_general_path_takes_them(
    data: bytes, edits: list[tuple[int, int, int]]
) -> None:
    fast = reader(4)
    fast.read(data)  # the original's varbinds in the cache first
    mutated = _mutations(data, edits)
    same(fast.read(mutated), mutated)


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=120), prefix=st.sampled_from([b"", b"\x30\x81", b"\x30\x2a"]))
def test_garbage_never_raises_out_of_the_fast_path(garbage: bytes, prefix: bytes) -> None:
    same(reader(2).read(prefix + garbage), prefix + garbage)


@pytest.mark.parametrize(
    ("tlv", "reason"),
    [
        (b"", "truncated"),
        (b"\x30\x03\x06\x01\x2b", "truncated"),
        (b"\x30\x05\x06\x01\x2b\x02\x00", "empty_integer"),
        (b"\x30\x07\x06\x01\x2b\x02\x01\x01", "bad_length"),
        (b"\x30\x05\x06\x01\x2b\x05\x00\x30\x05\x06\x01\x2b\x05\x00", "too_many_varbinds"),
    ],
)
def test_decode_varbind_says_why_it_refuses(tlv: bytes, reason: str) -> None:
    got = decode_varbind(tlv)
    assert isinstance(got, DecodeError) and got.reason == reason


def test_decode_varbind_reads_one_as_the_message_decoder_does() -> None:
    vb: RawVarBind = ("1.3.6.1.2.1.2.2.1.7.3", SnmpType.INTEGER, 2)
    tlv = encode_tlv(0x30, encode_tlv(0x06, encode_oid(vb[0])) + encode_value(vb[1], vb[2]))
    assert decode_varbind(tlv) == vb
    # Counter64 is SNMPv2 only: in a v1 message it is not a value
    big = encode_tlv(0x30, encode_tlv(0x06, encode_oid("1.3.6.1")) + encode_tlv(0x46, b"\x01"))
    assert decode_varbind(big) == ("1.3.6.1", SnmpType.COUNTER64, 1)
    assert isinstance(decode_varbind(big, v2=False), DecodeError)


# --- a whole receiver, with and without the fast path ------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def receivers(**config: Any) -> tuple[TrapReceiver, TrapReceiver, list[TrapEvent], list[TrapEvent]]:
    cfg = TrapsConfig.model_validate(
        {
            "listen": ["127.0.0.1:1162"],
            "communities": ["public", "café"],
            "max_varbinds": 16,
            "relays": ["127.0.0.2/32"],
            "allow": ["127.0.0.0/8", "::/0"],
            "storm_interval": "1s",
            **config,
        }
    )
    out: tuple[list[TrapEvent], list[TrapEvent]] = ([], [])
    fast = TrapReceiver(cfg, sink=out[0].append, tree=TREE, clock=Clock())
    slow = TrapReceiver(cfg, sink=out[1].append, tree=TREE, clock=Clock())
    slow._v2c.read = lambda data: None  # type: ignore[method-assign]
    return fast, slow, *out


def v1_trap() -> bytes:
    return encode_message(
        version=0,
        community=b"public",
        pdu_type=PduType.TRAP_V1,
        varbinds=[("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3)],
        v1_trap=V1Trap("1.3.6.1.4.1.9", "192.0.2.1", 2, 0, 1234),
    )


SOURCES = st.sampled_from(["127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1", "192.0.2.9"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    traps=st.lists(st.tuples(st.one_of(MESSAGES, st.just(v1_trap())), SOURCES), max_size=25),
    storm=st.booleans(),
)
def test_a_receiver_makes_the_same_events_and_counts_with_the_fast_path(
    traps: list[tuple[bytes, str]], storm: bool
) -> None:
    config = {"storm_rate": 5.0, "storm_burst": 3, "storm_trap_rate": 2.0, "storm_trap_burst": 2}
    fast, slow, fast_events, slow_events = receivers(**(config if storm else {}))
    for data, source in traps:
        for receiver in (fast, slow):
            receiver.handle(data, (source, 50162))
    for receiver in (fast, slow):
        receiver.tick(fast._clock() + 5.0)  # the storms' events, due or not
        receiver._emit_storms(receiver._clock(), all_=True)
    assert repr(fast_events) == repr(slow_events)
    assert fast.stats.as_dict() == slow.stats.as_dict()


def test_the_fast_path_takes_the_common_trap_and_leaves_the_rest() -> None:
    fast, _slow, events, _ = receivers()
    calls: list[bytes] = []
    read = fast._v2c.read
    fast._v2c.read = lambda data: calls.append(data) or read(data)  # type: ignore[method-assign]
    link_down = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        varbinds=[
            (SYS_UPTIME, SnmpType.TIMETICKS, 1234),
            (TRAP_OID, SnmpType.OID, TRAPS[0]),
            ("1.3.6.1.2.1.2.2.1.7.3", SnmpType.INTEGER, 2),
        ],
    )
    assert read(link_down) is not None
    for data in (link_down, v1_trap()):
        fast.handle(data, ("127.0.0.1", 50162))
    assert [e.trap_name for e in events] == ["IF-MIB::linkDown", "IF-MIB::linkDown"]
    assert [v.label for v in events[0].varbinds] == ["00:00:12.34", "IF-MIB::linkDown", "down"]
    assert read(v1_trap()) is None  # SNMPv1: the general path
    assert calls == [link_down, v1_trap()]


def test_the_cache_is_bounded_and_what_it_drops_is_counted() -> None:
    stats = TrapStats()
    fast = reader(entries=3, stats=stats)
    for n in range(10):
        data = encode_message(
            version=1,
            community=b"public",
            pdu_type=PduType.TRAP_V2,
            varbinds=[
                (SYS_UPTIME, SnmpType.TIMETICKS, n),
                (TRAP_OID, SnmpType.OID, TRAPS[0]),
                ("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, n),
            ],
        )
        assert same(fast.read(data), data)
        assert len(fast) <= 9
    # 2 steady varbinds, then one new each trap: emptied at 3, every other trap from then
    assert stats.varbind_cache_evictions > 0
    samples = {s.name: s.value for s in traps_source(stats)()}
    assert samples["netalert_trap_varbind_cache_evictions_total"] == stats.varbind_cache_evictions
    config = TrapsConfig.model_validate({"varbind_cache_entries": 5})
    assert config.varbind_cache_entries == 5


def test_the_oid_naming_cache_is_bounded_by_config_and_what_it_drops_is_counted() -> None:
    # each distinct OID's naming (node, MODULE::object, index) is kept until
    # [traps] name_cache_entries are; then the table is emptied and its entries counted
    config = TrapsConfig.model_validate({"name_cache_entries": 4})
    receiver = TrapReceiver(config, sink=lambda event: None, tree=TREE)
    looked_up: list[str] = []
    lookup = TREE.lookup

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(TREE, name)

        def lookup(self, oid: Any) -> Any:
            looked_up.append(str(oid))
            return lookup(oid)

    receiver._namer.tree = Counting()  # type: ignore[assignment]
    for n in range(1, 7):
        data = encode_message(
            version=1,
            community=b"public",
            pdu_type=PduType.TRAP_V2,
            varbinds=[
                (TRAP_OID, SnmpType.OID, TRAPS[0]),
                (f"1.3.6.1.2.1.2.2.1.1.{n}", SnmpType.COUNTER32, n),  # never kept by v2c
            ],
        )
        receiver.handle(data, ("127.0.0.1", 50162))
        receiver.handle(data, ("127.0.0.1", 50162))  # named from the cache
    # snmpTrapOID.0, the trap OID, 6 ifIndex: named once each while kept
    assert looked_up.count("1.3.6.1.2.1.2.2.1.1.1") == 1
    assert receiver.stats.name_cache_evictions == 8  # emptied twice, at 4 entries each
    assert len(receiver._namer) <= 4
    samples = {s.name: s.value for s in traps_source(receiver.stats)()}
    assert samples["netalert_trap_name_cache_evictions_total"] == 8
    assert TrapsConfig().name_cache_entries == 50_000
