"""The [limits] in the rule engine: poll rows past a cap, the summary's life, retention.

Built-in MIB tree and an in-memory SQLite store; times are injected.
"""

from __future__ import annotations

from netalert.alerting import Alerting
from netalert.alerts.model import AlertState
from tests.test_rules_engine import fresh_devices, iface, kinds, make, poll  # noqa: F401

RULES = """
[[rules]]
name = "PortDown"
expr = "ifOperStatus == 'down'"
severity = "critical"
labels = { team = "net" }
"""
LIMITS = """
[limits]
max_active_alerts = 3
max_active_alerts_per_rule = 2
suppressed_resolve_after = "60s"
"""


def _summary(engine: Alerting) -> list[tuple[str, int, str]]:
    return [
        (a.state.value, a.count, a.device)
        for a in engine.table.alerts()
        if a.labels.get("suppressed") == "true"
    ]


def test_poll_rows_past_the_rule_cap_are_counted_once_and_summarised() -> None:
    engine = make(RULES, extra=LIMITS)
    down = {str(i): iface(2) for i in range(1, 6)}
    changes = engine.on_poll(poll("sw1", 0, down), 0)
    assert sorted(kinds(changes)) == [
        "firing::PortDown",  # the summary: no device
        "firing:sw1:PortDown",
        "firing:sw1:PortDown",
    ]
    summary = next(c.alert for c in changes if c.alert.device == "")
    assert dict(summary.labels) == {
        "rule": "PortDown",
        "severity": "critical",
        "device": "",
        "suppressed": "true",
        "team": "net",
    }
    assert engine.limits.suppressed_total == {"PortDown": 3}
    assert engine.table.active_count("PortDown") == 2
    # the same rows again: nothing new is made, counted or told
    assert engine.on_poll(poll("sw1", 60, down), 60) == []
    assert engine.limits.suppressed_total == {"PortDown": 3}
    assert _summary(engine) == [("firing", 3, "")]
    # the rows recover; the summary waits until 60 s after the last suppression
    up = {str(i): iface(1) for i in range(1, 6)}
    assert kinds(engine.on_poll(poll("sw1", 90, up), 90)) == ["resolved:sw1:PortDown"] * 2
    assert engine.tick(119) == []
    resolved = engine.tick(120)
    assert kinds(resolved) == ["resolved::PortDown"]
    assert resolved[0].alert.value == "3 suppressed; back under the caps"
    # a new episode counts from one again
    engine.on_poll(poll("sw1", 200, down), 200)
    assert _summary(engine) == [("firing", 3, "")]
    assert engine.limits.suppressed_total == {"PortDown": 6}


def test_the_total_cap_holds_across_rules() -> None:
    other = RULES.replace('"PortDown"', '"PortDown2"')
    engine = make(RULES + other, extra=LIMITS)
    engine.on_poll(poll("sw1", 0, {"1": iface(2), "2": iface(2)}), 0)
    # 2 PortDown and 2 PortDown2 want to fire: the total cap of 3 takes one
    assert engine.table.active_total() == 3
    assert sum(engine.limits.suppressed_total.values()) == 1
    (summary,) = [a for a in engine.table.active() if a.device == ""]
    assert "max_active_alerts)" in summary.annotations["summary"]
    assert summary.annotations["summary"].startswith("1 more alert of rule ")


def test_alerts_already_active_are_never_suppressed() -> None:
    engine = make(RULES, extra=LIMITS)
    engine.on_poll(poll("sw1", 0, {"1": iface(2), "2": iface(2)}), 0)
    assert engine.table.active_count("PortDown") == 2
    # at the cap: the alerts already active keep being evaluated
    assert engine.on_poll(poll("sw1", 60, {"1": iface(2), "2": iface(2)}), 60) == []
    assert _summary(engine) == []
    assert {a.state for a in engine.table.active()} == {AlertState.FIRING}


def test_resolved_alerts_are_dropped_after_retention_a_batch_per_tick() -> None:
    limits = '[limits]\nretention = "10s"\nprune_batch = 2\n'
    engine = make(RULES, extra=limits)
    down = {str(i): iface(2) for i in range(1, 4)}
    engine.on_poll(poll("sw1", 0, down), 0)
    up = {str(i): iface(1) for i in range(1, 4)}
    assert len(engine.on_poll(poll("sw1", 5, up), 5)) == 3
    engine.tick(15)  # resolved 10 s ago: kept
    assert (len(engine.table.alerts()), engine.pruned) == (3, 0)
    engine.tick(15.5)
    assert (len(engine.table.alerts()), engine.pruned) == (1, 2)  # a batch of 2
    engine.tick(16)
    assert (len(engine.table.alerts()), engine.pruned) == (0, 3)
