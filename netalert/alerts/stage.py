"""The alert stage: observations in, transitions out, the alerts kept and saved.

The one place where an alert is looked up, moved by
:func:`~netalert.alerts.step.step` and put back::

    stage = AlertStage(SqliteAlertStore(db), policy, config.limits)
    transitions = stage.apply(observations, now)   # from the rules' on_poll / on_trap
    transitions += stage.tick(now)                 # every second: for, resolve_after, clean-up
    stage.commit()                                  # what changed, to the store

Around ``step`` it keeps what concerns several alerts at once: the caps
(:mod:`netalert.alerts.limits`), DeviceUnreachable's inhibition of its
device's poll alerts, the alerts of removed rules and devices, the clean-up of
old resolved records and the schedule of trap rules' confirm polls. It is
also the :class:`~netalert.alerts.observe.AlertView` the rules read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from netalert.alerts.caps import SUMMARY_SOURCE
from netalert.alerts.flap import FlapSettings
from netalert.alerts.limits import AlertLimits
from netalert.alerts.model import Alert, AlertState, Transition
from netalert.alerts.observe import Event, Observation, Policy, RulePolicy, Watch
from netalert.alerts.step import step
from netalert.alerts.store import AlertStore
from netalert.alerts.table import RESOLVED_KEPT, AlertRecord, AlertTable
from netalert.config.models import LimitsConfig

__all__ = ["AlertStage"]

_NO_FLAP = FlapSettings(enabled=False)


class AlertStage:
    """Every alert's life, its caps and its persistence.

    Args:
        store: Where the records are loaded from (now) and saved to (:meth:`commit`).
        policy: The rules in force (:meth:`configure` on reload).
        limits: ``[limits]`` of the config in force.
    """

    def __init__(self, store: AlertStore, policy: Policy, limits: LimitsConfig) -> None:
        self.store = store
        self.table = AlertTable(store.load())
        self.limits = AlertLimits(self.table, limits, policy.summary)
        # Resolved alerts dropped by the clean-up since the start (netalert_pruned_rows_total).
        self.pruned = 0
        self._confirming: set[str] = set()
        self.configure(policy, limits)

    def configure(self, policy: Policy, limits: LimitsConfig) -> None:
        """Takes the rules and limits of a new config; alerts of removed or changed rules
        are retired at the next :meth:`tick`."""
        self.policy = policy
        self.limits.configure(limits, policy.summary)
        self._kept = min(RESOLVED_KEPT, limits.retention.total_seconds())
        self._batch = limits.prune_batch
        self._confirming = {
            r.alert.fingerprint for r in self.table.records() if r.confirm_next is not None
        }

    # --- what the rules read (AlertView) ---------------------------------------------------

    def state(self, key: str) -> AlertState | None:
        """The state of the alert filed under ``key``; None when there is none."""
        record = self.table.first(key)
        return record.phase.state if record is not None else None

    def active_keys(self, group: str) -> list[str]:
        """The keys of the active alerts whose key starts with ``group``."""
        return [r.key for r in self.table.by_group(group) if r.active]

    def watching(self, device: str) -> list[Watch]:
        """The active trap alerts of ``device`` waiting for a confirm poll."""
        out = []
        for fp in list(self._confirming):
            found = self.watch(fp)
            if found is not None and found.device == device:
                out.append(found)
        return out

    def watch(self, fingerprint: str) -> Watch | None:
        """The confirm watch of one alert, None when it no longer needs one."""
        record = self.table.get(fingerprint)
        if record is None or not record.active or record.confirm_index is None:
            return None
        alert = record.alert
        return Watch(fingerprint, alert.rule, alert.device, record.confirm_index)

    # --- changes -------------------------------------------------------------------------

    def apply(self, observations: Iterable[Observation], now: float) -> list[Transition]:
        """Moves the alerts of ``observations``, in order; returns the transitions to report."""
        out: list[Transition] = []
        for obs in observations:
            out += self.observe(obs, now)
        return out

    def observe(self, obs: Observation, now: float) -> list[Transition]:
        """Moves the alert(s) ``obs`` is about: looked up, stepped, capped, put back."""
        if obs.fingerprint is not None:
            found = self.table.get(obs.fingerprint)
            records: list[AlertRecord | None] = [found] if found is not None else [None]
        else:
            records = [*self.table.by_key(obs.key)] or [None]
        out: list[Transition] = []
        for record in records:
            new, changes = step(record, obs, now)
            if new is None or new is record:
                continue
            woken = new.active and (record is None or not record.active)
            if woken and self.limits.over(obs.policy.name) is not None:
                suppressed = self.limits.suppress(obs, now)
                out += [suppressed] if suppressed is not None else []
                continue
            self._put(record, new)
            out += changes
        return out

    def _put(self, old: AlertRecord | None, new: AlertRecord) -> None:
        self.table.put(new)
        if new.confirm_next is not None:
            self._confirming.add(new.alert.fingerprint)
        was = old is not None and old.active
        if new.alert.source == "builtin" and was != new.active:
            self._inhibit(new.alert.device, new.active)

    def _inhibit(self, device: str, on: bool) -> None:
        """DeviceUnreachable fires or resolves: its device's poll alerts are (not) silenced."""
        for record in self.table.records():
            alert = record.alert
            if alert.device == device and alert.source == "poll" and alert.silenced != on:
                self.table.put(replace(record, alert=replace(alert, silenced=on)))

    def tick(self, now: float) -> list[Transition]:
        """Time-based changes: trap ``for`` and ``resolve_after``, quiet flap samples,
        alerts of removed or changed rules and devices, summary alerts of the caps,
        and clean-up of resolved records (at most ``[limits] prune_batch`` per tick)."""
        out: list[Transition] = []
        budget = self._batch
        for record in self.table.records():
            out += self._tick(record, now)
            if budget > 0 and self._collect(record.alert.fingerprint, now):
                budget -= 1
        return out

    def _tick(self, record: AlertRecord, now: float) -> list[Transition]:
        alert = record.alert
        if self._obsolete(record):
            return self._retire(record, now)
        if alert.source == SUMMARY_SOURCE:
            change = self.limits.tick(record, now)
            return [change] if change is not None else []
        if alert.source != "trap":
            return []
        policy = self.policy.rules[alert.rule]
        obs = Observation(
            policy, record.key, alert.device, Event.TIME, fingerprint=alert.fingerprint
        )
        return self.observe(obs, now)

    def _obsolete(self, record: AlertRecord) -> bool:
        alert = record.alert
        rule = self.policy.rules.get(alert.rule)
        if rule is None or record.signature != rule.signature:
            return True
        if alert.source == "trap":
            return rule.source != "trap"
        if alert.source == "builtin":
            return not self.policy.unreachable or alert.device not in self.policy.devices
        if alert.source == SUMMARY_SOURCE:
            return rule.source == "builtin" and not self.policy.unreachable
        return rule.source != "poll" or alert.device not in self.policy.devices

    def _retire(self, record: AlertRecord, now: float) -> list[Transition]:
        alert = record.alert
        policy = RulePolicy(
            alert.rule,
            alert.severity,
            alert.source,
            record.signature,
            self.policy.fallback,
            _NO_FLAP,
        )
        obs = Observation(
            policy,
            record.key,
            alert.device,
            Event.RETIRED,
            fingerprint=alert.fingerprint,
            value="rule or device removed",
            sample=False,
        )
        _, changes = step(record, obs, now)
        self.table.remove(alert.fingerprint)
        self._confirming.discard(alert.fingerprint)
        if alert.source == SUMMARY_SOURCE:
            self.limits.forget(alert.rule)
        return changes

    def _collect(self, fingerprint: str, now: float) -> bool:
        """Drops a resolved record nobody needs any more; True when it did."""
        record = self.table.get(fingerprint)
        if record is None or record.active or record.alert.flapping:
            return False
        if "1" in record.history and now - (record.alert.ends_at or now) <= self._kept:
            return False
        self.table.remove(fingerprint)
        self.pruned += 1
        return True

    def confirms_due(self, now: float) -> list[Watch]:
        """The confirm polls due now (at once after the trap, then every ``confirm_every``)."""
        out = []
        for fp in list(self._confirming):
            record = self.table.get(fp)
            policy = self.policy.rules.get(record.alert.rule) if record is not None else None
            every = policy.confirm_every if policy is not None and policy.source == "trap" else None
            if record is None or every is None or not record.active:
                self._confirming.discard(fp)
                if record is not None and record.confirm_next is not None:
                    self.table.put(replace(record, confirm_next=None))
                continue
            index = record.confirm_index
            if record.confirm_next is None or record.confirm_next > now or index is None:
                continue
            out.append(Watch(fp, record.alert.rule, record.alert.device, index))
            self.table.put(replace(record, confirm_next=now + every))
        return out

    # --- persistence and reading -------------------------------------------------------------

    def commit(self) -> None:
        """Hands what changed since the last commit to the store (one write).

        Raises:
            StateWriteError: The store could neither write nor hold it; the
                changes stay for the next commit.
            StateCorruptError: The database is damaged.
        """
        if not self.table.dirty:
            return
        changed, removed = self.table.changes()
        fps = [r.alert.fingerprint for r in changed]
        table = self.table
        self.store.save(changed, removed, on_lost=lambda: table.unsaved(fps, removed))
        table.saved()

    def active(self) -> list[Alert]:
        """The pending and firing alerts, oldest first."""
        return self.table.active()

    def adopt(self, records: Iterable[AlertRecord]) -> list[Alert]:
        """Takes records loaded from the store after the start (a cluster node taking a
        shard over); returns the alerts taken (one already here is kept as it is)."""
        taken = []
        for record in records:
            if self.table.adopt(record):
                taken.append(record.alert)
                if record.confirm_next is not None:
                    self._confirming.add(record.alert.fingerprint)
        return taken

    def forget(self, fingerprints: Iterable[str]) -> list[Alert]:
        """Drops records from memory, unsaved and not deleted (a cluster node lost their
        shard); returns their alerts."""
        out = []
        for fp in fingerprints:
            record = self.table.forget(fp)
            if record is not None:
                self._confirming.discard(fp)
                out.append(record.alert)
        return out
