"""SNMPv3 on a cluster: the senders' clocks are shared, so a replay to another node is refused.

Real `netalert run` nodes share a private PostgreSQL and nats-server; the traps are real
net-snmp ``snmptrap -v 3`` authPriv datagrams (``-e`` the sender's engine ID, ``-Z`` its
boots and time), captured on a socket of the test and sent to the nodes as they are:

* a trap accepted by node A, replayed to node B after A also accepted a later trap of the
  same engine: B refuses it (``not_in_time_window``) although B never saw the engine
  itself; a trap with a lower boots than A learned is refused by B too (issue 16);
* the stream's duplicate window is 1 s and the replay comes later, so it is the USM check
  that refuses it, not the stream's ``Nats-Msg-Id`` dedup (the refusal is counted by the
  receiver, before anything is published);
* a device polled with v3 by one node sends a trap to the other, which has no
  ``engine_ids`` for it: it takes the trap with the engine ID the poller learned;
* an inform names the receiving node's own engine ID, which is per node: the same inform
  sent to another node is refused there as ``unknown_engine_id``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netalert.cluster.shards import shard_of
from tests.support.fault_checks import assert_exactly_once, mail_config, wait_mail
from tests.support.faults import AgentProcess, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import DEFAULT_USER, SnmpdFactory
from tests.test_cluster_agents import (
    _owners,
    nodes,  # noqa: F401  (fixture)
)
from tests.test_cluster_node import SHARDS, _cluster

pytestmark = pytest.mark.e2e

ENGINE = "8000000001020304"  # the sender's (the device's) engine ID
USER, AUTH, PRIV = "shaaes", "auth-shaaes", "priv-shaaes"

_V3 = f"""
[[traps.users]]
user = "{USER}"
auth_protocol = "SHA"
auth_password = "{AUTH}"
priv_protocol = "AES-128"
priv_password = "{PRIV}"
engine_ids = ["{ENGINE}"]
"""


def _start(
    tmp_path: Path,
    names: list[str],
    postgres: str,
    nats: str,
    smtp: SmtpServer,
    mib_cache: Path,
    started: list[AgentProcess],
    *,
    extra: str = "",
) -> list[AgentProcess]:
    agents = []
    for name in names:
        http, traps = free_tcp_port(), free_udp_port()
        text = (
            mail_config(traps=traps, smtp=smtp.port, http=http)
            + _V3
            + _cluster(postgres, nats, name)
            + 'duplicate_window = "1s"\n'  # [cluster] is the last section
            + extra
        )
        directory = tmp_path / name
        directory.mkdir()
        agents.append(AgentProcess(directory, text, http, mib_cache, traps_port=traps))
    started.extend(agents)
    with ThreadPoolExecutor(len(agents)) as pool:
        list(pool.map(lambda agent: agent.start(within=90.0), agents))
    deadline = time.monotonic() + 30.0
    while True:
        owned = sorted(_metric(a, "netalert_shards_owned") for a in agents)
        if sum(owned) == SHARDS and owned[-1] - owned[0] <= 1:
            return agents
        assert time.monotonic() < deadline, owned
        time.sleep(0.2)


def _metric(agent: AgentProcess, name: str, **labels: str) -> float:
    status, body = agent.get("/metrics")
    assert status == 200, body
    values = metric_values(body, name)
    if not labels:
        return sum(values.values())
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return sum(v for k, v in values.items() if wanted in k)


def _capture(workdir: Path, index: int, boots: int, engine_time: int) -> bytes:
    """A real snmptrap authPriv linkDown (``ifIndex`` = ``index``) with the engine's
    ``boots`` and ``engine_time``, as it went over the wire."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        argv = [
            "snmptrap", "-v", "3", "-u", USER, "-l", "authPriv", "-a", "SHA", "-A", AUTH,
            "-x", "AES", "-X", PRIV, "-e", f"0x{ENGINE}", "-Z", f"{boots},{engine_time}",
            f"127.0.0.1:{sock.getsockname()[1]}", "", "1.3.6.1.6.3.1.1.5.3",
            f"1.3.6.1.2.1.2.2.1.1.{index}", "i", str(index),
        ]  # fmt: skip
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir))
        subprocess.run(argv, check=True, timeout=20, env=env, capture_output=True)
        return sock.recv(65535)


def _send(agent: AgentProcess, datagram: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, ("127.0.0.1", agent.traps_port))


def _wait_metric(agent: AgentProcess, name: str, value: float, **labels: str) -> None:
    deadline = time.monotonic() + 10.0
    while (seen := _metric(agent, name, **labels)) < value:
        assert time.monotonic() < deadline, f"{name}{labels} = {seen}, not {value}"
        time.sleep(0.05)


