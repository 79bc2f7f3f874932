"""The cluster's pure parts: shard hash, fair shares, the trap codec, migrations, metrics."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from hypothesis import given

from netalert.cluster.codec import MAX_MESSAGE_BYTES, decode, encode, message_id
from netalert.cluster.errors import CodecError, StaleLeaseError
from netalert.cluster.leases import ClusterStats
from netalert.cluster.metrics import cluster_source
from netalert.cluster.schema import migrations
from netalert.cluster.shards import fair_share, shard_of
from netalert.cluster.status import ClusterStatus, NodeStatus, format_status
from netalert.metrics import Metrics
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from tests.support.strategies import TRAP_EVENTS
from tests.support.trees import builtin_tree


def test_shard_of_is_stable_across_processes_and_versions() -> None:
    # Pinned: a change here moves devices between nodes of a running cluster.
    assert [shard_of(name, 64) for name in ("core-sw1", "edge-1", "10.0.0.1")] == [
        shard_of(b"core-sw1", 64),
        shard_of(b"edge-1", 64),
        shard_of(b"10.0.0.1", 64),
    ]
    import hashlib

    digest = hashlib.blake2b(b"core-sw1", digest_size=8, person=b"netalert-shard").digest()
    assert shard_of("core-sw1", 64) == int.from_bytes(digest, "big") % 64
    assert shard_of("core-sw1", 1) == 0
    with pytest.raises(ValueError, match="shards must be at least 1, got 0"):
        shard_of("x", 0)


def test_shard_of_spreads_300_devices_over_64_shards() -> None:
    counts = Counter(shard_of(f"dev-{n:03d}", 64) for n in range(300))
    assert len(counts) >= 60  # nearly every shard has some
    assert max(counts.values()) <= 14  # none takes a crowd (mean 4.7)


@pytest.mark.parametrize(
    ("nodes", "shards", "expected"),
    [
        (["a"], 64, {"a": 64}),
        (["a", "b"], 64, {"a": 32, "b": 32}),
        (["c", "a", "b"], 64, {"a": 22, "b": 21, "c": 21}),
        (["a", "b", "c", "d", "e"], 3, {"a": 1, "b": 1, "c": 1, "d": 0, "e": 0}),
        (["a", "a", "b"], 5, {"a": 3, "b": 2}),  # a name listed twice counts once
    ],
)
def test_fair_share(nodes: list[str], shards: int, expected: dict[str, int]) -> None:
    assert {n: fair_share(nodes, shards, n) for n in expected} == expected
    assert sum(expected.values()) == shards
    assert fair_share(nodes, shards, "absent") == 0


def test_message_id_is_the_same_for_the_same_trap_only() -> None:
    pdu = b"\x30\x10pdu-bytes"
    base = message_id("192.0.2.1", b"", pdu)
    assert base == message_id("192.0.2.1", b"", pdu)
    assert len(base) == 40 and int(base, 16) >= 0
    others = {
        message_id("192.0.2.2", b"", pdu),
        message_id("192.0.2.1", b"\x80\x00\x1f\x88", pdu),
        message_id("192.0.2.1", b"", pdu + b"x"),
        message_id("192.0.2.1", pdu[:1], pdu[1:]),  # field boundaries count
    }
    assert base not in others and len(others) == 4


@given(TRAP_EVENTS)
def test_codec_round_trip(trap: TrapEvent) -> None:
    assert decode(encode(trap)) == trap


def test_codec_keeps_nan_and_infinity() -> None:
    vb = VarBind("1.3.6.1.4.1.1", SnmpType.OPAQUE, float("inf"))
    nan = VarBind("1.3.6.1.4.1.2", SnmpType.OPAQUE, float("nan"))
    trap = TrapEvent("h", 1, "2c", "1.3", "", (vb, nan), None, 1.0)
    back = decode(encode(trap))
    assert back.varbinds[0].value == float("inf")
    assert isinstance(back.varbinds[1].value, float) and math.isnan(back.varbinds[1].value)
    json.loads(encode(trap))  # strict JSON: no NaN token


def _record(**change: object) -> bytes:
    trap = TrapEvent(
        "192.0.2.1", 162, "2c", "1.3.6.1.6.3.1.1.5.3", "", (
            VarBind("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 5),
        ), 5, 1.5,
    )  # fmt: skip
    record = json.loads(encode(trap))
    for index, value in change.items():
        position = int(index.lstrip("f"))
        record[position] = value
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "trap message is not JSON"),
        (b"[2]", "trap message is not of format 1"),
        (b"{}", "trap message is not of format 1"),
        (b"[1, 2]", "trap message: wrong number of fields"),
        (_record(f1=5), "trap message: source has the wrong type"),
        (_record(f2=True), "trap message: source_port has the wrong type"),
        (_record(f7="5"), "trap message: uptime has the wrong type"),
        (_record(f12=1), "trap message: inform has the wrong type"),
        (_record(f6=[[1]]), "trap message: a varbind is not a list of 7"),
        (_record(f6=[["1.3", "Bogus", "i", 1, "", "", ""]]), "unknown SNMP type 'Bogus'"),
        (_record(f6=[["1.3", "INTEGER", "q", 1, "", "", ""]]), "unknown value kind 'q'"),
        (_record(f6=[["1.3", "INTEGER", "i", "1", "", "", ""]]), "an integer value has the"),
        (_record(f6=[["1.3", "OCTET STRING", "b", "!!", "", "", ""]]), "not base64"),
        (b"[" * 100_000, "trap message is not JSON"),
        (b" " * (MAX_MESSAGE_BYTES + 1), f"over {MAX_MESSAGE_BYTES}"),
    ],
)
def test_codec_refuses_what_is_not_a_trap(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(data)


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (b"\xff", "not_json", "not JSON"),
        (b'[1, "192.0.2.1"', "not_json", "not JSON"),  # truncated
        (_record(f8=None).replace(b"null", b"NaN"), "not_json", "not JSON"),
        (_record(f8=None).replace(b"null", b"Infinity"), "not_json", "not JSON"),
        (b"[2]", "wrong_version", "not of format 1"),
        (b'"1"', "wrong_version", "not of format 1"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "too_large", f"over {MAX_MESSAGE_BYTES}"),
        (_record(f2=70_000), "malformed", "source_port is out of range"),
        (_record(f2=-1), "malformed", "source_port is out of range"),
        (_record(f7=-5), "malformed", "uptime is out of range"),
        (_record(f7=2**32), "malformed", "uptime is out of range"),
        (_record(f8=-1.0), "malformed", "received is out of range"),
        (_record(f13=-1), "malformed", "storm_count is out of range"),
        (_record(f13=2**63), "malformed", "storm_count is out of range"),
        (_record(f3="9"), "malformed", "version is not 1, 2c or 3"),
        (_record(f10="\ud800"), "malformed", "community is not UTF-8 text"),
        (_record(f1="a\udfffb"), "malformed", "source is not UTF-8 text"),
        (_record(f6=[["1.3", "INTEGER", "i", 2**64, "", "", ""]]), "malformed", "out of range"),
        (_record(f6=[["1.3", "INTEGER", "i", -(2**63) - 1, "", "", ""]]), "malformed", "range"),
        (_record(f6=[["1.3", "OCTET STRING", "s", "\ud83d", "", "", ""]]), "malformed", "UTF-8"),
        (_record(f6=[["1.3", "NULL", "n", None, "", "", ""]] * 1025), "malformed", "than 1024"),
    ],
)
def test_codec_refuses_what_no_receiver_writes(data: bytes, reason: str, message: str) -> None:
    with pytest.raises(CodecError, match=message) as caught:
        decode(data)
    assert caught.value.reason == reason


def test_codec_takes_the_extremes_a_receiver_writes() -> None:
    values = (-(2**63), 2**64 - 1, -(2**31), 0)
    vbs = tuple(VarBind(f"1.3.{n}", SnmpType.COUNTER64, v) for n, v in enumerate(values))
    vbs += (VarBind("1.3.9", SnmpType.OCTET_STRING, "\U0001f600 \x00 \u2028"),)
    trap = TrapEvent("h", 65535, "3", "1.3", "", vbs * 204, 2**32 - 1, 0.0, storm_count=0)
    assert len(trap.varbinds) == 1020
    assert decode(encode(trap)) == trap


def test_migrations_are_numbered_and_shipped() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "leases" and "CREATE TABLE shard_leases" in found[0].sql


def test_stale_lease_error_says_who_holds_it() -> None:
    assert str(StaleLeaseError(3, "nms-a", 7, None, 7)) == (
        "shard 3: write refused: epoch 7 of nms-a is not the current lease "
        "(epoch 7, held by nobody)"
    )


def test_metrics_source_exports_the_four_families() -> None:
    stats = ClusterStats(nodes=3, shards_owned=21, lease_lost=2, stream_lag=5)
    metrics = Metrics()
    body, _ = metrics.render()
    # without [cluster] the families have no value
    assert not [line for line in body.splitlines() if line.startswith(b"netalert_cluster")]
    metrics.register_source("cluster", cluster_source(stats))
    lines = metrics.render()[0].decode().splitlines()
    for line in (
        "netalert_cluster_nodes 3.0",
        "netalert_shards_owned 21.0",
        "netalert_lease_lost_total 2.0",
        "netalert_stream_lag 5.0",
    ):
        assert line in lines


def test_format_status() -> None:
    status = ClusterStatus(
        schema=1,
        shards=64,
        free=1,
        nodes=(
            NodeStatus("nms-a", True, 0.4, 32, 1.25, 0),
            NodeStatus("nms-b\x1b[31m", False, 42.0, 31, None, None),
        ),
        lag=7,
        outbox=3,
    )
    assert format_status(status).splitlines() == [
        "cluster: 1 of 2 nodes live, 64 shards (1 free), stream lag 7, outbox 3, schema 1",
        "NODE             STATE  HEARTBEAT  SHARDS  LEASE AGE  LAG",
        "nms-a            live   0.4s       32      1.2s       0",
        "nms-b\\u001b[31m  gone   42.0s      31      -          -",  # escaped
    ]
    empty = ClusterStatus(schema=0, shards=0, free=0, nodes=(), lag=None)
    assert format_status(empty) == "no cluster yet: no node has started against this database"


async def test_nats_errors_are_logged_once_until_they_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from netalert.cluster.transport import TrapTransport

    transport = TrapTransport(["nats://127.0.0.1:1"], shards=4)
    caplog.set_level("INFO", logger="netalert.cluster.transport")
    refused = ConnectionRefusedError(111, "Connect call failed")
    for _ in range(5):  # nats-py retries twice a second while the server is away
        await transport._error(refused)
    await transport._error(TimeoutError())
    await transport._reconnected()
    await transport._error(refused)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        'event=nats_error error="[Errno 111] Connect call failed"',
        "event=nats_error error=TimeoutError",
        "event=nats_reconnected",
        'event=nats_error error="[Errno 111] Connect call failed"',
    ]


# --- the node's pure parts: trap message IDs, the shard ranges it logs -------------------


def _v2c(request_id: int) -> bytes:
    from netalert.snmp.wire.ber import PduType
    from netalert.snmp.wire.berenc import encode_message

    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=request_id,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 5),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
            ("1.3.6.1.2.1.2.2.1.1.7", SnmpType.INTEGER, 7),
        ],
    )


@pytest.mark.parametrize("ids", [True, False])
def test_the_receiver_names_a_trap_by_its_datagram(ids: bool) -> None:
    from netalert.config.models import TrapsConfig
    from netalert.traps.receiver import TrapReceiver

    events: list[TrapEvent] = []
    config = TrapsConfig.model_validate({"listen": ["127.0.0.1:1162"], "allow": ["192.0.2.0/24"]})
    receiver = TrapReceiver(config, sink=events.append, tree=builtin_tree(), message_ids=ids)
    first, second = _v2c(41), _v2c(42)
    for data, source in ((first, "192.0.2.7"), (first, "192.0.2.7"), (second, "192.0.2.7")):
        receiver.handle(data, (source, 50162))
    receiver.handle(first, ("192.0.2.8", 50162))  # the same bytes from another device
    ids_seen = [e.message_id for e in events]
    if not ids:
        assert ids_seen == [""] * 4  # without [cluster] nothing is computed
        return
    assert ids_seen[0] == ids_seen[1] == message_id("192.0.2.7", b"", first)
    assert len(set(ids_seen)) == 3  # another request ID, another source: another trap
    assert events[0] == events[0].__class__(**{**_fields(events[0]), "message_id": ""})


def _fields(event: TrapEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def test_trap_message_id_falls_back_to_the_whole_event() -> None:
    from dataclasses import replace

    from netalert.cluster.node import trap_message_id

    trap = TrapEvent(
        source="192.0.2.7",
        source_port=162,
        version="2c",
        trap_oid="1.3.6.1.6.3.1.1.5.3",
        trap_name="IF-MIB::linkDown",
        varbinds=(),
        uptime=5,
        received=1_700_000_000.0,
    )
    assert trap_message_id(replace(trap, message_id="abc")) == "abc"
    assert trap_message_id(trap) == message_id("192.0.2.7", b"", encode(trap))
    # a storm event (no ID from the receiver) of another node, or a later one, differs
    assert trap_message_id(trap) != trap_message_id(replace(trap, received=trap.received + 1))


@pytest.mark.parametrize(
    ("shards", "text"),
    [(set(), "-"), ({3}, "3"), ({0, 1, 2, 3, 7}, "0-3,7"), ({1, 3, 4, 9, 10, 11}, "1,3-4,9-11")],
)
def test_shard_ranges_in_the_log(shards: set[int], text: str) -> None:
    from netalert.cluster.node import _ranges

    assert _ranges(frozenset(shards)) == text
