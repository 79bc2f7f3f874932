"""Pure parts of the trap receiver: RFC 3584 translation, storm buckets, access, sockets."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import subprocess
import sys

import pytest

from netalert.alerts import Event, Observation
from netalert.rules.trapenv import TrapView
from netalert.snmp.types import SnmpType, TrapEvent, VarBind, maker
from netalert.snmp.wire.ber import Message, V1Trap
from netalert.traps.access import AccessPolicy, plain_address
from netalert.traps.convert import v1_to_v2, v1_trap_oid, v2_trap_oid
from netalert.traps.listen import BindError, open_udp_socket, socket_queue
from netalert.traps.storm import StormControl, StormLimits, TokenBucket, fold_sample


@pytest.mark.parametrize(
    ("generic", "specific", "oid"),
    [
        (0, 0, "1.3.6.1.6.3.1.1.5.1"),
        (1, 0, "1.3.6.1.6.3.1.1.5.2"),
        (2, 0, "1.3.6.1.6.3.1.1.5.3"),
        (3, 0, "1.3.6.1.6.3.1.1.5.4"),
        (4, 0, "1.3.6.1.6.3.1.1.5.5"),
        (5, 0, "1.3.6.1.6.3.1.1.5.6"),
        (6, 0, "1.3.6.1.4.1.9.0.0"),
        (6, 77, "1.3.6.1.4.1.9.0.77"),
    ],
)
def test_v1_trap_oid(generic: int, specific: int, oid: str) -> None:
    assert v1_trap_oid(V1Trap("1.3.6.1.4.1.9", "192.0.2.1", generic, specific, 0)) == oid


def test_v1_to_v2_appends_only_what_is_missing() -> None:
    trap = V1Trap("1.3.6.1.4.1.9", "192.0.2.1", 6, 1, 99)
    own = (("1.3.6.1.6.3.18.1.3.0", SnmpType.IP_ADDRESS, "198.51.100.1"),)
    out = v1_to_v2(trap, b"pub", own)
    assert out == [
        ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 99),
        ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.4.1.9.0.1"),
        ("1.3.6.1.6.3.18.1.3.0", SnmpType.IP_ADDRESS, "198.51.100.1"),
        ("1.3.6.1.6.3.18.1.4.0", SnmpType.OCTET_STRING, b"pub"),
        ("1.3.6.1.6.3.1.1.4.3.0", SnmpType.OID, "1.3.6.1.4.1.9"),
    ]


def test_v2_trap_oid_found_out_of_place() -> None:
    varbinds = [
        ("1.3.6.1.2.1.2.2.1.1.1", SnmpType.INTEGER, 1),
        ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 7),
        ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.4"),
    ]
    assert v2_trap_oid(varbinds) == ("1.3.6.1.6.3.1.1.5.4", 7)
    assert v2_trap_oid(varbinds[:2]) == ("", 7)


@pytest.mark.parametrize(
    ("takes", "gaps", "passed"),
    [
        (5, 0.0, 3),  # burst 3: three pass, the bucket is then empty
        (5, 1.0, 5),  # one token a second, one take a second: all pass
        (10, 0.25, 5),  # 3 + 2.25 s of refill
    ],
)
def test_token_bucket(takes: int, gaps: float, passed: int) -> None:
    bucket = TokenBucket(rate=1.0, burst=3, tokens=3, stamp=0.0)
    assert sum(bucket.take(i * gaps) for i in range(takes)) == passed


def _event(source: str, oid: str) -> TrapEvent:
    return TrapEvent(source, 162, "2c", oid, oid, (), None, 0.0)


def test_storm_folds_per_source_and_trap() -> None:
    storm = StormControl(StormLimits(100.0, 100, 1.0, 2, interval=10.0))
    passed = [storm.admit("a", "x", 0.0) for _ in range(5)]
    assert passed == [True, True, False, False, False]
    assert storm.admit("a", "y", 0.0)  # another trap of the same source has its own bucket
    assert storm.admit("b", "x", 0.0)
    for i in range(3):
        assert storm.fold("a", "x", lambda i=i: _event("a", f"x{i}"), 1.0)
    assert storm.pending() == 3
    assert storm.due(5.0) == []
    (event,) = storm.due(11.0)
    assert (event.storm_count, event.trap_oid) == (3, "x2")  # the last folded trap
    assert storm.pending() == 0


def test_storm_source_bucket_limits_many_trap_oids() -> None:
    storm = StormControl(StormLimits(1.0, 3, 100.0, 100))
    assert [storm.admit("a", str(i), 0.0) for i in range(5)] == [True, True, True, False, False]


def test_storm_memory_is_bounded() -> None:
    storm = StormControl(StormLimits(1.0, 1, 1.0, 1, max_keys=10))
    for i in range(100):
        storm.admit(f"10.0.0.{i}", "x", 0.0)
    assert len(storm._sources) <= 10
    assert storm.admit("10.0.1.1", "x", 100.0)  # idle buckets were forgotten
    for i in range(20):
        storm.fold(f"s{i}", "x", lambda: _event("s", "x"), 0.0)
    assert storm.overflow == 10


def test_fold_sample_keeps_the_first_varbinds_within_the_budget() -> None:
    raw = [
        ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4200),
        ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.4.1.9.0.1"),
        ("1.3.6.1.4.1.9.1.1.0", SnmpType.OCTET_STRING, b"x" * 60_000),
        ("1.3.6.1.4.1.9.1.2.0", SnmpType.OCTET_STRING, b"never kept"),
    ]
    sample = fold_sample(raw, 1024)
    assert sample[:2] == tuple(raw[:2])
    oid, kind, value = sample[2]
    assert (oid, kind) == raw[2][:2]
    assert isinstance(value, bytes) and value.endswith("…".encode())
    assert 16 < len(value) < 1024
    assert len(sample) == 3  # what follows a cut value is left out
    cost = sum(64 + len(o) + (len(v) if isinstance(v, bytes | str) else 8) for o, _, v in sample)
    assert cost <= 1024
    # a budget too small for even the header varbinds keeps what fits, never more
    assert fold_sample(raw, 100) == tuple(raw[:1])
    assert fold_sample(raw, 10) == ()


def test_storm_keys_and_one_log_line_per_interval() -> None:
    storm = StormControl(StormLimits(1.0, 1, 1.0, 1, interval=10.0, max_keys=3))
    for i in range(5):
        storm.fold("a", f"t{i}", lambda i=i: _event("a\nforged=1", f"t{i}"), 0.0)
        storm.fold("a", f"t{i}", lambda i=i: _event("a\nforged=1", f"t{i}"), 0.0)
    assert storm.keys() == 3
    assert storm.overflow == 4  # t3 and t4, twice each: shed, not folded
    first = storm.due(10.0)
    assert storm.keys() == 0
    line = storm.log_line(first, 10.0)
    assert line is not None and "\n" not in line  # the source is escaped, one line
    assert "folded=2" in line and "suppressed=2 suppressed_folded=4" in line
    # a second emission within the interval is not logged but counted in the next line
    storm.fold("b", "x", lambda: _event("b", "x"), 11.0)
    assert storm.log_line(storm.due(0.0, all_=True), 12.0) is None
    storm.fold("c", "y", lambda: _event("c", "y"), 21.0)
    line = storm.log_line(storm.due(31.0), 31.0)
    assert line is not None and "source=c" in line and "suppressed=1 suppressed_folded=1" in line
    assert storm.log_line([], 100.0) is None


def test_access_policy() -> None:
    policy = AccessPolicy(
        [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")],
        [b"public"],
    )
    assert policy.allowed("192.0.2.9")
    assert not policy.allowed("198.51.100.1")
    assert policy.allowed("2001:db8::1")
    assert not policy.allowed("not-an-address")
    assert policy.community_ok(b"public")
    assert not policy.community_ok(b"Public")
    assert plain_address("::ffff:192.0.2.9") == "192.0.2.9"
    assert plain_address("2001:db8::1") == "2001:db8::1"


def test_rcvbuf_is_raised_and_drops_are_read_from_proc() -> None:
    sock, granted = open_udp_socket("127.0.0.1", 0, 65536)
    try:
        assert granted >= 65536
        port = sock.getsockname()[1]
        before = socket_queue(sock)
        assert before is not None and before.drops == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(2000):  # nobody reads: a 64 KiB buffer overflows
                sender.sendto(b"x" * 200, ("127.0.0.1", port))
        after = socket_queue(sock)
        assert after is not None
        assert after.drops > 1000
        assert after.rx_queue > 0
    finally:
        sock.close()


def test_big_rcvbuf_is_granted() -> None:
    sock, granted = open_udp_socket("127.0.0.1", 0, 8 * 1024 * 1024)
    sock.close()
    assert granted == 8 * 1024 * 1024  # rmem_max (or root's SO_RCVBUFFORCE) allows it here


def test_port_in_use_is_a_clear_error() -> None:
    sock, _ = open_udp_socket("127.0.0.1", 0, 65536)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(
            BindError, match=rf"cannot listen on 127.0.0.1:{port}: Address already in use"
        ):
            open_udp_socket("127.0.0.1", port, 65536)
    finally:
        sock.close()


@pytest.mark.daemon
def test_privileged_port_names_the_fixes() -> None:
    # Run as an unprivileged user: binding port 162 must fail with the remedies spelled out.
    code = (
        "from netalert.traps.listen import BindError, open_udp_socket\n"
        "try:\n    open_udp_socket('127.0.0.1', 162, 65536)\n"
        "except BindError as exc:\n    print(exc)\n"
    )
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", code]  # fmt: skip
    else:
        argv = [sys.executable, "-c", code]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, cwd=os.getcwd(), check=True
    ).stdout
    assert "cannot listen on 127.0.0.1:162" in out
    assert "CAP_NET_BIND_SERVICE" in out
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in out
    assert "unprivileged port" in out


def test_socket_queue_of_a_closed_socket_is_unknown() -> None:
    sock, _ = open_udp_socket("127.0.0.1", 0, 65536)
    sock.close()
    assert socket_queue(sock) is None


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (VarBind, ("1.3.6.1.2.1.2.2.1.7.3", SnmpType.INTEGER, 1, "IF-MIB::ifAdminStatus", "3",
                   "up")),
        (
            TrapEvent,
            ("192.0.2.1", 162, "2c", "1.3.6.1.6.3.1.1.5.3", "IF-MIB::linkDown", (), 5, 1.5,
             "sw1", "public", "", True, 3, "a1b2"),
        ),
        (Message, (1, b"public", 0xA7, 7, 0, 0, (), None, (20, 40))),
        # the trap rules' (mappings left out: the test hashes what it makes)
        (TrapView, ("sw1", (), (), "linkDown")),
        (
            Observation,
            ("policy", "key", "sw1", Event.OCCURRED, None, "f1", None, None, "down", None, (),
             None, "3", True, None, None),
        ),
    ],
)  # fmt: skip
def test_the_fast_constructors_make_what_the_dataclasses_make(
    cls: type[object], values: tuple[object, ...]
) -> None:
    made, plain = maker(cls)(*values), cls(*values)
    assert type(made) is cls and made == plain and hash(made) == hash(plain)
    names = [f.name for f in dataclasses.fields(plain)]  # type: ignore[arg-type]
    assert [getattr(made, name) for name in names] == list(values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, names[0], "x")


@dataclasses.dataclass(frozen=True, slots=True)
class _Base:
    a: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Derived(_Base):
    b: str


@pytest.mark.parametrize("cls", [VarBind, TrapEvent, Message, TrapView, Observation])
def test_the_trap_path_s_classes_are_made_through_a_twin(cls: type[object]) -> None:
    """The fast constructors set plain slots of a twin class and turn it into ``cls``."""
    twin = maker(cls).__globals__["_twin"]
    assert twin is not None and twin.__slots__ == cls.__slots__  # type: ignore[attr-defined]


def test_a_class_with_no_twin_is_made_through_its_slots() -> None:
    """A class whose layout a twin cannot share (slots inherited) is still made right."""
    make = maker(_Derived)
    assert make.__globals__["_twin"] is None
    made = make(1, "x")
    assert type(made) is _Derived and made == _Derived(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.b = "y"  # type: ignore[misc]
