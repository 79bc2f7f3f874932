"""The clean-up of the shared tables on a real PostgreSQL: old sent mails, the notification
log of groups told resolved and the thread roots of ended episodes go after ``[cluster]
retention``; what a node still needs stays; one node at a time cleans (advisory lock).
And the shared silences: what one node's CLI adds, another node's refresh sees; and
`netalert alerts`, `ack` and `unack` with a cluster config act on the shared tables."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from netalert.cluster.leases import Lease
from netalert.cluster.pgstore import PgAlertStore
from netalert.cluster.shared import Cleanup, PgSilenceStore, SharedSilences
from netalert.errors import NetalertError
from tests.support.faults import ROOT
from tests.test_cluster_agents import _firing
from tests.test_cluster_pgstore import _grant, _migrate

pytestmark = pytest.mark.daemon

DAY = 86400.0
RETENTION = 7 * DAY
USM_RETENTION = 30 * DAY


def _exec(dsn: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, args)
        return list(cur.fetchall()) if cur.description is not None else []


def _mail(dsn: str, name: str, *, sent_days_ago: float | None) -> None:
    """A notification and its mail; sent that many days ago (None: not sent)."""
    rows = _exec(
        dsn,
        "INSERT INTO notification_log (shard, epoch, fingerprint, transition, message_id)"
        " VALUES (0, 1, %s, 'firing', %s) RETURNING id",
        name,
        f"<{name}@example.org>",
    )
    sent = None if sent_days_ago is None else time.time() - sent_days_ago * DAY
    _exec(
        dsn,
        "INSERT INTO outbox (id, message, sent) VALUES (%s, 'x', to_timestamp(%s))",
        rows[0][0],
        sent,
    )


def _nflog(dsn: str, key: str, *, firing: list[str], resolved: list[str], days_ago: float) -> None:
    _exec(
        dsn,
        "INSERT INTO nflog (route, group_key, shard, firing, resolved, sent_at, epoch)"
        " VALUES ('routes[0]', %s, 0, %s, %s, %s, 1)",
        key,
        json.dumps(firing),
        json.dumps(resolved),
        time.time() - days_ago * DAY,
    )


def _thread(dsn: str, key: str, *, days_ago: float) -> None:
    _exec(
        dsn,
        "INSERT INTO mail_threads (group_key, root, updated) VALUES (%s, %s, %s)",
        key,
        f"<root.{key}@example.org>",
        time.time() - days_ago * DAY,
    )


def _stored_alert(dsn: str, fp: str) -> None:
    """A row of ``alerts`` in shard 0 (only its fingerprint and shard matter here)."""
    _exec(
        dsn,
        "INSERT INTO alerts (fingerprint, shard, lookup_key, rule, severity, device, labels,"
        " annotations, state, starts_at, updated_at, value, count, flapping, silenced, source,"
        " varbinds, engine, epoch) VALUES (%s, 0, '', 'R', 'warning', 'd', '{}', '{}',"
        " 'resolved', 0, 0, '', 1, 0, 0, 'trap', '[]', '', 1)",
        fp,
    )


def _names(dsn: str, sql: str) -> set[str]:
    return {str(row[0]) for row in _exec(dsn, sql)}


def _cleanup(dsn: str, *, batch: int) -> Cleanup:
    return Cleanup(
        dsn,
        retention=lambda: RETENTION,
        batch=lambda: batch,
        usm_retention=lambda: USM_RETENTION,
        devices=lambda: [],
    )


def test_old_rows_go_and_what_is_needed_stays(postgres: str) -> None:
    _migrate(postgres)
    for n in range(5):
        _mail(postgres, f"old-sent-{n}", sent_days_ago=8)
    _mail(postgres, "new-sent", sent_days_ago=1)
    _mail(postgres, "old-unsent", sent_days_ago=None)
    _exec(postgres, "UPDATE notification_log SET created = now() - interval '30 days'")
    _stored_alert(postgres, "kept-fp")
    _nflog(postgres, "told-resolved", firing=[], resolved=["gone-fp"], days_ago=8)
    _nflog(postgres, "resolved-alert-stored", firing=[], resolved=["kept-fp"], days_ago=8)
    _nflog(postgres, "still-firing", firing=["f1"], resolved=[], days_ago=8)
    _nflog(postgres, "recent", firing=[], resolved=["gone-fp"], days_ago=1)
    _thread(postgres, "ended", days_ago=8)
    _thread(postgres, "still-firing", days_ago=8)
    _thread(postgres, "recent", days_ago=1)

    cleanup = _cleanup(postgres, batch=2)
    try:
        done = cleanup.prune()
    finally:
        cleanup.close()

    assert done == {"outbox": 5, "nflog": 1, "mail_threads": 1, "usm_clocks": 0, "usm_engines": 0}
    assert _names(postgres, "SELECT fingerprint FROM notification_log") == {
        "new-sent",
        "old-unsent",
    }
    assert len(_exec(postgres, "SELECT id FROM outbox")) == 2  # cascaded with its row
    assert _names(postgres, "SELECT group_key FROM nflog") == {
        "resolved-alert-stored",
        "still-firing",
        "recent",
    }
    assert _names(postgres, "SELECT group_key FROM mail_threads") == {"still-firing", "recent"}
    samples = {tuple(s.labels.values()): s.value for s in cleanup.source()()}
    assert samples == {
        ("outbox",): 5,
        ("nflog",): 1,
        ("mail_threads",): 1,
        ("usm_clocks",): 0,
        ("usm_engines",): 0,
    }


def test_one_node_cleans_at_a_time(postgres: str) -> None:
    _migrate(postgres)
    _mail(postgres, "old-sent", sent_days_ago=8)
    cleanup = _cleanup(postgres, batch=100)
    try:
        with psycopg.connect(postgres) as other, other.transaction():  # another node cleans
            other.execute("SELECT pg_advisory_xact_lock(%s)", (0x6E612D636C65616E,))
            assert cleanup.prune() is None
            assert len(_exec(postgres, "SELECT id FROM outbox")) == 1
        assert cleanup.prune() == {
            "outbox": 1,
            "nflog": 0,
            "mail_threads": 0,
            "usm_clocks": 0,
            "usm_engines": 0,
        }
        assert cleanup.rounds == 1
    finally:
        cleanup.close()


def test_a_silence_added_on_one_node_is_seen_by_another_after_its_refresh(
    postgres: str,
) -> None:
    _migrate(postgres)
    cli = PgSilenceStore(postgres)
    node = SharedSilences(PgSilenceStore(postgres), refresh=0.2)

    async def run() -> None:
        await node.refresher.read()
        assert node.list(time.time()) == []
        node.refresher.start()
        now = time.time()
        added = cli.add(
            ["device=r1"], starts_at=now, ends_at=now + 3600, comment="why", author="me"
        )
        deadline = time.monotonic() + 5
        while [s.id for s in node.list(time.time())] != [added.id]:
            assert time.monotonic() < deadline, "never seen"
            await asyncio.sleep(0.05)
        assert cli.expire(added.id, time.time())
        assert not cli.expire(added.id, time.time())  # already over
        while node.list(time.time()):
            assert time.monotonic() < deadline, "the expiry never seen"
            await asyncio.sleep(0.05)
        await node.refresher.stop()

    try:
        asyncio.run(run())
    finally:
        cli.close()
    with pytest.raises(NetalertError, match="comment"):
        cli.add(["device=r1"], starts_at=1.0, ends_at=2.0, comment=" ", author="me")
    with pytest.raises(NetalertError, match="--match"):
        cli.add([], starts_at=1.0, ends_at=2.0, comment="x", author="me")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_ack_unack_and_alerts_from_a_shell_act_on_the_cluster(
    postgres: str, tmp_path: Path
) -> None:
    _migrate(postgres)
    _exec(postgres, "INSERT INTO cluster_settings (key, value) VALUES ('shards', '8')")
    _grant(postgres, "old", 1, range(8))
    record = _firing("dev1", 7, time.time() - 60)
    store = PgAlertStore(postgres, node="old", shards=8, lease_of=lambda s: Lease(s, "old", 1))
    store.save([record], [], on_lost=lambda: None)
    store.close()
    fp = record.alert.fingerprint
    config = tmp_path / "config.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[cluster]\npostgres = "{postgres}"\nnode = "shell"\nshards = 8\n'
    )

    listed = _cli(config, "alerts", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(a["fingerprint"], a["ack"]) for a in json.loads(listed.stdout)] == [(fp, None)]

    acked = _cli(config, "ack", fp[:8], "--comment", "on it", "--author", "ann")
    assert acked.returncode == 0, acked.stderr
    rows = _exec(postgres, "SELECT fingerprint, starts_at, author, comment, via FROM acks")
    assert rows == [(fp, record.alert.starts_at, "ann", "on it", "cli")]
    shown = json.loads(_cli(config, "alerts", "--json").stdout)
    assert shown[0]["ack"]["by"] == "ann"

    assert _cli(config, "unack", fp).returncode == 0
    assert _exec(postgres, "SELECT fingerprint FROM acks") == []
    again = _cli(config, "unack", fp)
    assert again.returncode == 1 and "not acknowledged" in again.stderr


def _usm_clock(dsn: str, engine_id: bytes, *, days_ago: float) -> None:
    _exec(
        dsn,
        "INSERT INTO usm_clocks (engine_id, boots, engine_time, learned, digest, node, changed)"
        " VALUES (%s, 1, 100, %s, '\\x00', 'n1', %s)",
        engine_id,
        time.time() - days_ago * DAY,
        time.time() - days_ago * DAY,
    )


def _usm_engine(dsn: str, device: str, *, days_ago: float) -> None:
    _exec(
        dsn,
        "INSERT INTO usm_engines (device, engine_id, host, port, user_name, learned, node,"
        " changed) VALUES (%s, '\\x8000', '192.0.2.1', 161, 'u', 0, 'n1', %s)",
        device,
        time.time() - days_ago * DAY,
    )


def test_usm_rows_unchanged_past_usm_retention_go(postgres: str) -> None:
    """The senders' clocks no trap moved for ``usm_retention`` go; an engine ID goes after
    as long only once its device is in no config of the cleaning node (a device polled for
    years keeps its row: it is written only when its engine ID changes)."""
    _migrate(postgres)
    for n in range(3):
        _usm_clock(postgres, b"\x80old%d" % n, days_ago=31)
    _usm_clock(postgres, b"\x80recent", days_ago=29)
    _usm_engine(postgres, "configured-old", days_ago=400)
    _usm_engine(postgres, "removed-old", days_ago=31)
    _usm_engine(postgres, "removed-recent", days_ago=29)

    cleanup = Cleanup(
        postgres,
        retention=lambda: RETENTION,
        batch=lambda: 2,
        usm_retention=lambda: USM_RETENTION,
        devices=lambda: ["configured-old", "other"],
    )
    try:
        done = cleanup.prune()
    finally:
        cleanup.close()

    assert done is not None and (done["usm_clocks"], done["usm_engines"]) == (3, 1)
    assert [bytes(r[0]) for r in _exec(postgres, "SELECT engine_id FROM usm_clocks")] == [
        b"\x80recent"
    ]
    assert _names(postgres, "SELECT device FROM usm_engines") == {
        "configured-old",
        "removed-recent",
    }
    samples = {tuple(s.labels.values()): s.value for s in cleanup.source()()}
    assert (samples[("usm_clocks",)], samples[("usm_engines",)]) == (3, 1)
