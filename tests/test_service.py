"""`netalert run` as a real process: traps in, mail out, reload, drain, status page.

The device is net-snmp snmpd, the trap sender net-snmp snmptrap, the mail server
aiosmtpd, the browser headless Chromium; the agent runs as a subprocess exactly
as systemd would start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import Snmpd, SnmpdFactory
from tests.test_web_browser import WebDriver, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e  # `netalert run` processes (and Chromium on the status page)

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[snmp]
timeout = "1s"
retries = 0
interval = "2s"

[[devices]]
name = "sw1"
address = "127.0.0.1:{snmpd}"
collect = ["system"]

[collect.system]
get = ["SNMPv2-MIB::sysName.0", "SNMPv2-MIB::sysUpTime.0"]

[traps]
listen = ["127.0.0.1:{traps}"]
communities = ["public"]
allow = ["127.0.0.0/8"]

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
key = ["ifIndex"]
severity = "warning"
summary = "{{{{ device }}}} linkDown on ifIndex {{{{ ifIndex }}}}"
{extra}
[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
retry_max = "1s"

[[routes]]
to = ["noc@example.org"]
group_by = ["rule", "device", "ifIndex"]
group_wait = "0s"
group_interval = "1s"
"""

SYSNAME_RULE = """
[[rules]]
name = "SysNameSeen"
expr = "sysName == 'edge-7'"
severity = "info"
summary = "{{ device }} calls itself {{ sysName }}"
"""

BROKEN_RULE = """
[[rules]]
name = "Broken"
expr = "sysNam == 'edge-7'"
"""


@dataclass
class Agent:
    """A `netalert run` subprocess and what it needs."""

    directory: Path
    ports: dict[str, int]
    device: Snmpd
    smtp: SmtpServer
    mib_cache: Path | None = None  # copied into a fresh state directory (a start: ~1 s, not ~5)
    workers: int | None = None  # [traps] workers (None: the default, one per core)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "agent.log"

    @property
    def config(self) -> Path:
        return self.directory / "config.toml"

    def write_config(self, extra: str = "") -> None:
        text = CONFIG.format(extra=extra, **self.ports)
        if self.workers is not None:
            text = text.replace("[traps]\n", f"[traps]\nworkers = {self.workers}\n", 1)
        self.config.write_text(text)

    def start(self) -> None:
        mibs = self.directory / "state" / "mibs"
        if self.mib_cache is not None and not mibs.exists():
            shutil.copytree(self.mib_cache, mibs)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netalert", "run", "-c", str(self.config)],
                stdout=log,
                stderr=log,
                cwd=self.directory,
            )
        self.wait_http("/healthz", within=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports['http']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_http(self, path: str, within: float) -> str:
        deadline = time.monotonic() + within
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            with contextlib.suppress(OSError):
                status, body = self.get(path, timeout=2)
                if status == 200:
                    return body
            assert time.monotonic() < deadline, f"{path} never answered:\n{self.log()}"
            time.sleep(0.1)

    def trap(self, oid: str, index: int, oper: int) -> None:
        subprocess.run(
            [
                "snmptrap",
                "-v",
                "2c",
                "-c",
                "public",
                f"127.0.0.1:{self.ports['traps']}",
                "",
                oid,
                f"{IF_INDEX}.{index}",
                "i",
                str(index),
                f"{IF_ADMIN}.{index}",
                "i",
                "1",
                f"{IF_OPER}.{index}",
                "i",
                str(oper),
            ],
            env=self.device.env,
            check=True,
            timeout=10,
            capture_output=True,
        )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, within: float = 10) -> tuple[int, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=within)
        return code, time.monotonic() - started

    def outbox_pending(self) -> int:
        db = sqlite3.connect(self.directory / "state" / "netalert.db")
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()


@pytest.fixture
def agent(
    tmp_path: Path,
    snmpd_factory: SnmpdFactory,
    smtp_server: SmtpServer,
    mib_cache: Path,
) -> Iterator[Agent]:
    """The agent, its config written, not started."""
    device = snmpd_factory(sys_name="edge-7")
    ports = {
        "http": free_tcp_port(),
        "traps": free_udp_port(),
        "snmpd": device.port,
        "smtp": smtp_server.port,
    }
    a = Agent(tmp_path, ports, device, smtp_server, mib_cache)
    a.write_config()
    yield a
    if a.proc is not None and a.proc.poll() is None:
        a.proc.kill()
        a.proc.wait(timeout=10)


def subjects(smtp: SmtpServer) -> list[str]:
    return [str(m.parsed()["Subject"]) for m in smtp.received()]


