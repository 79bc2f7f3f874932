"""UDP sockets for the trap receiver: binding, receive buffer, kernel drop counts.

A burst of traps lands in the socket's receive buffer while the loop is busy;
the default 208 KiB holds ~250 traps, 8 MiB ~10,000. The kernel counts what
did not fit in the ``drops`` column of /proc/net/udp, per socket.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from netalert.errors import NetalertError
from netalert.logs import event

__all__ = ["BindError", "SocketQueue", "open_udp_socket", "share_udp_socket", "socket_queue"]

log = logging.getLogger("netalert.traps")

_RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


class BindError(NetalertError, OSError):
    """A listen address cannot be bound; the message says how to fix it."""


def _privileged_hint(host: str, port: int) -> str:
    return (
        f"cannot listen on {host}:{port}: ports below 1024 need a privilege. Either "
        "grant it to the program (setcap cap_net_bind_service=+ep on the python "
        "binary, i.e. CAP_NET_BIND_SERVICE), or under systemd set "
        "AmbientCapabilities=CAP_NET_BIND_SERVICE in the unit, or listen on an "
        'unprivileged port (e.g. listen = ["0.0.0.0:10162"]) and redirect 162 to it '
        "with nftables/iptables"
    )


def open_udp_socket(host: str, port: int, rcvbuf: int) -> tuple[socket.socket, int]:
    """Opens a non-blocking UDP socket bound to ``host:port``.

    The receive buffer is raised towards ``rcvbuf`` bytes (as the kernel
    reports it, i.e. doubled bookkeeping included); SO_RCVBUFFORCE is tried when
    net.core.rmem_max is lower and the process may override it.

    Args:
        host: an address literal or name; "" or "0.0.0.0" / "::" for all.
        port: the UDP port (0 for any free one).
        rcvbuf: the wanted receive buffer in bytes.

    Returns:
        The socket and the receive buffer the kernel granted.

    Raises:
        BindError: the address is in use, not local, or needs a privilege.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if family == socket.AF_INET6:
            # "0.0.0.0:162" and "[::]:162" are listed separately; a dual-stack
            # socket would make the second bind fail.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        granted = _raise_rcvbuf(sock, rcvbuf)
        sock.bind(address)
    except PermissionError:
        sock.close()
        raise BindError(_privileged_hint(host, port)) from None
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock, granted


def share_udp_socket(sock: socket.socket, rcvbuf: int) -> tuple[socket.socket, int]:
    """A second descriptor of the bound ``sock`` (a reload keeping its address).

    The socket stays bound while either descriptor is open, so datagrams that
    arrive between the old receiver's stop and the new one's start wait in its
    buffer. The receive buffer is set towards ``rcvbuf`` as in :func:`open_udp_socket`.

    Returns:
        The new descriptor and the receive buffer the kernel granted.
    """
    shared = sock.dup()
    shared.setblocking(False)
    return shared, _raise_rcvbuf(shared, rcvbuf)


def _raise_rcvbuf(sock: socket.socket, wanted: int) -> int:
    # Linux doubles the value set (bookkeeping) and reports the doubled value.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(wanted // 2, 1))
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if granted < wanted and force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, wanted // 2)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except PermissionError:
            pass  # needs CAP_NET_ADMIN; the warning below says what to do instead
    if granted < wanted:
        try:
            limit = _RMEM_MAX.read_text().strip()
        except OSError:
            limit = "?"
        log.warning(
            event(
                "traps_rcvbuf_short",
                requested=wanted,
                granted=granted,
                rmem_max=limit,
                fix=f"sysctl -w net.core.rmem_max={wanted // 2}",
            )
        )
    return int(granted)


@dataclass(frozen=True, slots=True)
class SocketQueue:
    """A UDP socket's kernel counters: bytes waiting and datagrams dropped."""

    rx_queue: int
    drops: int


def socket_queue(sock: socket.socket, proc: Path = Path("/proc/net")) -> SocketQueue | None:
    """The kernel's receive queue and drop counter for ``sock``, None if unknown.

    Reads /proc/net/udp or udp6 and matches the socket's inode (the local
    port alone could match another process's socket with SO_REUSEPORT).
    """
    try:
        inode = os.fstat(sock.fileno()).st_ino
        name = "udp6" if sock.family == socket.AF_INET6 else "udp"
        lines = (proc / name).read_text().splitlines()[1:]
    except (OSError, ValueError):
        return None
    wanted = str(inode)
    for line in lines:
        fields = line.split()
        if len(fields) >= 13 and fields[9] == wanted:
            rx_queue = int(fields[4].partition(":")[2], 16)
            return SocketQueue(rx_queue, int(fields[12]))
    return None