def test_a_trap_replayed_to_another_node_is_refused(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],  # noqa: F811
) -> None:
    first = _capture(tmp_path, 1, 7, 1000)
    later = _capture(tmp_path, 2, 7, 1300)  # 300 s later by the engine's clock
    lower = _capture(tmp_path, 3, 6, 5000)  # an older boots: before the engine restarted
    a, b = _start(tmp_path, ["na", "nb"], postgres, nats_url, smtp_server, mib_cache, nodes)

    _send(a, first)
    _send(a, later)
    sent = time.monotonic()
    wait_mail(smtp_server, 2, within=30.0)
    assert _metric(a, "netalert_traps_received_total", version="3") == 2
    # B learns A's reference through PostgreSQL within [cluster] usm_sync (1 s) or two
    _wait_metric(b, "netalert_cluster_usm_engines", 1)
    time.sleep(max(0.0, sent + 2.0 - time.monotonic()))  # past the duplicate window (1 s)

    # B never received a trap of this engine: it knows A's reference, boots 7 time 1300
    _send(b, lower)
    _wait_metric(b, "netalert_traps_rejected_total", 1, reason="not_in_time_window")
    _send(b, first)  # the very datagram A accepted, 300 s behind what A learned
    _wait_metric(b, "netalert_traps_rejected_total", 2, reason="not_in_time_window")
    assert _metric(b, "netalert_traps_received_total", version="3") == 0
    assert "engine_id=8000000001020304 boots=6 time=5000 known_boots=7" in b.log()
    time.sleep(1.0)  # an alert of ifIndex 1 again or of 3 would be mailed now
    assert_exactly_once(smtp_server, {1, 2})


def _engine_id(agent: AgentProcess) -> str:
    return (agent.state / "engine_id").read_text().strip()


def _inform(workdir: Path, agent: AgentProcess, index: int, *extra: str) -> None:
    """A real snmpinform authPriv linkDown to ``agent`` (one try, one second)."""
    argv = [
        "snmpinform", "-v", "3", "-u", USER, "-l", "authPriv", "-a", "SHA", "-A", AUTH,
        "-x", "AES", "-X", PRIV, "-t", "1", "-r", "0", *extra,
        f"127.0.0.1:{agent.traps_port}", "", "1.3.6.1.6.3.1.1.5.3",
        f"1.3.6.1.2.1.2.2.1.1.{index}", "i", str(index),
    ]  # fmt: skip
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir / f"informs-{agent.directory.name}"))
    subprocess.run(argv, check=False, timeout=20, env=env, capture_output=True)


def test_an_inform_is_for_the_node_it_names(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],  # noqa: F811
) -> None:
    a, b = _start(tmp_path, ["na", "nb"], postgres, nats_url, smtp_server, mib_cache, nodes)
    own_a, own_b = _engine_id(a), _engine_id(b)
    assert own_a != own_b  # per node: each made its own in its state directory
    _inform(tmp_path, a, 4)  # discovers A's engine ID and clock, then informs
    wait_mail(smtp_server, 1, within=30.0)
    assert _metric(a, "netalert_traps_received_total", version="3") == 1
    _inform(tmp_path, b, 5, "-e", f"0x{own_a}")  # A's engine ID, to B
    _wait_metric(b, "netalert_traps_rejected_total", 1, reason="unknown_engine_id")
    assert _metric(b, "netalert_traps_received_total", version="3") == 0
    _inform(tmp_path, b, 6)  # B's own engine ID, discovered: accepted
    time.sleep(1.0)
    assert_exactly_once(smtp_server, {4, 6})


def test_a_devices_traps_are_taken_by_a_node_that_does_not_poll_it(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    snmpd_factory: SnmpdFactory,
    nodes: list[AgentProcess],  # noqa: F811
) -> None:
    device = snmpd_factory()  # v3 user netalert, SHA-256 / AES-128
    user = DEFAULT_USER
    polled = f"""
[snmp]
interval = "1s"
timeout = "500ms"
retries = 0

[[devices]]
name = "sw1"
address = "{device.address}"
credentials = "v3"

[credentials.v3]
user = "{user.name}"
auth_protocol = "{user.auth_protocol}"
auth_password = "{user.auth_password}"
priv_protocol = "{user.priv_protocol}"
priv_password = "{user.priv_password}"

[[traps.users]]
user = "{user.name}"
auth_protocol = "{user.auth_protocol}"
auth_password = "{user.auth_password}"
priv_protocol = "{user.priv_protocol}"
priv_password = "{user.priv_password}"
"""
    a, b = _start(
        tmp_path, ["na", "nb"], postgres, nats_url, smtp_server, mib_cache, nodes, extra=polled
    )
    # no engine_ids configured: only the node polling sw1 learns its engine ID itself
    owner = _owners(postgres)[shard_of("sw1", SHARDS)]
    other = b if owner == "na" else a
    deadline = time.monotonic() + 10.0  # the owner polls (1 s), the other reads (1 s)
    while time.monotonic() < deadline and not _metric(other, "netalert_cluster_usm_adopted_total"):
        time.sleep(0.1)
    argv = [
        "snmptrap", "-v", "3", "-u", user.name, "-l", "authPriv", "-a", "SHA-256",
        "-A", user.auth_password, "-x", "AES", "-X", user.priv_password,
        "-e", f"0x{device.engine_id.hex()}", f"127.0.0.1:{other.traps_port}", "",
        "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.9", "i", "9",
    ]  # fmt: skip
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(tmp_path / "sender"))
    subprocess.run(argv, check=True, timeout=20, env=env, capture_output=True)
    _wait_metric(other, "netalert_traps_received_total", 1, version="3")
    assert _metric(other, "netalert_traps_rejected_total") == 0
    assert_exactly_once(smtp_server, {9})
