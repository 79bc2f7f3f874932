"""UDP sockets for the trap receiver: binding, receive buffer, kernel drop counts.

A burst of traps lands in the socket's receive buffer while the loop is busy;
the default 208 KiB holds ~250 traps, 8 MiB ~10,000. The kernel counts what
did not fit in the ``drops`` column of /proc/net/udp, per socket.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netalert.errors import NetalertError
from netalert.logs import event

__all__ = [
    "BindError",
    "SocketQueue",
    "kernel_drops",
    "open_reuseport_group",
    "open_udp_socket",
    "share_udp_socket",
    "socket_queue",
    "steer_by_source",
]

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


def open_udp_socket(
    host: str, port: int, rcvbuf: int, *, reuseport: bool = False
) -> tuple[socket.socket, int]:
    """Opens a non-blocking UDP socket bound to ``host:port``.

    The receive buffer is raised towards ``rcvbuf`` bytes (as the kernel
    reports it, i.e. doubled bookkeeping included); SO_RCVBUFFORCE is tried when
    net.core.rmem_max is lower and the process may override it.

    Args:
        host: an address literal or name; "" or "0.0.0.0" / "::" for all.
        port: the UDP port (0 for any free one).
        rcvbuf: the wanted receive buffer in bytes.
        reuseport: set SO_REUSEPORT (a trap worker's socket: :func:`open_reuseport_group`).

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
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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


# SO_ATTACH_REUSEPORT_CBPF (Linux 4.5+): a classic BPF program that picks the socket of a
# SO_REUSEPORT group for each datagram. Ours loads the last 32 bits of the source address
# (the data starts at the UDP payload; SKF_NET_OFF reaches back into the IP header) and
# takes them modulo the group size, so every datagram of one source address reaches the
# same worker, whichever source port it was sent from.
_SO_ATTACH_REUSEPORT_CBPF = 51
_SKF_NET_OFF = 0xFFF00000  # -0x100000 as an unsigned 32-bit offset
_LD_W_ABS, _ALU_MOD_K, _RET_A = 0x20, 0x94, 0x16
_SOURCE_WORD = {socket.AF_INET: 12, socket.AF_INET6: 20}  # IPv4 saddr; IPv6 saddr's last word


def steer_by_source(sock: socket.socket, count: int) -> bool:
    """Makes the kernel pick the socket of ``sock``'s SO_REUSEPORT group by source address.

    Returns:
        False when the kernel refused the program (not Linux, or too old): the group
        then spreads datagrams by a hash of source address and port.
    """
    import ctypes

    program = [
        (_LD_W_ABS, 0, 0, _SKF_NET_OFF + _SOURCE_WORD.get(sock.family, 12)),
        (_ALU_MOD_K, 0, 0, count),
        (_RET_A, 0, 0, 0),
    ]
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError:
        return False
    return True


def open_reuseport_group(
    host: str, port: int, rcvbuf: int, count: int, *, joined: list[socket.socket] | None = None
) -> tuple[list[socket.socket], int, bool]:
    """``count`` UDP sockets bound to ``host:port`` with SO_REUSEPORT, one per trap worker.

    The address must be free first: a plain socket is bound to it and closed
    before the group is made, so a second agent (or snmptrapd) already there is
    refused instead of silently splitting the traps with it. ``joined`` are
    sockets of this agent's own group already bound there (a reload): the
    group grows from them and no check is made. Each socket gets its own
    receive buffer of ``rcvbuf``.

    Returns:
        The sockets, the receive buffer granted to each, and whether the
        datagrams are steered by source address (:func:`steer_by_source`).

    Raises:
        BindError: the address is in use, not local, or needs a privilege.
    """
    sockets = list(joined or [])
    if not sockets:
        probe, _ = open_udp_socket(host, port, 65536)  # raises BindError when taken
        port = int(probe.getsockname()[1])
        probe.close()
    granted = 0
    try:
        for sock in sockets:
            granted = _raise_rcvbuf(sock, rcvbuf)
        while len(sockets) < count:
            sock, granted = open_udp_socket(host, port, rcvbuf, reuseport=True)
            sockets.append(sock)
    except BaseException:
        for sock in sockets[len(joined or []) :]:
            sock.close()
        raise
    steered = steer_by_source(sockets[0], count)
    return sockets, granted, steered


def kernel_drops(sockets: Iterable[socket.socket]) -> int:
    """Datagrams the kernel dropped on ``sockets`` (receive buffers full), summed."""
    total = 0
    for sock in sockets:
        queue = socket_queue(sock)
        if queue is not None:
            total += queue.drops
    return total
