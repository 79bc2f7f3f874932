"""The web server over real HTTP on a free loopback port: every route, headers, health.

The status provider is a fake (it is a pure data source); the server, the
sockets and the HTTP are real.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from netalert.alerts.model import Alert, AlertState
from netalert.mail.stats import MailStats
from netalert.metrics import HistogramCounts, Metrics, counter_samples
from netalert.poll.poller import PollerStats
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.traps.stats import RejectReason, TrapStats
from netalert.web import (
    AlertView,
    DeviceStatus,
    History,
    LiveStatus,
    LoopMonitor,
    OutboxStatus,
    StatusSnapshot,
    TrapView,
    WebServer,
    create_app,
    start_web,
)
from netalert.web.sources import alerts_source, mail_source, poller_source, traps_source
from tests.support.ports import free_tcp_port

NOW = 1_795_000_000.0
XSS = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"


def sample_snapshot(now: float = NOW) -> StatusSnapshot:
    """A snapshot with one firing critical alert, two devices, a hostile trap."""
    history = History()
    history.record_trap(
        TrapEvent("192.0.2.66", 162, "2c", "1.3.6.1.6.3.1.1.5.3", "IF-MIB::linkDown", (), None, now)
    )
    history.record_alerts({"critical": 1}, now)
    return StatusSnapshot(
        generated=now,
        started=now - 3600,
        version="0.1.0",
        devices=(
            DeviceStatus("core-sw1", "192.0.2.10", True, now - 5, 12.5, "ok"),
            DeviceStatus(
                "edge-rt1", "192.0.2.11", False, now - 9, None, "timeout", "no answer", now - 9
            ),
        ),
        alerts=(
            AlertView(
                fingerprint="0123456789abcdef",
                rule="InterfaceDown",
                severity="critical",
                device="core-sw1",
                state="firing",
                since=now - 300,
                value="down",
                summary="core-sw1 Gi0/3 is down",
                labels={"rule": "InterfaceDown", "ifIndex": "3"},
            ),
        ),
        traps=(
            TrapView(now - 1, "192.0.2.66", "", "2c", "IF-MIB::linkDown", (f"ifDescr.3 = {XSS}",)),
        ),
        outbox=OutboxStatus(pending=2, failed=1, sent=40, oldest_pending_age=30.0),
        traps_per_minute=history.traps_per_minute(now),
        alerts_by_severity=history.alerts_by_severity(now),
    )


class FakeStatus:
    """A StatusProvider returning ``snap`` (re-stamped with ``now``); tests edit ``snap``."""

    def __init__(self, snap: StatusSnapshot | None = None) -> None:
        self.snap = snap if snap is not None else sample_snapshot()
        self.calls = 0
        self.fail = False

    def snapshot(self, now: float) -> StatusSnapshot:
        self.calls += 1
        if self.fail:
            raise RuntimeError("store is gone")
        return dataclasses.replace(self.snap, generated=now)


@pytest.fixture
async def served() -> AsyncIterator[tuple[WebServer, FakeStatus, Metrics, aiohttp.ClientSession]]:
    provider = FakeStatus()
    metrics = Metrics(mib_modules=lambda: 42)
    server = await start_web(create_app(provider, metrics), "127.0.0.1", 0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base_url=server.url, timeout=timeout) as http:
        yield server, provider, metrics, http
    await server.stop()


async def get_json(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
        return await r.json()


async def test_status_is_the_whole_snapshot(served: Any) -> None:
    _, provider, _, http = served
    before = time.time()
    body = await get_json(http, "/api/status")
    assert before <= body["generated"] <= time.time()
    assert set(body) == {
        "generated",
        "started",
        "version",
        "devices",
        "alerts",
        "traps",
        "outbox",
        "traps_per_minute",
        "alerts_by_severity",
    }
    alert = body["alerts"][0]
    assert alert["rule"] == "InterfaceDown"
    assert alert["labels"] == {"rule": "InterfaceDown", "ifIndex": "3"}
    assert alert["flapping"] is False and alert["muted"] == ""
    assert body["devices"][1] == {
        "name": "edge-rt1",
        "address": "192.0.2.11",
        "reachable": False,
        "last_poll": NOW - 9,
        "response_ms": None,
        "result": "timeout",
        "last_error": "no answer",
        "last_error_at": NOW - 9,
    }
    assert body["outbox"]["oldest_pending_age"] == 30.0
    assert body["outbox"]["healthy"] is True
    series = body["traps_per_minute"]
    assert len(series["values"]) == 60 and series["step"] == 60.0
    assert series["values"][-1] == 1.0
    assert [s["name"] for s in body["alerts_by_severity"]] == ["critical", "warning", "info"]
    assert body["alerts_by_severity"][0]["values"][-1] == 1.0
    assert provider.calls == 1


async def test_partial_apis(served: Any) -> None:
    _, _, _, http = served
    alerts = await get_json(http, "/api/alerts")
    assert set(alerts) == {"generated", "alerts"}
    assert [a["fingerprint"] for a in alerts["alerts"]] == ["0123456789abcdef"]
    devices = await get_json(http, "/api/devices")
    assert [d["name"] for d in devices["devices"]] == ["core-sw1", "edge-rt1"]
    traps = await get_json(http, "/api/traps")
    # device strings stay data: the hostile varbind is a plain JSON string, unaltered
    assert traps["traps"][0]["varbinds"] == [f"ifDescr.3 = {XSS}"]


async def test_no_mutating_methods(served: Any) -> None:
    _, _, _, http = served
    for path in ("/", "/api/status", "/api/alerts", "/metrics", "/healthz"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            async with http.request(method, path) as r:
                assert r.status == 405, (method, path)
    async with http.get("/api/silences") as r:
        assert r.status == 404
    async with http.head("/api/status") as r:
        assert r.status == 200


async def test_page_is_static_with_a_csp_matching_its_inline_code(served: Any) -> None:
    _, provider, _, http = served
    async with http.get("/") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        page = await r.text()
        csp = r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
    # the page carries no agent data (the script fetches it): nothing to escape server-side
    assert provider.calls == 0
    assert "core-sw1" not in page and "<img" not in page
    assert "http://" not in page.replace('"http://www.w3.org/2000/svg"', "")
    assert 'fetch("api/status"' in page
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp


async def test_provider_failure_is_a_500_not_a_crash(served: Any) -> None:
    _, provider, _, http = served
    provider.fail = True
    async with http.get("/api/status") as r:
        assert r.status == 500
        assert await r.json() == {"error": "status unavailable: RuntimeError"}
    provider.fail = False
    assert (await get_json(http, "/api/alerts"))["alerts"]


SPEC_NAMES = (
    'netalert_traps_received_total{version="2c"} 7.0',
    'netalert_traps_received_total{version="1"} 0.0',
    'netalert_traps_rejected_total{reason="bad_community"} 3.0',
    'netalert_polls_total{result="ok"} 5.0',
    'netalert_polls_total{result="timeout"} 1.0',
    'netalert_alerts_active{severity="critical"} 1.0',
    'netalert_alerts_active{severity="warning"} 0.0',
    "netalert_mail_sent_total 4.0",
    'netalert_mail_failed_total{kind="timeout"} 2.0',
    "netalert_outbox_pending 1.0",
)


async def test_metrics_exports_spec_names_from_the_stages_stats(served: Any) -> None:
    _, _, metrics, http = served
    mail = MailStats()
    mail.success(NOW, 4)
    mail.failure("timeout", "smtp: timed out", NOW)
    mail.failure("timeout", "smtp: timed out", NOW)
    mail.pending = 1
    polls = PollerStats()
    polls.polls.update({"ok": 5, "timeout": 1})
    polls.overruns = 2
    durations = HistogramCounts()
    durations.observe(0.004)
    durations.observe(0.3)
    firing = _alert("critical", AlertState.FIRING)
    pending = _alert("warning", AlertState.PENDING)
    traps = TrapStats()
    traps.received["2c"] = 7
    traps.reject(RejectReason.BAD_COMMUNITY)
    traps.reject(RejectReason.BAD_COMMUNITY)
    traps.reject(RejectReason.BAD_COMMUNITY)
    traps.storm_folded = 19
    metrics.register_source("mail", mail_source(mail, lambda: 12.5))
    metrics.register_source("poller", poller_source(polls, durations))
    metrics.register_source("alerts", alerts_source(lambda: [firing, pending]))
    metrics.register_source("traps", traps_source(traps, lambda: 6))
    metrics.register_source(
        "extra", lambda: counter_samples("netalert_traps_received_total", "version", {"3": 2})
    )
    async with http.get("/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    lines = set(text.splitlines())
    for line in SPEC_NAMES:
        assert line in lines, line
    assert 'netalert_traps_received_total{version="3"} 2.0' in lines
    assert "netalert_storm_folded_total 19.0" in lines
    assert "netalert_trap_socket_drops 6.0" in lines
    assert "netalert_poll_overruns_total 2.0" in lines
    assert "netalert_mail_oldest_pending_seconds 12.5" in lines
    assert "netalert_mib_modules_loaded 42.0" in lines
    assert 'netalert_poll_duration_seconds_bucket{le="0.005"} 1.0' in lines
    assert 'netalert_poll_duration_seconds_bucket{le="+Inf"} 2.0' in lines
    assert "netalert_poll_duration_seconds_count 2.0" in lines
    assert any(line.startswith('netalert_build_info{python="3.') for line in lines)
    assert any(line.startswith("netalert_loop_lag_seconds ") for line in lines)
    # a stage reads live: the next scrape sees the new count without re-registering
    traps.received["2c"] += 1
    async with http.get("/metrics", headers={"Accept": "application/openmetrics-text"}) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await r.text()
    assert 'netalert_traps_received_total{version="2c"} 8.0' in text.splitlines()
    assert text.rstrip().endswith("# EOF")


def _alert(severity: str, state: AlertState) -> Alert:
    labels = {"rule": "R", "severity": severity, "device": "d"}
    return Alert(
        f"fp-{severity}",
        "R",
        severity,
        "d",
        labels,
        {},
        state,
        NOW,
        None,
        NOW,
        "1",
        1,
        False,
        False,
        "poll",
    )


async def test_healthz_reports_a_blocked_loop() -> None:
    monitor = LoopMonitor(interval=0.05, max_lag=0.3, window=1.0)
    server = await start_web(create_app(FakeStatus(), Metrics(), monitor=monitor), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=server.url) as http:
            # healthy first (a loaded machine may delay this process's first ticks)
            deadline = time.monotonic() + 5
            answer = (0, "")
            while answer != (200, "ok\n") and time.monotonic() < deadline:
                async with http.get("/healthz") as r:
                    answer = (r.status, await r.text())
                if answer != (200, "ok\n"):
                    await asyncio.sleep(0.1)
            assert answer == (200, "ok\n")
            # block the loop the way a synchronous call in a stage would
            time.sleep(0.8)  # noqa: ASYNC251 - the blocking is the point
            await asyncio.sleep(0.12)  # let the monitor tick once after the stall
            async with http.get("/healthz") as r:
                assert r.status == 503
                assert (await r.text()).startswith("event loop lag 0.")
            async with http.get("/metrics") as r:
                lag_line = next(
                    line
                    for line in (await r.text()).splitlines()
                    if line.startswith("netalert_loop_lag_seconds ")
                )
                assert float(lag_line.split()[1]) >= 0.5
            # the stall leaves the window after ~1 s and health comes back
            deadline = time.monotonic() + 5
            status = 503
            while status != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                async with http.get("/healthz") as r:
                    status = r.status
            assert status == 200
    finally:
        await server.stop()


async def test_start_web_binds_the_requested_loopback_port() -> None:
    port = free_tcp_port()
    server = await start_web(create_app(FakeStatus(), Metrics()), "127.0.0.1", port)
    try:
        assert (server.port, server.url) == (port, f"http://127.0.0.1:{port}/")
        with pytest.raises(OSError):
            await start_web(create_app(FakeStatus(), Metrics()), "127.0.0.1", port)
    finally:
        await server.stop()
    # stopped means the port is free again
    again = await start_web(create_app(FakeStatus(), Metrics()), "127.0.0.1", port)
    await again.stop()


async def test_live_status_through_http() -> None:
    """The provider service.py uses, fed like the stages feed it, over real HTTP."""
    mail = MailStats()
    mail.pending = 3
    mail.canary_failing = True
    live = LiveStatus(
        started=NOW - 10,
        devices=lambda: [("core-sw1", "192.0.2.10")],
        alerts=lambda: [_alert("critical", AlertState.FIRING)],
        mail=mail,
        oldest_pending_age=lambda: 600.0,
        muted=lambda alert, now: "silenced: change 42",
    )
    event = TrapEvent(
        "192.0.2.10",
        1024,
        "2c",
        "1.3.6.1.6.3.1.1.5.4",
        "IF-MIB::linkUp",
        (VarBind("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3, "IF-MIB::ifIndex", "3"),),
        None,
        NOW,
        device="core-sw1",
    )
    live.history.record_trap(event)
    server = await start_web(create_app(live, Metrics(), clock=lambda: NOW + 1), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=server.url) as http:
            body = await get_json(http, "/api/status")
    finally:
        await server.stop()
    assert body["generated"] == NOW + 1
    assert body["alerts"][0]["muted"] == "silenced: change 42"
    assert body["devices"] == [
        {
            "name": "core-sw1",
            "address": "192.0.2.10",
            "reachable": None,
            "last_poll": None,
            "response_ms": None,
            "result": "",
            "last_error": "",
            "last_error_at": None,
        }
    ]
    assert body["traps"][0]["trap"] == "IF-MIB::linkUp"
    assert body["traps"][0]["varbinds"] == ["ifIndex.3 = 3"]
    assert body["outbox"]["pending"] == 3 and body["outbox"]["healthy"] is False
    assert body["traps_per_minute"]["values"][-1] == 1.0
