"""Refused traps in the log of a real ``netalert run``: rate-limited per source *and* reason.

A source whose traps are refused for one reason (a wrong community) must not
hide that the same source also sends something refused for another reason
(malformed datagrams); repeats of the same reason stay folded.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.faults import LINK_DOWN, AgentProcess, metric_values
from tests.support.ports import free_tcp_port, free_udp_port

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"

[traps]
listen = ["127.0.0.1:{traps}"]
communities = ["public"]
allow = ["127.0.0.0/8"]
"""


@pytest.fixture
def agent(tmp_path: Path, mib_cache: Path) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    proc = AgentProcess(
        tmp_path, CONFIG.format(http=http, traps=traps), http, mib_cache, traps_port=traps
    )
    yield proc
    proc.cleanup()


def wrong_community(request_id: int) -> bytes:
    return encode_message(
        version=1,
        community=b"not-the-community",
        pdu_type=PduType.TRAP_V2,
        request_id=request_id,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 100),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, LINK_DOWN),
        ],
    )


def test_each_reason_of_a_source_gets_its_log_line(agent: AgentProcess) -> None:
    agent.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.5", 0))
        for data in (wrong_community(1), wrong_community(2), b"\x30\x03\x02\x01", b"\x30\x80"):
            sock.sendto(data, ("127.0.0.1", agent.traps_port))
    deadline = time.monotonic() + 15
    while True:
        rejected = metric_values(agent.get("/metrics")[1], "netalert_traps_rejected_total")
        if rejected['reason="bad_community"'] + rejected['reason="malformed"'] >= 4:
            break
        assert time.monotonic() < deadline, (rejected, agent.log()[-3000:])
        time.sleep(0.05)
    assert (rejected['reason="bad_community"'], rejected['reason="malformed"']) == (2, 2)
    code, _ = agent.terminate()
    assert code == 0, agent.log()
    lines = [line for line in agent.log().splitlines() if "event=trap_rejected" in line]
    reasons = [line.split(" reason=")[1].split()[0] for line in lines]
    # one line per (source, reason) a minute: both reasons show, their repeats do not
    assert reasons == ["bad_community", "malformed"], lines
    assert all("source=127.0.0.5" in line for line in lines)
