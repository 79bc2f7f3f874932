"""Hostile datagrams against a real `netalert run`: the attacks of the security review.

Each test sends the bytes an attacker would to the agent's trap port and
checks what an operator would see: no alert, no mail, the refusal counted by
reason in /metrics, and /healthz answering throughout.

The attacks on the default config all go to one agent (an agent start with its trap
workers costs seconds of CPU): each test uses ifIndex values of its own and counts the
refusals from the figures it finds, and the agent must still stop cleanly after them.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.berenc import encode_tlv
from netalert.snmp.wire.berv3 import decode_v3_header
from tests.support.faults import (
    AgentProcess,
    kept_running,
    link_down,
    metric_values,
    send_traps,
)
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer
from tests.support.v3build import build_v3, int_tlv, scoped_pdu, trap_varbinds, varbind

ENGINE = bytes.fromhex("80000000c0ffee0102")
ENGINE_A = bytes.fromhex("80000000aaaaaaaa01")
ENGINE_B = bytes.fromhex("80000000bbbbbbbb02")

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"
device_unreachable = false

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
communities = ["public"]
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000
{extra}

[[traps.users]]
user = "privuser"
auth_protocol = "SHA"
auth_password = "auth-privuser"
priv_protocol = "AES-128"
priv_password = "priv-privuser"
engine_ids = ["{engine}"]

[[traps.users]]
user = "nouser"
engine_ids = ["{engine}"]

{devices}

[[rules]]
name = "AnyLinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "link ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = ["..."]
group_wait = "0s"
"""


def _agent(
    tmp_path: Path, smtp: SmtpServer, mib_cache: Path, *, extra: str = "", devices: str = ""
) -> AgentProcess:
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.format(
        http=http,
        traps=traps,
        smtp=smtp.port,
        engine=ENGINE.hex(),
        extra=extra,
        devices=devices,
    )
    return AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, mib_cache: Path
) -> Iterator[tuple[AgentProcess, SmtpServer]]:
    """One started agent of the default config and its SMTP server for the module's
    attacks; stopped at the end, where it must exit 0."""
    smtp = SmtpServer()
    smtp.start()
    try:
        with kept_running(_agent(tmp_path_factory.mktemp("attacked"), smtp, mib_cache)) as proc:
            yield proc, smtp
    finally:
        smtp.stop()


@pytest.fixture
def agent(shared: tuple[AgentProcess, SmtpServer]) -> AgentProcess:
    proc = shared[0]
    assert proc.proc is not None and proc.proc.poll() is None, proc.log()[-4000:]
    return proc


# one worker takes every test of the shared agent, so it starts once
ON_SHARED = pytest.mark.xdist_group("security_agent")


def _rejected(agent: AgentProcess) -> dict[str, float]:
    status, body = agent.get("/metrics")
    assert status == 200
    values = metric_values(body, "netalert_traps_rejected_total")
    return {labels.split('"')[1]: value for labels, value in values.items()}


def _wait_rejected(
    agent: AgentProcess,
    reason: str,
    count: int,
    *,
    since: dict[str, float] | None = None,
    within: float = 10.0,
) -> None:
    """Waits until ``count`` refusals for ``reason`` were counted (after ``since``, the
    figures taken before the test sent anything)."""
    wanted = count + (since or {}).get(reason, 0)
    deadline = time.monotonic() + within
    while _rejected(agent).get(reason, 0) < wanted:
        assert time.monotonic() < deadline, f"{reason}: {_rejected(agent)}\n{agent.log()[-3000:]}"
        time.sleep(0.05)


def _alert_indexes(agent: AgentProcess) -> dict[int, str]:
    """ifIndex → device of every AnyLinkDown alert."""
    rows = agent.query("SELECT device, labels FROM alerts WHERE rule = 'AnyLinkDown'")
    return {int(json.loads(str(labels))["ifIndex"]): str(device) for device, labels in rows}


def _wait_alert(agent: AgentProcess, index: int, *, within: float = 15.0) -> dict[int, str]:
    deadline = time.monotonic() + within
    while index not in (alerts := _alert_indexes(agent)):
        assert time.monotonic() < deadline, f"no alert for ifIndex {index}:\n{agent.log()[-3000:]}"
        time.sleep(0.05)
    return alerts


