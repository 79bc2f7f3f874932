"""The alert caps applied: no new alert past them, one summary alert per rule instead.

The alert stage asks :meth:`AlertLimits.over` before a step makes an alert
active (new, or a resolved one woken); when a cap is reached it calls
:meth:`AlertLimits.suppress`, which counts the alert and fires or updates the
rule's summary alert, and :meth:`AlertLimits.tick` (from the stage's tick)
resolves the summary once the rule is under its caps and quiet. The decisions
are the pure functions of :mod:`netalert.alerts.caps`; the summary's changes
go through :func:`netalert.alerts.step.step` like any alert's.

A suppressed alert is counted once per key while its rule's summary fires: the
keys are remembered, up to ``max_active_alerts`` keys over all rules (past that
a repeat may count again), and forgotten when the summary resolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from netalert.alerts.caps import SUMMARY_SOURCE, Caps, over_cap, summary_occurred, summary_tick
from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import INACTIVE
from netalert.alerts.model import Alert, Transition, alert_labels, fingerprint
from netalert.alerts.observe import Describer, Event, Observation, RulePolicy
from netalert.alerts.step import step
from netalert.alerts.table import AlertRecord, AlertTable, make_key
from netalert.config.models import LimitsConfig

__all__ = ["AlertLimits"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_FLAP = FlapSettings(enabled=False)
_CAP_TEXT = {
    "per_rule": "the rule has {n} active alerts ([limits].max_active_alerts_per_rule)",
    "total": "{n} alerts are active in all ([limits].max_active_alerts)",
}


class AlertLimits:
    """The caps in force, the suppressed keys per rule and the suppression counters.

    Args:
        table: The alert records (counts the active alerts, keeps the summaries).
        limits: ``[limits]`` of the config in force (:meth:`configure` on reload).
        describer: Renders the summary alerts' templates.
    """

    def __init__(self, table: AlertTable, limits: LimitsConfig, describer: Describer) -> None:
        self.table = table
        # Every alert suppressed since the start, by rule (netalert_alerts_suppressed_total).
        self.suppressed_total: dict[str, int] = {}
        self._keys: dict[str, set[str]] = {}
        self._kept = 0  # keys remembered, over all rules
        self._updated: dict[str, Alert] = {}
        self.configure(limits, describer)

    def configure(self, limits: LimitsConfig, describer: Describer) -> None:
        """Takes the caps of a new config; what is active now stays."""
        self.caps = Caps(limits.max_active_alerts, limits.max_active_alerts_per_rule)
        self.quiet = limits.suppressed_resolve_after.total_seconds()
        self.max_label = limits.max_label_chars
        self.describer = describer

    def over(self, rule: str) -> str | None:
        """The cap one more active alert of ``rule`` would pass, or None."""
        return over_cap(
            self.caps,
            rule_active=self.table.active_count(rule),
            total_active=self.table.active_total(),
        )

    def suppress(self, obs: Observation, now: float) -> Transition | None:
        """Counts the alert of ``obs`` as suppressed and fires or updates its rule's summary.

        The summary carries the rule's own labels (routes matching them take
        it too). Returns the summary's FIRING transition when it starts, else None.
        """
        rule = obs.policy.name
        keys = self._keys.setdefault(rule, set())
        new = obs.key not in keys
        if new:
            self.suppressed_total[rule] = self.suppressed_total.get(rule, 0) + 1
            if self._kept < self.caps.total:
                keys.add(obs.key)
                self._kept += 1
        policy = self._policy(obs.policy)
        labels = alert_labels(
            rule,
            policy.severity,
            "",
            {"suppressed": "true"},
            policy.labels,
            _EMPTY,
            limit=self.max_label,
        )
        record = self.table.get(fingerprint(labels))
        active = record is not None and record.active
        if record is not None and active and not new:
            # still hitting the cap
            self.table.put(replace(record, phase=replace(record.phase, last_bad=now)))
            return None
        count = (record.alert.count if record is not None and active else 0) + 1
        over = self.over(rule) or "per_rule"
        cap = _CAP_TEXT[over].format(
            n=self.caps.per_rule if over == "per_rule" else self.caps.total
        )
        summary = Observation(
            policy,
            make_key(SUMMARY_SOURCE, rule, "", ""),
            "",
            Event.DECIDED,
            labels=labels,
            value=f"{count} suppressed",
            context={"suppressed": count, "cap": cap},
            extra={"cap": cap},
            sample=False,
            phase=summary_occurred(record.phase if record is not None else INACTIVE, now=now),
            count=count,
        )
        stored, changes = step(record, summary, now)
        if stored is None:
            return None
        self.table.put(stored)
        if not changes:
            self._updated[stored.alert.fingerprint] = stored.alert
            return None
        return changes[0]

    def take_updates(self) -> list[Alert]:
        """The summary alerts whose count changed without a transition, since the last call.

        Handing them to notify keeps a group that has not been mailed yet
        (``group_wait``) up to date; a group already told mails nothing new.
        """
        out = list(self._updated.values())
        self._updated.clear()
        return out

    def tick(self, record: AlertRecord, now: float) -> Transition | None:
        """A summary alert as time passes: resolves it once under the caps and quiet."""
        alert = record.alert
        phase = summary_tick(
            record.phase, now=now, under_cap=self.over(alert.rule) is None, quiet=self.quiet
        )
        if phase is record.phase:
            return None
        self.forget(alert.rule)
        policy = RulePolicy(
            alert.rule, alert.severity, SUMMARY_SOURCE, record.signature, self.describer, _NO_FLAP
        )
        obs = Observation(
            policy,
            record.key,
            alert.device,
            Event.DECIDED,
            value=f"{alert.count} suppressed; back under the caps",
            context={"suppressed": alert.count, "cap": record.extra.get("cap", "")},
            sample=False,
            phase=phase,
        )
        stored, changes = step(record, obs, now)
        if stored is not None:
            self.table.put(stored)
        return changes[0] if changes else None

    def forget(self, rule: str) -> None:
        """Drops the suppressed keys of ``rule`` (its summary resolved or was retired)."""
        self._kept -= len(self._keys.pop(rule, ()))

    def _policy(self, suppressed: RulePolicy) -> RulePolicy:
        """The summary's policy: the suppressed alert's rule, severity, signature and labels."""
        return RulePolicy(
            suppressed.name,
            suppressed.severity,
            SUMMARY_SOURCE,
            suppressed.signature,
            self.describer,
            _NO_FLAP,
            suppressed.labels,
        )