async def wait_subject(smtp: SmtpServer, text: str, within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while True:
        for m in smtp.received():
            msg = m.parsed()
            if text in str(msg["Subject"]):
                return msg
        assert time.monotonic() < deadline, f"no mail with {text!r}; got {subjects(smtp)}"
        await asyncio.sleep(0.05)


async def test_trap_to_mail_reload_and_drain(agent: Agent) -> None:
    agent.start()
    # A real linkDown becomes one FIRING mail; linkUp for the same ifIndex resolves it.
    agent.trap(LINK_DOWN, 2, 2)
    firing = await wait_subject(agent.smtp, "FIRING")
    assert "LinkDown" in firing["Subject"] and "sw1" in firing["Subject"]
    agent.trap(LINK_UP, 2, 1)
    resolved = await wait_subject(agent.smtp, "RESOLVED")
    assert resolved["In-Reply-To"] == firing["Message-ID"]
    assert firing["Message-ID"] in resolved["References"]

    status, metrics = agent.get("/metrics")
    assert status == 200
    assert 'netalert_traps_received_total{version="2c"} 2.0' in metrics
    assert "netalert_mail_sent_total 2.0" in metrics
    assert agent.get("/healthz")[0] == 200

    # SIGHUP with a new poll rule: it takes effect (the device calls itself edge-7).
    agent.write_config(SYSNAME_RULE)
    agent.signal(signal.SIGHUP)
    seen = await wait_subject(agent.smtp, "SysNameSeen", within=30)
    assert "edge-7" in seen.get_body(("plain",)).get_content()

    # SIGHUP with a broken rule: rejected, the running config stays in force.
    agent.write_config(SYSNAME_RULE + BROKEN_RULE)
    agent.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "reload_rejected" not in agent.log():
        assert time.monotonic() < deadline, agent.log()
        await asyncio.sleep(0.1)
    assert "rules[2].expr: unknown name 'sysNam'" in agent.log()
    assert agent.proc is not None and agent.proc.poll() is None
    before = len(agent.smtp.received())
    agent.trap(LINK_DOWN, 3, 2)
    await agent.smtp.wait_for(before + 1, within=20)

    # SIGTERM: exit 0 within 10 s and one closing line of counters.
    code, took = agent.stop()
    assert code == 0, agent.log()
    assert took < 10
    closing = [line for line in agent.log().splitlines() if " event=stopped " in line]
    assert len(closing) == 1 and "traps=3" in closing[0], closing


def receive_traps_in_the_agent(agent: Agent) -> None:
    """``[traps] workers = 1``, for the tests whose subject is not trap intake: no trap
    worker processes (each is another Python start, about a second of CPU)."""
    agent.workers = 1
    agent.write_config()


async def test_outbox_survives_stop_while_mail_is_down(agent: Agent) -> None:
    receive_traps_in_the_agent(agent)
    agent.start()
    agent.smtp.stop()
    agent.trap(LINK_DOWN, 5, 2)
    deadline = time.monotonic() + 20
    while agent.outbox_pending() == 0:
        assert time.monotonic() < deadline, agent.log()
        await asyncio.sleep(0.1)
    code, took = agent.stop()
    assert code == 0 and took < 10, agent.log()
    assert agent.outbox_pending() == 1  # persisted, not lost
    assert agent.smtp.received() == []
    agent.smtp.start()
    agent.start()
    [got] = await agent.smtp.wait_for(1, within=20)
    assert "LinkDown" in str(got.parsed()["Subject"])
    await asyncio.sleep(1.5)  # nothing more comes: not re-sent, not re-notified
    assert len(agent.smtp.received()) == 1
    assert agent.outbox_pending() == 0
    assert agent.stop()[0] == 0


async def test_status_page_shows_alert_from_real_trap(
    agent: Agent,
    browser: WebDriver,  # noqa: F811
) -> None:
    receive_traps_in_the_agent(agent)
    agent.start()
    agent.trap(LINK_DOWN, 4, 2)
    await wait_subject(agent.smtp, "FIRING")
    await browser.open(f"http://127.0.0.1:{agent.ports['http']}/")
    text = await browser.wait(
        "return document.body.innerText",
        lambda t: isinstance(t, str) and "LinkDown" in t and "sw1" in t,
        within=30,
    )
    assert "linkDown on ifIndex 4" in text
    # the trap itself is listed among the recent traps
    assert "linkDown" in text
    assert agent.stop()[0] == 0


def test_bad_config_exits_2_without_starting(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[rules]]\nname = "x"\nexpr = "nosuchname > 1"\n[agent]\nhttp = ""\n')
    out = subprocess.run(
        [sys.executable, "-m", "netalert", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert out.returncode == 2
    # the error is the last line; before it, on a cold MIB cache, only the one line saying
    # that the MIBs are compiled (event=mib_compile), which takes a while
    *before, last = out.stderr.splitlines()
    assert last.startswith("rules[0].expr: unknown name 'nosuchname'"), out.stderr
    assert all("event=mib_compile" in line for line in before), out.stderr
