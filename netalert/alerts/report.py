"""What to tell about an alert after a change: the pure decision behind each Transition.

Given the state before and after an evaluation or event, whether that counts
as a flap-detection sample, and the alert's flap bookkeeping, :func:`decide`
returns what to report (FIRING, RESOLVED, FLAPPING or nothing) and the new
bookkeeping. While an alert flaps its FIRING/RESOLVED changes are held back;
when it settles, one FIRING or RESOLVED is reported with a summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from netalert.alerts.flap import FlapSettings, flap_score, flapping_next, record
from netalert.alerts.model import AlertState, TransitionKind

__all__ = ["Outcome", "decide"]

_TOLD = (TransitionKind.FIRING.value, TransitionKind.FLAPPING.value)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision: what to report, and the alert's flap bookkeeping afterwards."""

    kind: TransitionKind | None
    notified: str
    flapping: bool
    history: str
    flap_since: float | None
    flap_changes: int
    settled: bool = False


def decide(
    *,
    old: AlertState,
    new: AlertState,
    sample: bool,
    history: str,
    flapping: bool,
    flap_since: float | None,
    flap_changes: int,
    notified: str,
    flap: FlapSettings,
    now: float,
) -> Outcome:
    """Decides what to report after an alert went from ``old`` to ``new``.

    Args:
        old: The state before.
        new: The state after.
        sample: True when this change is a flap-detection result (one per
            evaluation of the row, trap, clearing trap, or idle minute).
        history: The flap window so far ("0"/"1" per result).
        flapping: Whether the alert was flapping before.
        flap_since: When the current flapping began.
        flap_changes: State changes counted since it began flapping.
        notified: The last TransitionKind reported ("" if none).
        flap: The rule's flap settings.
        now: The time of the change.
    """
    changed = (old is AlertState.FIRING) != (new is AlertState.FIRING)
    if sample:
        history = record(history, new is AlertState.FIRING)
    was = flapping
    if flap.enabled:
        flapping = flapping_next(was, flap_score(history), start=flap.start, stop=flap.stop)
    else:
        flapping = False
    if was and changed:
        flap_changes += 1
    if flapping and not was:
        return Outcome(
            TransitionKind.FLAPPING,
            TransitionKind.FLAPPING.value,
            True,
            history,
            now,
            1 if changed else 0,
        )
    if flapping:
        return Outcome(None, notified, True, history, flap_since, flap_changes)
    kind: TransitionKind | None = None
    if was:
        # Settled: say where it ended, once, whatever happened meanwhile.
        if new is AlertState.FIRING:
            kind = TransitionKind.FIRING
        elif notified in _TOLD:
            kind = TransitionKind.RESOLVED
        return Outcome(
            kind,
            kind.value if kind else notified,
            False,
            history,
            flap_since,
            flap_changes,
            settled=True,
        )
    if changed and new is AlertState.FIRING:
        kind = TransitionKind.FIRING
    elif changed and notified in _TOLD:
        kind = TransitionKind.RESOLVED
    return Outcome(kind, kind.value if kind else notified, False, history, None, 0)
