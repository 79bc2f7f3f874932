"""Pure decisions of the alert lifecycle: tables of cases, no I/O, no clock."""

from __future__ import annotations

import hashlib

import pytest

from netalert.alerts.flap import WINDOW, FlapSettings, flap_score, flapping_next, record
from netalert.alerts.lifecycle import (
    INACTIVE,
    Phase,
    poll_step,
    trap_clear,
    trap_occurred,
    trap_tick,
)
from netalert.alerts.model import AlertState, TransitionKind, fingerprint
from netalert.alerts.report import decide

P, F, R = AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED


def run_poll(
    samples: list[tuple[float, bool | None, bool | None]],
    *,
    for_: float = 0.0,
    keep: float = 0.0,
    hysteresis: bool = False,
) -> list[AlertState]:
    """Feeds (time, fire, clear) samples; returns the state after each."""
    phase = INACTIVE
    out = []
    for now, fire, clear in samples:
        phase = poll_step(
            phase,
            fire=fire,
            clear=clear,
            hysteresis=hysteresis,
            now=now,
            for_=for_,
            keep_firing_for=keep,
        )
        out.append(phase.state)
    return out


@pytest.mark.parametrize(
    ("name", "samples", "options", "expected"),
    [
        ("fires at once without for", [(0, True, None), (10, False, None)], {}, [F, R]),
        (
            "for: pending until a sample at least `for` after the first true one",
            [(0, True, None), (20, True, None), (30, True, None), (40, True, None)],
            {"for_": 30},
            [P, P, F, F],
        ),
        (
            "for: a false sample while pending drops it, the clock restarts",
            [
                (0, True, None),
                (20, False, None),
                (30, True, None),
                (50, True, None),
                (60, True, None),
            ],
            {"for_": 30},
            [P, R, P, P, F],
        ),
        (
            "for: unknown keeps pending and does not reset the clock",
            [(0, True, None), (20, None, None), (30, True, None)],
            {"for_": 30},
            [P, P, F],
        ),
        (
            "unknown never resolves a firing alert",
            [(0, True, None), (10, None, None), (20, None, None), (30, False, None)],
            {},
            [F, F, F, R],
        ),
        (
            "keep_firing_for rides out one good sample",
            [
                (0, True, None),
                (10, False, None),
                (20, True, None),
                (30, False, None),
                (40, False, None),
            ],
            {"keep": 15},
            [F, F, F, F, R],
        ),
        (
            "keep_firing_for counts from the last bad sample",
            [(0, True, None), (10, False, None), (25, False, None)],
            {"keep": 25},
            [F, F, R],
        ),
        (
            "hysteresis: fire above 90, clear below 80 (fire false, clear false: still firing)",
            [(0, True, None), (10, False, False), (20, False, False), (30, False, True)],
            {"hysteresis": True},
            [F, F, F, R],
        ),
        (
            "hysteresis: unknown clear keeps firing",
            [(0, True, None), (10, False, None), (20, False, True)],
            {"hysteresis": True},
            [F, F, R],
        ),
        (
            "hysteresis with keep_firing_for",
            [(0, True, None), (10, False, True), (20, False, True)],
            {"hysteresis": True, "keep": 15},
            [F, F, R],
        ),
        (
            "false and unknown on an inactive row stay inactive",
            [(0, False, None), (5, None, None)],
            {},
            [R, R],
        ),
        (
            "re-fires after resolving",
            [(0, True, None), (10, False, None), (20, True, None)],
            {},
            [F, R, F],
        ),
    ],
)
def test_poll_step(
    name: str,
    samples: list[tuple[float, bool | None, bool | None]],
    options: dict[str, float | bool],
    expected: list[AlertState],
) -> None:
    assert run_poll(samples, **options) == expected, name  # type: ignore[arg-type]


def test_poll_step_times() -> None:
    pending = poll_step(
        INACTIVE, fire=True, clear=None, hysteresis=False, now=100, for_=30, keep_firing_for=0
    )
    assert pending == Phase(P, 100, 100)
    firing = poll_step(
        pending, fire=True, clear=None, hysteresis=False, now=130, for_=30, keep_firing_for=0
    )
    assert firing == Phase(F, 130, 130)  # starts_at: when it became firing
    same = poll_step(
        firing, fire=None, clear=None, hysteresis=False, now=140, for_=30, keep_firing_for=0
    )
    assert same is firing
    resolved = poll_step(
        firing, fire=False, clear=None, hysteresis=False, now=190, for_=30, keep_firing_for=0
    )
    assert resolved == Phase(R, 190, 130)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (event, time) with event: "trap" | "clear" | "tick"
        ([("trap", 0), ("trap", 5), ("clear", 9)], [F, F, R]),
        ([("trap", 0), ("clear", 3), ("tick", 31)], [P, R, R]),  # for=30: a bounce tells nobody
        ([("trap", 0), ("tick", 29), ("tick", 30)], [P, P, F]),
        (
            [("trap", 0), ("tick", 30), ("tick", 299), ("tick", 300)],
            [P, F, F, R],
        ),  # resolve_after 300
        ([("trap", 0), ("tick", 30), ("trap", 200), ("tick", 499), ("tick", 500)], [P, F, F, F, R]),
        ([("clear", 0)], [R]),
    ],
)
def test_trap_steps(steps: list[tuple[str, float]], expected: list[AlertState]) -> None:
    phase = INACTIVE
    out = []
    for event, now in steps:
        if event == "trap":
            phase = trap_occurred(phase, now=now, for_=30 if expected[0] is P else 0)
        elif event == "clear":
            phase = trap_clear(phase, now=now)
        else:
            phase = trap_tick(phase, now=now, for_=30, resolve_after=300)
        out.append(phase.state)
    assert out == expected


