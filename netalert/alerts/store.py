"""The alerts and their bookkeeping, in memory and in SQLite (table ``alerts``).

The engine changes :class:`AlertRecord` values in memory and calls
:meth:`AlertStore.flush` once per poll, trap or tick, which writes every
changed record in one transaction. A restart loads the records back, so an
alert that was firing is still firing (no second FIRING mail) and one that was
pending keeps counting its ``for`` from when it began.

Resolved records stay a while: their flap history must survive a quick
re-fire. The rule engine drops them once their history holds no firing result
and they are not flapping, or :data:`RESOLVED_KEPT` after they resolved
(``[limits] retention`` when shorter).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from netalert.alerts.caps import SUMMARY_SOURCE
from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.present import varbind_from_json, varbind_json
from netalert.state.db import Database

__all__ = [
    "MIGRATIONS",
    "RESOLVED_KEPT",
    "SEP",
    "AlertRecord",
    "AlertStore",
    "group_of",
    "load_alerts",
    "make_key",
]

# Longest a resolved record is kept (memory and database): an hour of flap history.
RESOLVED_KEPT = 3600.0
# Separates the parts of a lookup key; the ASCII unit separator occurs in no name.
SEP = "\x1f"


def make_key(source: str, rule: str, device: str, rest: str) -> str:
    """A record's lookup key: ``source, rule, device`` (the group) and the row or trap key."""
    return SEP.join((source, rule, device, rest))


def group_of(key: str) -> str:
    """The ``source, rule, device`` part of a lookup key."""
    return SEP.join(key.split(SEP, 3)[:3])


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


@dataclass(slots=True)
class AlertRecord:
    """One alert and the engine's bookkeeping about it (internal to rules/alerts).

    ``key`` finds the record from what the engine sees (:func:`make_key`):
    source, rule, device, and the row index or the trap key labels. ``history`` is the flap window
    (see :mod:`netalert.alerts.flap`); ``notified`` the last TransitionKind
    reported ("" before the first); ``confirm_*`` drive a trap rule's confirm polls.
    """

    alert: Alert
    key: str
    phase: Phase
    history: str = ""
    sampled_at: float = 0.0
    flap_since: float | None = None
    flap_changes: int = 0
    notified: str = ""
    confirm_index: str | None = None
    confirm_next: float | None = None
    signature: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """True while pending or firing."""
        return self.phase.state is not AlertState.RESOLVED


