"""The alert stage's one decision: ``step(record, observation, now) → (record, transitions)``.

Pure: it reads no clock, changes nothing it is given and does no I/O; the
record it returns is new (or the same object when nothing changed). It owns
an alert's whole life: the next phase (``for``, ``keep_firing_for``,
``resolve_after``, clearing traps, confirm polls; :mod:`netalert.alerts.lifecycle`),
flap detection and what to report (:mod:`netalert.alerts.report`), the
Alert snapshot with its annotations (rendered by the rule's
:class:`~netalert.alerts.observe.Describer`) and the confirm bookkeeping.
Only the caps, which count across alerts, stay with the stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import (
    INACTIVE,
    Phase,
    poll_step,
    trap_clear,
    trap_occurred,
    trap_tick,
)
from netalert.alerts.model import Alert, AlertState, Transition, fingerprint
from netalert.alerts.observe import Event, Observation, RulePolicy
from netalert.alerts.report import Outcome, decide
from netalert.alerts.table import AlertRecord

__all__ = ["IDLE_SAMPLE", "next_phase", "step"]

# A quiet trap alert still needs flap-detection results to settle: one per minute.
IDLE_SAMPLE = 60.0
_NO_FLAP = FlapSettings(enabled=False)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def next_phase(record: AlertRecord | None, obs: Observation, now: float) -> Phase:
    """The phase ``obs`` moves the alert to (the same object when it does not move)."""
    phase = record.phase if record is not None else INACTIVE
    policy = obs.policy
    event = obs.event
    if event is Event.EVALUATED:
        return poll_step(
            phase,
            fire=obs.fire,
            clear=obs.clear,
            hysteresis=policy.hysteresis,
            now=now,
            for_=policy.for_,
            keep_firing_for=policy.keep_firing_for,
        )
    if event is Event.OCCURRED:
        return trap_occurred(phase, now=now, for_=policy.for_)
    if event is Event.CLEARED or event is Event.RETIRED:
        return trap_clear(phase, now=now)
    if event is Event.STILL_BAD:
        return replace(phase, last_bad=now)
    if event is Event.TIME:
        return trap_tick(phase, now=now, for_=policy.for_, resolve_after=policy.resolve_after)
    return obs.phase if obs.phase is not None else phase


def step(
    record: AlertRecord | None, obs: Observation, now: float
) -> tuple[AlertRecord | None, list[Transition]]:
    """Moves one alert (``record``; None: it does not exist yet) by one observation.

    Returns:
        The alert's record afterwards (None when there still is none; ``record``
        itself when nothing changed) and the transitions to report (at most one).
    """
    phase = next_phase(record, obs, now)
    if record is None:
        if phase.state is AlertState.RESOLVED:
            return None, []
        return _advance(None, obs, phase, now, obs.value, obs.context or _EMPTY)
    if obs.event is Event.STILL_BAD:
        return _copy(record, phase=phase), []
    if obs.event is Event.TIME:
        return _time(record, obs, phase, now)
    if obs.event is Event.RETIRED and not (record.active or record.alert.flapping):
        return record, []
    context = obs.context
    if context is None:
        context = obs.policy.describer.recall(record.alert, record.extra)
    return _advance(record, obs, phase, now, obs.value, context)


def _time(
    record: AlertRecord, obs: Observation, phase: Phase, now: float
) -> tuple[AlertRecord | None, list[Transition]]:
    """A trap alert as time passes: ``for``, ``resolve_after``, one idle flap sample a minute."""
    alert = record.alert
    idle = now - record.sampled_at >= IDLE_SAMPLE and (alert.flapping or "1" in record.history)
    if phase is record.phase and not idle:
        return record, []
    value = alert.value
    if phase.state is AlertState.RESOLVED and phase.state is not record.phase.state:
        value = "expired"
    context = obs.policy.describer.recall(alert, record.extra)
    return _advance(record, obs, phase, now, value, context)


def _copy(record: AlertRecord, **changes: Any) -> AlertRecord:
    return replace(record, extra=dict(record.extra), **changes)


def _outcome(record: AlertRecord | None, obs: Observation, phase: Phase, now: float) -> Outcome:
    """What to report, and the flap bookkeeping afterwards (a new alert has none yet)."""
    flap = _NO_FLAP if obs.event is Event.RETIRED else obs.policy.flap
    old, history, flapping, since, changes, notified = AlertState.RESOLVED, "", False, None, 0, ""
    if record is not None:
        old, history, flapping = record.phase.state, record.history, record.alert.flapping
        since, changes, notified = record.flap_since, record.flap_changes, record.notified
    return decide(
        old=old,
        new=phase.state,
        sample=obs.sample,
        history=history,
        flapping=flapping,
        flap_since=since,
        flap_changes=changes,
        notified=notified,
        flap=flap,
        now=now,
    )


def _advance(
    record: AlertRecord | None,
    obs: Observation,
    phase: Phase,
    now: float,
    value: str,
    context: Mapping[str, Any],
) -> tuple[AlertRecord | None, list[Transition]]:
    outcome = _outcome(record, obs, phase, now)
    if record is not None and phase is record.phase and outcome.kind is None:
        return _bookkeeping(record, obs, outcome, now, value), []
    alert = _snapshot(record, obs, phase, outcome, now, value, context)
    if record is None:
        record = AlertRecord(alert=alert, key=obs.key, phase=phase, signature=obs.policy.signature)
    new = _recorded(
        record,
        obs,
        now,
        outcome,
        alert=alert,
        phase=phase,
        flap_since=outcome.flap_since,
        flap_changes=outcome.flap_changes,
        notified=outcome.notified,
    )
    if outcome.kind is None:
        return new, []
    return new, [
        Transition(
            rule=alert.rule,
            fingerprint=alert.fingerprint,
            labels=alert.labels,
            annotations=alert.annotations,
            kind=outcome.kind,
            value=alert.value,
            time=now,
            alert=alert,
        )
    ]


def _bookkeeping(
    record: AlertRecord, obs: Observation, outcome: Outcome, now: float, value: str
) -> AlertRecord:
    """Nothing but the flap window moved (a resolved row evaluated again)."""
    alert = record.alert
    if outcome.flapping != alert.flapping:
        alert = replace(alert, flapping=outcome.flapping)
    if record.active:
        alert = replace(alert, value=value, updated_at=now)
    return _recorded(record, obs, now, outcome, alert=alert)


def _recorded(
    record: AlertRecord, obs: Observation, now: float, outcome: Outcome, **changes: Any
) -> AlertRecord:
    """``record`` with ``changes``, the flap window, the observation's extra data and confirm."""
    new = replace(
        record,
        history=outcome.history,
        sampled_at=now if obs.sample else record.sampled_at,
        extra={**record.extra, **(obs.extra or {})},
        **changes,
    )
    return _confirm(new, obs, now)


