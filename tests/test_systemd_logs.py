"""sd_notify against a real datagram socket, and the log line format."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.logs import JsonFormatter, KeyValueFormatter, RateLimiter, event
from netalert.systemd import Notifier, watchdog_interval
from tests.support.ports import free_tcp_port, free_udp_port


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(30)
        yield sock


def test_notifier_sends_states(notify_socket: socket.socket) -> None:
    n = Notifier(notify_socket.getsockname())
    assert n.enabled
    assert n.ready("3 devices")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=3 devices"
    assert n.reloading()
    lines = notify_socket.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert n.stopping() and notify_socket.recv(4096) == b"STOPPING=1"
    assert n.watchdog() and notify_socket.recv(4096) == b"WATCHDOG=1"
    n.close()
    assert not n.watchdog()


def test_notifier_without_systemd_is_a_noop() -> None:
    n = Notifier("")
    assert not n.enabled and not n.ready()


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


@pytest.mark.e2e
def test_run_speaks_sd_notify(tmp_path: Path, notify_socket: socket.socket) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[agent]\nstate_dir = "state"\nhttp = "127.0.0.1:{free_tcp_port()}"\n'
        f'[traps]\nlisten = ["127.0.0.1:{free_udp_port()}"]\n'
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_socket.getsockname(),
        "WATCHDOG_USEC": "400000",
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netalert", "run", "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        seen: list[str] = []

        def until(prefix: str) -> None:
            deadline = time.monotonic() + 30
            while not any(s.startswith(prefix) for s in seen):
                assert time.monotonic() < deadline, seen
                seen.append(notify_socket.recv(4096).decode())

        until("READY=1")
        until("WATCHDOG=1")
        proc.send_signal(signal.SIGHUP)
        until("RELOADING=1")
        proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"device": "sw1", "n": 3}, "event=alert device=sw1 n=3"),
        ({"summary": "two words"}, 'event=alert summary="two words"'),
        ({"x": "a\nlevel=error forged"}, 'event=alert x="a\\nlevel=error forged"'),
        ({"x": ""}, 'event=alert x=""'),
        ({"q": 'say "hi"'}, 'event=alert q="say \\"hi\\""'),
    ],
)
def test_event_lines_stay_one_line(fields: dict[str, object], line: str) -> None:
    out = event("alert", **fields)
    assert out == line and "\n" not in out


def test_formatters() -> None:
    record = logging.LogRecord("netalert.x", logging.WARNING, "f", 1, "ev a=1", None, None)
    assert KeyValueFormatter().format(record) == "level=warning logger=netalert.x ev a=1"
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "warning" and data["message"] == "ev a=1"


def test_rate_limiter() -> None:
    limiter = RateLimiter(60.0, max_keys=2)
    assert limiter.allow("a", 0) and not limiter.allow("a", 30) and limiter.allow("a", 61)
    assert limiter.allow("b", 61)
    assert not limiter.allow("c", 62)  # table full of fresh keys: suppressed, memory bounded
    assert limiter.allow("c", 200)  # old keys expired
    assert limiter.suppressed == 2
