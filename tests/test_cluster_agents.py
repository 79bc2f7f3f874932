"""`netalert run` nodes of one cluster: alert state, notification log and mail in PostgreSQL.

Real `netalert run` processes share a private PostgreSQL (and nats-server), mail goes
to the aiosmtpd sink, traps are real datagrams from the devices' own loopback addresses
(127.0.1.N, so each device's traps are credited to it and hash to its shard):

* a node cut off from PostgreSQL (a proxy that goes silent) stops mailing for its shards
  once its lease ran out; its late write is refused with its old epoch; the new owner
  mails what was queued exactly once (issue 16, test 5);
* ``kill -9`` of one of three nodes: its shards move within the lease, every alert raised
  before and after is mailed, none lost, duplicates counted (issue 16, test 2);
* PostgreSQL restarted under two nodes: they reconnect, nothing is lost.

Until the intake side's ClusterNode (traps over JetStream) is in, each trap is sent to
the node that owns its device's shard (read from ``shard_leases``): a trap sent to a
node that dies before it commits is JetStream's to redeliver, not tested here.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState, fingerprint
from netalert.alerts.table import AlertRecord, make_key
from netalert.cluster.leases import Lease
from netalert.cluster.pgstore import PgAlertStore
from netalert.cluster.shards import shard_of
from netalert.notify.routes import group_key
from tests.support.faults import AgentProcess, delivered, link_down
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.postgres import PostgresFactory
from tests.support.smtp import SmtpServer
from tests.support.tcpproxy import ProxyThread
from tests.test_cluster_pgstore import _grant, _migrate

pytestmark = pytest.mark.e2e

SHARDS = 8
LEASE = 3.0
DEVICES = [(f"dev{n}", f"127.0.1.{n + 1}") for n in range(16)]

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"
state_retry_max = "1s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

{devices}

[[rules]]
name = "ClusterLinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "fault-test ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <{node}@example.org>"
retry_max = "1s"

[[routes]]
to = ["noc@example.org"]
group_by = ["..."]
group_wait = "0s"

[cluster]
postgres = "{dsn}"
nats = "{nats}"
node = "{node}"
shards = {shards}
lease = "{lease}s"
mail_claim = "5s"
"""


def _devices() -> str:
    return "\n".join(
        f'[[devices]]\nname = "{name}"\naddress = "{address}"\nenabled = false\n'
        for name, address in DEVICES
    )


def _node(
    tmp_path: Path,
    name: str,
    dsn: str,
    nats: str,
    smtp: SmtpServer,
    mib_cache: Path,
    *,
    lease: float = LEASE,
    workers: int = 1,
) -> AgentProcess:
    """A node, not started. ``workers = 1`` by default: the node receives its traps itself
    (the subject here is the shared state, leases and mail; a trap worker is another Python
    start, about a second of CPU); test_cluster_v3.py and test_cluster_kill.py run nodes
    with the default workers."""
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.replace("[traps]\n", f"[traps]\nworkers = {workers}\n", 1).format(
        http=http,
        traps=traps,
        devices=_devices(),
        smtp=smtp.port,
        node=name,
        dsn=dsn,
        nats=nats,
        shards=SHARDS,
        lease=lease,
    )
    directory = tmp_path / name
    directory.mkdir()
    return AgentProcess(directory, text, http, mib_cache, traps_port=traps)


def _query(dsn: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql, args)
        return list(cur.fetchall()) if cur.description is not None else []


def _owners(dsn: str) -> dict[int, str]:
    """shard -> the node holding an unexpired lease on it."""
    rows = _query(dsn, "SELECT shard, node FROM shard_leases WHERE expires > now()")
    return {int(shard): str(node) for shard, node in rows if node is not None}  # type: ignore[call-overload]


def _wait_split(dsn: str, names: list[str], *, within: float = 30.0) -> dict[int, str]:
    """Waits until every shard is held by one of ``names``, each its fair share."""
    deadline = time.monotonic() + within
    while True:
        owners = _owners(dsn)
        counts = Counter(owners.values())
        fair = max(counts.values(), default=0) - min(counts.values(), default=0) <= 1
        if len(owners) == SHARDS and set(counts) == set(names) and fair:
            return owners
        assert time.monotonic() < deadline, f"shards never split over {names}: {owners}"
        time.sleep(0.1)


