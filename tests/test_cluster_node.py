"""`netalert run` as a cluster node: real PostgreSQL, nats-server, snmpd and aiosmtpd,
several agents on loopback (issue 16, tests 1, 3 and the NATS half of 4)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netalert.cluster.shards import shard_of
from tests.support.fault_checks import assert_exactly_once, mail_config, wait_mail
from tests.support.faults import (
    ROOT,
    AgentProcess,
    delivered,
    link_down,
    metric_values,
    send_traps,
)
from tests.support.nats import NatsServer
from tests.support.order import timing
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.postgres import PostgresFactory
from tests.support.shared import python_path
from tests.support.smtp import SmtpServer
from tests.support.snmpd import SnmpdFactory

pytestmark = pytest.mark.e2e
# Leases of seconds, latency bounds: the tests run in the timing pass, in three lanes
# of about 30 s each (tests/support/order.py). The node that cannot reach NATS has no
# wall-time bound.
CLUSTER_A, CLUSTER_B, CLUSTER_C = timing("cluster-a"), timing("cluster-b"), timing("cluster-c")

SHARDS = 16
LEASE = 3.0  # seconds: short, so a handover fits the test's time


def _cluster(dsn: str, nats: str, node: str) -> str:
    return f"""
[cluster]
postgres = "{dsn}"
nats = "{nats}"
node = "{node}"
shards = {SHARDS}
lease = "{LEASE:g}s"
ack_wait = "5s"
"""


Nodes = Callable[[int, Callable[[int, int], str]], list[AgentProcess]]


@pytest.fixture
def nodes(tmp_path: Path, mib_cache: Path) -> Iterator[Nodes]:
    """Starts ``count`` agents at once; ``text(number, http_port)`` is each one's config."""
    started: list[AgentProcess] = []

    def start(count: int, text: Callable[[int, int], str]) -> list[AgentProcess]:
        agents = []
        for number in range(count):
            http = free_tcp_port()
            directory = tmp_path / f"node{number}"
            directory.mkdir()
            agents.append(AgentProcess(directory, text(number, http), http, mib_cache))
        started.extend(agents)
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda agent: agent.start(within=90.0), agents))
        return agents

    yield start
    for agent in started:
        agent.cleanup()


def _metric(agent: AgentProcess, name: str) -> float:
    status, body = agent.get("/metrics")
    assert status == 200, body
    return sum(metric_values(body, name).values())


def _settled(agents: list[AgentProcess], *, within: float = 30.0) -> None:
    """Waits until every node sees the others and the shards are split evenly."""
    deadline = time.monotonic() + within
    while True:
        nodes = [_metric(a, "netalert_cluster_nodes") for a in agents]
        owned = sorted(_metric(a, "netalert_shards_owned") for a in agents)
        even = sum(owned) == SHARDS and owned[-1] - owned[0] <= 1
        if nodes == [len(agents)] * len(agents) and even:
            time.sleep(0.5)  # the nodes act on what they own within a fraction of it
            return
        assert time.monotonic() < deadline, (nodes, owned)
        time.sleep(0.2)


def _trap_node(dsn: str, nats: str, smtp: SmtpServer) -> Callable[[int, int], tuple[str, int]]:
    def text(number: int, http: int) -> tuple[str, int]:
        traps = free_udp_port()
        body = mail_config(traps=traps, smtp=smtp.port, http=http)
        return body + _cluster(dsn, nats, f"node-{number}"), traps

    return text


def _start_trap_nodes(
    nodes: Nodes, count: int, postgres: str, nats: str, smtp: SmtpServer
) -> list[tuple[AgentProcess, int]]:
    ports: dict[int, int] = {}
    make = _trap_node(postgres, nats, smtp)

    def text(number: int, http: int) -> str:
        body, ports[number] = make(number, http)
        return body

    agents = nodes(count, text)
    _settled(agents)
    return [(agent, ports[n]) for n, agent in enumerate(agents)]


