"""Hostile wire data through a real `netalert run`: the log stays one line per event.

A v2c trap with a wrong community full of control characters, a v3 trap whose
user name carries a forged ``level=error`` line and terminal escapes, and a
linkDown whose ifDescr, ifName and ifAlias varbinds do the same (they reach the notification
and mail lines through the group key and the subject); the SMTP server refuses
the recipient with a reply that carries escapes too. Each datagram comes from
its own loopback address, so the per-source log rate limit lets each one log.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message, encode_oid, encode_tlv
from tests.support.faults import AgentProcess, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

FORGED = "level=error logger=netalert.service event=alert state=resolved"
COMMUNITY = b"pub\n\x1b]0;pwned\x07\r" + FORGED.encode()
# At most 32 bytes (an SnmpAdminString): LF, ANSI erase-line, CR, NUL, U+2028, NEL, CSI, DEL.
V3_USER = b"ops\n\x1b[2K\rlevel=error \xe2\x80\xa8\xc2\x85\xc2\x9b\x00\x7f"
IF_DESCR = b"eth0\n\x1b[31m" + FORGED.encode() + b"\x1b[0m\xe2\x80\xa8\xe2\x80\xa9\xc2\x85\t\x00"
LONG = b"\x1b" * 3000  # past log_line_max even unescaped: the line is cut, not split
LINE_MAX = 1024
SMTP_REPLY = "550 5.1.1 no such user \x1b[31mlevel=error\x7f"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
log_level = "debug"
log_line_max = {line_max}
{log_format}

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[[traps.users]]
user = "netalert"
auth_protocol = "SHA-256"
auth_password = "auth-password"

[[rules]]
name = "HostileLinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex", "ifDescr", "ifName", "ifAlias"]
summary = "link {{{{ ifDescr }}}} down"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
retry_max = "1s"

[[routes]]
to = ["noc@example.org"]
group_by = ["ifDescr", "ifName", "ifAlias"]
group_wait = "0s"
"""

# What a terminal or a line-based reader treats as a line break or a control:
# everything str.isprintable() refuses except the space (and the LF ending each line).
UNSAFE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _v2c(community: bytes, varbinds: list[tuple[str, SnmpType, object]]) -> bytes:
    return encode_message(
        version=1,
        community=community,
        pdu_type=PduType.TRAP_V2,
        request_id=7,
        varbinds=varbinds,  # type: ignore[arg-type]
    )


def _link_down(index: int, descr: bytes) -> bytes:
    return _v2c(
        b"public",
        [
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4200),
            (TRAP_OID, SnmpType.OID, LINK_DOWN),
            (f"1.3.6.1.2.1.2.2.1.1.{index}", SnmpType.INTEGER, index),
            (f"1.3.6.1.2.1.2.2.1.2.{index}", SnmpType.OCTET_STRING, descr),
            # a label is cut at 256 characters: three of them make the group key's line
            # longer than log_line_max
            (f"1.3.6.1.2.1.31.1.1.1.1.{index}", SnmpType.OCTET_STRING, descr),
            (f"1.3.6.1.2.1.31.1.1.1.18.{index}", SnmpType.OCTET_STRING, descr),
        ],
    )


def _int(value: int) -> bytes:
    return encode_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _v3_trap(user: bytes) -> bytes:
    """An authNoPriv v3 linkDown from ``user`` (the digest is never checked: unknown user)."""
    engine = bytes.fromhex("80001f8804686f7374696c65")
    varbind = encode_tlv(
        0x30, encode_tlv(0x06, encode_oid(TRAP_OID)) + encode_tlv(0x06, encode_oid(LINK_DOWN))
    )
    pdu = encode_tlv(0xA7, _int(1) + _int(0) + _int(0) + encode_tlv(0x30, varbind))
    scoped = encode_tlv(0x30, encode_tlv(0x04, engine) + encode_tlv(0x04, b"") + pdu)
    usm = encode_tlv(
        0x30,
        encode_tlv(0x04, engine)
        + _int(1)
        + _int(100)
        + encode_tlv(0x04, user)
        + encode_tlv(0x04, bytes(24))
        + encode_tlv(0x04, b""),
    )
    head = encode_tlv(0x30, _int(77) + _int(65507) + encode_tlv(0x04, b"\x01") + _int(3))
    return encode_tlv(0x30, _int(3) + head + encode_tlv(0x04, usm) + scoped)


def _send_from(source: str, port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, ("127.0.0.1", port))


