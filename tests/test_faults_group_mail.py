"""Fault test: a group of 1,200 alerts makes one bounded mail and no loop stall.

A real `netalert run` receives 1,200 v2c traps from one source, each with its
own trap OID and a dozen varbinds; a glob trap rule makes each trap OID an
alert of its own, and the route groups them by device into one group. The
group's mail lists at most ``[limits].max_alerts_per_mail`` (50) alerts and
counts the rest in one line, is at most ``max_mail_bytes`` (256 KB), and
``/healthz`` answers 200 all along with the event loop's lag under 100 ms.
Before the bound, the same group made a multi-megabyte mail whose rendering
blocked the loop for over a second.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.fault_checks import wait_mail
from tests.support.faults import AgentProcess, send_traps
from tests.support.order import LOAD
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

COUNT = 1_200
MAX_ALERTS = 50
MAX_BYTES = 262_144
MAX_LAG = 0.100  # seconds
RULE = "AnyTrap"
# Paced so the intake keeps up: each trap that makes a new alert costs the agent about
# a millisecond here, and a backlog read 64 datagrams at a time would lag the loop by itself.
SEND_SECONDS = 4.0

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
# storm control out of the way: every trap must become an alert
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

[limits]
max_active_alerts_per_rule = 5000  # the alert caps out of the way: this is about the mail

[[rules]]
name = "{rule}"
trap = "*"
severity = "warning"
summary = "group-test {{{{ trap }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = ["device"]
group_wait = "6s"
"""


def trap(number: int) -> bytes:
    """A v2c trap with enterprise trap OID ``...99999.0.number`` and twelve ~150-byte strings."""
    value = f"{number} ".encode() * 30
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=number,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4200),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, f"1.3.6.1.4.1.99999.0.{number}"),
            *(
                (
                    f"1.3.6.1.4.1.99999.1.{j}.0",
                    SnmpType.OCTET_STRING,
                    value,
                )
                for j in range(12)
            ),
        ],
    )


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.format(http=http, traps=traps, smtp=smtp_server.port, rule=RULE)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


@LOAD  # the event loop's lag stays under 100 ms while 1,200 traps arrive
def test_group_of_1200_alerts_makes_one_bounded_mail(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    datagrams = [trap(i) for i in range(COUNT)]
    sender = threading.Thread(
        target=send_traps, args=(agent.traps_port, datagrams), kwargs={"seconds": SEND_SECONDS}
    )
    sender.start()
    statuses: list[int] = []
    lags: list[float] = []
    deadline = time.monotonic() + 30
    # probe the agent until the group's mail is in, and a little after
    while not smtp_server.received() or len(statuses) < 160:
        tick = time.monotonic()
        try:
            statuses.append(agent.get("/healthz", timeout=2.0)[0])
        except OSError:
            statuses.append(0)
        lags.append(agent.metric("netalert_loop_lag_seconds"))
        assert time.monotonic() < deadline, (len(smtp_server.received()), agent.log()[-3000:])
        time.sleep(max(0.0, tick + 0.05 - time.monotonic()))
    sender.join(timeout=10)
    (message,) = wait_mail(smtp_server, 1, within=1)
    alerts = agent.query(f"SELECT COUNT(*) FROM alerts WHERE rule = '{RULE}'")[0][0]
    assert alerts >= 0.95 * COUNT, alerts
    print(f"mail {len(message.data)} bytes; worst loop lag {max(lags) * 1000:.1f} ms")

    assert len(message.data) <= MAX_BYTES, len(message.data)
    parsed = message.parsed()
    assert f":{alerts}]" in str(parsed["Subject"]), parsed["Subject"]  # the whole group's size
    text = parsed.get_body(("plain",))
    assert text is not None
    body = str(text.get_content())
    listed = len(set(re.findall(r"group-test (\S+)", body)))
    assert 0 < listed <= MAX_ALERTS, listed
    more = re.search(r"and ([\d,]+) more: ([\d,]+) firing, ([\d,]+) resolved", body)
    assert more is not None, body[-2000:]
    hidden, firing, resolved = (int(g.replace(",", "")) for g in more.groups())
    assert (hidden, firing, resolved) == (alerts - listed, alerts - listed, 0)
    html = parsed.get_body(("html",))
    assert html is not None and f"and {hidden:,} more" in str(html.get_content())

    assert set(statuses) == {200}, statuses
    assert max(lags) < MAX_LAG, f"loop lag (ms): {sorted(round(x * 1000) for x in lags)[-5:]}"
    assert agent.metric("netalert_mail_alerts_truncated_total") == hidden
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