def _alerts(agent: AgentProcess) -> list[dict[str, object]]:
    status, body = agent.get("/api/alerts")
    assert status == 200, body
    alerts: list[dict[str, object]] = json.loads(body)["alerts"]
    return alerts


@CLUSTER_A
def test_one_trap_sent_to_two_nodes_makes_one_alert_and_one_mail(
    nodes: Nodes, postgres: str, nats_server: NatsServer, smtp_server: SmtpServer
) -> None:
    (a, a_port), (b, b_port) = _start_trap_nodes(nodes, 2, postgres, nats_server.url, smtp_server)
    status, body = a.get("/api/status")
    assert status == 200, body
    cluster = json.loads(body)["cluster"]  # what the status page shows
    assert {k: cluster[k] for k in ("node", "nodes", "shards", "shards_owned")} == {
        "node": "node-0",
        "nodes": 2,
        "shards": SHARDS,
        "shards_owned": SHARDS // 2,
    }
    assert (cluster["postgres"], cluster["nats"], cluster["publish_waiting"]) == (True, True, 0)
    datagram = link_down(7)
    send_traps(a_port, [datagram])
    send_traps(b_port, [datagram])  # the same bytes: a device pointing at two receivers
    wait_mail(smtp_server, 1, within=30.0)
    time.sleep(2.0)  # a second alert or mail would come now
    assert len(smtp_server.received()) == 1
    # both received it, one processed it: one alert, counted once
    assert _metric(a, "netalert_traps_received_total") == 1
    assert _metric(b, "netalert_traps_received_total") == 1
    alerts = _alerts(a) + _alerts(b)
    assert [(x["rule"], x["count"]) for x in alerts] == [("FaultLinkDown", 1)], alerts
    # another trap, again to both: a second alert, a second mail, nothing more
    send_traps(b_port, [link_down(8)])
    send_traps(a_port, [link_down(8)])
    assert_exactly_once(smtp_server, {7, 8})
    # a reload cannot change [cluster]: the node keeps running as it was
    assert a.proc is not None
    a.config.write_text(a.config_text.replace(f'lease = "{LEASE:g}s"', 'lease = "9s"'))
    os.kill(a.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30.0
    while "reload_failed" not in a.log():
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.1)
    assert 'problem="[cluster] changed: restart netalert to apply it"' in a.log()
    assert a.get("/healthz")[0] == 200


@CLUSTER_C
def test_nats_restart_while_traps_flow_degrades_health_and_loses_nothing(
    nodes: Nodes, postgres: str, nats_server: NatsServer, smtp_server: SmtpServer
) -> None:
    (a, a_port), (b, b_port) = _start_trap_nodes(nodes, 2, postgres, nats_server.url, smtp_server)
    send_traps(a_port, [link_down(i) for i in range(1, 11)], seconds=0.5)
    send_traps(b_port, [link_down(i) for i in range(11, 21)], seconds=0.5)
    wait_mail(smtp_server, 20, within=30.0)
    nats_server.stop()
    deadline = time.monotonic() + 15.0
    for agent in (a, b):
        while (health := agent.get("/healthz"))[0] != 503:
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert "NATS" in health[1], health
    # traps received meanwhile wait on their node, in order
    send_traps(a_port, [link_down(i) for i in range(21, 31)], seconds=0.5)
    send_traps(b_port, [link_down(i) for i in range(31, 41)], seconds=0.5)
    assert _metric(a, "netalert_cluster_publish_waiting") > 0
    time.sleep(6.0)  # longer than a publish waits for its answer: the node tries again
    nats_server.log_path.unlink(missing_ok=True)  # its readiness is read from a fresh log
    nats_server.start()
    deadline = time.monotonic() + 30.0
    for agent in (a, b):
        while (health := agent.get("/healthz"))[0] != 200:
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
    send_traps(a_port, [link_down(i) for i in range(41, 51)], seconds=0.5)
    assert_exactly_once(smtp_server, set(range(1, 51)), within=60.0)


