"""The v3 trap fast path against pysnmp, with traps from net-snmp's snmptrap.

Two receivers get the same datagrams: one with the fast path (the default), one
sending every v3 datagram through pysnmp. They must produce the same events
and count the same rejections.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netalert.config.models import TrapsConfig
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
from netalert.snmp.wire.usm import FastTrap, UsmFast
from netalert.traps.receiver import TrapReceiver
from netalert.traps.stats import RejectReason
from netalert.traps.v3 import V3Engine, V3Notification
from tests.support.ports import free_udp_port
from tests.support.trees import builtin_tree
from tests.test_traps import ENGINE, LINK, NET_SNMP_PRIV, V3_USERS

pytestmark = pytest.mark.daemon  # net-snmp's snmptrap sends every trap

OWN_ENGINE = bytes.fromhex("80001f8804746573742d7472617073")
AUTH_ONLY = [("md5only", "MD5"), ("sha512only", "SHA-512")]
SOURCE = ("127.0.0.1", 40162)
LINK_DOWN = ["", "1.3.6.1.6.3.1.1.5.3", *LINK]
# One of each value type snmptrap can send, and a context name.
TYPES = [
    "", "1.3.6.1.4.1.8072.2.3.0.1",
    "1.3.6.1.4.1.8072.9.1", "u", "4294967295",
    "1.3.6.1.4.1.8072.9.2", "c", "17",
    "1.3.6.1.4.1.8072.9.3", "t", "12345",
    "1.3.6.1.4.1.8072.9.4", "a", "192.0.2.7",
    "1.3.6.1.4.1.8072.9.5", "o", "1.3.6.1.2.1.2.2.1.8",
    "1.3.6.1.4.1.8072.9.6", "x", "00ff10",
    "1.3.6.1.4.1.8072.9.7", "i", "-5",
    "1.3.6.1.4.1.8072.9.8", "n", "",
    "1.3.6.1.4.1.8072.9.9", "s", "caf\u00e9 \u2603",
]  # fmt: skip


def _config(port: int) -> TrapsConfig:
    users: list[dict[str, Any]] = [
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
    users += [
        {"user": name, "auth_protocol": auth, "auth_password": f"auth-{name}"}
        for name, auth in AUTH_ONLY
    ]
    return TrapsConfig.model_validate(
        {
            "listen": [f"127.0.0.1:{port}"],
            "users": users,
            "engine_id": OWN_ENGINE.hex(),
            "storm_trap_burst": 10**6,
        }
    )


def _security(name: str, level: str = "authPriv", **wrong: str) -> list[str]:
    auth = dict(V3_USERS_BY_NAME[name])
    argv = ["-v", "3", "-u", name, "-l", level]
    if level != "noAuthNoPriv":
        argv += ["-a", auth["auth"], "-A", wrong.get("auth", f"auth-{name}")]
    if level == "authPriv":
        argv += ["-x", NET_SNMP_PRIV[auth["priv"]], "-X", wrong.get("priv", f"priv-{name}")]
    return argv


V3_USERS_BY_NAME = {
    **{name: {"auth": auth, "priv": priv} for name, auth, priv in V3_USERS},
    **{name: {"auth": auth, "priv": ""} for name, auth in AUTH_ONLY},
}


def _capture(workdir: Path, *argv: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        security, params = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        subprocess.run(
            ["snmptrap", *security, f"127.0.0.1:{port}", *params],
            check=True,
            timeout=20,
            env=dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir)),
        )
        return sock.recv(65535)


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Datagrams sent by snmptrap -v 3 -e ENGINE, by case name."""
    workdir = tmp_path_factory.mktemp("net-snmp")
    engine = ["-e", f"0x{ENGINE}"]
    out = {}
    for name, _, _ in V3_USERS:
        out[name] = _capture(workdir, *_security(name), *engine, "--", *LINK_DOWN)
    for name, _ in AUTH_ONLY:
        out[name] = _capture(workdir, *_security(name, "authNoPriv"), *engine, "--", *LINK_DOWN)
    out["types"] = _capture(
        workdir, *_security("sha256aes256"), *engine, "-n", "ctx-a", "--", *TYPES
    )
    odd = {
        "wrong_auth": [*_security("shaaes", auth="wrong-pass"), *engine],
        "wrong_priv": [*_security("shaaes", priv="wrong-pass"), *engine],
        "auth_no_priv": [*_security("shaaes", "authNoPriv"), *engine],
        "no_auth": [*_security("shaaes", "noAuthNoPriv"), *engine],
        "other_engine": [*_security("md5des"), "-e", "0x80000000aabbccdd"],
    }
    for case, argv in odd.items():
        out[case] = _capture(workdir, *argv, "--", *LINK_DOWN)
    return out