def _v3(user: str | bytes, index: int, *, level: str, engine: bytes = ENGINE, **kw: Any) -> bytes:
    keyed = {"privuser": ("SHA", "AES-128")}.get(
        user if isinstance(user, str) else "", (None, None)
    )
    auth, priv = keyed
    return build_v3(
        user,
        scoped_pdu(trap_varbinds(index), context_engine=engine),
        engine=engine,
        level=level,
        auth=auth or ("SHA" if level != "noAuthNoPriv" else None),
        auth_password="auth-privuser",
        priv=priv or ("AES-128" if level == "authPriv" else None),
        priv_password="priv-privuser",
        boots=1,
        time=int(time.time()) % 100_000,
        **kw,
    )


def _mail_text(smtp: SmtpServer, marker: str, *, within: float = 15.0) -> str:
    """The text part of the first mail whose body holds ``marker``."""
    deadline = time.monotonic() + within
    while True:
        for message in list(smtp.messages):
            parsed = email.message_from_bytes(message.data, policy=email.policy.default)
            part = parsed.get_body(("plain",))
            text = part.get_content() if part is not None else ""
            if marker in text:
                return str(text)
        assert time.monotonic() < deadline, f"no mail with {marker!r}"
        time.sleep(0.05)


def _send_from(source: str, port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, ("127.0.0.1", port))


@ON_SHARED
def test_forged_v3_traps_raise_no_alert(
    agent: AgentProcess, shared: tuple[AgentProcess, SmtpServer]
) -> None:
    """The SNMPv3 bypass: an empty user name with an engine ID, and a downgraded user."""
    smtp_server = shared[1]
    before = _rejected(agent)
    forged = [
        _v3(b"", 901, level="noAuthNoPriv"),  # the empty user, any engine ID
        _v3(b"", 902, level="noAuthNoPriv", engine=ENGINE_B),
        _v3("privuser", 903, level="authNoPriv"),  # right auth key, privacy dropped
        _v3("mallory", 904, level="noAuthNoPriv"),
    ]
    send_traps(agent.traps_port, forged)
    send_traps(agent.traps_port, [link_down(7)])  # a real trap behind them: proves delivery
    _wait_alert(agent, 7)
    _wait_rejected(agent, "unknown_user", 3, since=before)
    _wait_rejected(agent, "bad_security_level", 1, since=before)
    assert set(_alert_indexes(agent)) & {7, 901, 902, 903, 904} == {7}
    time.sleep(0.3)  # the outbox sender had time to mail anything there was to mail
    bodies = b"".join(message.data for message in smtp_server.messages)
    assert b"ifIndex=7" in bodies
    assert not any(f"ifIndex={i}".encode() in bodies for i in range(901, 905))


@ON_SHARED
def test_a_forged_clock_cannot_lock_out_genuine_traps(agent: AgentProcess) -> None:
    """Found by fuzzing: an unauthenticated empty-user message with boots 2**31 - 2 once
    became the engine's clock reference, so every genuine trap was refused as stale."""
    before = _rejected(agent)
    poison = build_v3(
        b"",
        scoped_pdu(trap_varbinds(41), context_engine=ENGINE),
        engine=ENGINE,
        level="authNoPriv",  # the flag, with no key behind it
        boots=2**31 - 2,
        time=2**31 - 1,
    )
    send_traps(agent.traps_port, [poison])
    _wait_rejected(agent, "unknown_user", 1, since=before)
    send_traps(agent.traps_port, [_v3("privuser", 42, level="authPriv")])
    _wait_alert(agent, 42)
    assert 41 not in _alert_indexes(agent)
    assert _rejected(agent).get("not_in_time_window", 0) == before.get("not_in_time_window", 0)


@ON_SHARED
def test_configured_levels_still_pass(agent: AgentProcess) -> None:
    before = _rejected(agent)
    send_traps(agent.traps_port, [_v3("privuser", 11, level="authPriv")])
    send_traps(agent.traps_port, [_v3("nouser", 12, level="noAuthNoPriv")])
    _wait_alert(agent, 11)
    _wait_alert(agent, 12)
    assert _rejected(agent).get("bad_security_level", 0) == before.get("bad_security_level", 0)


def _huge_oid_trap(community: bytes, size: int) -> bytes:
    """A v2c trap whose one varbind's OID is ``size`` bytes of continuation (0x81 ...)."""
    oid = encode_tlv(0x06, b"\x2b" + b"\x81" * (size - 2) + b"\x01")
    body = (
        int_tlv(1) + int_tlv(0) + int_tlv(0) + encode_tlv(0x30, encode_tlv(0x30, oid + b"\x05\x00"))
    )
    return encode_tlv(0x30, int_tlv(1) + encode_tlv(0x04, community) + encode_tlv(0xA7, body))


