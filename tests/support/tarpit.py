"""A TCP server that accepts connections and never says a word (an SMTP tarpit).

A client waiting for the SMTP greeting waits until its own timeout: the way a
stuck or overloaded mail server looks from the agent's side.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

__all__ = ["Tarpit", "tarpit"]


class Tarpit:
    """Listens on 127.0.0.1 (a free port), accepts, holds every connection open, silent."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tarpit", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1

    def close(self) -> None:
        """Stops accepting and closes every held connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    """A silent SMTP server on a free loopback port."""
    pit = Tarpit()
    yield pit
    pit.close()
