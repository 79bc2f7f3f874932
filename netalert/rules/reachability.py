"""The built-in DeviceUnreachable alert, fed by the poller's reachability callbacks.

A mixin of :class:`netalert.rules.engine.RuleEngine`. The poller reports every
poll without an answer with the count of such polls in a row; the alert fires
once that count reaches ``[agent] unreachable_after`` (one lost poll pages
nobody), with ``[agent] unreachable_severity``. While DeviceUnreachable
fires for a device, the device's poll alerts are marked ``silenced``
(inhibited): a device that cannot be read neither fires nor resolves them, and
notify need not mail them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import INACTIVE, poll_step
from netalert.alerts.model import Transition
from netalert.alerts.store import AlertStore, make_key
from netalert.rules.apply import Target, advance, alert_labels
from netalert.rules.compile import UNREACHABLE, RuleSet
from netalert.rules.limits import AlertLimits
from netalert.rules.templates import compile_template

__all__ = ["DeviceReachability"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_UNREACHABLE_SUMMARY = compile_template(
    "{{ device }} did not answer {{ failures }} SNMP poll{{ 's' if failures != 1 else '' }}"
    "{{ ' in a row' if failures != 1 else '' }} ({{ value }})"
)
# Said of the past, and never with the value that cleared it ("answering").
_UNREACHABLE_RESOLVED = compile_template(
    "{{ device }} answers SNMP again (no answer for {{ fired_for | duration }})"
)
_UNREACHABLE_DESCRIPTION = compile_template(
    "netalert got no answer from {{ device }}: {{ value }}. Its other poll alerts are held"
    " until it answers again."
)


class DeviceReachability:
    """DeviceUnreachable; state lives in the attributes RuleEngine sets."""

    store: AlertStore
    rules: RuleSet
    limits: AlertLimits
    _signatures: dict[str, str]

    def _unreachable_target(self, device: str) -> Target:
        labels = self.rules.device_labels.get(device, _EMPTY)
        severity = self.rules.unreachable_severity
        own = alert_labels(UNREACHABLE, severity, device, {}, {}, labels)
        return Target(
            UNREACHABLE,
            severity,
            device,
            own,
            "builtin",
            make_key("builtin", UNREACHABLE, device, ""),
            self._signatures[UNREACHABLE],
            FlapSettings(),
            _UNREACHABLE_SUMMARY,
            _UNREACHABLE_DESCRIPTION,
            resolved_summary=_UNREACHABLE_RESOLVED,
        )

    def device_unreachable(
        self, device: str, now: float, reason: str, *, failures: int
    ) -> list[Transition]:
        """A poll of ``device`` got no answer, the ``failures``-th in a row.

        At ``[agent] unreachable_after`` polls in a row, DeviceUnreachable
        fires and the device's poll alerts are marked ``silenced``
        (inhibited); later lost polls of the same outage change nothing (no
        store write, no scan of the alerts per poll). Does nothing when
        ``[agent] device_unreachable = false``.
        """
        if not self.rules.unreachable or failures < self.rules.unreachable_after:
            return []
        target = self._unreachable_target(device)
        found = self.store.by_key(target.key)
        record = found[0] if found else None
        if record is not None and record.active:
            return []  # firing since an earlier lost poll of this outage: told once
        phase = poll_step(
            record.phase if record else INACTIVE,
            fire=True,
            clear=None,
            hysteresis=False,
            now=now,
            for_=0.0,
            keep_firing_for=0.0,
        )
        if not self.limits.admits(UNREACHABLE, record, phase):
            suppressed = self.limits.suppress(target, _EMPTY, now)
            self.store.flush()
            return [suppressed] if suppressed is not None else []
        change = advance(
            self.store,
            target,
            record,
            phase,
            now=now,
            sample=True,
            value=reason,
            context={"reason": reason, "failures": failures},
        )
        self._inhibit(device, True)
        self.store.flush()
        return [change] if change is not None else []

    def device_reachable(self, device: str, now: float) -> list[Transition]:
        """The poller got an answer from ``device``: resolve its DeviceUnreachable."""
        out = self._reachable(device, now)
        if out:
            self.store.flush()
        return out

    def _reachable(self, device: str, now: float) -> list[Transition]:
        found = self.store.by_key(make_key("builtin", UNREACHABLE, device, ""))
        if not found:
            return []
        record = found[0]
        was = record.active
        phase = poll_step(
            record.phase,
            fire=False,
            clear=None,
            hysteresis=False,
            now=now,
            for_=0.0,
            keep_firing_for=0.0,
        )
        change = advance(
            self.store,
            self._unreachable_target(device),
            record,
            phase,
            now=now,
            sample=True,
            value="answering",
            context={},
        )
        if was and not record.active:
            self._inhibit(device, False)
        return [change] if change is not None else []

    def _inhibit(self, device: str, on: bool) -> None:
        for record in self.store.records():
            alert = record.alert
            if alert.device == device and alert.source == "poll" and alert.silenced != on:
                record.alert = replace(alert, silenced=on)
                self.store.put(record)
