"""Pure decisions of an alert's life: ``for``, ``clear_expr``, ``keep_firing_for``, traps.

Each function takes the alert's current :class:`Phase`, what was just observed
and ``now``, and returns the next Phase; it does no I/O and reads no clock, so
the tests are tables of cases. The caller (:func:`netalert.alerts.step.step`)
compares the old and new state to decide which transition to report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from netalert.alerts.model import AlertState

__all__ = [
    "INACTIVE",
    "Phase",
    "poll_step",
    "trap_clear",
    "trap_occurred",
    "trap_tick",
]


@dataclass(frozen=True, slots=True)
class Phase:
    """The part of an alert's state the lifecycle rules decide.

    ``since`` is when the current state began (pending: first true; firing: when
    it fired; resolved: when it resolved). ``last_bad`` is the last time the
    problem was observed (a true evaluation, a trap occurrence): ``keep_firing_for``
    and ``resolve_after`` count from it.
    """

    state: AlertState
    since: float
    last_bad: float


# An alert that does not exist yet behaves like one resolved long ago.
INACTIVE = Phase(AlertState.RESOLVED, 0.0, 0.0)


def poll_step(
    phase: Phase,
    *,
    fire: bool | None,
    clear: bool | None,
    hysteresis: bool,
    now: float,
    for_: float,
    keep_firing_for: float,
) -> Phase:
    """The next phase of a poll alert after one evaluation of its row.

    Args:
        phase: The current phase (:data:`INACTIVE` for a row without alert).
        fire: The rule's ``expr``: True, False, or None when it could not be
            evaluated (a value missing, no previous sample for ``rate()``).
            Unknown never changes the state: a missing sample is not a recovery.
        clear: The rule's ``clear_expr`` (None when unknown or absent).
        hysteresis: True when the rule has a ``clear_expr``: a firing alert then
            resolves only when ``clear`` is true, not when ``fire`` turns false.
        now: The evaluation time (the poll's timestamp).
        for_: Seconds the condition must hold before firing. Measured between
            samples: the alert fires at the first true evaluation at least
            ``for_`` after the first true one.
        keep_firing_for: Seconds a firing alert stays firing after the problem
            was last seen, to ride out a single good sample.

    Returns:
        The new phase (the same object when nothing changed).
    """
    state = phase.state
    if state is AlertState.RESOLVED:
        if fire is not True:
            return phase
        if for_ <= 0:
            return Phase(AlertState.FIRING, now, now)
        return Phase(AlertState.PENDING, now, now)
    if state is AlertState.PENDING:
        if fire is None:
            return phase
        if fire is False:
            # A pending alert that was never firing just goes away: nobody was told.
            return Phase(AlertState.RESOLVED, now, phase.last_bad)
        if now - phase.since >= for_:
            return Phase(AlertState.FIRING, now, now)
        return replace(phase, last_bad=now)
    # FIRING
    # With a clear_expr only it can end the alert (hysteresis); else the expr turning false.
    ok: bool | None = clear if hysteresis else (None if fire is None else not fire)
    if ok is None:
        return phase
    if not ok:
        return replace(phase, last_bad=now)
    if now - phase.last_bad >= keep_firing_for:
        return Phase(AlertState.RESOLVED, now, phase.last_bad)
    return phase


def trap_occurred(phase: Phase, *, now: float, for_: float) -> Phase:
    """The next phase of a trap alert when its trap arrives (again).

    A repeat of an active alert only refreshes ``last_bad``; the caller folds
    it into the count. With ``for_`` > 0 a new alert waits as pending so that a
    clearing trap arriving within ``for_`` (a link bouncing) tells nobody.
    """
    if phase.state is AlertState.RESOLVED:
        if for_ <= 0:
            return Phase(AlertState.FIRING, now, now)
        return Phase(AlertState.PENDING, now, now)
    return replace(phase, last_bad=now)


def trap_clear(phase: Phase, *, now: float) -> Phase:
    """The next phase of a trap alert when its clearing trap (or a good confirm poll) arrives."""
    if phase.state is AlertState.RESOLVED:
        return phase
    return Phase(AlertState.RESOLVED, now, phase.last_bad)


def trap_tick(phase: Phase, *, now: float, for_: float, resolve_after: float | None) -> Phase:
    """The next phase of a trap alert as time passes without traps.

    A pending alert fires once ``for_`` has passed since its trap without a
    clearing trap; a firing alert resolves once ``resolve_after`` has passed
    since the last occurrence (None: never by time).
    """
    if phase.state is AlertState.PENDING and now - phase.since >= for_:
        return Phase(AlertState.FIRING, now, phase.last_bad)
    if (
        phase.state is AlertState.FIRING
        and resolve_after is not None
        and now - phase.last_bad >= resolve_after
    ):
        return Phase(AlertState.RESOLVED, now, phase.last_bad)
    return phase
