"""Free loopback ports, found at run time (the machine is shared).

The kernel hands out a port that nothing is bound to; between that moment and the
bind of the server the test starts (snmpd, a ``netalert run``), another pytest-xdist
worker could be handed the same port, or take the port of a server a test has
stopped to restart it. So every port handed out is written to a registry in the run's
shared folder (:mod:`tests.support.shared`), under an exclusive lock, and is never
handed out again in the same run, by any worker. Outside a test run (``bench/``) the
registry is this process's memory.
"""

from __future__ import annotations

import fcntl
import random
import socket
from pathlib import Path

from tests.support.shared import shared_dir

__all__ = ["free_tcp_port", "free_udp_port"]

_ATTEMPTS = 200
_SPAN = 12_000  # ports below the ephemeral range the tests pick from
_HANDED: set[str] = set()


def free_udp_port(host: str = "127.0.0.1") -> int:
    """Returns a UDP port on ``host`` that nothing is bound to right now and that no
    other test of this run was given."""
    return _free(socket.SOCK_DGRAM, host)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port on ``host`` that nothing listens on right now and that no
    other test of this run was given."""
    return _free(socket.SOCK_STREAM, host)


def _free(kind: socket.SocketKind, host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    below = _below_ephemeral()
    for _ in range(_ATTEMPTS):
        with socket.socket(family, kind) as sock:
            try:
                sock.bind((host, random.randint(*below) if below else 0))
            except OSError:  # taken: another process of this shared machine has it
                continue
            port = int(sock.getsockname()[1])
        if _claim(f"{proto} {port}"):
            return port
    raise OSError(f"no free {proto} port on {host} after {_ATTEMPTS} attempts")


def _below_ephemeral() -> tuple[int, int] | None:
    """Ports just below the kernel's ephemeral range (``ip_local_port_range``), or None.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which
    every outgoing connection of the run (HTTP scrapes, SMTP, PostgreSQL, NATS clients)
    also takes its source port from: a server started a moment later on that port then
    met "Address already in use" (seen in the parallel timing pass). Below the range no
    connection takes a port by itself.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low - 1 - _SPAN < 1024:
        return None
    return low - _SPAN, low - 1


def _claim(key: str) -> bool:
    """Records ``key`` as handed out; False when it was already."""
    if key in _HANDED:
        return False
    folder = shared_dir()
    if folder is not None:
        with (folder / "ports").open("a+") as registry:
            fcntl.flock(registry, fcntl.LOCK_EX)
            registry.seek(0)
            if key in registry.read().splitlines():
                return False
            registry.write(key + "\n")
    _HANDED.add(key)
    return True
