"""Grouping, group_wait / group_interval / repeat_interval, muting and dedup across restarts."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from netalert.alerts.model import Alert, AlertState, fingerprint
from netalert.config.models import Maintenance, Route
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.model import Notification, Reason
from netalert.notify.nflog import NotificationLog
from netalert.notify.silences import SilenceStore
from netalert.state import open_database


def alert(
    device: str,
    rule: str = "IfDown",
    *,
    state: AlertState = AlertState.FIRING,
    severity: str = "critical",
    ends: float | None = None,
    flapping: bool = False,
    **extra: str,
) -> Alert:
    labels = {"rule": rule, "device": device, "severity": severity, **extra}
    return Alert(
        fingerprint=fingerprint(labels),
        rule=rule,
        severity=severity,
        device=device,
        labels=labels,
        annotations={"summary": f"{device} {rule}"},
        state=state,
        starts_at=0.0,
        ends_at=ends,
        updated_at=0.0,
        value="down",
        count=1,
        flapping=flapping,
        silenced=False,
        source="poll",
    )


def resolved(a: Alert, at: float) -> Alert:
    return dataclasses.replace(a, state=AlertState.RESOLVED, ends_at=at)


ROUTE = Route(
    to=["noc@example.org"],
    group_by=["device"],
    group_wait=timedelta(seconds=30),
    group_interval=timedelta(minutes=5),
    repeat_interval=timedelta(hours=4),
)


class Harness:
    """A dispatcher whose notifications are committed like the service does."""

    def __init__(
        self,
        path: Path,
        routes: list[Route] | None = None,
        maintenance: list[Maintenance] | None = None,
    ) -> None:
        self.db = open_database(path)
        self.silences = SilenceStore(self.db)
        self.d = Dispatcher(
            routes or [ROUTE],
            nflog=NotificationLog(self.db),
            maintenance=maintenance or [],
            silences=lambda now: self.silences.list(now),
        )
        self.mails: list[Notification] = []

    def flush(self, now: float) -> list[Notification]:
        out = self.d.flush(now)
        for n in out:
            with self.db.transaction() as conn:
                self.d.sent(conn, n)
        self.mails += out
        return out


def test_group_wait_then_one_mail_for_the_group(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a, b, c = alert("sw1", "IfDown"), alert("sw1", "CpuHigh"), alert("sw2")
    for x in (a, b, c):
        h.d.update(x, now=0)
    assert h.flush(29) == []
    out = h.flush(30)
    assert sorted(len(n.alerts) for n in out) == [1, 2]
    assert {n.reason for n in out} == {Reason.NEW}
    assert {n.group_labels["device"] for n in out} == {"sw1", "sw2"}
    assert h.flush(31) == [] and h.flush(30 + 300) == []  # unchanged: deduplicated


def test_change_waits_for_group_interval_and_resolve_is_mailed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = alert("sw1")
    h.d.update(a, 0)
    h.flush(30)
    b = alert("sw1", "CpuHigh")
    h.d.update(b, 40)
    assert h.flush(100) == []  # next flush of this group is at 30 + 300
    out = h.flush(330)
    assert [n.reason for n in out] == [Reason.CHANGED]
    assert len(out[0].firing) == 2
    h.d.update(resolved(a, 400), 400)
    h.d.update(resolved(b, 401), 401)
    out = h.flush(630)
    assert [n.reason for n in out] == [Reason.RESOLVED]
    assert len(out[0].resolved) == 2 and out[0].firing == ()
    assert h.flush(930) == [] and h.d.next_flush() is None  # group gone


def test_repeat_interval(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.d.update(alert("sw1"), 0)
    h.flush(30)
    quiet = [h.flush(30 + 300 * k) for k in range(1, 48)]
    assert all(q == [] for q in quiet)  # 30 + 300*47 = 14130 < 14430
    out = h.flush(30 + 300 * 48)
    assert [n.reason for n in out] == [Reason.REPEAT]


def test_resolved_before_group_wait_sends_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = alert("sw1")
    h.d.update(a, 0)
    h.d.update(resolved(a, 10), 10)
    assert h.flush(30) == []
    assert h.d.next_flush() is None


def test_no_dup_across_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = alert("sw1")
    h.d.update(a, 0)
    assert len(h.flush(30)) == 1
    again = Harness(tmp_path)  # a restart: same DB, groups rebuilt from active alerts
    again.d.update(a, 100)
    assert again.flush(130) == []
    again.d.update(resolved(a, 140), 140)
    assert [n.reason for n in again.flush(430)] == [Reason.RESOLVED]


def test_silence_then_notified_when_it_ends(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    s = h.silences.add(["device=sw1"], starts_at=0, ends_at=1000, comment="work", author="me")
    h.d.update(alert("sw1"), 0)
    h.d.update(alert("sw2"), 0)
    out = h.flush(30)
    assert [n.group_labels["device"] for n in out] == ["sw2"]
    assert h.d.muted([alert("sw1")], 30) == {alert("sw1").fingerprint: f"silence {s.id}"}
    assert h.flush(330) == [] and h.flush(630) == [] and h.flush(930) == []
    out = h.flush(1230)
    assert [(n.group_labels["device"], n.reason) for n in out] == [("sw1", Reason.NEW)]


def test_maintenance_and_flapping_mute(tmp_path: Path) -> None:
    window = Maintenance(name="always", start="00:00", end="00:00", match=["device=sw1"])
    h = Harness(tmp_path, maintenance=[window])
    h.d.update(alert("sw1"), 0)
    h.d.update(alert("sw3", flapping=True), 0)
    assert h.flush(30) == []
    h.d.update(alert("sw3", flapping=False), 40)
    assert [n.group_labels["device"] for n in h.flush(330)] == ["sw3"]


def test_routes_first_match_and_send_resolved_false(tmp_path: Path) -> None:
    routes = [
        Route(
            match={"severity": "critical"},
            to=["noc@example.org"],
            send_resolved=False,
            group_wait=timedelta(0),
        ),
        Route(to=["all@example.org"], group_wait=timedelta(0)),
    ]
    h = Harness(tmp_path, routes=routes)
    crit, info = alert("sw1"), alert("sw1", "Temp", severity="info")
    h.d.update(crit, 0)
    h.d.update(info, 0)
    out = h.flush(0)
    assert sorted(n.recipients for n in out) == [("all@example.org",), ("noc@example.org",)]
    h.d.update(resolved(crit, 5), 5)
    h.d.update(resolved(info, 5), 5)
    out = h.flush(300)
    assert [(n.recipients, n.reason) for n in out] == [(("all@example.org",), Reason.RESOLVED)]


def test_unrouted_counted(tmp_path: Path) -> None:
    h = Harness(tmp_path, routes=[Route(match={"severity": "critical"}, to=["a@b.c"])])
    h.d.update(alert("sw1", severity="info"), 0)
    assert h.d.unrouted == 1 and h.d.next_flush() is None


def test_inhibited_alert_is_not_mailed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    inhibited = dataclasses.replace(alert("sw1"), silenced=True)
    h.d.update(inhibited, 0)
    assert h.flush(30) == []
    assert h.d.muted([inhibited], 30) == {inhibited.fingerprint: "inhibited by DeviceUnreachable"}
    h.d.update(dataclasses.replace(inhibited, silenced=False), 40)
    assert [n.reason for n in h.flush(330)] == [Reason.NEW]


def test_alert_mailed_before_a_silence_gets_its_resolved_mail(tmp_path: Path) -> None:
    # Alertmanager's rule: a silenced alert sends nothing, resolved included, unless its
    # firing mail already went out; then its resolution is told, silence or not.
    h = Harness(tmp_path)
    a, b = alert("sw1", "IfDown"), alert("sw1", "CpuHigh")
    h.d.update(a, 0)
    h.d.update(b, 0)
    assert [len(n.firing) for n in h.flush(30)] == [2]
    h.silences.add(["rule=IfDown"], starts_at=40, ends_at=10_000, comment="work", author="me")
    # another mail of the group while IfDown is silenced must not make it "never told"
    h.d.update(resolved(b, 50), 50)
    out = h.flush(330)
    assert [(n.reason, [x.rule for x in n.alerts]) for n in out] == [(Reason.RESOLVED, ["CpuHigh"])]
    h.d.update(resolved(a, 400), 400)
    out = h.flush(630)
    assert [(n.reason, [x.rule for x in n.resolved]) for n in out] == [
        (Reason.RESOLVED, ["IfDown"])
    ]


def test_alert_silenced_before_it_was_mailed_sends_nothing_resolved_included(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    h.silences.add(["rule=IfDown"], starts_at=0, ends_at=10_000, comment="work", author="me")
    a = alert("sw1", "IfDown")
    h.d.update(a, 0)
    assert h.flush(30) == []
    h.d.update(resolved(a, 100), 100)
    assert h.flush(330) == [] and h.flush(630) == []


def test_due_groups_in_creation_order_and_only_those(tmp_path: Path) -> None:
    # two routes, their groups made in turn: a flush tells the groups due, oldest group
    # first, and leaves the others alone (the timers are a heap, not a walk over groups)
    fast = ROUTE.model_copy(update={"match": {"site": "fast"}, "group_wait": timedelta(0)})
    h = Harness(tmp_path, [fast, ROUTE])
    for n in range(40):
        h.d.update(alert(f"sw{n:02}", site="fast" if n % 2 else "slow"), now=0)
    out = h.flush(0)
    assert [x.group_labels["device"] for x in out] == [f"sw{n:02}" for n in range(1, 40, 2)]
    assert h.flush(29) == []
    out = h.flush(30)
    assert [x.group_labels["device"] for x in out] == [f"sw{n:02}" for n in range(0, 40, 2)]
    for n in (33, 5, 21):  # changes, told at each group's next flush, in group order
        h.d.update(alert(f"sw{n:02}", "CpuHigh", site="fast"), now=100)
    assert h.flush(299) == []
    out = h.flush(300)
    assert [(x.group_labels["device"], x.reason) for x in out] == [
        ("sw05", Reason.CHANGED),
        ("sw21", Reason.CHANGED),
        ("sw33", Reason.CHANGED),
    ]
    assert h.flush(330) == []  # the slow groups are due again, with nothing new


def test_a_group_made_again_keeps_only_its_new_timer(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a = alert("sw1")
    h.d.update(resolved(a, 5), 5)  # never told: no group
    h.d.update(a, 10)
    assert h.flush(39) == [] and [n.reason for n in h.flush(40)] == [Reason.NEW]
    h.d.update(resolved(a, 50), 50)
    assert [n.reason for n in h.flush(340)] == [Reason.RESOLVED]
    assert h.flush(640) == [] and h.d.next_flush() is None  # group gone, its timer stale
    h.d.update(alert("sw1"), 700)  # a new episode: its own group_wait, not the old timer
    assert h.flush(729) == [] and [n.reason for n in h.flush(730)] == [Reason.NEW]


def test_forced_flush_tells_every_group_then_timers_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for device in ("sw1", "sw2", "sw3"):
        h.d.update(alert(device), 0)
    out = h.d.flush(1, force=True)
    assert [n.group_labels["device"] for n in out] == ["sw1", "sw2", "sw3"]
    assert h.flush(30) == []  # the old group_wait timers are gone
    assert h.d.next_flush() == 1 + 300


def test_a_flush_with_nothing_due_reads_no_silences(tmp_path: Path) -> None:
    # the agent flushes after every loop turn: with thousands of groups waiting, a turn
    # with nothing due must not walk them nor read the silences
    h = Harness(tmp_path)
    reads: list[float] = []
    inner = h.silences.list
    h.d = Dispatcher(
        [ROUTE],
        nflog=NotificationLog(h.db),
        maintenance=[],
        silences=lambda now: reads.append(now) or inner(now),
    )
    for n in range(50):
        h.d.update(alert(f"sw{n:02}"), 0)
    for now in (1, 10, 29):
        assert h.flush(now) == []
    assert reads == []
    assert len(h.flush(30)) == 50 and reads == [30]


def test_a_flush_that_fails_keeps_the_timers_of_the_groups_it_did_not_reach(
    tmp_path: Path,
) -> None:
    # the notification log unreadable for one flush (a renamed table, a locked file):
    # every group due then must still be told once the log reads again
    h = Harness(tmp_path)
    for device in ("sw1", "sw2", "sw3"):
        h.d.update(alert(device), 0)
    nflog = h.d._nflog
    read = nflog.get

    def unreadable(route: str, key: str) -> None:
        raise sqlite3.OperationalError("no such table: nflog")

    nflog.get = unreadable  # type: ignore[method-assign,assignment]
    with pytest.raises(sqlite3.OperationalError):
        h.d.flush(30)
    nflog.get = read  # type: ignore[method-assign]
    told = [n.group_labels["device"] for n in h.flush(31)] + [
        n.group_labels["device"] for n in h.flush(330)
    ]
    assert sorted(told) == ["sw1", "sw2", "sw3"]


def test_a_held_write_keeps_a_muted_told_alert_told(tmp_path: Path) -> None:
    # while a mail and its log entry wait in memory (a full disk), the log answers for them
    # (NotificationLog.hold): a muted alert that mail still counts as told must stay told,
    # or its resolution is never mailed
    h = Harness(tmp_path)
    a, b = alert("sw1", "IfDown"), alert("sw1", "CpuHigh")
    h.d.update(a, 0)
    h.d.update(b, 0)
    assert [len(n.firing) for n in h.flush(30)] == [2]
    h.silences.add(["rule=IfDown"], starts_at=40, ends_at=10_000, comment="work", author="me")
    h.d.update(alert("sw1", "FanFail"), 50)
    (changed,) = h.d.flush(330)
    assert changed.held == frozenset({a.fingerprint})
    h.d._nflog.hold(changed)  # not written yet
    h.d.update(resolved(a, 400), 400)
    out = h.d.flush(630)
    assert [(n.reason, [x.rule for x in n.resolved]) for n in out] == [(Reason.CHANGED, ["IfDown"])]


def test_forgotten_alerts_are_not_mailed_and_their_groups_go(tmp_path: Path) -> None:
    # a cluster node that lost the alerts' shard: their new owner tells them, not this node
    h = Harness(tmp_path)
    a, b, c = alert("sw1"), alert("sw1", "CpuHigh"), alert("sw2")
    for x in (a, b, c):
        h.d.update(x, 0)
    h.flush(30)
    h.d.update(resolved(a, 40), 40)
    h.d.update(resolved(c, 40), 40)
    h.d.forget([resolved(a, 40), resolved(c, 40)])
    assert h.flush(330) == []  # no resolve mail for either
    h.d.update(resolved(b, 400), 400)
    out = h.flush(630)
    assert [(n.reason, [x.fingerprint for x in n.resolved]) for n in out] == [
        (Reason.RESOLVED, [b.fingerprint])
    ]
    assert h.flush(930) == [] and h.d.next_flush() is None
