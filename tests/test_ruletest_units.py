"""Pure parts of rule tests and replay: matching expected against got, and escaping.

Labels and subjects come from devices (trap varbinds become labels): a newline or
an escape sequence in them must not break a diff line, a replay line or the
routes explanation.
"""

from __future__ import annotations

from types import MappingProxyType

from netalert.alerts.model import Alert, AlertState, Transition, TransitionKind
from netalert.config.models import Maintenance, Route
from netalert.notify.explain import explain, parse_labels
from netalert.ruletest.compare import alert_diff, subject_matches
from netalert.ruletest.replay import transition_line
from netalert.ruletest.spec import ExpectedAlert


def _alert(rule: str, state: AlertState, **labels: str) -> Alert:
    return Alert(
        fingerprint="f" * 16,
        rule=rule,
        severity="warning",
        device=labels.get("device", "sw1"),
        labels=MappingProxyType({"rule": rule, **labels}),
        annotations=MappingProxyType({}),
        state=state,
        starts_at=0.0,
        ends_at=None,
        updated_at=0.0,
        value="v",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
    )


def test_expected_labels_are_a_subset_and_each_alert_matches_once() -> None:
    got = [
        _alert("LinkDown", AlertState.FIRING, device="sw1", ifIndex="3", site="lab"),
        _alert("LinkDown", AlertState.FIRING, device="sw1", ifIndex="4", site="lab"),
    ]
    both = [ExpectedAlert(rule="LinkDown", labels={"device": "sw1"})] * 2
    assert alert_diff(both, got) is None
    assert alert_diff(both[:1], got) == [
        '  firing  LinkDown{device="sw1"}',
        '+ firing  LinkDown{device="sw1", ifIndex="4", site="lab"}',
    ]
    three = [*both, ExpectedAlert(rule="LinkDown", state="pending")]
    assert alert_diff(three, got) == [
        '  firing  LinkDown{device="sw1"}',
        '  firing  LinkDown{device="sw1"}',
        "- pending LinkDown{}",
    ]


def test_a_hostile_label_stays_on_one_quoted_line() -> None:
    got = [_alert("LinkDown", AlertState.FIRING, ifAlias='x"\n+ firing Fake{}')]
    lines = alert_diff([], got)
    assert lines == ['+ firing  LinkDown{ifAlias="x\\"\\n+ firing Fake{}"}']


def test_subject_wildcards_are_only_stars() -> None:
    assert subject_matches("[FIRING]*LinkDown*", "[FIRING] warning LinkDown on sw1")
    assert subject_matches("[FIRING] warning LinkDown on sw1", "[FIRING] warning LinkDown on sw1")
    assert not subject_matches("[FIRING]", "F")  # brackets are text, not a character class
    assert not subject_matches("*LinkUp*", "[FIRING] warning LinkDown on sw1")


def test_a_replay_line_escapes_what_the_device_sent() -> None:
    alert = _alert("LinkDown", AlertState.FIRING, device="sw1", ifDescr="eth0\x1b[2J\nfake line")
    transition = Transition(
        "LinkDown",
        alert.fingerprint,
        alert.labels,
        {},
        TransitionKind.FIRING,
        "down\r\n",
        0.0,
        alert,
    )
    line = transition_line(0.0, transition)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "ifDescr=eth0\\u001b[2J\\nfake line" in line
    assert line.endswith("value=down\\r\\n")


def test_routes_explanation_follows_first_match_and_lists_every_mute() -> None:
    routes = [
        Route(match={"severity": "critical"}, to=["noc@example.org"]),
        Route(to=["netops@example.org"], group_by=["..."]),
    ]
    windows = [Maintenance(name="all-day", start="00:00", end="00:00", match=["site=lab"])]
    found = explain(routes, windows, [], parse_labels(["severity=warning", "site=lab"]), 0.0)
    assert [(s.route, s.matched) for s in found.path] == [("routes[0]", False), ("routes[1]", True)]
    assert found.path[0].why == "no match (severity='warning', wants 'critical')"
    assert found.mutes == ("maintenance all-day (site=lab)",)
    assert found.group == "routes[1]{severity='warning',site='lab'}"
