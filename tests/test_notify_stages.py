"""Each notify stage on its own (group, the mute stages, dedup, deliver), then composed:
an alert taken by two routes of a tree; [[inhibit]] rules."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from netalert.alerts.model import Alert, AlertState
from netalert.config import load_config_text
from netalert.config.models import Maintenance, Route
from netalert.errors import ConfigError
from netalert.matchers import parse_matcher
from netalert.notify.dedup import Dedup
from netalert.notify.deliver import Deliver
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.flapping import FlappingMuter
from netalert.notify.group import Groups
from netalert.notify.inhibit import Inhibitor
from netalert.notify.maintenance import MaintenanceMuter
from netalert.notify.model import Reason
from netalert.notify.nflog import NotificationLog
from netalert.notify.routes import RouteNode, compile_routes
from netalert.notify.silences import Silence, Silencer
from netalert.notify.stage import Batch, MuteStage, first_mute, run_stages
from netalert.state import open_database
from tests.test_notify_dispatcher import alert, resolved

ROUTE = compile_routes(
    [
        Route(
            name="r",
            to=["noc@example.org"],
            group_wait=timedelta(seconds=30),
            group_interval=timedelta(minutes=5),
        )
    ]
).top[0]


def batch(
    *alerts: Alert,
    now: float = 100.0,
    route: RouteNode = ROUTE,
    muted: dict[str, str] | None = None,
    **kw: object,
) -> Batch:
    """A batch of ``alerts`` as the group stage makes it (``muted`` ones taken out of firing)."""
    muted = muted or {}
    firing = {a.fingerprint: a for a in alerts if a.state is AlertState.FIRING}
    resolved = {a.fingerprint: a for a in alerts if a.state is AlertState.RESOLVED}
    firing = {fp: a for fp, a in firing.items() if fp not in muted}
    key, labels = "r{device='sw1'}", {"device": "sw1"}
    return Batch(route, key, labels, firing, resolved, now, muted, **kw)  # type: ignore[arg-type]


# --- group ---------------------------------------------------------------------------------


def test_groups_wait_then_interval_and_drop_what_is_said() -> None:
    told: set[tuple[str, str]] = set()
    groups = Groups(lambda route, key: (route, key) in told)
    seen: list[tuple[float, list[str]]] = []

    def handle(b: Batch) -> bool:
        seen.append((b.now, sorted(a.device for a in [*b.firing.values(), *b.resolved.values()])))
        return bool(b.firing)

    a = alert("sw1")
    groups.add(ROUTE, a, 0)
    groups.add(ROUTE, alert("sw1", "CpuHigh"), 10)  # same group: no new timer
    assert groups.next_flush() == 30
    groups.flush(29, False, handle)
    assert seen == []
    groups.flush(30, False, handle)
    assert seen == [(30, ["sw1", "sw1"])] and groups.next_flush() == 330
    groups.add(ROUTE, resolved(a, 40), 40)
    groups.add(ROUTE, resolved(alert("sw1", "CpuHigh"), 40), 40)
    groups.flush(330, False, handle)  # said once, then dropped with the empty group
    assert groups.next_flush() is None
    # resolved before anyone was told: no group at all
    groups.add(ROUTE, resolved(alert("sw9"), 50), 50)
    assert groups.next_flush() is None


def test_groups_one_per_route_and_key() -> None:
    routes = compile_routes(
        [Route(name="a", to=["a@example.org"]), Route(name="b", to=["b@example.org"])]
    ).top
    groups = Groups(lambda route, key: False)
    for route in routes:
        groups.add(route, alert("sw1"), 0)
    groups.add(routes[0], alert("sw2"), 0)
    keys: list[str] = []
    groups.flush(30, False, lambda b: keys.append(b.key) is None)
    assert keys == ["a{device='sw1'}", "b{device='sw1'}", "a{device='sw2'}"]


# --- the mute stages -------------------------------------------------------------------------


def _silence(text: str, ends: float = 1000.0) -> Silence:
    return Silence("s1", (parse_matcher(text),), 0.0, ends, "work", "me", 0.0)


@pytest.mark.parametrize(
    ("muter", "muted", "free", "why"),
    [
        (
            Inhibitor(),
            dataclasses.replace(alert("sw1"), silenced=True),
            alert("sw1"),
            "inhibited by DeviceUnreachable",
        ),
        (
            Silencer(lambda now: [_silence("device=~sw1|sw2")]),
            alert("sw2"),
            alert("sw3"),
            "silence s1",
        ),
        (
            MaintenanceMuter(
                [Maintenance(name="w", start="00:00", end="00:00", match=["device!=sw3"])]
            ),
            alert("sw1"),
            alert("sw3"),
            "maintenance w",
        ),
        (FlappingMuter(), alert("sw1", flapping=True), alert("sw1"), "flapping"),
    ],
)
def test_each_muter_and_its_stage(muter: object, muted: Alert, free: Alert, why: str) -> None:
    stage = MuteStage(muter)  # type: ignore[arg-type]
    out = stage.exec(batch(muted))
    assert out is not None and dict(out.muted) == {muted.fingerprint: why}
    assert out.firing == {}
    clear = stage.exec(batch(free))
    assert clear is not None and clear.muted == {} and list(clear.firing) == [free.fingerprint]


def test_a_mute_stage_leaves_what_an_earlier_one_muted() -> None:
    a = alert("sw1", flapping=True)
    first = MuteStage(Silencer(lambda now: [_silence("device=sw1")])).exec(batch(a))
    assert first is not None
    out = MuteStage(FlappingMuter()).exec(first)
    assert out is not None and dict(out.muted) == {a.fingerprint: "silence s1"}
    assert first_mute([FlappingMuter(), Inhibitor()], a, 0) == "flapping"


def test_the_silencer_reads_the_silences_once() -> None:
    reads: list[float] = []
    silencer = Silencer(lambda now: reads.append(now) or [_silence("device=sw1", ends=50)])
    assert silencer.mutes(alert("sw1"), 10) == "silence s1"
    assert silencer.mutes(alert("sw2"), 10) is None
    assert silencer.mutes(alert("sw1"), 60) is None  # ended; the list is not read again
    assert reads == [10]


# --- dedup and deliver -----------------------------------------------------------------------


@pytest.fixture
def nflog(tmp_path: Path) -> NotificationLog:
    return NotificationLog(open_database(tmp_path))


def test_dedup_ends_what_was_said_and_says_why_otherwise(nflog: NotificationLog) -> None:
    dedup = Dedup(nflog)
    a = alert("sw1")
    first = dedup.exec(batch(a))
    assert first is not None and first.reason is Reason.NEW and first.told == frozenset()
    with nflog._db.transaction() as conn:
        NotificationLog.record(conn, "r", first.key, frozenset({a.fingerprint}), frozenset(), 100)
    assert dedup.exec(batch(a, now=200)) is None
    again = dedup.exec(batch(a, now=100 + 4 * 3600))
    assert again is not None and again.reason is Reason.REPEAT
    assert again.told == frozenset({a.fingerprint})
    gone = dedup.exec(batch(resolved(a, 300), now=300))
    assert gone is not None and gone.reason is Reason.RESOLVED


def test_deliver_makes_the_notification(nflog: NotificationLog) -> None:
    crit, info, old = alert("sw1"), alert("sw1", "Temp", severity="info"), alert("sw1", "Fan")
    muted = alert("sw1", "Psu")
    told = frozenset({old.fingerprint, muted.fingerprint})
    deliver = Deliver()
    b = batch(
        info,
        crit,
        resolved(old, 90),
        resolved(alert("sw1", "Never"), 90),  # resolved, never told: not listed
        muted,
        muted={muted.fingerprint: "silence s1"},
        told=told,
        reason=Reason.CHANGED,
    )
    assert deliver.exec(b) is b
    assert deliver.exec(dataclasses.replace(b, reason=None)) is None
    (n,) = deliver.take()
    assert deliver.take() == []
    assert [a.rule for a in n.alerts] == ["Fan", "IfDown", "Temp"]  # severity, device, rule
    assert n.recipients == ("noc@example.org",) and n.route == "r"
    assert n.held == frozenset({muted.fingerprint}) and n.reason is Reason.CHANGED


def test_run_stages_stops_at_the_first_none() -> None:
    calls: list[str] = []

    class Stop:
        def exec(self, b: Batch) -> Batch | None:
            calls.append("stop")
            return None

    class Never:
        def exec(self, b: Batch) -> Batch | None:
            calls.append("never")
            return b

    assert run_stages([Stop(), Never()], batch(alert("sw1"))) is None
    assert calls == ["stop"]


# --- composed ---------------------------------------------------------------------------------

TREE = """
[[routes]]
name = "ops"
to = ["ops@example.org"]
group_wait = "0s"
  [[routes.routes]]
  name = "pager"
  match = ["severity=critical"]
  to = ["pager@example.org"]
  continue = true
  [[routes.routes]]
  name = "core"
  match = ["device=~core-.*"]
  to = ["core@example.org"]
