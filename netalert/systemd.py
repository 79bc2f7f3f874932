"""sd_notify without libsystemd: READY, RELOADING, STOPPING, WATCHDOG, STATUS.

A no-op when not started by systemd (no ``$NOTIFY_SOCKET``).
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    """Sends state lines to systemd's notification socket."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            # A leading '@' names a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with Type=notify."""
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        """Sends ``KEY=VALUE`` lines; returns False if it could not (never raises)."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tells systemd start-up is complete."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """Tells systemd a reload began (MONOTONIC_USEC as systemd 253 wants)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Tells systemd the service is shutting down."""
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        """Pets the watchdog."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Sets the one-line status ``systemctl status`` shows."""
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        """Closes the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), None when disabled."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