@CLUSTER_B
def test_postgres_restart_degrades_health_and_the_node_takes_its_shards_again(
    nodes: Nodes,
    postgres_factory: PostgresFactory,
    nats_server: NatsServer,
    smtp_server: SmtpServer,
) -> None:
    server = postgres_factory()
    ((agent, port),) = _start_trap_nodes(nodes, 1, server.dsn, nats_server.url, smtp_server)
    server.stop()
    deadline = time.monotonic() + 15.0
    while (health := agent.get("/healthz"))[0] != 503:
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    assert "PostgreSQL" in health[1], health
    # its leases run out: it owns nothing, and a trap received meanwhile waits in the stream
    deadline = time.monotonic() + 2 * LEASE
    while _metric(agent, "netalert_shards_owned") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    send_traps(port, [link_down(3)])
    time.sleep(1.0)
    assert smtp_server.received() == []
    server.start()
    deadline = time.monotonic() + 30.0
    while (health := agent.get("/healthz"))[0] != 200:
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    _settled([agent])
    send_traps(port, [link_down(4)])
    assert_exactly_once(smtp_server, {3, 4})


def test_a_node_that_cannot_reach_nats_does_not_start(
    tmp_path: Path, mib_cache: Path, postgres: str
) -> None:
    nats = f"nats://127.0.0.1:{free_tcp_port()}"  # nothing listens there
    http = free_tcp_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[agent]\nstate_dir = "state"\nhttp = "127.0.0.1:{http}"\n[traps]\nenabled = false\n'
        + _cluster(postgres, nats, "lonely")
    )
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    env = {**os.environ, "NOTIFY_SOCKET": "", "PYTHONPATH": python_path(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "run", "-c", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"[cluster] nats: cannot use JetStream at {nats}" in done.stderr, done.stderr
    assert "cluster_left" in done.stderr  # its shards were handed back at once


DEVICES = 300
INTERVAL = 2.0


def _poll_node(dsn: str, nats: str, port: int, smtp: int) -> Callable[[int, int], str]:
    devices = "".join(
        f'[[devices]]\nname = "d{i:03d}"\naddress = "127.0.{1 + i // 250}.{2 + i % 250}:{port}"\n'
        for i in range(DEVICES)
    )

    def text(number: int, http: int) -> str:
        return f"""
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[snmp]
interval = "{INTERVAL:g}s"
timeout = "1s"
retries = 1
jitter = 0.0

[traps]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]

{devices}
{_cluster(dsn, nats, f"node-{number}")}
"""

    return text


def _last_polls(agent: AgentProcess) -> dict[str, float]:
    status, body = agent.get("/api/devices")
    assert status == 200, body
    return {
        d["name"]: float(d["last_poll"])
        for d in json.loads(body)["devices"]
        if d["last_poll"] is not None
    }


def _pollers_since(agents: list[AgentProcess], since: float) -> dict[str, list[int]]:
    """Device -> the nodes (by index) that polled it at or after ``since``."""
    out: dict[str, list[int]] = {f"d{i:03d}": [] for i in range(DEVICES)}
    for number, agent in enumerate(agents):
        for device, last in _last_polls(agent).items():
            if last >= since:
                out[device].append(number)
    return out


@CLUSTER_B
def test_300_devices_over_three_nodes_are_each_polled_by_one_and_handed_over(
    nodes: Nodes,
    postgres: str,
    nats_server: NatsServer,
    smtp_server: SmtpServer,
    snmpd_factory: SnmpdFactory,
) -> None:
    device = snmpd_factory(host="0.0.0.0", community="public")  # answers on every 127.x.y.z
    agents = nodes(3, _poll_node(postgres, nats_server.url, device.port, smtp_server.port))
    _settled(agents)
    polls = [_metric(a, "netalert_polls_total") for a in agents]
    since = time.time()
    time.sleep(2 * INTERVAL + 1.0)
    seen = _pollers_since(agents, since)
    wrong = {d: n for d, n in seen.items() if len(n) != 1}
    assert not wrong, f"polled by none or by several nodes: {wrong}"
    # once per interval: no device polled twice as often by its one node either
    done = sum(_metric(a, "netalert_polls_total") for a in agents) - sum(polls)
    elapsed = time.time() - since
    assert DEVICES * (elapsed / INTERVAL - 1) <= done <= DEVICES * (elapsed / INTERVAL + 1), done
    mine = {d for d, n in seen.items() if n == [2]}
    assert mine, seen
    # one node stops: the other two take its shards and poll its devices
    agents[2].terminate()
    stopped = time.time()
    deadline = stopped + LEASE + INTERVAL + 3.0
    while True:
        seen = _pollers_since(agents[:2], stopped)
        if all(seen[d] for d in mine):
            break
        assert time.time() < deadline, {d: seen[d] for d in mine if not seen[d]}
        time.sleep(0.2)
    _settled(agents[:2])
    since = time.time()
    time.sleep(2 * INTERVAL + 1.0)
    seen = _pollers_since(agents[:2], since)
    wrong = {d: n for d, n in seen.items() if len(n) != 1}
    assert not wrong, f"after the handover, polled by none or by both: {wrong}"


@CLUSTER_A
def test_traps_after_idle_are_mailed_at_once(
    nodes: Nodes, postgres: str, nats_server: NatsServer, smtp_server: SmtpServer
) -> None:
    """A trap that comes after a quiet while reaches the SMTP server within a fraction of a
    second: a shard's consumer that waits between polls hands it over at once. (Before, a
    trap was often held until a poll request the consumer had left on the server ran out,
    up to a second: the cluster bench's p99 of 119 ms against 7 ms on one node.)"""
    ((agent, port),) = _start_trap_nodes(nodes, 1, postgres, nats_server.url, smtp_server)
    send_traps(port, [link_down(1)])  # the first render and SMTP connection, out of the way
    wait_mail(smtp_server, 1, within=30.0)
    # three sources of three shards (a trap without a device goes by its source address)
    sources: dict[int, str] = {}
    for host in range(1, 60):
        sources.setdefault(shard_of(f"127.0.2.{host}", SHARDS), f"127.0.2.{host}")
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    sent: dict[int, float] = {}
    arrived: dict[int, float] = {}
    seen = 0

    def watch(until: float) -> None:  # notes when each mail arrives, to 5 ms
        nonlocal seen
        while time.monotonic() < until:
            got = smtp_server.received()
            _, by_index = delivered(got[seen:])
            seen = len(got)
            for index in by_index:
                arrived.setdefault(index, time.monotonic())
            time.sleep(0.005)

    try:
        for sock, source in zip(senders, list(sources.values())[:3], strict=True):
            sock.bind((source, 0))
        index = 100
        for _ in range(10):
            watch(time.monotonic() + 1.2)  # idle: the consumers' polls run out meanwhile
            for _ in range(2):  # then two traps on each shard, a bit apart
                for sock in senders:
                    index += 1
                    sock.sendto(link_down(index), ("127.0.0.1", port))
                    sent[index] = time.monotonic()
                watch(time.monotonic() + 0.3)
        deadline = time.monotonic() + 30.0
        while not sent.keys() <= arrived.keys() and time.monotonic() < deadline:
            watch(time.monotonic() + 0.1)
    finally:
        for sock in senders:
            sock.close()
    assert sent.keys() <= arrived.keys(), sorted(sent.keys() - arrived.keys())
    late = {i: round((arrived[i] - at) * 1000) for i, at in sent.items() if arrived[i] - at > 0.4}
    # fixed: some 10 to 40 ms each (publish, commit, mail queue, SMTP); before, several a run
    # took 200 ms to a second
    assert not late, f"mailed late (ms): {late}"
    assert agent.get("/healthz")[0] == 200