def _confirm(record: AlertRecord, obs: Observation, now: float) -> AlertRecord:
    """A trap rule's confirm polls: due at once after its trap, none once resolved."""
    if not record.active:
        if record.confirm_next is None:
            return record
        return replace(record, confirm_next=None)
    if obs.event is not Event.OCCURRED or obs.policy.confirm_every is None:
        return record
    index = obs.confirm_index
    return replace(record, confirm_index=index, confirm_next=now if index is not None else None)


def _snapshot(
    record: AlertRecord | None,
    obs: Observation,
    phase: Phase,
    outcome: Outcome,
    now: float,
    value: str,
    context: Mapping[str, Any],
) -> Alert:
    """The Alert after the change, its annotations rendered when they change."""
    base = record.alert if record is not None else None
    old = record.phase.state if record is not None else AlertState.RESOLVED
    alert = _alert(base, old, obs, phase, outcome.flapping, now, value)
    state = phase.state
    annotations = None
    if state is AlertState.RESOLVED:
        if old is not AlertState.RESOLVED or outcome.kind is not None:
            annotations = _resolved_annotations(obs.policy, alert, base, value, context)
    elif obs.event is not Event.RETIRED:
        annotations = obs.policy.describer.firing(alert, value, context)
    if annotations is None:
        return alert
    if outcome.settled:
        annotations["flap_summary"] = (
            f"flapped: {outcome.flap_changes} state changes between "
            f"{_when(outcome.flap_since or now)} and {_when(now)}; now {state.value}"
        )
    return replace(alert, annotations=MappingProxyType(annotations))


def _alert(
    base: Alert | None,
    old: AlertState,
    obs: Observation,
    phase: Phase,
    flapping: bool,
    now: float,
    value: str,
) -> Alert:
    """The Alert after the change, with the annotations it had."""
    if base is None:
        labels: Mapping[str, str] = MappingProxyType(dict(obs.labels or {}))
        return Alert(
            fingerprint=fingerprint(labels),
            rule=obs.policy.name,
            severity=obs.policy.severity,
            device=obs.device,
            labels=labels,
            annotations=MappingProxyType({}),
            state=phase.state,
            starts_at=now if phase.state is AlertState.RESOLVED else phase.since,
            ends_at=now if phase.state is AlertState.RESOLVED else None,
            updated_at=now,
            value=value,
            count=obs.count if obs.count is not None else 1,
            flapping=flapping,
            silenced=False,
            source=obs.policy.source,
            varbinds=obs.varbinds if obs.varbinds is not None else (),
        )
    starts_at, ends_at = base.starts_at, None
    if phase.state is not AlertState.RESOLVED:
        starts_at = phase.since
    elif old is AlertState.RESOLVED:
        ends_at = base.ends_at
    else:
        ends_at = now
    return replace(
        base,
        rule=obs.policy.name,
        severity=obs.policy.severity,
        device=obs.device,
        state=phase.state,
        starts_at=starts_at,
        ends_at=ends_at,
        updated_at=now,
        value=value,
        count=_count(base, obs),
        flapping=flapping,
        source=obs.policy.source,
        varbinds=obs.varbinds if obs.varbinds is not None else base.varbinds,
    )


def _count(base: Alert, obs: Observation) -> int:
    if obs.count is not None:
        return obs.count
    if obs.event is Event.OCCURRED:
        return base.count + 1 if base.state is not AlertState.RESOLVED else 1
    return base.count


def _resolved_annotations(
    policy: RulePolicy, alert: Alert, base: Alert | None, value: str, context: Mapping[str, Any]
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
    out = {k: v for k, v in previous.items() if k not in ("summary", "flap_summary")}
    out["firing_summary"] = firing_summary
    out["summary"] = policy.describer.resolved(names)
    return out


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
