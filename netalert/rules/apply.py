"""Applying a decided phase to an alert record: snapshot, templates, flap, transition.

Both poll and trap paths end here: they decide the next
:class:`~netalert.alerts.lifecycle.Phase` with the pure lifecycle functions,
then :func:`advance` updates (or creates) the record, renders the templates,
runs the flap/report decision and returns the Transition to report, if any.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from jinja2.environment import Template

from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState, Transition, fingerprint
from netalert.alerts.report import decide
from netalert.alerts.store import AlertRecord, AlertStore
from netalert.rules.templates import DEFAULT_RESOLVED_SUMMARY, compile_template, render
from netalert.snmp.types import VarBind

__all__ = ["Target", "advance", "alert_labels", "signature"]

_DEFAULT_RESOLVED = compile_template(DEFAULT_RESOLVED_SUMMARY)


@dataclass(frozen=True, slots=True)
class Target:
    """Who an alert is: everything that stays the same across its evaluations."""

    rule: str
    severity: str
    device: str
    labels: Mapping[str, str]
    source: str
    key: str
    signature: str
    flap: FlapSettings
    summary: Template | None
    description: Template | None
    resolved_summary: Template | None = None  # None: DEFAULT_RESOLVED_SUMMARY

    @property
    def fingerprint(self) -> str:
        """The alert's fingerprint (hash of its labels, which include the rule)."""
        return fingerprint(self.labels)


