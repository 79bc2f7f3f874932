"""A private ``nats-server -js`` for tests (pytest plugin).

Fixtures:

* ``nats_server``: a JetStream server of the test's own on a free loopback port,
  its store in a fresh directory; stopped (by PID) after the test.
* ``nats_url``: its URL, or ``NETALERT_TEST_NATS`` when set (then no server is
  started: give each test its own subject prefix, see :func:`unique_prefix`).

A missing ``nats-server`` skips the test, except in CI (``NETALERT_REQUIRE_SNMPD=1``),
where it fails. :meth:`NatsServer.restart` keeps the port and the store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ports import free_tcp_port
from tests.support.postgres import missing
from tests.support.stopping import stop_pid

__all__ = ["NATS_SERVER", "NatsError", "NatsServer", "nats_server", "nats_url", "unique_prefix"]

NATS_SERVER = os.environ.get("NETALERT_TEST_NATS_SERVER", "/usr/sbin/nats-server")
ENV_URL = "NETALERT_TEST_NATS"


class NatsError(RuntimeError):
    """nats-server could not be started or did not answer."""


def unique_prefix() -> str:
    """A subject prefix no other test uses (for a shared server)."""
    return f"nt{uuid.uuid4().hex[:10]}"


@dataclass
class NatsServer:
    """One ``nats-server -js`` on ``127.0.0.1:port``, its store under ``directory``."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise NatsError("nats-server is not running")
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.directory / "nats.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Starts the server (a free port the first time, the same one after)."""
        if self.port == 0:
            self.port = free_tcp_port()
        store = self.directory / "store"
        store.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                NATS_SERVER,
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(store),
                "-l",
                str(self.log_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=self.directory,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise NatsError(f"nats-server exited at start:\n{self.log()[-2000:]}")
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise NatsError(f"nats-server not ready within {timeout}s:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        # The server greets every client with an INFO line; JetStream is up once the
        # log says the server is ready.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                greeting = sock.recv(4096)
        except OSError:
            return False
        return greeting.startswith(b"INFO ") and "Server is ready" in self.log()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server by its PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self.process = self.process, None
        stop_pid(proc, signal.SIGTERM, timeout)

    def restart(self) -> NatsServer:
        """Stops and starts again on the same port with the same store."""
        self.stop()
        with contextlib.suppress(OSError):
            self.log_path.unlink()  # readiness reads the log afresh
        return self.start()


@pytest.fixture
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A JetStream server of this test's own."""
    if shutil.which(NATS_SERVER) is None:
        missing(f"{NATS_SERVER} not found: run `make debs` (Debian's nats-server)")
    server = NatsServer(directory=tmp_path_factory.mktemp("nats"))
    try:
        server.start()
    except NatsError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def nats_url(request: pytest.FixtureRequest) -> str:
    """``NETALERT_TEST_NATS``, else the URL of this test's own ``nats_server``."""
    url = os.environ.get(ENV_URL)
    if url:
        return url
    server: NatsServer = request.getfixturevalue("nats_server")
    return server.url
