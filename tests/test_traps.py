"""The trap receiver against real senders: net-snmp snmptrap / snmpinform, v1, v2c, v3."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from netalert.config.models import Device, TrapsConfig
from netalert.mib import MibTree
from netalert.snmp.types import SnmpType, TrapEvent
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from netalert.snmp.wire.engines import EngineIdRegistry
from netalert.traps.receiver import TrapReceiver
from tests.support.ports import free_udp_port
from tests.support.trees import builtin_tree

ENGINE = "8000000001020304"
LINK = [
    "1.3.6.1.2.1.2.2.1.1.2", "i", "2",
    "1.3.6.1.2.1.2.2.1.7.2", "i", "1",
    "1.3.6.1.2.1.2.2.1.8.2", "i", "2",
    "1.3.6.1.2.1.2.2.1.2.2", "s", "eth0 uplink",
]  # fmt: skip
V3_USERS = [
    ("md5des", "MD5", "DES"),
    ("shaaes", "SHA", "AES-128"),
    ("sha224aes192", "SHA-224", "AES-192"),
    ("sha256aes256", "SHA-256", "AES-256"),
    ("sha384aes", "SHA-384", "AES-128"),
    ("sha512aes256", "SHA-512", "AES-256"),
]
NET_SNMP_PRIV = {"DES": "DES", "AES-128": "AES", "AES-192": "AES-192", "AES-256": "AES-256"}


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def _config(port: int, **extra: Any) -> TrapsConfig:
    users = [
        {
            "user": name,
            "auth_protocol": auth,
            "auth_password": f"auth-{name}",
            "priv_protocol": priv,
            "priv_password": f"priv-{name}",
            "engine_ids": [ENGINE],
        }
        for name, auth, priv in V3_USERS
    ]
    data: dict[str, Any] = {
        "listen": [f"127.0.0.1:{port}"],
        "communities": ["public", "second"],
        "users": users,
        "engine_id": "80001f8804746573742d7472617073",
    }
    data.update(extra)
    return TrapsConfig.model_validate(data)


class Harness:
    def __init__(self, receiver: TrapReceiver, queue: asyncio.Queue[TrapEvent], port: int) -> None:
        self.receiver = receiver
        self.queue = queue
        self.port = port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def run(self, *argv: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode is not None
        if proc.returncode:
            print(err.decode(), file=sys.stderr)
        return proc.returncode

    async def events(self, count: int, wait: float = 20.0) -> list[TrapEvent]:
        out = [await asyncio.wait_for(self.queue.get(), wait) for _ in range(count)]
        await asyncio.sleep(0.05)
        assert self.queue.empty(), "more events than expected"
        return out

    async def settle(self, check: Callable[[], bool], wait: float = 20.0) -> None:
        for _ in range(int(wait / 0.02)):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not reached")


@pytest.fixture
async def harness(tree: MibTree) -> AsyncIterator[Harness]:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    devices = [Device(name="lab-sw1", address="127.0.0.1")]
    receiver = TrapReceiver(_config(port), sink=queue, tree=tree, devices=devices)
    await receiver.start()
    yield Harness(receiver, queue, port)
    await receiver.stop()


def _by_name(event: TrapEvent) -> dict[str, Any]:
    return {vb.name: (vb.index, vb.value, vb.label) for vb in event.varbinds}


@pytest.mark.daemon
async def test_v2c_trap_is_named(harness: Harness) -> None:
    rc = await harness.run(
        "snmptrap", "-v", "2c", "-c", "public", harness.target, "", "1.3.6.1.6.3.1.1.5.3", *LINK
    )
    assert rc == 0
    (event,) = await harness.events(1)
    assert (event.version, event.trap_oid, event.trap_name) == (
        "2c",
        "1.3.6.1.6.3.1.1.5.3",
        "IF-MIB::linkDown",
    )
    assert (event.device, event.community, event.inform, event.storm_count) == (
        "lab-sw1",
        "public",
        False,
        1,
    )
    names = _by_name(event)
    assert names["IF-MIB::ifOperStatus"] == ("2", 2, "down")
    assert names["IF-MIB::ifAdminStatus"] == ("2", 1, "up")
    assert names["IF-MIB::ifDescr"] == ("2", b"eth0 uplink", "eth0 uplink")
    assert isinstance(event.uptime, int)
    assert harness.receiver.stats.received["2c"] == 1


@pytest.mark.daemon
async def test_v1_generic_trap_is_translated(harness: Harness) -> None:
    rc = await harness.run(
        "snmptrap", "-v", "1", "-c", "second", harness.target,
        "1.3.6.1.4.1.8072.3.2.10", "192.0.2.9", "2", "0", "4242", *LINK,
    )  # fmt: skip
    assert rc == 0
    (event,) = await harness.events(1)
    assert (event.version, event.trap_name, event.uptime) == ("1", "IF-MIB::linkDown", 4242)
    names = _by_name(event)
    assert names["SNMP-COMMUNITY-MIB::snmpTrapAddress"][1] == "192.0.2.9"
    assert names["SNMP-COMMUNITY-MIB::snmpTrapCommunity"][1] == b"second"
    assert names["SNMPv2-MIB::snmpTrapEnterprise"][1] == "1.3.6.1.4.1.8072.3.2.10"
    assert [vb.oid for vb in event.varbinds[:2]] == ["1.3.6.1.2.1.1.3.0", "1.3.6.1.6.3.1.1.4.1.0"]


@pytest.mark.daemon
async def test_v1_enterprise_specific_trap(harness: Harness) -> None:
    rc = await harness.run(
        "snmptrap", "-v", "1", "-c", "public", harness.target,
        "1.3.6.1.4.1.8072.2.3", "", "6", "17", "", "1.3.6.1.4.1.8072.2.3.2.1", "i", "5",
    )  # fmt: skip
    assert rc == 0
    (event,) = await harness.events(1)
    assert event.trap_oid == "1.3.6.1.4.1.8072.2.3.0.17"
    assert event.varbinds[2].oid == "1.3.6.1.4.1.8072.2.3.2.1"


@pytest.mark.daemon
async def test_v2c_inform_gets_its_response(harness: Harness) -> None:
    rc = await harness.run(
        "snmpinform", "-v", "2c", "-c", "public", "-t", "10", "-r", "0", harness.target,
        "", "1.3.6.1.6.3.1.1.5.4", *LINK,
    )  # fmt: skip
    assert rc == 0  # snmpinform exits 1 when no Response arrives
    (event,) = await harness.events(1)
    assert (event.inform, event.trap_name) == (True, "IF-MIB::linkUp")
    assert harness.receiver.stats.informs_answered == 1


def _v3(name: str, auth: str, priv: str, *, password: str | None = None) -> list[str]:
    return [
        "-v", "3", "-u", name, "-l", "authPriv",
        "-a", auth, "-A", password or f"auth-{name}",
        "-x", NET_SNMP_PRIV[priv], "-X", f"priv-{name}",
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "auth", "priv"), V3_USERS)
@pytest.mark.daemon
async def test_v3_authpriv_trap_and_inform(
    harness: Harness, name: str, auth: str, priv: str
) -> None:
    sec = _v3(name, auth, priv)
    rc = await harness.run(
        "snmptrap", *sec, "-e", f"0x{ENGINE}", harness.target, "", "1.3.6.1.6.3.1.1.5.3", *LINK
    )
    assert rc == 0
    rc = await harness.run(
        "snmpinform", *sec, "-t", "10", "-r", "0", harness.target, "", "1.3.6.1.6.3.1.1.5.4", *LINK
    )
    assert rc == 0
    trap, inform = await harness.events(2)
    assert (trap.version, trap.user, trap.trap_name, trap.inform) == (
        "3",
        name,
        "IF-MIB::linkDown",
        False,
    )
    assert _by_name(trap)["IF-MIB::ifOperStatus"] == ("2", 2, "down")
    assert (inform.user, inform.trap_name, inform.inform) == (name, "IF-MIB::linkUp", True)
    assert harness.receiver.stats.received["3"] == 2
    assert harness.receiver.stats.v3_fast == 2  # the trap and the inform took the fast path
    assert harness.receiver.stats.v3_replies >= 2  # the discovery Report, the Response
    assert not harness.receiver.stats.rejected


# Informs answered on the fast path, at both levels, with the other hash/cipher pairs
INFORM_USERS = [
    ("md5auth", "MD5", None),
    ("shaauth", "SHA", None),
    ("sha256auth", "SHA-256", None),
    ("shades", "SHA", "DES"),
    ("sha256des", "SHA-256", "DES"),
    ("md5aes", "MD5", "AES-128"),
    ("sha256aes", "SHA-256", "AES-128"),
]


@pytest.mark.daemon
async def test_v3_informs_are_answered_on_the_fast_path(tree: MibTree) -> None:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    users = [
        {"user": name, "auth_protocol": auth, "auth_password": f"auth-{name}"}
        | ({"priv_protocol": priv, "priv_password": f"priv-{name}"} if priv else {})
        for name, auth, priv in INFORM_USERS
    ]
    receiver = TrapReceiver(_config(port, users=users), sink=queue, tree=tree)
    await receiver.start()
    try:
        harness = Harness(receiver, queue, port)
        for n, (name, auth, priv) in enumerate(INFORM_USERS, 1):
            sec = ["-v", "3", "-u", name, "-a", auth, "-A", f"auth-{name}"]
            if priv:
                sec += ["-l", "authPriv", "-x", NET_SNMP_PRIV[priv], "-X", f"priv-{name}"]
            else:
                sec += ["-l", "authNoPriv"]
            rc = await harness.run(
                "snmpinform", *sec, "-t", "10", "-r", "0", harness.target,
                "", "1.3.6.1.6.3.1.1.5.4", *LINK,
            )  # fmt: skip
            assert rc == 0, f"{name}: snmpinform got no Response"
            (event,) = await harness.events(1)
            assert (event.user, event.trap_name, event.inform) == (name, "IF-MIB::linkUp", True)
            assert _by_name(event)["IF-MIB::ifDescr"][1] == b"eth0 uplink"
            assert receiver.stats.v3_fast == n, f"{name}: not answered on the fast path"
        assert not receiver.stats.rejected
    finally:
        await receiver.stop()


@pytest.mark.daemon
async def test_rejections_are_counted_and_produce_nothing(harness: Harness) -> None:
    stats = harness.receiver.stats
    send = harness.run
    assert (
        await send("snmptrap", "-v", "2c", "-c", "nope", harness.target, "", "1.3.6.1.6.3.1.1.5.3")
        == 0
    )
    assert (
        await send("snmptrap", "-v", "1", "-c", "nope", harness.target, "", "", "0", "0", "") == 0
    )
    name, auth, priv = V3_USERS[1]
    wrong = _v3(name, auth, priv, password="not-the-password")
    assert (
        await send(
            "snmptrap", *wrong, "-e", f"0x{ENGINE}", harness.target, "", "1.3.6.1.6.3.1.1.5.3"
        )
        == 0
    )
    stranger = [*_v3(name, auth, priv)]
    stranger[stranger.index(name)] = "stranger"
    assert (
        await send(
            "snmptrap", *stranger, "-e", f"0x{ENGINE}", harness.target, "", "1.3.6.1.6.3.1.1.5.3"
        )
        == 0
    )
    unknown_engine = "0x80000000aabbccdd"
    assert (
        await send(
            "snmptrap",
            *_v3(name, auth, priv),
            "-e",
            unknown_engine,
            harness.target,
            "",
            "1.3.6.1.6.3.1.1.5.3",
        )
        == 0
    )
    # snmpinform with a wrong password gets no Response: it must fail. Told the receiver's
    # engine ID, boots and time (-e, -Z), it sends its one inform without discovering them
    # first: under load a discovery lost to the 1 s timeout would leave nothing to reject.
    informed = _config(harness.port).engine_id
    inform = [
        "snmpinform", *wrong, "-e", f"0x{informed}", "-Z", "1,1", "-t", "1", "-r", "0",
        harness.target, "", "1.3.6.1.6.3.1.1.5.4",
    ]  # fmt: skip
    assert await send(*inform) != 0
    expected = {"bad_community": 2, "bad_digest": 2, "unknown_user": 1, "unknown_engine_id": 1}
    await harness.settle(lambda: dict(stats.rejected) == expected)
    await asyncio.sleep(0.1)
    assert dict(stats.rejected) == expected
    assert harness.queue.empty()
    assert not stats.received


@pytest.mark.daemon
async def test_disallowed_source_is_counted(tree: MibTree) -> None:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    config = _config(port, allow=["192.0.2.0/24", "::1/128"])
    receiver = TrapReceiver(config, sink=queue, tree=tree)
    await receiver.start()
    try:
        harness = Harness(receiver, queue, port)
        rc = await harness.run(
            "snmptrap", "-v", "2c", "-c", "public", harness.target, "", "1.3.6.1.6.3.1.1.5.3"
        )
        assert rc == 0
        await harness.settle(lambda: receiver.stats.rejected["not_allowed"] == 1)
        assert queue.empty()
        assert not receiver.stats.received
    finally:
        await receiver.stop()


@pytest.mark.daemon
async def test_ipv6_listener(tree: MibTree) -> None:
    port6, port4 = free_udp_port("::1"), free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    config = _config(port4, listen=[f"[::1]:{port6}", f"127.0.0.1:{port4}"])
    receiver = TrapReceiver(config, sink=queue, tree=tree)
    await receiver.start()
    try:
        harness = Harness(receiver, queue, port4)
        for target in (f"udp6:[::1]:{port6}", f"127.0.0.1:{port4}"):
            rc = await harness.run(
                "snmptrap", "-v", "2c", "-c", "public", target, "", "1.3.6.1.6.3.1.1.5.4"
            )
            assert rc == 0
        first, second = await harness.events(2)
        assert {first.source, second.source} == {"::1", "127.0.0.1"}
    finally:
        await receiver.stop()


@pytest.mark.daemon
async def test_learned_engine_id_needs_no_restart(tree: MibTree) -> None:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    registry = EngineIdRegistry()
    receiver = TrapReceiver(_config(port), sink=queue, tree=tree, engines=registry)
    await receiver.start()
    try:
        harness = Harness(receiver, queue, port)
        name, auth, priv = V3_USERS[3]
        argv = [
            "snmptrap",
            *_v3(name, auth, priv),
            "-e",
            "0x80000000feedf00d",
            harness.target,
            "",
            "1.3.6.1.6.3.1.1.5.3",
        ]
        assert await harness.run(*argv) == 0
        await harness.settle(lambda: receiver.stats.rejected["unknown_engine_id"] == 1)
        registry.add("edge-rtr", "127.0.0.1", 161, bytes.fromhex("80000000feedf00d"), name)
        assert await harness.run(*argv) == 0
        (event,) = await harness.events(1)
        assert (event.user, event.trap_name) == (name, "IF-MIB::linkDown")
    finally:
        await receiver.stop()


async def test_ten_thousand_malformed_datagrams(harness: Harness) -> None:
    import random

    rng = random.Random(162)
    good = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 5),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.1"),
        ],
    )
    stats = harness.receiver.stats
    junk = []
    for i in range(10_000):
        if i % 2:
            junk.append(good[: rng.randrange(0, len(good))])
        else:
            junk.append(rng.randbytes(rng.randrange(1, 300)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, data in enumerate(junk):
            sock.sendto(data, ("127.0.0.1", harness.port))
            if i % 1000 == 999:  # sender and receiver share this loop: let it catch up
                await harness.settle(lambda n=i: stats.datagrams > n - 200, wait=10)
        await harness.settle(lambda: stats.datagrams == 10_000, wait=20)
        sock.sendto(good, ("127.0.0.1", harness.port))
    (event,) = await harness.events(1)
    assert event.trap_name == "SNMPv2-MIB::coldStart"
    assert stats.rejected["malformed"] + stats.rejected["bad_version"] == 10_000
    assert stats.rejected["malformed"] > 9_900
    assert harness.receiver.kernel_drops() == 0


async def test_a_flood_from_one_source_is_folded(tree: MibTree) -> None:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    config = _config(port, storm_interval="1s")
    # The receiver's clock stands still during the flood, then one storm interval passes.
    now = [float(int(time.time()))]  # whole seconds: the half seconds below add up exactly
    receiver = TrapReceiver(config, sink=queue, tree=tree, clock=lambda: now[0])
    await receiver.start()
    trap = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 5),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
            ("1.3.6.1.2.1.2.2.1.1.7", SnmpType.INTEGER, 7),
        ],
    )
    try:
        stats = receiver.stats
        harness = Harness(receiver, queue, port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(20_000):
                sock.sendto(trap, ("127.0.0.1", port))
                if i % 1000 == 999:  # sender and receiver share this loop: let it catch up
                    await harness.settle(lambda n=i: stats.datagrams > n - 200, wait=10)
        await harness.settle(lambda: stats.datagrams == 20_000, wait=20)
        assert receiver.kernel_drops() == 0
        assert stats.received["2c"] == 20_000
        before = [queue.get_nowait() for _ in range(queue.qsize())]
        now[0] += 0.5
        receiver.tick(now[0])
        assert queue.empty()  # the storm interval has not ended yet
        now[0] += 0.5
        receiver.tick(now[0])  # the interval ends: the storm event is emitted
        events = before + [queue.get_nowait() for _ in range(queue.qsize())]
    finally:
        await receiver.stop()
    single = [e for e in events if e.storm_count == 1]
    storms = [e for e in events if e.storm_count > 1]
    # With no time passing, the per-trap bucket (burst 50) lets exactly 50 through.
    assert len(single) == len(before) == 50
    assert len(storms) == 1
    assert sum(e.storm_count for e in events) == 20_000
    assert stats.storm_folded == storms[0].storm_count == 19_950
    assert storms[0].trap_name == "IF-MIB::linkDown"
    assert queue.empty()  # stop() had nothing left to emit
