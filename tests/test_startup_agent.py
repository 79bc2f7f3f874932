"""What `netalert run` imports at start: only the stages its config turns on.

The companion of tests/test_startup_imports.py for the agent itself: an agent with
no status page (``http = ""``) serves no HTTP and must not import aiohttp (over
100 ms of CPU: it loads the system's CA store when imported) at its start, nor at
its stop; nor prometheus_client (40 ms), which only a scrape of ``/metrics`` needs;
and an agent with no device (a trap receiver) no poll scheduler (APScheduler, 30 ms).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_udp_port
from tests.support.shared import sharing_env
from tests.test_startup_imports import CONFIG as COMMAND_CONFIG
from tests.test_startup_imports import PROBE

pytestmark = pytest.mark.e2e  # a whole `netalert run`

ROOT = Path(__file__).resolve().parents[1]

# The check-config guards' agent and MIB folders (no MIB source: a quick first start),
# with traps on one port and no device.
CONFIG = (
    COMMAND_CONFIG.split("[[devices]]")[0]
    + """
[traps]
listen = ["127.0.0.1:{port}"]
allow = ["127.0.0.0/8"]
workers = 1
"""
)


def test_a_trap_agent_without_status_page_imports_what_it_uses_only(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CONFIG.format(port=free_udp_port()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), **sharing_env(), "NETALERT_CONFIG": ""}
    env["NOTIFY_SOCKET"] = ""
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        agent = subprocess.Popen(
            [sys.executable, "-c", PROBE, "run", "-c", "config.toml"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while "event=started" not in log.read_text():
            assert agent.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0, log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
    lines = [line for line in log.read_text().splitlines() if line.startswith("PROBE ")]
    assert lines, log.read_text()
    modules = json.loads(lines[-1].removeprefix("PROBE "))["modules"]
    assert "netalert.service" in modules  # the probe saw the agent
    # the server, /metrics' exposition, and the poll scheduler of an agent with no device
    unused = {"aiohttp", "prometheus_client", "apscheduler"}
    assert not [name for name in modules if name.split(".")[0] in unused], modules