class AlertStore:
    """All alert records by fingerprint and by lookup key, persisted in ``db``.

    ``db`` None keeps everything in memory (tests of pure parts, ``netalert demo``).
    """

    def __init__(self, db: Database | None) -> None:
        self._db = db
        self._records: dict[str, AlertRecord] = {}
        self._by_key: dict[str, set[str]] = {}
        self._by_group: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        # active records counted against the caps (summary alerts are not), by rule
        self._counted: dict[str, set[str]] = {}
        self._counted_total = 0
        # firing alerts' severities, kept current by put/remove: the status page's
        # chart reads the counts on every change without walking every alert
        self._firing: dict[str, str] = {}
        self._firing_counts: dict[str, int] = {}
        if db is not None:
            db.migrate("alerts", MIGRATIONS)
            for record in _load(db.conn):
                self._index(record)

    def _index(self, record: AlertRecord) -> None:
        fp = record.alert.fingerprint
        self._records[fp] = record
        self._by_key.setdefault(record.key, set()).add(fp)
        self._by_group.setdefault(group_of(record.key), set()).add(fp)
        self._count(record, record.active)
        self._count_firing(fp, record)

    def _count_firing(self, fp: str, record: AlertRecord | None) -> None:
        firing = record is not None and record.active and record.alert.state is AlertState.FIRING
        new = record.alert.severity if firing and record is not None else None
        old = self._firing.get(fp)
        if old == new:
            return
        if old is not None:
            del self._firing[fp]
            self._firing_counts[old] -= 1
            if not self._firing_counts[old]:
                del self._firing_counts[old]
        if new is not None:
            self._firing[fp] = new
            self._firing_counts[new] = self._firing_counts.get(new, 0) + 1

    def firing_counts(self) -> dict[str, int]:
        """Firing alerts per severity (pending ones not counted); O(severities)."""
        return dict(self._firing_counts)

    def _count(self, record: AlertRecord, active: bool) -> None:
        fp = record.alert.fingerprint
        rule = record.alert.rule
        fps = self._counted.get(rule)
        if active and record.alert.source != SUMMARY_SOURCE:
            if fps is None:
                fps = self._counted[rule] = set()
            if fp not in fps:
                fps.add(fp)
                self._counted_total += 1
        elif fps is not None and fp in fps:
            fps.discard(fp)
            self._counted_total -= 1
            if not fps:
                del self._counted[rule]

    def active_count(self, rule: str) -> int:
        """Active (pending or firing) alerts of ``rule``, summary alerts not counted."""
        fps = self._counted.get(rule)
        return len(fps) if fps else 0

    def active_total(self) -> int:
        """Active alerts of every rule, summary alerts not counted."""
        return self._counted_total

    def active_by_rule(self) -> dict[str, int]:
        """:meth:`active_count` of every rule with an active alert."""
        return {rule: len(fps) for rule, fps in self._counted.items()}

    def get(self, fingerprint: str) -> AlertRecord | None:
        """The record of ``fingerprint``, or None."""
        return self._records.get(fingerprint)

    def by_key(self, key: str) -> list[AlertRecord]:
        """The records filed under ``key`` (usually zero or one)."""
        fps = self._by_key.get(key)
        if not fps:
            return []
        return [self._records[fp] for fp in fps]

    def by_group(self, group: str) -> list[AlertRecord]:
        """The records whose key starts with ``group`` (see :func:`group_of`)."""
        fps = self._by_group.get(group)
        if not fps:
            return []
        return [self._records[fp] for fp in fps]

    def records(self) -> Iterator[AlertRecord]:
        """Every record (iterate over a copy if you change the store meanwhile)."""
        return iter(list(self._records.values()))

    def put(self, record: AlertRecord) -> None:
        """Adds or marks changed a record; written at the next :meth:`flush`."""
        fp = record.alert.fingerprint
        if fp not in self._records:
            self._index(record)
        else:
            self._count(record, record.active)
            self._count_firing(fp, record)
        self._dirty.add(fp)
        self._deleted.discard(fp)

    def remove(self, fingerprint: str) -> None:
        """Drops a record (a resolved one that need not be kept)."""
        record = self._records.pop(fingerprint, None)
        if record is None:
            return
        self._count(record, False)
        self._count_firing(fingerprint, None)
        for index, name in ((self._by_key, record.key), (self._by_group, group_of(record.key))):
            fps = index.get(name)
            if fps is not None:
                fps.discard(fingerprint)
                if not fps:
                    del index[name]
        self._dirty.discard(fingerprint)
        self._deleted.add(fingerprint)

    def active(self) -> list[Alert]:
        """The pending and firing alerts, oldest first."""
        return sorted(
            (r.alert for r in self._records.values() if r.active),
            key=lambda a: (a.starts_at, a.fingerprint),
        )

    def alerts(self) -> list[Alert]:
        """Every alert kept, resolved ones included."""
        return [r.alert for r in self._records.values()]

    @property
    def dirty(self) -> bool:
        """True while changed or removed records wait to be written."""
        return bool(self._dirty or self._deleted)

    def flush(self) -> None:
        """Writes the changed and removed records in one transaction.

        The rows are taken now; the write goes through the database's writer, so
        while the disk cannot take it the write waits in memory (in order, with
        the outbox's writes). If the writer has to shed it, the records it held
        are marked changed again and go with the next flush.

        Raises:
            StateWriteError: The write failed and the writer holds nothing (the
                CLI); the records stay changed for the next flush.
            StateCorruptError: The database is damaged.
        """
        if self._db is None or not (self._dirty or self._deleted):
            self._dirty.clear()
            self._deleted.clear()
            return
        deleted = list(self._deleted)
        rows = [_row(self._records[fp]) for fp in self._dirty]
        changed = list(self._dirty)

        def apply(conn: sqlite3.Connection) -> None:
            for fp in deleted:
                conn.execute("DELETE FROM alerts WHERE fingerprint = ?", (fp,))
            conn.executemany(_UPSERT, rows)

        def shed() -> None:
            # the newest state of these records is in memory: write it again next time
            self._dirty.update(fp for fp in changed if fp in self._records)
            self._deleted.update(fp for fp in deleted if fp not in self._records)

        self._db.writer.write("alerts", apply, on_shed=shed)
        self._dirty.clear()
        self._deleted.clear()


_COLUMNS = (
    "fingerprint, lookup_key, rule, severity, device, labels, annotations, state, starts_at,"
    " ends_at, updated_at, value, count, flapping, silenced, source, varbinds, engine"
)
_UPSERT = (
    f"INSERT OR REPLACE INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?)"
)


def _row(record: AlertRecord) -> tuple[Any, ...]:
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


def _load(conn: sqlite3.Connection) -> Iterable[AlertRecord]:
    for row in conn.execute(f"SELECT {_COLUMNS} FROM alerts"):
        engine = json.loads(row[17])
        state, since, last_bad = engine["phase"]
        yield AlertRecord(
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


def load_alerts(db: Database, *, active_only: bool = True) -> list[Alert]:
    """Reads the alerts from the database (``netalert alerts``), oldest first."""
    db.migrate("alerts", MIGRATIONS)
    query = f"SELECT {_COLUMNS} FROM alerts"
    if active_only:
        query += " WHERE state IN ('pending', 'firing')"
    query += " ORDER BY starts_at, fingerprint"
    return [_alert(row) for row in db.conn.execute(query)]