def _wait(agent: AgentProcess, done: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while done not in agent.log():
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()[-4000:]
        assert time.monotonic() < deadline, f"no {done!r} in:\n{agent.log()[-4000:]}"
        time.sleep(0.05)


def _run(agent: AgentProcess, smtp: SmtpServer) -> list[str]:
    """Feeds every hostile input, stops the agent; returns its log lines (LF-split).

    Also checks that the line bound was hit and counted in /metrics."""
    smtp.fail("rcpt", SMTP_REPLY, times=None)
    agent.start()
    port = agent.traps_port
    _send_from("127.0.0.2", port, _v2c(COMMUNITY, [(TRAP_OID, SnmpType.OID, LINK_DOWN)]))
    _send_from("127.0.0.3", port, _v3_trap(V3_USER))
    _send_from("127.0.0.4", port, _link_down(4, IF_DESCR + LONG))
    deadline = time.monotonic() + 20
    while True:
        rejected = metric_values(agent.get("/metrics")[1], "netalert_traps_rejected_total")
        if rejected.get('reason="bad_community"') and rejected.get('reason="unknown_user"'):
            break
        assert time.monotonic() < deadline, rejected
        time.sleep(0.05)
    _wait(agent, "mail_failed")
    assert agent.metric("netalert_log_lines_truncated_total") >= 1
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
    raw = agent.log_path.read_bytes().decode("utf-8")  # strict: the log is valid UTF-8
    assert raw.endswith("\n")
    return raw[:-1].split("\n")


def _check_lines(lines: list[str]) -> None:
    for line in lines:
        assert not UNSAFE.search(line), ascii(line)
        assert len(line) <= LINE_MAX, ascii(line)
        assert line.startswith(("level=", "{", "--- start")), ascii(line)
    text = "\n".join(lines)
    assert "pwned" not in text  # a bad community is never logged (it may be a mistyped secret)
    assert "\x1b" not in text and "\u2028" not in text


Make = Callable[[str], AgentProcess]


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[Make]:
    """Makes the agent (not started) with an extra ``[agent]`` line; cleans up after."""

    def make(log_format: str) -> AgentProcess:
        http, traps = free_tcp_port(), free_udp_port()
        text = CONFIG.format(
            http=http,
            traps=traps,
            smtp=smtp_server.port,
            log_format=log_format,
            line_max=LINE_MAX,
        )
        made.append(AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps))
        return made[-1]

    made: list[AgentProcess] = []
    yield make
    for proc in made:
        proc.cleanup()


def test_text_log_one_line_per_event(agent: Make, smtp_server: SmtpServer) -> None:
    lines = _run(agent(""), smtp_server)
    _check_lines(lines)
    user = V3_USER.decode("utf-8", "replace")
    rejected = [line for line in lines if "trap_rejected" in line]
    assert len(rejected) == 2, rejected  # one per source: the forged text made no extra line
    (v3,) = [line for line in rejected if "reason=unknown_user" in line]
    detail = re.search(r' detail=("(?:[^"\\]|\\.)*")', v3)
    assert detail is not None, v3
    assert json.loads(detail.group(1)) == user  # escaped, and nothing lost
    assert not any(line.startswith("level=error logger=netalert.service") for line in lines)
    (failed,) = [line for line in lines if "event=mail_failed" in line]
    assert 'reply="550 5.1.1 no such user \\u001b[31mlevel=error\\u007f"' in failed
    (notification,) = [line for line in lines if "event=notification" in line]
    # the label escapes the device's text, the group key shows it as a repr, the log quotes it
    assert re.search(r"ifDescr='eth0(\\\\)+n(\\\\)+u001b\[31mlevel=error", notification)


def test_json_log_every_line_parses(agent: Make, smtp_server: SmtpServer) -> None:
    lines = _run(agent('log_format = "json"'), smtp_server)
    _check_lines(lines)
    records = [json.loads(line) for line in lines if not line.startswith("--- start")]
    assert all(isinstance(r, dict) and r["level"] and r["logger"] for r in records)
    user = V3_USER.decode("utf-8", "replace")
    (v3,) = [
        r for r in records if r.get("event") == "trap_rejected" and r["reason"] == "unknown_user"
    ]
    assert v3["detail"] == user and v3["source"] == "127.0.0.3"
    (failed,) = [r for r in records if r.get("event") == "mail_failed"]
    assert failed["reply"] == SMTP_REPLY
    (notification,) = [r for r in records if r.get("event") == "notification"]
    assert re.search(r"ifDescr='eth0(\\\\)+n(\\\\)+u001b\[31mlevel=error", notification["group"])
    started = [r for r in records if r.get("event") == "started"]
    assert len(started) == 1 and isinstance(started[0]["devices"], int)