def test_trap_tick_without_resolve_after_never_expires() -> None:
    firing = Phase(F, 0, 0)
    assert trap_tick(firing, now=10**9, for_=0, resolve_after=None) is firing


# --- flap detection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "score"),
    [
        ("", 0.0),
        ("1", 0.0),
        ("1" * WINDOW, 0.0),
        ("01", 6.0),  # one change, the newest: weight 1.2 of 20
        ("0" * 19 + "10", 11.894737),  # two newest changes: (1.2 + 1.2 - 0.4/19) / 20
        ("10" + "0" * 19, 4.0),  # the oldest change weighs 0.8
        ("01" * 10 + "0", 100.0),  # every result differs
        ("0011" * 5 + "0", 50.526316),  # 10 changes, ages 0,2..18: (12 - 0.4/19*90) / 20
    ],
)
def test_flap_score(history: str, score: float) -> None:
    assert flap_score(history) == pytest.approx(score, abs=1e-6)


def test_recent_changes_weigh_more() -> None:
    old = "0101" + "0" * 17
    new = "0" * 17 + "0101"
    assert flap_score(new) > flap_score(old) > 0


def test_record_keeps_the_window() -> None:
    history = ""
    for i in range(30):
        history = record(history, i % 2 == 0)
    assert len(history) == WINDOW and history.endswith("10")


@pytest.mark.parametrize(
    ("flapping", "score", "expected"),
    [
        (False, 30.0, False),  # must rise above start
        (False, 30.1, True),
        (True, 26.0, True),
        (True, 25.0, True),  # stays until below stop
        (True, 24.9, False),
        (False, 27.0, False),  # between the thresholds: no change either way
    ],
)
def test_flapping_hysteresis(flapping: bool, score: float, expected: bool) -> None:
    assert flapping_next(flapping, score, start=30.0, stop=25.0) is expected


def test_flapping_alert_holds_notifications_then_one_summary() -> None:
    """An alert toggling every result starts flapping, is held, then settles once."""
    settings = FlapSettings(True, 30.0, 25.0)
    history, flapping, since, changes, notified = "", False, None, 0, ""
    state = R
    told = []
    for i in range(60):
        new = (F if i % 2 == 0 else R) if i < 20 else F
        out = decide(
            old=state,
            new=new,
            sample=True,
            history=history,
            flapping=flapping,
            flap_since=since,
            flap_changes=changes,
            notified=notified,
            flap=settings,
            now=float(i),
        )
        state = new
        history, flapping, since, changes, notified = (
            out.history,
            out.flapping,
            out.flap_since,
            out.flap_changes,
            out.notified,
        )
        if out.kind is not None:
            told.append((i, out.kind, out.settled))
    kinds = [k for _, k, _ in told]
    # FIRING/RESOLVED a few times, then FLAPPING once, then nothing until one settled FIRING.
    assert kinds.count(TransitionKind.FLAPPING) == 1
    flap_at = kinds.index(TransitionKind.FLAPPING)
    assert kinds[flap_at + 1 :] == [TransitionKind.FIRING]
    assert told[-1][2] is True  # settled
    assert set(kinds[:flap_at]) <= {TransitionKind.FIRING, TransitionKind.RESOLVED}
    assert flap_at <= 8


@pytest.mark.parametrize(
    ("old", "new", "notified", "kind"),
    [
        (R, P, "", None),  # pending: nobody is told
        (P, F, "", TransitionKind.FIRING),
        (R, F, "resolved", TransitionKind.FIRING),
        (F, F, "firing", None),
        (F, R, "firing", TransitionKind.RESOLVED),
        (P, R, "resolved", None),  # dropped before firing: nothing to say
    ],
)
def test_decide_without_flapping(
    old: AlertState, new: AlertState, notified: str, kind: TransitionKind | None
) -> None:
    out = decide(
        old=old,
        new=new,
        sample=True,
        history="",
        flapping=False,
        flap_since=None,
        flap_changes=0,
        notified=notified,
        flap=FlapSettings(),
        now=0.0,
    )
    assert out.kind == kind


def test_decide_with_flap_detection_off() -> None:
    out = decide(
        old=F,
        new=R,
        sample=True,
        history="01" * 10,
        flapping=False,
        flap_since=None,
        flap_changes=0,
        notified="firing",
        flap=FlapSettings(enabled=False),
        now=0.0,
    )
    assert (out.kind, out.flapping) == (TransitionKind.RESOLVED, False)


# --- fingerprints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"rule": "X", "device": "d"}, {"device": "d", "rule": "X"}, True),  # order-free
        ({"rule": "X", "device": "d"}, {"rule": "Y", "device": "d"}, False),
        ({"rule": "X", "ifIndex": "1"}, {"rule": "X", "ifIndex": "2"}, False),
        ({"rule": "X", "a": "b=c"}, {"rule": "X", "a=b": "c"}, False),  # no concatenation clash
        ({"rule": "X", "a": "1", "b": ""}, {"rule": "X", "a": "1"}, False),
    ],
)
def test_fingerprint(a: dict[str, str], b: dict[str, str], same: bool) -> None:
    assert (fingerprint(a) == fingerprint(b)) is same


def test_fingerprint_is_stable_hex16() -> None:
    labels = {"rule": "InterfaceDown", "severity": "critical", "device": "sw1", "ifIndex": "3"}
    # The documented encoding: the sorted pairs as compact JSON, SHA-256, first 16 hex digits.
    text = '[["device","sw1"],["ifIndex","3"],["rule","InterfaceDown"],["severity","critical"]]'
    assert fingerprint(labels) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(fingerprint(labels)) == 16
