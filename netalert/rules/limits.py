"""The alert caps applied: no new alert past them, one summary alert per rule instead.

The rule engine asks :meth:`AlertLimits.admits` before it makes an alert (or
wakes a resolved one); when the answer is no it calls
:meth:`AlertLimits.suppress`, which counts the alert and fires or updates the
rule's summary alert, and :meth:`AlertLimits.step` (from the engine's tick)
resolves the summary once the rule is under its caps and quiet. The decisions
are the pure functions of :mod:`netalert.alerts.caps`.

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
from netalert.alerts.lifecycle import INACTIVE, Phase
from netalert.alerts.model import Alert, AlertState, Transition
from netalert.alerts.store import AlertRecord, AlertStore, make_key
from netalert.config.models import LimitsConfig
from netalert.rules.apply import Target, advance, alert_labels
from netalert.rules.templates import compile_template

__all__ = ["AlertLimits"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_FLAP = FlapSettings(enabled=False)
_SUMMARY = compile_template(
    "{{ suppressed }} more alert{{ '' if suppressed == 1 else 's' }} of rule {{ labels.rule }}"
    " suppressed: {{ cap }}"
)
_DESCRIPTION = compile_template(
    "New {{ labels.rule }} alerts are not made, nor mailed, while {{ cap }}:"
    " {{ suppressed }} so far, counted in netalert_alerts_suppressed_total. This alert"
    " resolves once the rule is under its caps and nothing more was suppressed for"
    " [limits].suppressed_resolve_after."
)
_CAP_TEXT = {
    "per_rule": "the rule has {n} active alerts ([limits].max_active_alerts_per_rule)",
    "total": "{n} alerts are active in all ([limits].max_active_alerts)",
}


class AlertLimits:
    """The caps in force, the suppressed keys per rule and the suppression counters.

    Args:
        store: The alert store (counts the active alerts, keeps the summaries).
        limits: ``[limits]`` of the config in force (:meth:`configure` on reload).
    """

    def __init__(self, store: AlertStore, limits: LimitsConfig) -> None:
        self.store = store
        # Every alert suppressed since the start, by rule (netalert_alerts_suppressed_total).
        self.suppressed_total: dict[str, int] = {}
        self._keys: dict[str, set[str]] = {}
        self._kept = 0  # keys remembered, over all rules
        self._updated: dict[str, Alert] = {}
        self.configure(limits)

    def configure(self, limits: LimitsConfig) -> None:
        """Takes the caps of a new config; what is active now stays."""
        self.caps = Caps(limits.max_active_alerts, limits.max_active_alerts_per_rule)
        self.quiet = limits.suppressed_resolve_after.total_seconds()

    def admits(self, rule: str, record: AlertRecord | None, phase: Phase) -> bool:
        """Whether ``record`` (None: a new alert) of ``rule`` may move to ``phase``.

        Only a move from nothing or resolved to pending or firing is checked;
        an alert already active keeps going whatever the counts.
        """
        if phase.state is AlertState.RESOLVED or (record is not None and record.active):
            return True
        return self._over(rule) is None

    def _over(self, rule: str) -> str | None:
        return over_cap(
            self.caps,
            rule_active=self.store.active_count(rule),
            total_active=self.store.active_total(),
        )

    def suppress(self, target: Target, static: Mapping[str, str], now: float) -> Transition | None:
        """Counts ``target`` as suppressed and fires or updates its rule's summary alert.

        Args:
            target: The alert that was not made.
            static: The rule's own labels (the summary carries them, so routes
                matching them take the summary too).
            now: The time of the suppression.

        Returns:
            The summary's FIRING transition when it starts, else None.
        """
        rule = target.rule
        keys = self._keys.setdefault(rule, set())
        new = target.key not in keys
        if new:
            self.suppressed_total[rule] = self.suppressed_total.get(rule, 0) + 1
            if self._kept < self.caps.total:
                keys.add(target.key)
                self._kept += 1
        summary = self._target(rule, target.severity, target.signature, static)
        record = self.store.get(summary.fingerprint)
        active = record is not None and record.active
        if record is not None and active and not new:
            record.phase = replace(record.phase, last_bad=now)  # still hitting the cap
            self.store.put(record)
            return None
        count = (record.alert.count if record is not None and active else 0) + 1
        over = self._over(rule) or "per_rule"
        n = self.caps.per_rule if over == "per_rule" else self.caps.total
        cap = _CAP_TEXT[over].format(n=n)
        change = advance(
            self.store,
            summary,
            record,
            summary_occurred(record.phase if record is not None else INACTIVE, now=now),
            now=now,
            sample=False,
            value=f"{count} suppressed",
            context={"suppressed": count, "cap": cap},
            count=count,
        )
        stored = self.store.get(summary.fingerprint)
        if stored is not None:
            stored.extra["cap"] = cap
            if change is None:
                self._updated[stored.alert.fingerprint] = stored.alert
        return change

    def take_updates(self) -> list[Alert]:
        """The summary alerts whose count changed without a transition, since the last call.

        Handing them to notify keeps a group that has not been mailed yet
        (``group_wait``) up to date; a group already told mails nothing new.
        """
        out = list(self._updated.values())
        self._updated.clear()
        return out

    def step(self, record: AlertRecord, now: float) -> Transition | None:
        """A summary alert as time passes: resolves it once under the caps and quiet."""
        alert = record.alert
        phase = summary_tick(
            record.phase, now=now, under_cap=self._over(alert.rule) is None, quiet=self.quiet
        )
        if phase is record.phase:
            return None
        self.forget(alert.rule)
        summary = Target(
            alert.rule,
            alert.severity,
            alert.device,
            alert.labels,
            SUMMARY_SOURCE,
            record.key,
            record.signature,
            _NO_FLAP,
            _SUMMARY,
            _DESCRIPTION,
        )
        return advance(
            self.store,
            summary,
            record,
            phase,
            now=now,
            sample=False,
            value=f"{alert.count} suppressed; back under the caps",
            context={"suppressed": alert.count, "cap": record.extra.get("cap", "")},
        )

    def forget(self, rule: str) -> None:
        """Drops the suppressed keys of ``rule`` (its summary resolved or was retired)."""
        self._kept -= len(self._keys.pop(rule, ()))

    @staticmethod
    def _target(rule: str, severity: str, signature: str, static: Mapping[str, str]) -> Target:
        return Target(
            rule,
            severity,
            "",
            alert_labels(rule, severity, "", {"suppressed": "true"}, static, _EMPTY),
            SUMMARY_SOURCE,
            make_key(SUMMARY_SOURCE, rule, "", ""),
            signature,
            _NO_FLAP,
            _SUMMARY,
            _DESCRIPTION,
        )
