"""`kill -9` of one of three nodes while traps go to any node and poll alerts flow (issue 16,
test 2 in full).

Three real `netalert run` nodes share a private PostgreSQL and nats-server; one snmpd
answers for eight devices (each on its own loopback address) with a sensor table whose
hot rows the test raises over time (a ``pass`` script reading a file), so every poll
interval may raise new alerts on every device. Traps go round-robin to the receivers of
all live nodes, from the devices' own addresses, so a trap is mostly received by a node
that does not own its shard and reaches the owner through the stream.

One node is killed with SIGKILL while both flow. A trap sender stops sending to a
receiver that is down, as a load balancer does (a datagram sent to a dead process is
lost before netalert sees it), and the trap sender leaves the victim half a second
before the kill: a trap that a node received and had not published when it was killed
is lost with it (docs/cluster.md). Every alert raised before and after the kill must be
mailed: none lost. A mail may come twice only when the victim had claimed it and not
yet marked it sent (its claim runs out, another node sends it): duplicates are counted
and must not exceed the mails the victim held claimed at the kill.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netalert.cluster.shards import shard_of
from tests.support.faults import SUMMARY_RE, AgentProcess, link_down, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import PassScript, SnmpdFactory
from tests.test_cluster_agents import (
    _CONFIG,
    _owners,
    _query,
    _wait,
    nodes,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.e2e

SHARDS = 12
LEASE = 3.0
CLAIM = 5.0  # [cluster] mail_claim in that config: a dead node's claims run out after it
DEVICES = [(f"dev{n}", f"127.0.3.{n + 1}") for n in range(8)]
SENSORS = ".1.3.6.1.2.1.99.1.1"
ROWS = 4  # sensor rows per device; row N is hot once the level file says N or more
POLL_RE = re.compile(r"poll-test (dev\d+) sensor (\d+)")

# A pass_persist handler (one process for every request: a walk must fit the timeout).
_SCRIPT = """#!{python}
import sys
def rows():
    level = int(open({level!r}).read().strip() or 0)
    out = []
    for n in range(1, {rows} + 1):
        out += [  # entPhySensorType (celsius), Scale, Precision, Value, OperStatus (ok)
            ("{base}.1.1.%d" % n, "integer", "8"),
            ("{base}.1.2.%d" % n, "integer", "9"),
            ("{base}.1.3.%d" % n, "integer", "0"),
            ("{base}.1.4.%d" % n, "integer", "80" if n <= level else "20"),
            ("{base}.1.5.%d" % n, "integer", "1"),
        ]
    return sorted(out, key=lambda r: key(r[0]))
def key(oid):
    return tuple(int(x) for x in oid.strip(".").split("."))
while True:
    command = sys.stdin.readline().strip()
    if not command:
        break
    if command == "PING":
        print("PONG")
    else:
        oid = sys.stdin.readline().strip()
        if command == "set":
            sys.stdin.readline()
            print("not-writable")
        else:
            if command == "get":
                found = [r for r in rows() if key(r[0]) == key(oid)]
            else:
                found = [r for r in rows() if key(r[0]) > key(oid)]
            print("\\n".join(found[0]) if found else "NONE")
    sys.stdout.flush()
"""


# Added to the nodes' config of tests.test_cluster_agents, whose last section is [cluster].
_POLLING = """ack_wait = "5s"

[snmp]
community = "public"
interval = "1s"
timeout = "500ms"
retries = 0
jitter = 0.0

[collect.sensors]
walk = ["ENTITY-SENSOR-MIB::entPhySensorType", "ENTITY-SENSOR-MIB::entPhySensorValue",
        "ENTITY-SENSOR-MIB::entPhySensorOperStatus"]

[[rules]]
name = "ClusterHot"
expr = '''entPhySensorType == "celsius" and entPhySensorOperStatus == "ok"
          and entPhySensorValue > 70'''
severity = "critical"
summary = "poll-test {{ device }} sensor {{ entPhysicalIndex }}"
"""


class TrapFlow:
    """Sends linkDown traps (``ifIndex`` 1, 2, ...) at ``rate`` per second, round-robin
    over the receivers of the live nodes and over the devices' source addresses."""

    def __init__(self, agents: list[AgentProcess], rate: float) -> None:
        self.live = list(agents)
        self.sent: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gap = 1.0 / rate
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._socks = {}
        for _, address in DEVICES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((address, 0))
            self._socks[address] = sock

    def start(self) -> None:
        self._thread.start()

    def leave(self, agent: AgentProcess) -> None:
        with self._lock:
            self.live.remove(agent)

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self._socks.values():
            sock.close()
        return set(self.sent)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            index += 1
            with self._lock:
                agent = self.live[index % len(self.live)]
            _, address = DEVICES[index % len(DEVICES)]
            self._socks[address].sendto(link_down(index), ("127.0.0.1", agent.traps_port))
            self.sent.append(index)
            time.sleep(self._gap)


