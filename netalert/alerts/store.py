"""Where alerts persist: the :class:`AlertStore` protocol and its SQLite table ``alerts``.

The alert stage keeps its records in memory (:mod:`netalert.alerts.table`) and
saves what changed through an :class:`AlertStore` after each poll, trap or
tick; in the agent the state writer commits every save of one event-loop turn
in one transaction. A restart loads the records back, so an alert that was
firing is still firing (no second FIRING mail) and one that was pending keeps
counting its ``for`` from when it began. :class:`SqliteAlertStore` is the
embedded database's; :class:`MemoryAlertStore` keeps nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.alerts.table import AlertRecord
from netalert.present import varbind_from_json, varbind_json
from netalert.state.db import Database

__all__ = [
    "MIGRATIONS",
    "AlertStore",
    "MemoryAlertStore",
    "SqliteAlertStore",
    "load_alerts",
    "record_row",
    "row_record",
]

MIGRATIONS = [
    """
    CREATE TABLE alerts (
        fingerprint TEXT PRIMARY KEY,
        lookup_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        device TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        state TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL,
        updated_at REAL NOT NULL,
        value TEXT NOT NULL,
        count INTEGER NOT NULL,
        flapping INTEGER NOT NULL,
        silenced INTEGER NOT NULL,
        source TEXT NOT NULL,
        varbinds TEXT NOT NULL,
        engine TEXT NOT NULL
    );
    CREATE INDEX alerts_state ON alerts(state);
    """,
]


Records = Sequence[AlertRecord]
Lost = Callable[[], None]


class AlertStore(Protocol):
    """Where the alert stage's records persist: read once at start, saved once per call.

    Small on purpose, so that another database can stand behind it: the stage
    keeps every record in memory (:class:`~netalert.alerts.table.AlertTable`)
    and only loads and saves through this.
    """

    def load(self) -> list[AlertRecord]:
        """Every stored record (at start)."""
        ...

    def save(self, changed: Records, removed: Sequence[str], *, on_lost: Lost) -> None:
        """Writes ``changed`` records and deletes ``removed`` fingerprints in one transaction.

        The write may be held while the database cannot take it (in order with
        the other state writes); ``on_lost`` is called if it is dropped, and the
        stage then saves those records again. Raises what the write raises when
        it can be neither made nor held (``StateWriteError``, ``StateCorruptError``).
        """
        ...


class MemoryAlertStore:
    """An :class:`AlertStore` that keeps nothing (rule tests, replay, pure tests)."""

    def load(self) -> list[AlertRecord]:
        """Nothing is stored."""
        return []

    def save(self, changed: Records, removed: Sequence[str], *, on_lost: Lost) -> None:
        """Nothing to write."""


class SqliteAlertStore:
    """The :class:`AlertStore` of the embedded database: table ``alerts``, one row per alert.

    Every save goes through the database's :class:`~netalert.state.writer.StateWriter`:
    committed at once, or with every other write of the same event-loop turn in
    one transaction (the agent), or held in memory while the disk cannot take it.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        db.migrate("alerts", MIGRATIONS)

    def load(self) -> list[AlertRecord]:
        """Every row of ``alerts``."""
        return list(_load(self._db.conn))

    def save(self, changed: Records, removed: Sequence[str], *, on_lost: Lost) -> None:
        """Upserts ``changed`` and deletes ``removed`` in one write of the state writer.

        Raises:
            StateWriteError: The write failed and the writer holds nothing (the CLI).
            StateCorruptError: The database is damaged.
        """
        if not changed and not removed:
            return
        rows = [record_row(record) for record in changed]
        deleted = list(removed)

        def apply(conn: sqlite3.Connection) -> None:
            for fp in deleted:
                conn.execute("DELETE FROM alerts WHERE fingerprint = ?", (fp,))
            conn.executemany(_UPSERT, rows)

        self._db.writer.write("alerts", apply, on_shed=on_lost)


_COLUMNS = (
    "fingerprint, lookup_key, rule, severity, device, labels, annotations, state, starts_at,"
    " ends_at, updated_at, value, count, flapping, silenced, source, varbinds, engine"
)
_UPSERT = (
    f"INSERT OR REPLACE INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?)"
)


def record_row(record: AlertRecord) -> tuple[Any, ...]:
    """The column values of ``record`` in ``_COLUMNS`` order (JSON as text): the row
    format every SQL store shares."""
    a = record.alert
    engine = {
        "phase": [record.phase.state.value, record.phase.since, record.phase.last_bad],
        "history": record.history,
        "sampled_at": record.sampled_at,
        "flap_since": record.flap_since,
        "flap_changes": record.flap_changes,
        "notified": record.notified,
        "confirm_index": record.confirm_index,
        "confirm_next": record.confirm_next,
        "signature": record.signature,
        "extra": record.extra,
    }
    return (
        a.fingerprint,
        record.key,
        a.rule,
        a.severity,
        a.device,
        json.dumps(dict(a.labels), sort_keys=True),
        json.dumps(dict(a.annotations), sort_keys=True),
        a.state.value,
        a.starts_at,
        a.ends_at,
        a.updated_at,
        a.value,
        a.count,
        int(a.flapping),
        int(a.silenced),
        a.source,
        json.dumps([varbind_json(vb) for vb in a.varbinds]),
        json.dumps(engine),
    )


def _alert(row: sqlite3.Row | tuple[Any, ...]) -> Alert:
    return Alert(
        fingerprint=row[0],
        rule=row[2],
        severity=row[3],
        device=row[4],
        labels=MappingProxyType(json.loads(row[5])),
        annotations=MappingProxyType(json.loads(row[6])),
        state=AlertState(row[7]),
        starts_at=row[8],
        ends_at=row[9],
        updated_at=row[10],
        value=row[11],
        count=row[12],
        flapping=bool(row[13]),
        silenced=bool(row[14]),
        source=row[15],
        varbinds=tuple(varbind_from_json(v) for v in json.loads(row[16])),
    )


def row_record(row: sqlite3.Row | tuple[Any, ...]) -> AlertRecord:
    """The record of a row written by :func:`record_row`."""
    engine = json.loads(row[17])
    state, since, last_bad = engine["phase"]
    return AlertRecord(
        alert=_alert(row),
        key=row[1],
        phase=Phase(AlertState(state), since, last_bad),
        history=engine.get("history", ""),
        sampled_at=engine.get("sampled_at", 0.0),
        flap_since=engine.get("flap_since"),
        flap_changes=engine.get("flap_changes", 0),
        notified=engine.get("notified", ""),
        confirm_index=engine.get("confirm_index"),
        confirm_next=engine.get("confirm_next"),
        signature=engine.get("signature", ""),
        extra=engine.get("extra", {}),
    )


def _load(conn: sqlite3.Connection) -> Iterable[AlertRecord]:
    for row in conn.execute(f"SELECT {_COLUMNS} FROM alerts"):
        yield row_record(row)


def load_alerts(db: Database, *, active_only: bool = True) -> list[Alert]:
    """Reads the alerts from the database (``netalert alerts``), oldest first."""
    db.migrate("alerts", MIGRATIONS)
    query = f"SELECT {_COLUMNS} FROM alerts"
    if active_only:
        query += " WHERE state IN ('pending', 'firing')"
    query += " ORDER BY starts_at, fingerprint"
    return [_alert(row) for row in db.conn.execute(query)]
