"""The status page in a real headless Chromium, driven over the WebDriver protocol.

chromedriver (Debian package chromium-driver) is spoken to with plain HTTP
(aiohttp); the page is served by the real app on a free loopback port. The
tests check what the page *shows* after its own script fetched ``api/status``:
alerts, devices, charts, its self-refresh, a failing agent, who acked an alert
and when (the ack stage's own line), and that hostile device strings stay text.
A missing Chromium fails the tests (``make debs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from netalert.metrics import Metrics
from netalert.web import AlertView, TrapView, WebServer, create_app, start_web
from tests.support.ports import free_tcp_port
from tests.test_web import XSS, FakeStatus

pytestmark = pytest.mark.e2e  # headless Chromium

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1024",
]


class WebDriver:
    """The few W3C WebDriver commands the tests need, over chromedriver's HTTP API."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.session = ""

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.request(method, self.base + path, json=body) as r:
            data = await r.json()
        value = data.get("value")
        if r.status != 200:
            raise AssertionError(f"WebDriver {method} {path}: {r.status} {value}")
        return value

    async def start(self, chromium: str, profile: Path) -> None:
        options = {"binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]}
        caps = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        value = await self.call("POST", "/session", {"capabilities": caps})
        self.session = value["sessionId"]

    async def open(self, url: str) -> None:
        await self.call("POST", f"/session/{self.session}/url", {"url": url})

    async def js(self, script: str) -> Any:
        """Runs ``script`` (a function body) in the page and returns its value."""
        body = {"script": script, "args": []}
        return await self.call("POST", f"/session/{self.session}/execute/sync", body)

    async def wait(self, script: str, until: Callable[[Any], bool], within: float = 20) -> Any:
        """Evaluates ``script`` until ``until(value)`` holds; fails with the last value."""
        deadline = time.monotonic() + within
        value = await self.js(script)
        while not until(value):
            if time.monotonic() > deadline:
                raise AssertionError(f"page never showed it; last value: {value!r}")
            await asyncio.sleep(0.2)
            value = await self.js(script)
        return value

    async def quit(self) -> None:
        if self.session:
            with contextlib.suppress(Exception):
                await self.call("DELETE", f"/session/{self.session}")
            self.session = ""


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[WebDriver]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(
            "chromium and chromedriver are needed: apt-get install chromium chromium-driver"
        )
    port = free_tcp_port()
    proc = await asyncio.create_subprocess_exec(
        chromedriver,
        f"--port={port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            driver = WebDriver(http, f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    if (await driver.call("GET", "/status")).get("ready"):
                        break
                assert time.monotonic() < deadline, "chromedriver did not become ready"
                await asyncio.sleep(0.1)
            await driver.start(chromium, tmp_path / "profile")
            try:
                yield driver
            finally:
                await driver.quit()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


@pytest.fixture
async def page() -> AsyncIterator[tuple[WebServer, FakeStatus]]:
    provider = FakeStatus()
    server = await start_web(create_app(provider, Metrics()), "127.0.0.1", 0)
    yield server, provider
    await server.stop()


ALERT_ROWS = """
return Array.from(document.querySelectorAll('#alerts tbody tr[data-fingerprint]')).map(
  tr => Array.from(tr.cells).map(td => td.textContent));
"""


async def test_page_shows_the_alert_and_refreshes_itself(
    browser: WebDriver, page: tuple[WebServer, FakeStatus]
) -> None:
    server, provider = page
    await browser.open(server.url + "?refresh=1")
    rows = await browser.wait(ALERT_ROWS, lambda rows: len(rows) == 1)
    severity, rule, device, summary, value, since, _notes = rows[0]
    assert (severity, rule, device, summary, value) == (
        "critical",
        "InterfaceDown",
        "core-sw1",
        "core-sw1 Gi0/3 is down",
        "down",
    )
    assert since.endswith(" ago")
    shown = await browser.js("""
        return {
          title: document.title,
          tiles: Array.from(document.querySelectorAll('#tiles .tile')).map(t => t.innerText),
          devices: Array.from(document.querySelectorAll('#devices tbody tr')).map(
            tr => [tr.cells[0].textContent, tr.cells[2].textContent]),
          trapBars: document.querySelectorAll('#chart-traps rect').length,
          alertBars: document.querySelectorAll('#chart-alerts rect.critical').length,
          outbox: document.getElementById('outbox').innerText,
          conn: document.getElementById('conn').className,
        };""")
    assert shown["title"] == "(1) netalert"
    assert "1\ncritical firing" in shown["tiles"]
    assert "1 / 1\ndevices up / down" in shown["tiles"]
    assert shown["devices"] == [["core-sw1", "up"], ["edge-rt1", "UNREACHABLE (timeout)"]]
    assert shown["trapBars"] == 1  # one trap, in the current minute
    assert shown["alertBars"] == 1
    assert "Waiting\n2" in shown["outbox"]
    assert shown["conn"] == "ok"

    # The agent's state changes: the open page follows without a reload.
    calls = provider.calls
    flapping = AlertView(
        fingerprint="fedcba9876543210",
        rule="HighTemperature",
        severity="warning",
        device="dist-sw2",
        state="firing",
        since=time.time() - 60,
        value="71.5",
        summary="dist-sw2 temperature 71.5",
        flapping=True,
        muted="silenced: change 42",
    )
    provider.snap = dataclasses.replace(provider.snap, alerts=(flapping,))
    rows = await browser.wait(ALERT_ROWS, lambda rows: rows and rows[0][1] == "HighTemperature")
    assert len(rows) == 1
    assert rows[0][6] == "flappingsilenced: change 42"
    assert provider.calls > calls
    assert await browser.js("return document.title") == "(1) netalert"

    # The agent stops answering properly: the page says so instead of showing stale data silently.
    provider.fail = True
    conn = await browser.wait(
        "return document.getElementById('conn').textContent",
        lambda text: text.startswith("agent not answering"),
    )
    assert "HTTP 500" in conn
    provider.fail = False
    await browser.wait("return document.getElementById('conn').className", lambda c: c == "ok")


async def test_hostile_device_strings_render_as_text(
    browser: WebDriver, page: tuple[WebServer, FakeStatus]
) -> None:
    server, provider = page
    snap = provider.snap
    provider.snap = dataclasses.replace(
        snap,
        alerts=(dataclasses.replace(snap.alerts[0], device=XSS, summary=XSS, value=XSS),),
        traps=(TrapView(time.time(), "192.0.2.66", XSS, "2c", XSS, (f"ifDescr.3 = {XSS}",)),),
    )
    await browser.open(server.url)
    rows = await browser.wait(ALERT_ROWS, lambda rows: len(rows) == 1)
    assert rows[0][2:5] == [XSS, XSS, XSS]
    seen = await browser.js("""
        return {
          pwned: window.__pwned === undefined ? null : window.__pwned,
          scripts: document.scripts.length,
          imgs: document.images.length,
          trap: Array.from(document.querySelectorAll('#traps tbody td')).map(td => td.textContent),
        };""")
    assert seen["pwned"] is None
    assert seen["scripts"] == 1  # only the page's own
    assert seen["imgs"] == 0
    assert XSS in seen["trap"]
    assert f"ifDescr.3 = {XSS}" in seen["trap"]


async def _no_alert(fingerprint: str) -> None:
    return None


async def test_an_acked_alert_shows_who_acked_it_and_when(
    browser: WebDriver, tmp_path: Path
) -> None:
    """The ack as the agent wires it: the ack stage's table, its ack line, the live status."""
    from datetime import UTC, datetime

    from netalert.ack.config import AckConfig
    from netalert.ack.stage import AckStage, AgentHooks
    from netalert.ack.store import Ack
    from netalert.state import open_database
    from netalert.web.live import LiveStatus
    from tests.test_ack_imap import make_alert

    acked, other = make_alert("core-sw1", "3"), make_alert("core-sw1", "4")
    db = open_database(tmp_path / "state")
    config = AckConfig.model_validate(
        {
            "imap": {"host": "127.0.0.1", "username": "alerts", "password": "x"},
            "reply_to": "alerts+{token}@example.org",
            "operators": ["oncall@example.org"],
            "secret_file": str(tmp_path / "ack.key"),
        }
    )
    stage = AckStage(
        config,
        db,
        state_dir=tmp_path,
        outbox=None,
        mail_from="netalert@example.org",
        hooks=AgentHooks(
            alert=_no_alert,
            alerts=lambda: [acked, other],
            resolvable=lambda fp: False,
            resolve=lambda fp, now, by: [],
            after=lambda transitions: None,
            changed=lambda: None,
        ),
    )
    at = time.time() - 90
    with db.transaction() as conn:
        stage.store.put_ack(
            conn, Ack(acked.fingerprint, acked.starts_at, "oncall@example.org", at, "on it", "mail")
        )
    live = LiveStatus(started=time.time(), devices=list, alerts=lambda: [acked, other])
    live.acked = stage.ack_line
    server = await start_web(create_app(live, Metrics()), "127.0.0.1", 0)
    notes = """
    return Object.fromEntries(Array.from(
      document.querySelectorAll('#alerts tbody tr[data-fingerprint]')).map(
        tr => [tr.dataset.fingerprint,
               Array.from(tr.querySelectorAll('.tag.acked')).map(t => t.textContent)]));
    """
    try:
        await browser.open(server.url + "?refresh=1")
        shown = await browser.wait(notes, lambda rows: len(rows) == 2)
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        assert shown[acked.fingerprint] == [
            f"acked by oncall@example.org at {when} via mail: on it"
        ]
        assert shown[other.fingerprint] == []
        # unacked (`netalert unack`, a reply): the open page drops the tag by itself
        with db.transaction() as conn:
            stage.store.delete_ack(conn, acked.fingerprint)
        await browser.wait(notes, lambda rows: rows.get(acked.fingerprint) == [])
    finally:
        await server.stop()
        db.close()
