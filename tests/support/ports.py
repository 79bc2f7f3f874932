"""Free loopback ports, found at run time (the machine is shared)."""

from __future__ import annotations

import socket

__all__ = ["free_tcp_port", "free_udp_port"]


def free_udp_port(host: str = "127.0.0.1") -> int:
    """Returns a UDP port on ``host`` that nothing is bound to right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