def _probe(agent: AgentProcess, during: float) -> list[float]:
    """/healthz latencies, one probe every 50 ms for ``during`` seconds."""
    latencies = []
    end = time.monotonic() + during
    while time.monotonic() < end:
        tick = time.monotonic()
        try:
            status = agent.get("/healthz", timeout=5.0)[0]
        except OSError:
            status = 0
        latencies.append(time.monotonic() - tick if status == 200 else 99.0)
        time.sleep(0.05)
    return latencies


@ON_SHARED
def test_huge_oids_from_a_stranger_do_not_stall_the_loop(agent: AgentProcess) -> None:
    """30 datagrams of 65 KB with a wrong community once stalled the loop for ~10 s."""
    before = _rejected(agent)
    datagram = _huge_oid_trap(b"wrong", 65_000)
    assert len(datagram) < 65_507
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(30):
            sock.sendto(datagram, ("127.0.0.1", agent.traps_port))
    latencies = _probe(agent, 1.0)
    _wait_rejected(agent, "bad_community", 30, since=before)
    assert max(latencies) < 1.0, latencies
    # With the right community, the OID is refused by its bound, cheaply too.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(30):
            sock.sendto(_huge_oid_trap(b"public", 65_000), ("127.0.0.1", agent.traps_port))
    latencies = _probe(agent, 1.0)
    _wait_rejected(agent, "malformed", 30, since=before)
    assert max(latencies) < 1.0, latencies


def _many_varbinds_v3(count: int, *, inform_to: bytes = b"") -> bytes:
    """A noAuthNoPriv trap, or with ``inform_to`` an authPriv inform to that engine ID."""
    extra = [varbind(f"1.3.6.1.4.1.99999.{i}", int_tlv(i)) for i in range(count)]
    if not inform_to:
        return build_v3(
            "nouser",
            scoped_pdu(trap_varbinds(31) + extra, context_engine=ENGINE),
            engine=ENGINE,
            level="noAuthNoPriv",
        )
    return build_v3(
        "privuser",
        scoped_pdu(trap_varbinds(32) + extra, pdu=0xA6, context_engine=ENGINE),
        engine=inform_to,
        level="authPriv",
        auth="SHA",
        auth_password="auth-privuser",
        priv="AES-128",
        priv_password="priv-privuser",
        boots=1,
        time=5,
    )


@ON_SHARED
def test_the_pysnmp_path_is_bounded(agent: AgentProcess) -> None:
    """A 63 KB v3 message with thousands of varbinds once cost ~270 ms in pysnmp."""
    before = _rejected(agent)
    own = bytes.fromhex((agent.state / "engine_id").read_text().strip())
    inform = _many_varbinds_v3(3_500, inform_to=own)  # informs go to pysnmp: bounded by size
    assert 60_000 < len(inform) < 65_000
    trap = _many_varbinds_v3(3_500)  # plaintext: the own decoder stops at max_varbinds (256)
    many = _many_varbinds_v3(400)
    send_traps(agent.traps_port, [inform] * 10 + [trap, many])
    _wait_rejected(agent, "too_large", 10, since=before)
    _wait_rejected(agent, "too_many_varbinds", 2, since=before)
    latencies = _probe(agent, 0.3)
    assert max(latencies) < 1.0, latencies
    assert not {31, 32} & set(_alert_indexes(agent))


def _discovery_probe(msg_id: int) -> bytes:
    return build_v3(
        b"",
        scoped_pdu([], pdu=0xA0),
        engine=b"",
        level="noAuthNoPriv",
        reportable=True,
        boots=0,
        time=0,
        msg_id=msg_id,
    )


def test_discovery_reports_are_rate_limited_and_name_a_random_engine(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    agent = _agent(tmp_path, smtp_server, mib_cache, extra="report_rate = 1.0\nreport_burst = 3")
    try:
        agent.start()
        stored = bytes.fromhex((agent.state / "engine_id").read_text().strip())
        # format 5 (octets) and 12 random bytes, not the host's name (format 4, text);
        # a short host name may turn up in random bytes by chance (once seen: "vm")
        assert stored[:5] == b"\x80\x00\x1f\x88\x05" and len(stored) == 17
        hostname = socket.gethostname().encode()
        assert len(hostname) < 6 or hostname not in stored
        replies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.5)
            for number in range(20):
                sock.sendto(_discovery_probe(1000 + number), ("127.0.0.1", agent.traps_port))
            try:
                while True:
                    replies.append(sock.recv(65535))
            except TimeoutError:
                pass
        assert 1 <= len(replies) <= 4, len(replies)  # the burst (3), one more token at most
        header = decode_v3_header(replies[0])
        assert not isinstance(header, Exception)
        assert getattr(header, "engine_id", None) == stored
        assert agent.metric("netalert_trap_reports_limited_total") >= 16
        # The engine ID survives a restart: inform senders keep what they discovered.
        agent.terminate()
        agent.start()
        assert bytes.fromhex((agent.state / "engine_id").read_text().strip()) == stored
    finally:
        agent.cleanup()