def signature(kind: str, severity: str, labels: Mapping[str, str]) -> str:
    """What of a rule, when edited, makes its existing alerts obsolete."""
    text = "\x00".join([kind, severity, *(f"{k}={labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def alert_labels(
    rule: str,
    severity: str,
    device: str,
    own: Mapping[str, str],
    static: Mapping[str, str],
    device_labels: Mapping[str, str],
) -> Mapping[str, str]:
    """An alert's labels: fixed ones win over key/index labels, over rule labels, over device's."""
    labels = {**device_labels, **static, **own, "rule": rule, "severity": severity}
    labels["device"] = device
    return MappingProxyType(labels)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def advance(
    store: AlertStore,
    target: Target,
    record: AlertRecord | None,
    phase: Phase,
    *,
    now: float,
    sample: bool,
    value: str,
    context: Mapping[str, Any],
    count: int | None = None,
    varbinds: tuple[VarBind, ...] | None = None,
) -> Transition | None:
    """Moves ``record`` (None: a new alert) to ``phase`` and returns what to report.

    Args:
        store: Where the record lives; it is marked for the next flush.
        target: The alert's identity and templates.
        record: The current record, None when the alert does not exist yet.
        phase: The phase decided by the lifecycle functions.
        now: The time of the change.
        sample: True when this is a flap-detection result (see alerts.report).
        value: The value to show, rendered for people.
        context: The names templates see (row values, trap varbinds).
        count: The new occurrence count (None keeps it; new alerts start at 1).
        varbinds: The trap's varbinds (None keeps them).
    """
    old = record.phase.state if record is not None else AlertState.RESOLVED
    if record is None and phase.state is AlertState.RESOLVED:
        return None
    outcome = decide(
        old=old,
        new=phase.state,
        sample=sample,
        history=record.history if record else "",
        flapping=record.alert.flapping if record else False,
        flap_since=record.flap_since if record else None,
        flap_changes=record.flap_changes if record else 0,
        notified=record.notified if record else "",
        flap=target.flap,
        now=now,
    )
    if record is not None and phase is record.phase and outcome.kind is None:
        # Nothing but the flap window moved (a resolved row evaluated again).
        record.history = outcome.history
        record.sampled_at = now if sample else record.sampled_at
        if outcome.flapping != record.alert.flapping:
            record.alert = replace(record.alert, flapping=outcome.flapping)
        if record.active:
            record.alert = replace(record.alert, value=value, updated_at=now)
        store.put(record)
        return None
    state = phase.state
    base = record.alert if record is not None else None
    ends_at = None
    if state is AlertState.RESOLVED:
        ends_at = now if old is not AlertState.RESOLVED or base is None else base.ends_at
    starts_at = (
        phase.since if state is not AlertState.RESOLVED else (base.starts_at if base else now)
    )
    alert = Alert(
        fingerprint=target.fingerprint if base is None else base.fingerprint,
        rule=target.rule,
        severity=target.severity,
        device=target.device,
        labels=target.labels if base is None else base.labels,
        annotations=base.annotations if base else MappingProxyType({}),
        state=state,
        starts_at=starts_at,
        ends_at=ends_at,
        updated_at=now,
        value=value,
        count=(count if count is not None else (base.count if base else 1)),
        flapping=outcome.flapping,
        silenced=base.silenced if base else False,
        source=target.source,
        varbinds=(varbinds if varbinds is not None else (base.varbinds if base else ())),
    )
    rendered = target.summary is not None or target.description is not None
    annotations = None
    if state is AlertState.RESOLVED:
        if old is not AlertState.RESOLVED or outcome.kind is not None:
            annotations = _resolved_annotations(target, alert, base, value, context)
    elif rendered:
        annotations = _annotations(target, alert, value, context)
    if annotations is not None:
        if outcome.settled:
            annotations["flap_summary"] = (
                f"flapped: {outcome.flap_changes} state changes between "
                f"{_when(outcome.flap_since or now)} and {_when(now)}; now {state.value}"
            )
        alert = replace(alert, annotations=MappingProxyType(annotations))
    if record is None:
        record = AlertRecord(alert=alert, key=target.key, phase=phase, signature=target.signature)
    record.alert = alert
    record.phase = phase
    record.history = outcome.history
    if sample:
        record.sampled_at = now
    record.flap_since = outcome.flap_since
    record.flap_changes = outcome.flap_changes
    record.notified = outcome.notified
    store.put(record)
    if outcome.kind is None:
        return None
    return Transition(
        rule=alert.rule,
        fingerprint=alert.fingerprint,
        labels=alert.labels,
        annotations=alert.annotations,
        kind=outcome.kind,
        value=alert.value,
        time=now,
        alert=alert,
    )


def _resolved_annotations(
    target: Target, alert: Alert, base: Alert | None, value: str, context: Mapping[str, Any]
) -> dict[str, str]:
    """A resolved alert's summary, said as resolved, and what it said while firing.

    The firing summary and description are kept as they were rendered while the
    alert fired (``firing_summary``): rendered again with the values that
    cleared it they would claim the problem next to its cure ("does not answer
    SNMP (answering)"). The resolved summary sees the template names plus
    ``firing_summary`` and ``fired_for`` (seconds from firing to resolution).
    """
    previous = dict(base.annotations) if base is not None else {}
    if base is not None and base.state is AlertState.RESOLVED:
        firing_summary = previous.get("firing_summary", previous.get("summary", ""))
    else:
        firing_summary = previous.get("summary", "")
    ended = alert.ends_at if alert.ends_at is not None else alert.updated_at
    names = {
        **context,
        "device": alert.device,
        "labels": alert.labels,
        "value": value,
        "alert": alert,
        "firing_summary": firing_summary,
        "fired_for": max(0.0, ended - alert.starts_at),
    }
    template = target.resolved_summary or _DEFAULT_RESOLVED
    out = {k: v for k, v in previous.items() if k not in ("summary", "flap_summary")}
    out["firing_summary"] = firing_summary
    out["summary"] = render(template, names, one_line=True)
    return out


def _annotations(
    target: Target, alert: Alert, value: str, context: Mapping[str, Any]
) -> dict[str, str]:
    names = {
        **context,
        "device": alert.device,
        "labels": alert.labels,
        "value": value,
        "alert": alert,
    }
    out: dict[str, str] = {}
    if target.summary is not None:
        out["summary"] = render(target.summary, names, one_line=True)
    if target.description is not None:
        out["description"] = render(target.description, names, one_line=False)
    origin = context.get("trap_source")
    if origin:
        # where the trap came from, whichever device it was credited to (kept when resolved)
        out["trap_source"] = str(origin)
    return out
