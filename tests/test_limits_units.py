"""Pure units of the [limits] section: the default resolve_after of trap rules,
the cap decision and the summary alert's phase, the store's active counts."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

import pytest

from netalert.alerts.caps import SUMMARY_SOURCE, Caps, over_cap, summary_occurred, summary_tick
from netalert.alerts.lifecycle import INACTIVE, Phase
from netalert.alerts.model import Alert, AlertState
from netalert.alerts.table import AlertRecord, AlertTable
from netalert.config.models import Rule
from netalert.rules.compile import trap_resolve_after

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("fields", "default", "expected"),
    [
        ({}, HOUR, 3600.0),  # nothing else would end it: the default
        ({}, timedelta(0), None),  # the default switched off
        ({"resolve_after": "10m"}, HOUR, 600.0),  # its own value wins
        ({"resolve_after": "0s"}, HOUR, None),  # opted out
        ({"clear_trap": "IF-MIB::linkUp"}, HOUR, None),  # waits for its clearing trap
        ({"clear_trap": "IF-MIB::linkUp", "resolve_after": "2h"}, HOUR, 7200.0),
        ({"confirm": "ifOperStatus != 'up'"}, HOUR, 3600.0),  # a bad confirm poll refreshes it
    ],
)
def test_trap_resolve_after(
    fields: dict[str, str], default: timedelta, expected: float | None
) -> None:
    rule = Rule.model_validate({"name": "R", "trap": "IF-MIB::linkDown", **fields})
    assert trap_resolve_after(rule, default) == expected


CAPS = Caps(total=100, per_rule=10)


@pytest.mark.parametrize(
    ("rule_active", "total_active", "expected"),
    [
        (0, 0, None),
        (9, 99, None),  # one below both caps: the 10th and the 100th may be made
        (10, 10, "per_rule"),
        (3, 100, "total"),
        (10, 100, "per_rule"),  # both reached: the rule's cap is named
        (25, 5, "per_rule"),  # above a cap lowered by a reload
    ],
)
def test_over_cap(rule_active: int, total_active: int, expected: str | None) -> None:
    assert over_cap(CAPS, rule_active=rule_active, total_active=total_active) == expected


def test_summary_fires_at_first_suppression_and_keeps_its_start() -> None:
    first = summary_occurred(INACTIVE, now=100.0)
    assert first == Phase(AlertState.FIRING, 100.0, 100.0)
    again = summary_occurred(first, now=130.0)
    assert again == Phase(AlertState.FIRING, 100.0, 130.0)
    back = summary_occurred(Phase(AlertState.RESOLVED, 50.0, 40.0), now=200.0)
    assert back == Phase(AlertState.FIRING, 200.0, 200.0)


FIRING = Phase(AlertState.FIRING, 100.0, 130.0)  # last suppression at 130


@pytest.mark.parametrize(
    ("now", "under_cap", "resolved"),
    [
        (500.0, False, False),  # still at the cap: stays however quiet
        (189.0, True, False),  # under the cap, but suppressed 59 s ago
        (190.0, True, True),  # under the cap and quiet for 60 s
    ],
)
def test_summary_tick(now: float, under_cap: bool, resolved: bool) -> None:
    phase = summary_tick(FIRING, now=now, under_cap=under_cap, quiet=60.0)
    if resolved:
        assert phase == Phase(AlertState.RESOLVED, now, 130.0)
    else:
        assert phase is FIRING


def test_summary_tick_leaves_a_resolved_summary_alone() -> None:
    done = Phase(AlertState.RESOLVED, 10.0, 5.0)
    assert summary_tick(done, now=10**6, under_cap=True, quiet=0.0) is done


def _record(rule: str, n: int, state: AlertState, source: str = "trap") -> AlertRecord:
    alert = Alert(
        fingerprint=f"{rule}-{n}",
        rule=rule,
        severity="warning",
        device=f"d{n}",
        labels=MappingProxyType({"rule": rule}),
        annotations=MappingProxyType({}),
        state=state,
        starts_at=0.0,
        ends_at=None,
        updated_at=0.0,
        value="",
        count=1,
        flapping=False,
        silenced=False,
        source=source,
    )
    return AlertRecord(alert=alert, key=f"k{rule}{n}", phase=Phase(state, 0.0, 0.0))


def test_store_counts_active_alerts_per_rule_without_summaries() -> None:
    store = AlertTable()
    for n in range(3):
        store.put(_record("A", n, AlertState.FIRING))
    store.put(_record("B", 0, AlertState.PENDING))
    store.put(_record("B", 1, AlertState.RESOLVED))
    store.put(_record("A", 9, AlertState.FIRING, source=SUMMARY_SOURCE))
    assert (store.active_count("A"), store.active_count("B"), store.active_total()) == (3, 1, 4)
    record = store.get("A-0")
    assert record is not None
    record.phase = Phase(AlertState.RESOLVED, 1.0, 0.0)
    store.put(record)  # resolved: no longer counted
    store.remove("A-1")
    store.remove("A-1")  # twice: counted once
    assert store.active_by_rule() == {"A": 1, "B": 1}
    assert store.active_total() == 2