_DEVICES = f"""
[[devices]]
name = "edge-a"
address = "127.0.0.2"
engine_id = "{ENGINE_A.hex()}"
enabled = false

[[devices]]
name = "edge-b"
address = "127.0.0.3"
enabled = false

[[devices]]
name = "edge-c"
address = "127.0.0.4"
enabled = false

[[devices]]
name = "twin-1"
address = "127.0.0.6"
enabled = false

[[devices]]
name = "twin-2"
address = "127.0.0.6"
enabled = false
"""


def _relayed(index: int, origin: str) -> bytes:
    """A v2c linkDown that names ``origin`` in snmpTrapAddress.0, as snmptrapd forwards it."""
    return link_down(index, extra=(("1.3.6.1.6.3.18.1.3.0", SnmpType.IP_ADDRESS, origin),))


def test_traps_are_credited_by_identity_then_relay_then_source(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    agent = _agent(
        tmp_path, smtp_server, mib_cache, extra='relays = ["127.0.0.9/32"]', devices=_DEVICES
    )
    try:
        agent.start()
        port = agent.traps_port
        # edge-a's authenticated trap, replayed from edge-b's address: still edge-a's.
        _send_from("127.0.0.3", port, _v3("privuser", 21, level="authPriv", engine=ENGINE_A))
        # A relay forwards edge-c's trap: credited to edge-c, not to the relay.
        _send_from("127.0.0.9", port, _relayed(22, "127.0.0.4"))
        # The same claim from a non-relay is ignored: credited by its source (no device).
        _send_from("127.0.0.5", port, _relayed(23, "127.0.0.4"))
        # A plain v2c trap from edge-b: its source.
        _send_from("127.0.0.3", port, link_down(24))
        # Two devices share an address: the first is credited, and it is said.
        _send_from("127.0.0.6", port, link_down(25))
        for index in (21, 22, 23, 24, 25):
            alerts = _wait_alert(agent, index)
        assert {i: alerts[i] for i in (21, 22, 23, 24, 25)} == {
            21: "edge-a",
            22: "edge-c",
            23: "127.0.0.5",  # no device: the alert names the source
            24: "edge-b",
            25: "twin-1",
        }
        assert "event=traps_shared_source address=127.0.0.6 devices=twin-1,twin-2" in agent.log()
        assert agent.metric("netalert_traps_shared_source_total") == 1
        # The mail names the device credited and the address the trap came from.
        body = _mail_text(smtp_server, "ifIndex=21")
        assert "Device:   edge-a" in body, body
        assert "Source:   127.0.0.3:" in body and "(SNMPv3 user privuser)" in body, body
    finally:
        agent.cleanup()


def _snmpinform(agent: AgentProcess, index: int, auth_password: str) -> int:
    """net-snmp's snmpinform of a linkDown (ifIndex ``index``) as privuser: its exit status
    (0 only when an authentic Response came back)."""
    argv = [
        "snmpinform", "-v", "3", "-u", "privuser", "-l", "authPriv",
        "-a", "SHA", "-A", auth_password, "-x", "AES", "-X", "priv-privuser",
        "-t", "2", "-r", "0", f"127.0.0.1:{agent.traps_port}", "", "1.3.6.1.6.3.1.1.5.3",
        f"1.3.6.1.2.1.2.2.1.1.{index}", "i", str(index),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode


def _v3_fast(agent: AgentProcess) -> float:
    status, body = agent.get("/metrics")
    assert status == 200
    return sum(metric_values(body, "netalert_traps_v3_fast_total").values())


@ON_SHARED
def test_v3_informs_are_answered_on_the_fast_path_and_forged_ones_are_not(
    agent: AgentProcess,
) -> None:
    refused = _rejected(agent)
    before = _v3_fast(agent)
    assert _snmpinform(agent, 61, "auth-privuser") == 0  # it got the Response
    _wait_alert(agent, 61)
    assert _v3_fast(agent) == before + 1  # answered on the fast path, not by pysnmp
    # A forged inform (wrong key): no Response (snmpinform fails), no alert, counted.
    assert _snmpinform(agent, 62, "not-the-password") != 0
    _wait_rejected(agent, "bad_digest", 1, since=refused)
    time.sleep(0.3)
    assert 62 not in _alert_indexes(agent)
    assert _v3_fast(agent) == before + 1