"""


def test_an_alert_goes_to_every_route_that_takes_it(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    d = Dispatcher(load_config_text(TREE, env={}).routes, nflog=NotificationLog(db))
    a = alert("core-1")
    d.update(a, 0)
    d.update(alert("edge-1", severity="warning"), 0)
    out = d.flush(0)
    assert sorted((n.route, n.recipients, len(n.alerts)) for n in out) == [
        ("core", ("core@example.org",), 1),
        ("ops", ("ops@example.org",), 1),
        ("pager", ("pager@example.org",), 1),
    ]
    for n in out:
        with db.transaction() as conn:
            d.sent(conn, n)
    d.update(resolved(a, 10), 10)
    out = d.flush(300)
    assert sorted((n.route, n.reason) for n in out) == [
        ("core", Reason.RESOLVED),
        ("pager", Reason.RESOLVED),
    ]


def test_dedup_sends_no_repeat_of_acknowledged_alerts(nflog: NotificationLog) -> None:
    acked: set[str] = set()
    dedup = Dedup(nflog, lambda alerts: all(a.fingerprint in acked for a in alerts))
    a = alert("sw1")
    with nflog._db.transaction() as conn:
        NotificationLog.record(conn, "r", batch(a).key, frozenset({a.fingerprint}), frozenset(), 0)
    later = 5 * 3600.0
    repeat = dedup.exec(batch(a, now=later))
    assert repeat is not None and repeat.reason is Reason.REPEAT
    acked.add(a.fingerprint)
    assert dedup.exec(batch(a, now=later)) is None  # acknowledged: no repeat
    b = alert("sw1", "CpuHigh")
    new = dedup.exec(batch(a, b, now=later))  # news still go out
    assert new is not None and new.reason is Reason.CHANGED
    gone = dedup.exec(batch(resolved(a, later), now=later))
    assert gone is not None and gone.reason is Reason.RESOLVED


# --- [[inhibit]] -------------------------------------------------------------------------------

INHIBIT = """
[[routes]]
to = ["noc@example.org"]
group_wait = "0s"