class Pair:
    """The fast receiver and the pysnmp-only reference, fed the same datagrams."""

    def __init__(self) -> None:
        self.events: dict[bool, list[TrapEvent]] = {True: [], False: []}
        self.receivers: dict[bool, TrapReceiver] = {}

    @property
    def fast(self) -> TrapReceiver:
        return self.receivers[True]

    @property
    def ref(self) -> TrapReceiver:
        return self.receivers[False]

    def feed(self, data: bytes) -> tuple[list[TrapEvent], Counter[str]]:
        """Feeds both; asserts they agree; returns the new events and rejections."""
        seen = []
        for fast in (True, False):
            receiver, events = self.receivers[fast], self.events[fast]
            before, rejected = len(events), Counter(receiver.stats.rejected)
            receiver.handle(data, SOURCE)
            seen.append((events[before:], receiver.stats.rejected - rejected))
        assert seen[0] == seen[1], f"fast {seen[0]} != pysnmp {seen[1]} for {data.hex()}"
        return seen[0]

    def usm(self) -> UsmFast:
        v3 = self.fast._v3
        assert v3 is not None
        return v3._usm


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    tree = builtin_tree()
    result = Pair()
    for fast in (True, False):
        receiver = TrapReceiver(
            _config(free_udp_port()),
            sink=result.events[fast].append,
            tree=tree,
            clock=lambda: 1_900_000_000.0,
            v3_fast=fast,
        )
        await receiver.start()
        result.receivers[fast] = receiver
    yield result
    for receiver in result.receivers.values():
        await receiver.stop()


def _no_send(data: bytes, addr: tuple[Any, ...]) -> None:
    raise AssertionError("a trap needs no reply")


def _header(data: bytes) -> V3Header:
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    return header


CASES = [name for name, _, _ in V3_USERS] + [name for name, _ in AUTH_ONLY] + ["types"]


@pytest.mark.parametrize("case", CASES)
async def test_fast_path_decodes_net_snmp_traps_like_pysnmp(
    pair: Pair, captured: dict[str, bytes], case: str
) -> None:
    events, rejected = pair.feed(captured[case])
    assert not rejected
    (event,) = events
    user = "sha256aes256" if case == "types" else case
    assert (event.version, event.user, event.device, event.inform) == ("3", user, "", False)
    assert pair.fast.stats.v3_fast == 1  # taken by the fast path, not handed to pysnmp
    assert pair.ref.stats.v3_fast == 0
    if case == "types":
        values = {vb.oid.rpartition(".")[2]: (vb.type.value, vb.value) for vb in event.varbinds}
        assert values["1"] == ("Gauge32", 4294967295)
        assert values["4"] == ("IpAddress", "192.0.2.7")
        assert values["6"] == ("OCTET STRING", b"\x00\xff\x10")
        assert values["8"] == ("NULL", None)
        assert values["9"] == ("OCTET STRING", "caf\u00e9 \u2603".encode())
    else:
        assert event.trap_name == "IF-MIB::linkDown"


def test_notifications_carry_the_same_context(captured: dict[str, bytes]) -> None:
    users = _config(1).users
    notes: dict[bool, list[V3Notification]] = {True: [], False: []}
    for fast in (True, False):
        engine = V3Engine(
            users, OWN_ENGINE, on_notification=notes[fast].append, send=_no_send, fast=fast
        )
        for case in CASES:
            data = captured[case]
            assert engine.handle(data, SOURCE, _header(data)) is None
    assert [note.fast for note in notes[True]] == [True] * len(CASES)
    assert [replace(note, fast=False) for note in notes[True]] == notes[False]
    usm = UsmFast(users, OWN_ENGINE)
    trap = usm.receive(captured["types"], _header(captured["types"]))
    assert isinstance(trap, FastTrap)
    assert (trap.user, trap.context_name) == ("sha256aes256", b"ctx-a")
    assert trap.context_engine_id == notes[False][-1].engine_id


async def test_wrong_password_is_a_bad_digest_on_the_fast_path(
    pair: Pair, captured: dict[str, bytes]
) -> None:
    data = captured["wrong_auth"]
    assert pair.usm().receive(data, _header(data)) is RejectReason.BAD_DIGEST
    events, rejected = pair.feed(data)
    assert (events, dict(rejected)) == ([], {"bad_digest": 1})


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_priv", "decrypt_error"),  # authentic, undecryptable: pysnmp names it
        ("other_engine", "unknown_engine_id"),
        ("no_auth", "bad_security_level"),  # forged-looking: no digest from an auth user
    ],
)
async def test_unusual_traps_are_rejected_alike(
    pair: Pair, captured: dict[str, bytes], case: str, reason: str
) -> None:
    events, rejected = pair.feed(captured[case])
    assert (events, dict(rejected)) == ([], {reason: 1})
    assert pair.usm().internal_errors == 0


async def test_auth_no_priv_from_a_privacy_user_is_refused(
    pair: Pair, captured: dict[str, bytes]
) -> None:
    """As snmptrapd: a user configured for authPriv may not send at authNoPriv."""
    events, rejected = pair.feed(captured["auth_no_priv"])
    assert (events, dict(rejected)) == ([], {"bad_security_level": 1})


@pytest.mark.parametrize("case", ["md5des", "sha512aes256", "sha224aes192", "md5only"])
async def test_tampered_bytes_are_rejected_alike(
    pair: Pair, captured: dict[str, bytes], case: str
) -> None:
    data = captured[case]
    reasons: Counter[str] = Counter()
    for pos in range(len(data)):
        for flip in (0x01, 0x80):
            tampered = data[:pos] + bytes([data[pos] ^ flip]) + data[pos + 1 :]
            events, rejected = pair.feed(tampered)
            assert not events, f"byte {pos} ^ {flip:#x} accepted"
            assert sum(rejected.values()) == 1
            reasons.update(rejected)
    assert reasons["bad_digest"] > len(data)  # most bytes are covered by the digest alone
    assert pair.usm().internal_errors == 0
    assert pair.fast.stats.v3_fast == 0
