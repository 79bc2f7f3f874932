"""Pure decisions of the alert caps (``[limits] max_active_alerts[_per_rule]``).

Past a cap no new alert is made; its rule gets one summary alert instead
(source :data:`SUMMARY_SOURCE`, label ``suppressed="true"``) that counts what
was held back. These functions say whether a new alert may be made and how the
summary's phase moves; the alert stage (``alerts/limits.py``) applies them.
Summary alerts are not counted against the caps: there is at most one per rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import AlertState

__all__ = ["SUMMARY_SOURCE", "Caps", "over_cap", "summary_occurred", "summary_tick"]

# Alert.source of a rule's summary alert.
SUMMARY_SOURCE = "limit"


@dataclass(frozen=True, slots=True)
class Caps:
    """How many alerts may be active (pending or firing): in all, and per rule."""

    total: int
    per_rule: int


def over_cap(caps: Caps, *, rule_active: int, total_active: int) -> str | None:
    """Which cap one more active alert would pass, or None when it may be made.

    Args:
        caps: The configured caps.
        rule_active: Active alerts of the new alert's rule now.
        total_active: Active alerts of every rule now.

    Returns:
        ``"per_rule"`` or ``"total"`` (the rule's cap is named first when both
        are reached), None when neither is.
    """
    if rule_active >= caps.per_rule:
        return "per_rule"
    if total_active >= caps.total:
        return "total"
    return None


def summary_occurred(phase: Phase, *, now: float) -> Phase:
    """The summary's next phase when one more alert of its rule is suppressed.

    It fires at once (nobody would be told otherwise) and ``last_bad`` is the
    last suppression.
    """
    if phase.state is AlertState.RESOLVED:
        return Phase(AlertState.FIRING, now, now)
    return Phase(AlertState.FIRING, phase.since, now)


def summary_tick(phase: Phase, *, now: float, under_cap: bool, quiet: float) -> Phase:
    """The summary's next phase as time passes.

    It resolves once its rule is under the caps again (``under_cap``) and
    nothing was suppressed for ``quiet`` seconds: a rule that keeps hitting its
    cap (a poll rule re-evaluating the same rows) keeps one summary, rather
    than one resolved and one firing mail each time an alert ends.

    Returns:
        The new phase (the same object when nothing changed).
    """
    if phase.state is AlertState.RESOLVED or not under_cap or now - phase.last_bad < quiet:
        return phase
    return Phase(AlertState.RESOLVED, now, phase.last_bad)
