"""Retention: nflog and mail_threads pruned in batches (real SQLite), live groups kept."""

from __future__ import annotations

import asyncio

import pytest

from netalert.config.models import LimitsConfig, Route
from netalert.mail.outbox import Outbox
from netalert.notify.nflog import NotificationLog
from netalert.notify.routes import group_key
from netalert.prune import Pruner, live_groups
from netalert.state import open_database
from netalert.state.db import Database
from tests.test_notify_dispatcher import alert

NOW = 1_000_000.0


@pytest.fixture
def db() -> Database:
    return open_database(None)


def _nflog(db: Database, n: int, *, sent_at: float) -> NotificationLog:
    log = NotificationLog(db)
    with db.transaction() as conn:
        for i in range(n):
            NotificationLog.record(conn, "r", f"g{i}", frozenset(), frozenset(), sent_at)
    return log


def _keys(db: Database, table: str) -> set[str]:
    return {str(r[0]) for r in db.conn.execute(f"SELECT group_key FROM {table}")}


def test_nflog_prune_scans_at_most_a_batch_and_keeps_live_and_young(db: Database) -> None:
    log = _nflog(db, 5, sent_at=NOW - 100)
    NotificationLog.record(db.conn, "r", "young", frozenset(), frozenset(), NOW)
    live = {("r", "g1")}
    deleted, after = log.prune(NOW - 50, live=live, after=0, limit=3)
    assert (deleted, after) == (2, 3)  # rows 1..3 scanned: g0 and g2 go, g1 is live
    assert _keys(db, "nflog") == {"g1", "g3", "g4", "young"}
    deleted, after = log.prune(NOW - 50, live=live, after=3, limit=3)
    assert (deleted, after) == (2, 6)  # g3, g4; "young" stays; a full batch: go on
    assert _keys(db, "nflog") == {"g1", "young"}
    assert log.prune(NOW - 50, live=live, after=6, limit=3) == (0, None)  # the end


def test_thread_prune_keeps_live_groups(db: Database) -> None:
    outbox = Outbox(db)
    for i in range(4):
        outbox.set_thread_root(f"g{i}", f"<root{i}@x>", NOW - 100)
    outbox.set_thread_root("young", "<y@x>", NOW)
    deleted, after = outbox.prune_threads(NOW - 50, live={"g0"}, after=0, limit=10)
    assert (deleted, after) == (3, None)
    assert _keys(db, "mail_threads") == {"g0", "young"}
    assert outbox.thread_root("g0") == "<root0@x>"


def test_live_groups_follow_the_routes() -> None:
    routes = [
        Route(match={"severity": "critical"}, to=["a@example.org"], group_by=["device"]),
        Route(name="rest", to=["b@example.org"], group_by=["rule"]),
    ]
    critical, warning = alert("sw1"), alert("sw2", "Temp", severity="warning")
    assert live_groups(routes, [critical, warning]) == {
        ("routes[0]", group_key("routes[0]", ["device"], critical.labels)),
        ("rest", group_key("rest", ["rule"], warning.labels)),
    }
    assert live_groups(routes[:1], [warning]) == set()  # no route: no group


def test_pruner_walks_every_batch_and_counts(db: Database) -> None:
    log = _nflog(db, 7, sent_at=NOW - 100)
    outbox = Outbox(db)
    outbox.set_thread_root("g0", "<root@x>", NOW - 100)
    outbox.set_thread_root("g1", "<root1@x>", NOW - 100)
    limits = LimitsConfig.model_validate({"retention": "1m", "prune_batch": 2})
    pruner = Pruner(
        nflog=log,
        outbox=lambda: outbox,
        limits=lambda: limits,
        live=lambda: {("r", "g1")},
        clock=lambda: NOW,
    )
    assert asyncio.run(pruner.prune()) == {"nflog": 6, "mail_threads": 1}
    assert _keys(db, "nflog") == {"g1"}
    assert _keys(db, "mail_threads") == {"g1"}
    assert asyncio.run(pruner.prune()) == {"nflog": 0, "mail_threads": 0}
    assert pruner.rows == {"nflog": 6, "mail_threads": 1}


def test_limits_refuse_a_zero_retention() -> None:
    with pytest.raises(ValueError, match="must be longer than 0s"):
        LimitsConfig.model_validate({"retention": "0s"})