def _device_of(shards: set[int], taken: int = 0) -> tuple[str, str]:
    """A device (name, address) whose shard is in ``shards``."""
    found = [d for d in DEVICES if shard_of(d[0], SHARDS) in shards]
    assert len(found) > taken, f"no device in shards {shards}"
    return found[taken]


def _send(agent: AgentProcess, address: str, index: int) -> None:
    """A linkDown for ``ifIndex`` = ``index`` from the device at ``address`` to ``agent``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        sock.sendto(link_down(index), ("127.0.0.1", agent.traps_port))


def _committed(dsn: str, indexes: set[int]) -> set[int]:
    """The ifIndexes among ``indexes`` whose alert is committed in PostgreSQL."""
    rows = _query(dsn, "SELECT labels FROM alerts")
    found = {int(m) for (labels,) in rows for m in re.findall(r'"ifIndex": "(\d+)"', str(labels))}
    return found & indexes


def _wait(what: str, check: object, *, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        time.sleep(0.05)


def _mails(smtp: SmtpServer) -> Counter[int]:
    return delivered(smtp.received())[1]


def _senders(smtp: SmtpServer, index: int) -> list[str]:
    """The From of each mail about ``index``: the node that queued it."""
    out = []
    for message in smtp.received():
        parsed = message.parsed()
        body = parsed.get_body(("plain",))
        assert body is not None
        if f"fault-test ifIndex={index}" in body.get_content():
            out.append(str(parsed["From"]))
    return out


@pytest.fixture
def nodes() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.cleanup()


def test_a_partitioned_node_stops_mailing_and_its_late_write_is_refused(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    parts = urlsplit(postgres)
    proxy = ProxyThread(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        via_proxy = urlunsplit(
            parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.proxy.port}")
        )
        a = _node(tmp_path, "na", via_proxy, nats_url, smtp_server, mib_cache)
        b = _node(tmp_path, "nb", postgres, nats_url, smtp_server, mib_cache)
        nodes += [a, b]
        a.start()
        b.start()
        owners = _wait_split(postgres, ["na", "nb"])
        a_shards = {s for s, n in owners.items() if n == "na"}
        (_, first), (_, second) = _device_of(a_shards), _device_of(a_shards, 1)
        epochs = dict(_query(postgres, "SELECT shard, epoch FROM shard_leases"))

        # 1. The SMTP server refuses for now: na's alert and its mail are committed and wait.
        smtp_server.fail("mail", "451 4.3.0 try later", times=None)
        _send(a, first, 1)
        _wait(
            "mail 1 queued and tried",
            lambda: _query(postgres, "SELECT 1 FROM outbox WHERE sent IS NULL AND attempts > 0"),
            within=20,
        )

        # 2. na is cut off from PostgreSQL; a trap it takes now cannot be committed.
        proxy.cut()
        cut_at = time.monotonic()
        _send(a, second, 2)
        _wait(
            "nb holds every shard",
            lambda: len(_owners(postgres)) == SHARDS and set(_owners(postgres).values()) == {"nb"},
            within=LEASE * 3 + 5,
        )
        takeover = time.monotonic() - cut_at
        assert takeover <= LEASE * 1.5 + 2, f"shards moved after {takeover:.1f}s"

        # 3. The new owner gets the same device's trap (JetStream would redeliver it) and
        #    mails it; the mail na queued before the cut is sent once, by nb's sender.
        _send(b, second, 2)
        smtp_server.clear_faults()
        _wait("mails 1 and 2", lambda: {1, 2} <= set(_mails(smtp_server)), within=30)

        # 4. The network comes back: na's held write of trap 2 is refused, with its old epoch.
        proxy.heal()
        shard = shard_of(_device_of(a_shards, 1)[0], SHARDS)
        old = int(epochs[shard])  # type: ignore[call-overload]
        pattern = rf"cluster_state_stale shard={shard} epoch={old} current_epoch=(\d+)"
        _wait("na's late write refused", lambda: re.search(pattern, a.log()), within=30)
        refused = re.search(pattern, a.log())
        assert refused is not None and int(refused.group(1)) > old
        time.sleep(2.0)  # a duplicate would come now
        mails = _mails(smtp_server)
        assert mails[1] == 1 and mails[2] == 1, mails
        assert _senders(smtp_server, 2) == ["netalert <nb@example.org>"]
    finally:
        proxy.close()


def _send_to_owner(
    dsn: str,
    agents: dict[str, AgentProcess],
    device: tuple[str, str],
    index: int,
    *,
    dead: set[str],
) -> str:
    """Sends the trap to the live node that holds the device's shard now (waiting for one,
    while the shard moves); returns its name."""
    shard = shard_of(device[0], SHARDS)
    deadline = time.monotonic() + LEASE * 3 + 5
    while True:
        owner = _owners(dsn).get(shard)
        if owner is not None and owner not in dead:
            _send(agents[owner], device[1], index)
            return owner
        assert time.monotonic() < deadline, f"shard {shard} found no live owner"
        time.sleep(0.05)


def test_kill_9_of_one_of_three_nodes_loses_no_alert(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    names = ["n0", "n1", "n2"]
    agents = {n: _node(tmp_path, n, postgres, nats_url, smtp_server, mib_cache) for n in names}
    nodes += agents.values()
    for agent in agents.values():
        agent.start()
    owners = _wait_split(postgres, names)
    victim = Counter(owners.values()).most_common(1)[0][0]
    victim_shards = {s for s, n in owners.items() if n == victim}

    # Before: one alert per device, while the SMTP server refuses for now: at the kill
    # every mail is queued in PostgreSQL, some claimed by the victim's sender.
    smtp_server.fail("mail", "451 4.3.0 try later", times=None)
    before = set()
    for n, device in enumerate(DEVICES, start=1):
        _send_to_owner(postgres, agents, device, n, dead=set())
        before.add(n)
    _wait("the first alerts committed", lambda: _committed(postgres, before) == before, within=30)
    time.sleep(1.0)  # the senders claim and try them
    agents[victim].kill9()
    killed = time.monotonic()
    _wait(
        "the victim's shards moved",
        lambda: len(moved := _owners(postgres)) == SHARDS and victim not in moved.values(),
        within=LEASE * 3,
    )
    failover = time.monotonic() - killed
    assert failover <= LEASE + LEASE / 3 + 1.5, f"shards moved {failover:.1f}s after the kill"
    smtp_server.clear_faults()

    # After: one more alert per device, to the owner of the moment (the victim's shards
    # once they moved, within the lease).
    after = set()
    for n, device in enumerate(DEVICES, start=101):
        _send_to_owner(postgres, agents, device, n, dead={victim})
        after.add(n)
    moved = _owners(postgres)
    assert victim not in moved.values() and victim_shards <= moved.keys()
    _wait("every alert mailed", lambda: before | after <= set(_mails(smtp_server)), within=60)
    time.sleep(6.0)  # past the victim's claims (5 s): a duplicate would come now
    mails = _mails(smtp_server)
    lost = (before | after) - set(mails)
    duplicates = sum(count - 1 for count in mails.values() if count > 1)
    print(f"kill -9 of {victim}: failover {failover:.1f}s, {len(lost)} lost, {duplicates} twice")
    assert not lost and duplicates == 0, mails
    assert set(mails) == before | after


def test_postgres_restarted_under_two_nodes_loses_nothing(
    tmp_path: Path,
    postgres_factory: PostgresFactory,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    server = postgres_factory()
    dsn = server.create_database()
    lease = 10.0  # the restart takes less: the nodes keep their shards through it
    agents = {
        n: _node(tmp_path, n, dsn, nats_url, smtp_server, mib_cache, lease=lease)
        for n in ("n0", "n1")
    }
    nodes += agents.values()
    for agent in agents.values():
        agent.start()
    owners = _wait_split(dsn, list(agents))

    def send(first: int) -> set[int]:
        sent = set()
        for n, device in enumerate(DEVICES[:8], start=first):
            _send(agents[owners[shard_of(device[0], SHARDS)]], device[1], n)
            sent.add(n)
        return sent

    before = send(1)
    _wait("mailed before", lambda: before <= set(_mails(smtp_server)), within=30)
    # and marked sent: a mail whose mark the restart cuts off is sent again (in flight)
    _wait(
        "marked sent", lambda: not _query(dsn, "SELECT 1 FROM outbox WHERE sent IS NULL"), within=10
    )
    server.stop()
    during = send(101)  # taken while PostgreSQL is away: held in memory
    _wait(
        "/healthz degraded",
        lambda: all(a.get("/healthz")[0] == 503 for a in agents.values()),
        within=lease,
    )
    server.start()
    after = send(201)
    everything = before | during | after
    _wait("every alert mailed", lambda: everything <= set(_mails(smtp_server)), within=60)
    time.sleep(2.0)
    mails = _mails(smtp_server)
    assert set(mails) == everything and set(mails.values()) == {1}, mails
    for agent in agents.values():  # healthy again once the leases are renewed
        _wait("/healthz ok", lambda agent=agent: agent.get("/healthz")[0] == 200, within=lease)
        assert "cluster_state_writable" in agent.log()


def test_a_shard_taken_over_mails_what_its_old_owner_committed_and_had_not_told(
    tmp_path: Path,
    postgres: str,
    nats_url: str,
    smtp_server: SmtpServer,
    mib_cache: Path,
    nodes: list[AgentProcess],
) -> None:
    # The old owner "old" committed two firing alerts and had mailed only the second
    # (its notification-log row says so) when it died; its leases ran out.
    _migrate(postgres)
    _query(postgres, "INSERT INTO cluster_settings (key, value) VALUES ('shards', %s)", str(SHARDS))
    _grant(postgres, "old", 1, range(SHARDS))
    now = time.time()
    records = [_firing(DEVICES[n][0], index, now - 60) for n, index in ((0, 1), (1, 2))]
    store = PgAlertStore(postgres, node="old", shards=SHARDS, lease_of=lambda s: Lease(s, "old", 1))
    store.save(records, [], on_lost=lambda: None)
    store.close()
    told = records[1].alert
    key = group_key("routes[0]", ["..."], told.labels)
    _query(
        postgres,
        "INSERT INTO nflog (route, group_key, shard, firing, resolved, sent_at, epoch)"
        " VALUES ('routes[0]', %s, %s, %s, '[]', %s, 1)",
        key,
        shard_of(told.device, SHARDS),
        json.dumps([told.fingerprint]),
        now - 50,
    )
    _query(postgres, "UPDATE shard_leases SET expires = now() - interval '1 second'")

    agent = _node(tmp_path, "na", postgres, nats_url, smtp_server, mib_cache)
    nodes.append(agent)
    agent.start()
    _wait("the untold alert mailed", lambda: 1 in _mails(smtp_server), within=30)
    time.sleep(3.0)  # the told one would come now
    assert _mails(smtp_server) == Counter({1: 1})
    assert re.search(r"cluster_shards_loaded shards=\d+ alerts=2 told=1", agent.log())


def _firing(device: str, index: int, since: float) -> AlertRecord:
    """A firing trap alert of the tests' rule, as a node stores it."""
    labels = {
        "rule": "ClusterLinkDown",
        "device": device,
        "severity": "warning",
        "ifIndex": str(index),
    }
    alert = Alert(
        fingerprint=fingerprint(labels),
        rule="ClusterLinkDown",
        severity="warning",
        device=device,
        labels=MappingProxyType(labels),
        annotations=MappingProxyType({"summary": f"fault-test ifIndex={index}"}),
        state=AlertState.FIRING,
        starts_at=since,
        ends_at=None,
        updated_at=since,
        value="linkDown",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
    )
    key = make_key("trap", "ClusterLinkDown", device, f"ifIndex={index}")
    return AlertRecord(alert=alert, key=key, phase=Phase(AlertState.FIRING, since, since))