def _mails(smtp: SmtpServer) -> tuple[Counter[int], Counter[tuple[str, int]]]:
    """Mails per trap alert (ifIndex) and per poll alert (device, sensor)."""
    traps: Counter[int] = Counter()
    polls: Counter[tuple[str, int]] = Counter()
    for message in smtp.received():
        body = message.parsed().get_body(("plain",))
        assert body is not None
        text = body.get_content()
        for match in SUMMARY_RE.finditer(text):
            traps[int(match.group(1))] += 1
        for match in POLL_RE.finditer(text):
            polls[(match.group(1), int(match.group(2)))] += 1
    return traps, polls


def test_kill_9_while_traps_go_to_any_node_and_polls_alert_loses_nothing(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    snmpd_factory: SnmpdFactory,
    mib_cache: Path,
    nodes: list[AgentProcess],  # noqa: F811
) -> None:
    level = tmp_path / "level"
    level.write_text("0")
    script = _SCRIPT.format(python=sys.executable, level=str(level), rows=ROWS, base=SENSORS)
    snmpd = snmpd_factory(
        host="0.0.0.0", community="public", passes=[PassScript(SENSORS, script, persist=True)]
    )
    devices = "\n".join(
        f'[[devices]]\nname = "{name}"\naddress = "{address}:{snmpd.port}"\ncollect = ["sensors"]\n'
        for name, address in DEVICES
    )
    names = ["n0", "n1", "n2"]
    agents: dict[str, AgentProcess] = {}
    for name in names:
        http, traps = free_tcp_port(), free_udp_port()
        text = _CONFIG.format(
            http=http,
            traps=traps,
            devices=devices,
            smtp=smtp_server.port,
            node=name,
            dsn=postgres,
            nats=nats_url,
            shards=SHARDS,
            lease=LEASE,
        )
        text += _POLLING
        directory = tmp_path / name
        directory.mkdir()
        agents[name] = AgentProcess(directory, text, http, mib_cache, traps_port=traps)
    nodes += agents.values()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda agent: agent.start(within=90.0), agents.values()))

    def split() -> bool:
        counts = Counter(_owners(postgres).values())
        return sum(counts.values()) == SHARDS and set(counts) == set(names)

    _wait("the shards split over three nodes", split, within=30)
    owners = _owners(postgres)
    victim = Counter(owners.values()).most_common(1)[0][0]
    victim_shards = {s for s, n in owners.items() if n == victim}
    victim_devices = [d for d, _ in DEVICES if shard_of(d, SHARDS) in victim_shards]

    # Before the kill: traps to every node, the first sensor row of every device hot.
    flow = TrapFlow(list(agents.values()), rate=25.0)
    flow.start()
    level.write_text("1")
    _wait(
        "the first poll alerts mailed",
        lambda: {(d, 1) for d, _ in DEVICES} <= set(_mails(smtp_server)[1]),
        within=30,
    )
    time.sleep(1.0)
    flow.leave(agents[victim])  # as a load balancer: no datagram to a node going down
    time.sleep(0.5)
    agents[victim].kill9()
    killed = time.monotonic()
    in_flight = _query(
        postgres,
        "SELECT count(*) FROM outbox WHERE sent IS NULL AND claimed_by = %s "
        "AND claim_expires > now()",
        victim,
    )[0][0]
    level.write_text("2")  # raised while the victim's shards have no owner

    def moved() -> bool:
        now = _owners(postgres)
        return len(now) == SHARDS and victim not in now.values()

    _wait("the victim's shards moved", moved, within=LEASE * 3)
    failover = time.monotonic() - killed
    level.write_text("3")  # raised after the failover
    time.sleep(3.0)
    sent = flow.stop()

    polls = {(d, row) for d, _ in DEVICES for row in (1, 2, 3)}

    def everything() -> bool:
        traps, polled = _mails(smtp_server)
        return sent <= set(traps) and polls <= set(polled)

    _wait("every alert mailed", everything, within=45)
    time.sleep(CLAIM + 1.0)  # past the victim's claims: a duplicate would come now
    traps, polled = _mails(smtp_server)
    lost = sorted(sent - set(traps)) + sorted(polls - set(polled))
    twice = sum(n - 1 for n in traps.values() if n > 1) + sum(
        n - 1 for n in polled.values() if n > 1
    )
    print(
        f"kill -9 of {victim} (devices {','.join(victim_devices)}): failover {failover:.1f}s, "
        f"{len(sent)} traps and {len(polls)} poll alerts, {len(lost)} lost, {twice} twice, "
        f"{in_flight} in flight at the kill"
    )
    assert not lost, lost
    assert twice <= int(str(in_flight)), (traps, polled)
    assert set(traps) == sent and set(polled) == polls  # nothing that was not raised
    assert failover <= LEASE + LEASE / 3 + 1.5, f"shards moved {failover:.1f}s after the kill"
    # the survivors consumed traps received by the others: the stream carried them
    for name, agent in agents.items():
        if name != victim:
            status, body = agent.get("/metrics")
            assert status == 200
            assert sum(metric_values(body, "netalert_traps_received_total").values()) > 0
