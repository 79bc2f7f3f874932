"""Pure parts of web/ and metrics: recorders, converters, health decision, collector."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import pytest

from netalert.alerts.model import Alert, AlertState
from netalert.mail.stats import MailStats
from netalert.metrics import (
    HistogramCounts,
    HistogramSample,
    Metrics,
    MetricSample,
)
from netalert.poll.poller import Reachability
from netalert.poll.rows import PollResult
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.web.app import to_jsonable
from netalert.web.health import is_healthy
from netalert.web.history import DeviceBoard, History
from netalert.web.live import LiveStatus, alert_view, format_varbind, outbox_status, trap_view
from netalert.web.model import OutboxStatus, Series

T0 = 1_795_000_020.0  # 20 s into a minute
MINUTE = 60.0


def trap(received: float, *varbinds: VarBind, storm: int = 1) -> TrapEvent:
    return TrapEvent(
        "192.0.2.1",
        162,
        "2c",
        "1.3.6.1.6.3.1.1.5.3",
        "IF-MIB::linkDown",
        varbinds,
        100,
        received,
        storm_count=storm,
    )


def alert(
    fp: str,
    severity: str = "critical",
    state: AlertState = AlertState.FIRING,
    since: float = T0,
    **extra: object,
) -> Alert:
    labels = {"rule": "R", "severity": severity, "device": "sw1"}
    fields: dict[str, object] = {
        "fingerprint": fp,
        "rule": "R",
        "severity": severity,
        "device": "sw1",
        "labels": labels,
        "annotations": {"summary": f"sum {fp}"},
        "state": state,
        "starts_at": since,
        "ends_at": None,
        "updated_at": since,
        "value": "down",
        "count": 1,
        "flapping": False,
        "silenced": False,
        "source": "poll",
    }
    fields.update(extra)
    return Alert(**fields)  # type: ignore[arg-type]


# --- History ----------------------------------------------------------------------------


def test_traps_per_minute_window_ends_at_the_current_minute() -> None:
    h = History(minutes=5)
    for t in (T0, T0 + 1, T0 - MINUTE, T0 - 5 * MINUTE):
        h.record_trap(trap(t))
    h.record_trap(trap(T0 - 2 * MINUTE, storm=50))  # a storm event counts its folded traps
    series = h.traps_per_minute(T0 + 10)
    assert series.values == (0.0, 0.0, 50.0, 1.0, 2.0)  # the -5 min trap is outside
    assert series.start == (T0 // MINUTE - 4) * MINUTE and series.step == MINUTE
    # the window slides: a minute later the oldest column drops off
    assert h.traps_per_minute(T0 + MINUTE).values == (0.0, 50.0, 1.0, 2.0, 0.0)


def test_trap_buckets_are_trimmed_and_recent_traps_bounded() -> None:
    h = History(minutes=3, recent=4)
    for i in range(20):
        h.record_trap(trap(T0 + i * MINUTE))
    assert len(h._traps) <= 4
    assert [e.received for e in h.recent_traps] == [T0 + i * MINUTE for i in range(16, 20)]
    assert h.traps_per_minute(T0 + 19 * MINUTE).values == (1.0, 1.0, 1.0)


def test_alert_series_take_the_peak_and_carry_the_last_value() -> None:
    h = History(minutes=4)
    h.record_alerts({"critical": 2, "warning": 1}, T0 - 3 * MINUTE)
    h.record_alerts({"critical": 5}, T0 - 3 * MINUTE + 5)  # peak within the minute
    h.record_alerts({"critical": 1}, T0 - 3 * MINUTE + 10)  # ... ending at 1
    h.record_alerts({}, T0)  # all cleared now
    by_name = {s.name: s.values for s in h.alerts_by_severity(T0)}
    assert by_name == {
        "critical": (5.0, 1.0, 1.0, 0.0),  # minutes with no record repeat the last count
        "warning": (1.0, 0.0, 0.0, 0.0),
        "info": (0.0, 0.0, 0.0, 0.0),
    }


def test_alert_counts_before_the_window_carry_in() -> None:
    h = History(minutes=3)
    h.record_alerts({"warning": 2}, T0 - 10 * MINUTE)
    for i in range(5):  # enough records to trim the old minute away
        h.record_alerts({"warning": 2, "info": i}, T0 - (9 - i) * MINUTE)
    series = {s.name: s.values for s in h.alerts_by_severity(T0)}
    assert series["warning"] == (2.0, 2.0, 2.0)
    assert series["info"] == (4.0, 4.0, 4.0)


# --- DeviceBoard --------------------------------------------------------------------------


def test_device_board_follows_polls_and_reachability() -> None:
    board = DeviceBoard()
    configured = [("sw1", "192.0.2.1"), ("sw2", "192.0.2.2")]
    assert [d.reachable for d in board.devices(configured)] == [None, None]
    board.record_poll(PollResult("sw1", "192.0.2.1", "ok", T0, 0.0125))
    (sw1, sw2) = board.devices(configured)
    assert (sw1.reachable, sw1.last_poll, sw1.response_ms, sw1.result) == (
        True,
        T0 + 0.0125,
        12.5,
        "ok",
    )
    assert sw2.reachable is None
    board.record_poll(PollResult("sw1", "192.0.2.1", "timeout", T0 + 30, 4.0, error="no answer"))
    sw1 = board.devices(configured)[0]
    # no response time for a device that does not answer; the error is kept with its time
    assert (sw1.reachable, sw1.response_ms, sw1.last_error, sw1.last_error_at) == (
        False,
        None,
        "no answer",
        T0 + 34.0,
    )
    board.record_poll(PollResult("sw1", "192.0.2.1", "error", T0 + 60, 0.1, error="socket"))
    assert board.devices(configured)[0].reachable is False  # an error says nothing new
    board.record_poll(PollResult("sw1", "192.0.2.1", "ok", T0 + 90, 0.02))
    sw1 = board.devices(configured)[0]
    assert (sw1.reachable, sw1.last_error, sw1.response_ms) == (True, "socket", 20.0)
    board.record_reachability(Reachability("sw1", "192.0.2.1", False, "timeout", T0 + 100))
    sw1 = board.devices(configured)[0]
    assert (sw1.reachable, sw1.last_error, sw1.last_error_at) == (False, "timeout", T0 + 100)
    board.forget("sw1")
    assert board.devices(configured)[0].reachable is None


# --- converters ---------------------------------------------------------------------------

VB = SnmpType


@pytest.mark.parametrize(
    ("vb", "text"),
    [
        (
            VarBind("1.3.6.1.2.1.2.2.1.8.3", VB.INTEGER, 2, "IF-MIB::ifOperStatus", "3", "down"),
            "ifOperStatus.3 = down(2)",
        ),
        (
            VarBind("1.3.6.1.2.1.2.2.1.2.3", VB.OCTET_STRING, b"Gi0/3", "IF-MIB::ifDescr", "3"),
            "ifDescr.3 = Gi0/3",
        ),
        (
            VarBind("1.3.6.1.4.1.9.9.1", VB.OCTET_STRING, b"\x00\xff\x10"),
            "1.3.6.1.4.1.9.9.1 = 00:ff:10",
        ),
        (
            VarBind("1.3.6.1.2.1.1.5.0", VB.OCTET_STRING, b"x" * 300, "SNMPv2-MIB::sysName", "0"),
            "sysName.0 = " + "x" * 119 + "…",
        ),
        (VarBind("1.3.6.1.4.1.1", VB.NULL, None), "1.3.6.1.4.1.1 = NULL"),
        (
            VarBind("1.3.6.1.2.1.1.3.0", VB.TIMETICKS, 8_640_000, "SNMPv2-MIB::sysUpTime", "0"),
            "sysUpTime.0 = 1d 00:00:00.00(8640000)",
        ),
        (
            VarBind("1.3.6.1.2.1.4.20.1.1.1", VB.IP_ADDRESS, "192.0.2.1", "IP-MIB::x", ""),
            "x = 192.0.2.1",
        ),
    ],
)
def test_format_varbind(vb: VarBind, text: str) -> None:
    assert format_varbind(vb) == text


def test_trap_view_skips_the_header_varbinds_and_shows_four() -> None:
    header = (
        VarBind("1.3.6.1.2.1.1.3.0", VB.TIMETICKS, 100, "SNMPv2-MIB::sysUpTime", "0"),
        VarBind(
            "1.3.6.1.6.3.1.1.4.1.0", VB.OID, "1.3.6.1.6.3.1.1.5.3", "SNMPv2-MIB::snmpTrapOID", "0"
        ),
    )
    body = tuple(VarBind(f"1.3.6.1.4.1.1.{i}", VB.INTEGER, i) for i in range(6))
    view = trap_view(trap(T0, *header, *body, storm=3))
    assert view.varbinds == tuple(f"1.3.6.1.4.1.1.{i} = {i}" for i in range(4))
    assert (view.trap, view.count, view.version, view.time) == ("IF-MIB::linkDown", 3, "2c", T0)
    unnamed = TrapEvent("192.0.2.1", 162, "1", "1.3.6.1.4.1.9.0.1", "", (), None, T0)
    assert trap_view(unnamed).trap == "1.3.6.1.4.1.9.0.1"


def test_alert_view_and_muting() -> None:
    a = alert("a", silenced=True, flapping=True, count=4)
    view = alert_view(a)
    assert (view.muted, view.flapping, view.count, view.summary, view.state) == (
        "inhibited",
        True,
        4,
        "sum a",
        "firing",
    )
    assert alert_view(a, "silenced: maintenance").muted == "silenced: maintenance"


def test_outbox_status_from_mail_stats() -> None:
    stats = MailStats()
    stats.success(T0, 3)
    stats.failure("temporary", "451 later", T0 + 1)
    stats.failure("rejected", "550 no such user", T0 + 2)
    stats.pending = 2
    status = outbox_status(stats, 40.0)
    assert status == OutboxStatus(
        pending=2,
        failed=2,
        rejected=1,
        sent=3,
        oldest_pending_age=40.0,
        last_error="550 no such user",
        last_error_at=T0 + 2,
        last_success_at=T0,
        healthy=True,
    )
    stats.canary_failing = True
    assert outbox_status(stats).healthy is False


def test_live_status_orders_alerts_and_samples_history() -> None:
    active = [
        alert("info", "info"),
        alert("warn-old", "warning", since=T0 - 100),
        alert("crit-pending", "critical", AlertState.PENDING),
        alert("warn-new", "warning", since=T0 - 10),
        alert("crit", "critical"),
    ]
    live = LiveStatus(started=T0 - 5, devices=list, alerts=lambda: active)
    snap = live.snapshot(T0)
    assert [a.fingerprint for a in snap.alerts] == [
        "crit",
        "crit-pending",
        "warn-new",
        "warn-old",
        "info",
    ]
    by_name = {s.name: s.values[-1] for s in snap.alerts_by_severity}
    assert by_name == {"critical": 1.0, "warning": 2.0, "info": 1.0}  # firing only
    assert snap.outbox == OutboxStatus() and snap.devices == ()


def test_record_counts_reads_the_stores_counts_not_every_alert() -> None:
    walks: list[int] = []

    def alerts() -> list[Alert]:
        walks.append(1)
        return [alert("crit", "critical")]

    counts = {"critical": 3, "warning": 1}
    live = LiveStatus(started=T0, devices=list, alerts=alerts, firing_counts=lambda: counts)
    live.record_counts(T0)
    counts = {"critical": 2}
    live.record_counts(T0 + 1)  # the same minute: the peak stays, the last count moves on
    assert walks == []
    by_name = {s.name: s.values[-1] for s in live.history.alerts_by_severity(T0 + 1)}
    assert by_name == {"critical": 3.0, "warning": 1.0, "info": 0.0}
    plain = LiveStatus(started=T0, devices=list, alerts=alerts)
    plain.record_counts(T0)  # without the store's counts it counts the alerts
    assert walks == [1]


# --- health -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "last_tick", "now", "healthy"),
    [
        (0.0, 100.0, 100.2, True),
        (0.99, 100.0, 100.2, True),
        (1.01, 100.0, 100.2, False),  # the loop was late by more than max_lag
        (0.0, 100.0, 101.3, False),  # the monitor stopped ticking (loop stuck now)
        (0.0, 100.0, 101.2, True),
    ],
)
def test_is_healthy(lag: float, last_tick: float, now: float, healthy: bool) -> None:
    assert is_healthy(lag, last_tick, now, interval=0.25, max_lag=1.0) is healthy


# --- metrics ------------------------------------------------------------------------------


def scrape(metrics: Metrics) -> set[str]:
    body, _ = metrics.render()
    return set(body.decode().splitlines())


def test_sources_add_up_and_replace_by_name() -> None:
    metrics = Metrics()
    metrics.register_source("a", lambda: [MetricSample("netalert_outbox_pending", 2)])
    metrics.register_source("b", lambda: [MetricSample("netalert_outbox_pending", 3)])
    assert "netalert_outbox_pending 5.0" in scrape(metrics)
    metrics.register_source("b", lambda: [MetricSample("netalert_outbox_pending", 10)])
    assert "netalert_outbox_pending 12.0" in scrape(metrics)
    metrics.unregister_source("a")
    metrics.unregister_source("nope")
    assert "netalert_outbox_pending 10.0" in scrape(metrics)


def test_unreported_scalars_are_absent_and_presets_are_zero() -> None:
    lines = scrape(Metrics())
    assert not any(line.startswith("netalert_outbox_pending ") for line in lines)
    assert 'netalert_traps_received_total{version="3"} 0.0' in lines
    assert 'netalert_mail_failed_total{kind="auth"} 0.0' in lines


def test_a_failing_or_misshapen_source_does_not_break_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()

    def broken() -> Iterable[MetricSample]:
        raise RuntimeError("stage gone")

    metrics.register_source("broken", broken)
    metrics.register_source(
        "odd",
        lambda: [
            MetricSample("netalert_polls_total", 1, {"wrong": "x"}),
            MetricSample("netalert_no_such_metric", 1),
            HistogramSample("netalert_outbox_pending", ((math.inf, 1),), 1.0),
            MetricSample("netalert_polls_total", 4, {"result": "ok"}),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="netalert.metrics"):
        first = scrape(metrics)
        scrape(metrics)
    assert 'netalert_polls_total{result="ok"} 4.0' in first
    assert not any('wrong="x"' in line or "netalert_no_such" in line for line in first)
    assert not any(line.startswith("netalert_outbox_pending") for line in first)
    messages = [r.getMessage() for r in caplog.records]
    # logged once each, not on every scrape
    assert sum("'broken' failed" in m for m in messages) == 1
    assert sum("netalert_polls_total: sample" in m for m in messages) == 1
    assert sum("netalert_outbox_pending: sample" in m for m in messages) == 1
    assert sum("netalert_no_such_metric is not declared" in m for m in messages) == 1


def test_histogram_counts_are_cumulative() -> None:
    h = HistogramCounts((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    s = h.sample("netalert_poll_duration_seconds")
    assert s.buckets == ((0.1, 2), (1.0, 3), (math.inf, 4))
    assert (s.sum, h.count) == (3.65, 4)


def test_to_jsonable() -> None:
    series = Series("traps", 0.0, 60.0, (1.0, math.nan))
    assert to_jsonable({"s": series, "state": AlertState.FIRING, "t": (math.inf,)}) == {
        "s": {"name": "traps", "start": 0.0, "step": 60.0, "values": [1.0, None]},
        "state": "firing",
        "t": [None],
    }
