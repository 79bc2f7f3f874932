"""Who may create a v3 trap or inform: a table of (user, engine ID, level, keys) → outcome.

Only a configured USM user, at exactly the security level it is configured
for, with the right keys, from an engine ID its keys are localized to, may
ever create an event. Every row runs through the fast path and through the
pysnmp-only path (the reference), which must agree. Rows marked as the bypass
were accepted before the fix (an empty user name with any engine ID, and a
privacy user at authNoPriv).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from netalert.config.models import TrapsConfig
from netalert.snmp.types import TrapEvent
from netalert.traps.receiver import TrapReceiver
from tests.support.ports import free_udp_port
from tests.support.trees import builtin_tree
from tests.support.v3build import build_v3, scoped_pdu, trap_varbinds, varbind

ENGINE = bytes.fromhex("80000000c0ffee0102")
OTHER = bytes.fromhex("80000000badbadbad0")
OWN = bytes.fromhex("80001f88046f776e")
SOURCE = ("127.0.0.1", 40162)

# name: (auth, priv) — one user per configured level.
USERS: dict[str, tuple[str | None, str | None]] = {
    "privuser": ("SHA", "AES-128"),
    "desuser": ("MD5", "DES"),
    "authuser": ("SHA-256", None),
    "nouser": (None, None),
}


def _config(port: int) -> TrapsConfig:
    users: list[dict[str, Any]] = []
    for name, (auth, priv) in USERS.items():
        entry: dict[str, Any] = {"user": name, "engine_ids": [ENGINE.hex()]}
        if auth:
            entry |= {"auth_protocol": auth, "auth_password": f"auth-{name}"}
        if priv:
            entry |= {"priv_protocol": priv, "priv_password": f"priv-{name}"}
        users.append(entry)
    return TrapsConfig.model_validate(
        {
            "listen": [f"127.0.0.1:{port}"],
            "allow": ["127.0.0.0/8"],
            "users": users,
            "engine_id": OWN.hex(),
            "storm_trap_burst": 10**6,
        }
    )


class _Sock:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)


class _Listener:
    def __init__(self) -> None:
        self.sock = _Sock()


class Receivers:
    def __init__(self) -> None:
        self.events: dict[bool, list[TrapEvent]] = {True: [], False: []}
        self.receivers: dict[bool, TrapReceiver] = {}

    def outcome(self, data: bytes) -> str:
        """Feeds both receivers; returns "accepted", "report", "silent" or the reason."""
        seen = []
        for fast, receiver in self.receivers.items():
            events = self.events[fast]
            before, rejected = len(events), Counter(receiver.stats.rejected)
            listener = _Listener()
            receiver.handle(data, SOURCE, listener)
            reasons = receiver.stats.rejected - rejected
            new = events[before:]
            if new:
                assert not reasons
                seen.append("accepted")
            elif reasons:
                ((reason, count),) = reasons.items()
                assert count == 1
                seen.append(reason)
            else:
                seen.append("report" if listener.sock.sent else "silent")
        assert seen[0] == seen[1], f"fast path {seen[0]} != pysnmp path {seen[1]}"
        return seen[0]


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    """Both receivers, started once for the module (each start hashes every password)."""
    tree = builtin_tree()
    result = Receivers()
    loop = asyncio.new_event_loop()
    try:
        for fast in (True, False):
            receiver = TrapReceiver(
                _config(free_udp_port()),
                sink=result.events[fast].append,
                tree=tree,
                clock=lambda: 1_900_000_000.0,
                v3_fast=fast,
            )
            loop.run_until_complete(receiver.start())
            result.receivers[fast] = receiver
        yield result
    finally:
        for receiver in result.receivers.values():
            loop.run_until_complete(receiver.stop())
        loop.close()


def _msg(
    user: str,
    *,
    level: str,
    engine: bytes = ENGINE,
    keys: str = "right",
    pdu: int = 0xA7,
    reportable: bool = False,
    as_user: str | None = None,
) -> bytes:
    """A message of ``user`` at ``level``; ``keys``: right, wrong, or those of ``as_user``."""
    owner = as_user or user
    auth, priv = USERS.get(owner, ("SHA", "AES-128"))
    if level != "noAuthNoPriv" and auth is None:
        auth = "SHA"  # a noAuth user's forger picks any protocol
    if level == "authPriv" and priv is None:
        priv = "AES-128"
    password = owner if keys == "right" else "guessed"
    varbinds = (
        trap_varbinds() if pdu in (0xA6, 0xA7) else [varbind("1.3.6.1.2.1.1.5.0", b"\x05\x00")]
    )
    return build_v3(
        user,
        scoped_pdu(varbinds, pdu=pdu, context_engine=engine),
        engine=engine,
        level=level,
        auth=auth,
        auth_password=f"auth-{password}",
        priv=priv,
        priv_password=f"priv-{password}",
        reportable=reportable,
    )


TABLE = [
    # (case, message, outcome)
    ("authPriv user, right keys", lambda: _msg("privuser", level="authPriv"), "accepted"),
    ("DES user, right keys", lambda: _msg("desuser", level="authPriv"), "accepted"),
    ("authNoPriv user, right key", lambda: _msg("authuser", level="authNoPriv"), "accepted"),
    ("noAuthNoPriv user", lambda: _msg("nouser", level="noAuthNoPriv"), "accepted"),
    (
        "authPriv user, wrong keys",
        lambda: _msg("privuser", level="authPriv", keys="wrong"),
        "bad_digest",
    ),
    # bypass: a privacy user downgraded to authNoPriv with its right auth key
    (
        "authPriv user at authNoPriv",
        lambda: _msg("privuser", level="authNoPriv"),
        "bad_security_level",
    ),
    ("DES user at authNoPriv", lambda: _msg("desuser", level="authNoPriv"), "bad_security_level"),
    (
        "authPriv user at noAuthNoPriv",
        lambda: _msg("privuser", level="noAuthNoPriv"),
        "bad_security_level",
    ),
    (
        "authNoPriv user at noAuthNoPriv",
        lambda: _msg("authuser", level="noAuthNoPriv"),
        "bad_security_level",
    ),
    (
        "authNoPriv user at authPriv",
        lambda: _msg("authuser", level="authPriv"),
        "bad_security_level",
    ),
    (
        "noAuthNoPriv user at authNoPriv",
        lambda: _msg("nouser", level="authNoPriv"),
        "bad_security_level",
    ),
    # bypass: the empty user name, with or without an engine ID
    ("empty user, noAuthNoPriv trap", lambda: _msg("", level="noAuthNoPriv"), "unknown_user"),
    (
        "empty user, other engine",
        lambda: _msg("", level="noAuthNoPriv", engine=OTHER),
        "unknown_user",
    ),
    ("empty user, own engine", lambda: _msg("", level="noAuthNoPriv", engine=OWN), "unknown_user"),
    (
        "empty user, no engine, trap",
        lambda: _msg("", level="noAuthNoPriv", engine=b""),
        "unknown_user",
    ),
    (
        "empty user, inform",
        lambda: _msg("", level="noAuthNoPriv", engine=OWN, pdu=0xA6),
        "unknown_user",
    ),
    (
        "empty user, reportable trap, own engine",
        lambda: _msg("", level="noAuthNoPriv", engine=OWN, reportable=True),
        "unknown_user",
    ),
    (
        "empty user with privuser's keys",
        lambda: _msg("", level="authPriv", as_user="privuser"),
        "unknown_user",
    ),
    ("unknown user", lambda: _msg("mallory", level="noAuthNoPriv"), "unknown_user"),
    ("unknown user, authPriv", lambda: _msg("mallory", level="authPriv"), "unknown_user"),
    (
        "known user, unknown engine",
        lambda: _msg("privuser", level="authPriv", engine=OTHER),
        "unknown_engine_id",
    ),
    (
        "noAuth user, unknown engine",
        lambda: _msg("nouser", level="noAuthNoPriv", engine=OTHER),
        "unknown_engine_id",
    ),
    (
        "noAuth user, inform",
        lambda: _msg("nouser", level="noAuthNoPriv", engine=OWN, pdu=0xA6),
        "accepted",
    ),
    (
        "authPriv user, inform at authNoPriv",
        lambda: _msg("privuser", level="authNoPriv", engine=OWN, pdu=0xA6),
        "bad_security_level",
    ),
    (
        "authPriv user, Report PDU",
        lambda: _msg("privuser", level="authPriv", pdu=0xA8),
        "unexpected_pdu",
    ),
    (
        "authPriv user, GetRequest",
        lambda: _msg("privuser", level="authPriv", pdu=0xA0),
        "unexpected_pdu",
    ),
    (
        "noAuth user, Response PDU",
        lambda: _msg("nouser", level="noAuthNoPriv", pdu=0xA2),
        "unexpected_pdu",
    ),
    (
        "reportable trap with no user and no engine",
        lambda: _msg("", level="noAuthNoPriv", engine=b"", reportable=True),
        "unknown_user",
    ),
    (
        "empty user, authNoPriv with no digest",
        lambda: _msg("", level="authNoPriv", keys="wrong"),
        "unknown_user",
    ),
    (
        "user with a 3-byte engine ID",
        lambda: _msg("nouser", level="noAuthNoPriv", engine=b"abc"),
        "unknown_engine_id",
    ),
    (
        "user with no engine ID",
        lambda: _msg("nouser", level="noAuthNoPriv", engine=b""),
        "unknown_engine_id",
    ),
    # an inform sender's engine-ID discovery: answered with a Report, never an event
    (
        "discovery probe",
        lambda: _msg("", level="noAuthNoPriv", engine=b"", pdu=0xA0, reportable=True),
        "report",
    ),
]


@pytest.mark.parametrize(("case", "make", "outcome"), TABLE, ids=[row[0] for row in TABLE])
def test_who_may_create_a_v3_event(
    receivers: Receivers, case: str, make: Any, outcome: str
) -> None:
    got = receivers.outcome(make())
    assert got == outcome, f"{case}: {got}"


def test_an_accepted_event_names_the_configured_user(receivers: Receivers) -> None:
    before = len(receivers.events[True])
    receivers.outcome(_msg("privuser", level="authPriv"))
    (event,) = receivers.events[True][before:]
    assert (event.version, event.user) == ("3", "privuser")
