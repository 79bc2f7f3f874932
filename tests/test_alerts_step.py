"""The alert stage's pure step: ``step(record, observation, now) -> (record, transitions)``.

Tables of observations fed one after the other to one alert, with the state
and the transitions expected after each; no store, no clock, no rule engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState, alert_labels
from netalert.alerts.observe import Event, Observation, RulePolicy
from netalert.alerts.step import IDLE_SAMPLE, step
from netalert.alerts.table import AlertRecord

P, F, R = AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED
LABELS = alert_labels("R", "warning", "sw1", {"ifIndex": "3"}, {}, {})


class Texts:
    """A describer that says what it was asked, so the tests see when it renders."""

    def firing(self, alert: Alert, value: str, context: Mapping[str, Any]) -> dict[str, str]:
        return {"summary": f"{alert.device} {value} {context.get('n', '')}".strip()}

    def resolved(self, names: Mapping[str, Any]) -> str:
        return f"was: {names['firing_summary']} ({names['fired_for']:.0f}s)"

    def recall(self, alert: Alert, extra: Mapping[str, Any]) -> dict[str, Any]:
        return {"n": f"recalled:{extra.get('trap', '')}"}


def policy(source: str = "poll", **settings: Any) -> RulePolicy:
    base = RulePolicy("R", "warning", source, "sig", Texts(), FlapSettings(enabled=False))
    return replace(base, **settings)


def seen(event: Event, pol: RulePolicy | None = None, **fields: Any) -> Observation:
    return Observation(pol or policy(), "key", "sw1", event, labels=LABELS, **fields)


def run(
    steps: list[tuple[float, Observation]], record: AlertRecord | None = None
) -> tuple[list[AlertState | None], list[list[str]], AlertRecord | None]:
    """Feeds the observations in order; the state and transition kinds after each."""
    states: list[AlertState | None] = []
    told: list[list[str]] = []
    for now, obs in steps:
        record, transitions = step(record, obs, now)
        states.append(record.phase.state if record is not None else None)
        told.append([t.kind.value for t in transitions])
    return states, told, record


def ev(fire: bool | None, clear: bool | None = None, pol: RulePolicy | None = None) -> Observation:
    return seen(Event.EVALUATED, pol, fire=fire, clear=clear, value=f"v{fire}")


POLL_FOR = policy(for_=30.0)
POLL_KEEP = policy(keep_firing_for=60.0)
POLL_CLEAR = policy(hysteresis=True)
TRAP = policy("trap")
TRAP_FOR = policy("trap", for_=30.0)
TRAP_EXPIRES = policy("trap", resolve_after=300.0)


@pytest.mark.parametrize(
    ("name", "steps", "states", "told"),
    [
        ("no alert and nothing wrong: nothing", [(0, ev(False))], [None], [[]]),
        ("unknown makes no alert", [(0, ev(None))], [None], [[]]),
        (
            "fires at once, resolves",
            [(0, ev(True)), (10, ev(False))],
            [F, R],
            [["firing"], ["resolved"]],
        ),
        (
            "for: pending, then firing at the first true sample 30 s after the first",
            [
                (0, ev(True, pol=POLL_FOR)),
                (20, ev(True, pol=POLL_FOR)),
                (30, ev(True, pol=POLL_FOR)),
            ],
            [P, P, F],
            [[], [], ["firing"]],
        ),
        (
            "for: a pending alert that clears tells nobody",
            [(0, ev(True, pol=POLL_FOR)), (10, ev(False, pol=POLL_FOR))],
            [P, R],
            [[], []],
        ),
        (
            "unknown never resolves a firing alert",
            [(0, ev(True)), (10, ev(None)), (20, ev(None))],
            [F, F, F],
            [["firing"], [], []],
        ),
        (
            "keep_firing_for rides out a good sample",
            [
                (0, ev(True, pol=POLL_KEEP)),
                (30, ev(False, pol=POLL_KEEP)),
                (60, ev(False, pol=POLL_KEEP)),
            ],
            [F, F, R],
            [["firing"], [], ["resolved"]],
        ),
        (
            "hysteresis: only clear_expr ends it",
            [
                (0, ev(True, pol=POLL_CLEAR)),
                (10, ev(False, False, pol=POLL_CLEAR)),
                (20, ev(False, True, pol=POLL_CLEAR)),
            ],
            [F, F, R],
            [["firing"], [], ["resolved"]],
        ),
        (
            "a trap fires; its clearing trap resolves it",
            [(0, seen(Event.OCCURRED, TRAP)), (5, seen(Event.CLEARED, TRAP))],
            [F, R],
            [["firing"], ["resolved"]],
        ),
        (
            "trap for: a bounce cleared within for tells nobody",
            [(0, seen(Event.OCCURRED, TRAP_FOR)), (5, seen(Event.CLEARED, TRAP_FOR))],
            [P, R],
            [[], []],
        ),
        (
            "trap for: fires when time passes without a clearing trap",
            [
                (0, seen(Event.OCCURRED, TRAP_FOR)),
                (10, seen(Event.TIME, TRAP_FOR)),
                (30, seen(Event.TIME, TRAP_FOR)),
            ],
            [P, P, F],
            [[], [], ["firing"]],
        ),
        (
            "resolve_after counts from the last occurrence",
            [
                (0, seen(Event.OCCURRED, TRAP_EXPIRES)),
                (200, seen(Event.OCCURRED, TRAP_EXPIRES)),
                (400, seen(Event.TIME, TRAP_EXPIRES)),
                (500, seen(Event.TIME, TRAP_EXPIRES)),
            ],
            [F, F, F, R],
            [["firing"], [], [], ["resolved"]],
        ),
        (
            "a clearing trap for no alert: nothing",
            [(0, seen(Event.CLEARED, TRAP))],
            [None],
            [[]],
        ),
        (
            "a confirm poll still bad keeps it; a good one resolves it",
            [
                (0, seen(Event.OCCURRED, TRAP)),
                (10, seen(Event.STILL_BAD, TRAP)),
                (20, seen(Event.CLEARED, TRAP, context=None)),
            ],
            [F, F, R],
            [["firing"], [], ["resolved"]],
        ),
        (
            "retired with its rule: resolved, once",
            [(0, seen(Event.OCCURRED, TRAP)), (5, seen(Event.RETIRED, TRAP, sample=False))],
            [F, R],
            [["firing"], ["resolved"]],
        ),
        (
            "decided by the caller (the caps' summary)",
            [(0, seen(Event.DECIDED, phase=Phase(F, 0.0, 0.0), count=4, sample=False))],
            [F],
            [["firing"]],
        ),
    ],
)
def test_step_table(
    name: str,
    steps: list[tuple[float, Observation]],
    states: list[AlertState | None],
    told: list[list[str]],
) -> None:
    got_states, got_told, _ = run(steps)
    assert (got_states, got_told) == (states, told), name


def test_step_changes_nothing_it_is_given() -> None:
    record, _ = step(None, ev(True), 0)
    assert record is not None
    before = (record.phase, record.alert, record.history, dict(record.extra))
    after, told = step(record, ev(False), 10)
    assert after is not None and after is not record and told[0].kind.value == "resolved"
    assert (record.phase, record.alert, record.history, dict(record.extra)) == before


def test_a_quiet_step_returns_the_same_record() -> None:
    record, _ = step(None, seen(Event.OCCURRED, TRAP), 0)
    assert record is not None
    assert step(record, seen(Event.TIME, TRAP), 10) == (record, [])


def test_counts_varbinds_and_extra_of_repeated_traps() -> None:
    extra = {"trap": {"source": "192.0.2.1"}}
    _, _, record = run(
        [
            (0, seen(Event.OCCURRED, TRAP, extra=extra, value="linkDown")),
            (5, seen(Event.OCCURRED, TRAP, extra=extra, value="linkDown")),
            (9, seen(Event.OCCURRED, TRAP, extra=extra, value="linkDown")),
        ]
    )
    assert record is not None
    assert record.alert.count == 3 and record.extra == extra
    assert record.alert.starts_at == 0 and record.phase.last_bad == 9


def test_annotations_firing_then_resolved_in_the_past_tense() -> None:
    _, _, record = run([(0, ev(True)), (90, ev(False))])
    assert record is not None
    assert record.alert.annotations["firing_summary"] == "sw1 vTrue"
    assert record.alert.annotations["summary"] == "was: sw1 vTrue (90s)"
    assert (record.alert.starts_at, record.alert.ends_at) == (0, 90)


def test_a_change_of_a_stored_trap_alert_recalls_its_names() -> None:
    extra = {"trap": "v2c"}
    _, _, record = run(
        [(0, seen(Event.OCCURRED, TRAP_FOR, extra=extra)), (30, seen(Event.TIME, TRAP_FOR))]
    )
    assert record is not None and record.alert.annotations["summary"].endswith("recalled:v2c")


def test_confirm_polls_are_due_at_once_and_stop_when_resolved() -> None:
    confirming = policy("trap", confirm_every=60.0)
    record, _ = step(None, seen(Event.OCCURRED, confirming, confirm_index="3"), 100)
    assert record is not None and (record.confirm_index, record.confirm_next) == ("3", 100)
    record, _ = step(record, seen(Event.CLEARED, confirming), 110)
    assert record is not None and record.confirm_next is None


def test_flapping_is_told_once_then_settles_with_a_summary() -> None:
    flappy = policy(flap=FlapSettings(enabled=True, start=30.0, stop=25.0))
    steps = [(float(t), ev(t % 20 == 0, pol=flappy)) for t in range(0, 200, 10)]
    steps += [(float(t), ev(False, pol=flappy)) for t in range(200, 600, 10)]
    _, told, record = run(steps)
    kinds = [k for each in told for k in each]
    assert kinds.count("flapping") == 1
    assert kinds[-1] == "resolved"
    assert record is not None and "flapped:" in record.alert.annotations["flap_summary"]


def test_an_idle_trap_alert_records_a_flap_sample_a_minute() -> None:
    record, _ = step(None, seen(Event.OCCURRED, TRAP), 0)
    assert record is not None
    quiet, _ = step(record, seen(Event.TIME, TRAP), IDLE_SAMPLE - 1)
    assert quiet is record
    sampled, told = step(record, seen(Event.TIME, TRAP), IDLE_SAMPLE)
    assert sampled is not None and told == []
    assert (sampled.history, sampled.sampled_at) == ("11", IDLE_SAMPLE)