[[inhibit]]
name = "uplink"
source_match = ["rule=UplinkDown"]
target_match = ["rule!=UplinkDown", "severity!=critical"]
equal = ["site"]
"""


def test_an_inhibit_rule_mutes_targets_with_equal_labels_while_the_source_fires() -> None:
    config = load_config_text(INHIBIT, env={})
    inhibitor = Inhibitor(config.inhibit)
    uplink = alert("gw1", "UplinkDown", site="milano")
    port = alert("sw1", "IfDown", severity="warning", site="milano")
    elsewhere = alert("sw2", "IfDown", severity="warning", site="roma")
    critical = alert("sw3", "IfDown", severity="critical", site="milano")
    assert inhibitor.mutes(port, 0) is None  # no source yet
    inhibitor.observe(uplink)
    assert inhibitor.mutes(port, 0) == "inhibited by uplink (UplinkDown on gw1)"
    assert inhibitor.mutes(elsewhere, 0) is None  # another site
    assert inhibitor.mutes(critical, 0) is None  # not a target
    assert inhibitor.mutes(uplink, 0) is None  # never itself
    inhibitor.observe(resolved(uplink, 10))
    assert inhibitor.mutes(port, 20) is None
    assert Inhibitor().mutes(dataclasses.replace(port, silenced=True), 0) == (
        "inhibited by DeviceUnreachable"
    )


def test_an_alert_that_is_source_and_target_does_not_inhibit_itself() -> None:
    config = load_config_text(
        INHIBIT.replace(
            'target_match = ["rule!=UplinkDown", "severity!=critical"]', "target_match = {}"
        ),
        env={},
    )
    inhibitor = Inhibitor(config.inhibit)
    a, b = alert("gw1", "UplinkDown", site="x"), alert("gw2", "UplinkDown", site="x")
    inhibitor.observe(a)
    assert inhibitor.mutes(a, 0) is None
    assert inhibitor.mutes(b, 0) == "inhibited by uplink (UplinkDown on gw1)"


def test_inhibited_alerts_are_not_mailed_until_the_source_resolves(tmp_path: Path) -> None:
    config = load_config_text(INHIBIT, env={})
    db = open_database(tmp_path)
    d = Dispatcher(config.routes, nflog=NotificationLog(db), inhibit=config.inhibit)
    port = alert("sw1", "IfDown", severity="warning", site="milano")
    uplink = alert("gw1", "UplinkDown", site="milano")
    d.update(uplink, 0)
    d.update(port, 0)
    assert [n.group_labels["device"] for n in d.flush(0)] == ["gw1"]
    assert d.muted([port], 1) == {port.fingerprint: "inhibited by uplink (UplinkDown on gw1)"}
    d.update(resolved(uplink, 10), 10)
    assert [n.group_labels["device"] for n in d.flush(300)] == ["sw1"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            'source_match = ["rule=~("]\ntarget_match = {}\n',
            "inhibit[0].source_match: invalid matcher 'rule=~(': "
            "missing ), unterminated subpattern at position 0",
        ),
        ('source_match = ["rule=X"]\n', "inhibit[0].target_match: required key is missing"),
    ],
)
def test_bad_inhibit_rules_are_config_errors(body: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text("[[inhibit]]\n" + body, env={})
    assert info.value.problems == [problem]
