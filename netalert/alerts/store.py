"""The alerts and their bookkeeping, in memory and in SQLite (table ``alerts``).

The engine changes :class:`AlertRecord` values in memory and calls
:meth:`AlertStore.flush` once per poll, trap or tick, which writes every
changed record in one transaction. The agent's store is *deferred*: there
``flush`` writes nothing and the agent commits the changes of a whole loop
turn at once (:meth:`AlertStore.commit`, or :meth:`AlertStore.write` inside
the transaction that also queues the turn's mails). A restart loads the
records back, so an alert that was firing is still firing (no second FIRING
mail) and one that was pending keeps counting its ``for`` from when it began.

Resolved records stay a while: their flap history must survive a quick
re-fire, and the web page shows recent resolutions. They are dropped once
their history holds no firing result and they are not flapping, or an hour
after they resolved.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.snmp.types import SnmpType, VarBind
from netalert.state.db import Database

__all__ = ["MIGRATIONS", "SEP", "AlertRecord", "AlertStore", "group_of", "load_alerts", "make_key"]

RETENTION = 3600.0
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
    ``deferred`` True makes :meth:`flush` a no-op: the owner commits instead.
    """

    def __init__(self, db: Database | None, *, deferred: bool = False) -> None:
        self._db = db
        self.deferred = deferred
        self._records: dict[str, AlertRecord] = {}
        self._by_key: dict[str, set[str]] = {}
        self._by_group: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        # firing alerts' severities, kept up to date by put/remove: the status page's
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
        self._count(fp, record)

    def _count(self, fp: str, record: AlertRecord | None) -> None:
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
            self._count(fp, record)
        self._dirty.add(fp)
        self._deleted.discard(fp)

    def remove(self, fingerprint: str) -> None:
        """Drops a record (a resolved one that need not be kept)."""
        record = self._records.pop(fingerprint, None)
        if record is None:
            return
        for index, name in ((self._by_key, record.key), (self._by_group, group_of(record.key))):
            fps = index.get(name)
            if fps is not None:
                fps.discard(fingerprint)
                if not fps:
                    del index[name]
        self._count(fingerprint, None)
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
        """Writes the changed and removed records in one transaction (:meth:`commit`),
        unless the store is ``deferred``: then the owner commits them.

        Raises:
            sqlite3.Error: The write failed; the records stay dirty for the next flush.
        """
        if not self.deferred:
            self.commit()

    def commit(self) -> None:
        """Writes the changed and removed records in one transaction, deferred or not.

        Raises:
            sqlite3.Error: The write failed; the records stay dirty for the next commit.
        """
        if self._db is None or not self.dirty:
            self._dirty.clear()
            self._deleted.clear()
            return
        with self._db.transaction() as conn:
            written = self.write(conn)
        self.written(written)

    def write(self, conn: sqlite3.Connection) -> tuple[frozenset[str], frozenset[str]]:
        """Writes the changed and removed records inside the caller's open transaction.

        Returns what was written; pass it to :meth:`written` once the transaction
        committed (until then the records stay dirty: a rollback loses nothing).

        Raises:
            sqlite3.Error: The write failed.
        """
        dirty, deleted = frozenset(self._dirty), frozenset(self._deleted)
        if self._db is None:
            return dirty, deleted
        for fp in deleted:
            conn.execute("DELETE FROM alerts WHERE fingerprint = ?", (fp,))
        conn.executemany(_UPSERT, [_row(self._records[fp]) for fp in dirty])
        return dirty, deleted

    def written(self, done: tuple[frozenset[str], frozenset[str]]) -> None:
        """Marks what :meth:`write` returned as stored (its transaction committed)."""
        self._dirty -= done[0]
        self._deleted -= done[1]


_COLUMNS = (
    "fingerprint, lookup_key, rule, severity, device, labels, annotations, state, starts_at,"
    " ends_at, updated_at, value, count, flapping, silenced, source, varbinds, engine"
)
_UPSERT = (
    f"INSERT OR REPLACE INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?)"
)


def _varbind_json(vb: VarBind) -> dict[str, Any]:
    # the fields by hand: dataclasses.asdict deep-copies, and cost a third of a trap's write
    value: Any = vb.value
    if isinstance(value, bytes):
        value = {"b64": base64.b64encode(value).decode("ascii")}
    return {
        "oid": vb.oid,
        "type": vb.type.value,
        "value": value,
        "name": vb.name,
        "index": vb.index,
        "label": vb.label,
    }


def _varbind(data: dict[str, Any]) -> VarBind:
    value = data.get("value")
    if isinstance(value, dict):
        value = base64.b64decode(value["b64"])
    return VarBind(
        oid=data["oid"],
        type=SnmpType(data["type"]),
        value=value,
        name=data.get("name", ""),
        index=data.get("index", ""),
        label=data.get("label", ""),
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
        json.dumps([_varbind_json(vb) for vb in a.varbinds]),
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
        varbinds=tuple(_varbind(v) for v in json.loads(row[16])),
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
