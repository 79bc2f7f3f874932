"""The alert records in memory: by fingerprint, by lookup key, counted, with what changed.

:class:`AlertTable` is where the alert stage keeps every alert it knows and the
bookkeeping about it (:class:`AlertRecord`). It does no I/O: the stage loads it
from an :class:`~netalert.alerts.store.AlertStore` at start and hands the
store what changed (:meth:`AlertTable.changes`) once per call, which the agent's
state writer commits once per event-loop turn.

Resolved records stay a while: their flap history must survive a quick
re-fire. The stage drops them once their history holds no firing result and
they are not flapping, or :data:`RESOLVED_KEPT` after they resolved
(``[limits] retention`` when shorter).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from netalert.alerts.caps import SUMMARY_SOURCE
from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState

__all__ = ["RESOLVED_KEPT", "SEP", "AlertRecord", "AlertTable", "group_of", "make_key"]

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


@dataclass(slots=True)
class AlertRecord:
    """One alert and the alert stage's bookkeeping about it (internal to alerts/).

    ``key`` finds the record from what the rules see (:func:`make_key`):
    source, rule, device, and the row index or the trap key labels. ``history`` is the flap window
    (see :mod:`netalert.alerts.flap`); ``notified`` the last TransitionKind
    reported ("" before the first); ``confirm_*`` drive a trap rule's confirm polls.
    The stage never changes a record it stored: :func:`netalert.alerts.step.step`
    returns a new one.
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


class AlertTable:
    """All alert records by fingerprint and by lookup key, and what changed since the last save."""

    def __init__(self, records: Iterable[AlertRecord] = ()) -> None:
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
        for record in records:
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

    def first(self, key: str) -> AlertRecord | None:
        """One record filed under ``key`` (there is at most one for a poll row), or None."""
        fps = self._by_key.get(key)
        if not fps:
            return None
        return self._records[next(iter(fps))]

    def by_group(self, group: str) -> list[AlertRecord]:
        """The records whose key starts with ``group`` (see :func:`group_of`)."""
        fps = self._by_group.get(group)
        if not fps:
            return []
        return [self._records[fp] for fp in fps]

    def records(self) -> Iterator[AlertRecord]:
        """Every record (a copy of the list: the table may change meanwhile)."""
        return iter(list(self._records.values()))

    def put(self, record: AlertRecord) -> None:
        """Adds or replaces a record (by fingerprint); saved with the next :meth:`changes`."""
        fp = record.alert.fingerprint
        old = self._records.get(fp)
        if old is None:
            self._index(record)
        else:
            if old.key != record.key:  # never by the stage; kept right for any caller
                self.remove(fp)
                self._index(record)
            self._records[fp] = record
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

    def adopt(self, record: AlertRecord) -> bool:
        """Adds a record as it is stored (not to be saved again); False when one with its
        fingerprint is here already (this node's own is newer)."""
        if record.alert.fingerprint in self._records:
            return False
        self._index(record)
        return True

    def forget(self, fingerprint: str) -> AlertRecord | None:
        """Drops a record from memory only (not deleted from the store); returns it."""
        record = self._records.get(fingerprint)
        if record is None:
            return None
        self.remove(fingerprint)
        self._deleted.discard(fingerprint)
        return record

    def active(self) -> list[Alert]:
        """The pending and firing alerts, oldest first."""
        return sorted(
            (r.alert for r in self._records.values() if r.active),
            key=lambda a: (a.starts_at, a.fingerprint),
        )

    def alerts(self) -> list[Alert]:
        """Every alert kept, resolved ones included."""
        return [r.alert for r in self._records.values()]

    # --- what to save ------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """True while changed or removed records wait to be saved."""
        return bool(self._dirty or self._deleted)

    def changes(self) -> tuple[list[AlertRecord], list[str]]:
        """The records changed and the fingerprints removed since :meth:`saved`."""
        return [self._records[fp] for fp in self._dirty], list(self._deleted)

    def saved(self) -> None:
        """Marks everything :meth:`changes` returned as handed to the store."""
        self._dirty.clear()
        self._deleted.clear()

    def unsaved(self, changed: Iterable[str], removed: Iterable[str]) -> None:
        """Marks records changed again: a save the store could not keep (shed)."""
        self._dirty.update(fp for fp in changed if fp in self._records)
        self._deleted.update(fp for fp in removed if fp not in self._records)
