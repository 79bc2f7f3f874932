"""Trap datagrams as pcap: recording what the receiver gets, reading captures back.

:class:`PcapRecorder` writes every datagram a trap socket receives, accepted or
refused, as a classic pcap file (link type raw IP, microsecond times) that
tcpdump, tshark and Wireshark open: each datagram is framed in the IPv4 or
IPv6 and UDP headers of its source and destination. Files are bounded: past
``max_bytes`` the file is rotated (``FILE`` → ``FILE.1`` → ...), keeping
``files`` files in all. A failing disk costs the recording, never the trap.

:func:`read_datagrams` reads pcap or pcapng (netalert's recordings, or a
tcpdump capture: Ethernet, Linux cooked, BSD loopback or raw IP framing) and
yields its UDP datagrams. Parsing and writing the formats is dpkt's, imported by the
functions that need it: every agent imports this module, few record or replay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from netalert.logs import event

if TYPE_CHECKING:
    from netalert.config.models import TrapsConfig

__all__ = [
    "Datagram",
    "PcapRecorder",
    "RecordStats",
    "open_recording",
    "read_datagrams",
    "start_recording",
]

log = logging.getLogger("netalert.traps")

LINKTYPE_RAW = 101  # pcap's "raw IP" (IPv4 or IPv6 by the version nibble)
SNAPLEN = 262_144  # bigger than any datagram: nothing is cut
_FILE_HEADER = 24
_RECORD_HEADER = 16
_RAW_TYPES = frozenset({LINKTYPE_RAW, 12, 14})  # 12 and 14: raw IP on some BSDs
_IPV4_TYPE, _IPV6_TYPE = 228, 229


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram of a capture: payload, (host, port) of both ends, unix time."""

    time: float
    source: tuple[str, int]
    destination: tuple[str, int]
    data: bytes


@dataclass(slots=True)
class RecordStats:
    """The recorder's counters (``netalert_traps_recorded_total`` and friends)."""

    recorded: int = 0
    bytes: int = 0
    rotations: int = 0
    errors: int = 0


def _mapped(host: str) -> bytes:
    """``host`` as 16 IPv6 bytes (an IPv4 address as ::ffff:a.b.c.d)."""
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    return socket.inet_pton(socket.AF_INET6, "::ffff:" + host)


def frame(data: bytes, source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """``data`` inside IPv4 (or IPv6) and UDP headers from ``source`` to ``destination``.

    Raises:
        OSError: A host is not an IP address.
    """
    import dpkt

    udp = dpkt.udp.UDP(sport=source[1], dport=destination[1], data=data)
    udp.ulen = min(len(udp), 0xFFFF)
    src, dst = source[0].partition("%")[0], destination[0].partition("%")[0]
    if ":" not in src and ":" not in dst:
        ip: Any = dpkt.ip.IP(
            src=socket.inet_pton(socket.AF_INET, src),
            dst=socket.inet_pton(socket.AF_INET, dst),
            p=dpkt.ip.IP_PROTO_UDP,
            ttl=64,
            data=udp,
        )
        ip.len = min(ip.__hdr_len__ + len(udp), 0xFFFF)
    else:
        ip = dpkt.ip6.IP6(
            src=_mapped(src), dst=_mapped(dst), nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, data=udp
        )
        ip.plen = len(udp)
    return bytes(ip)


class PcapRecorder:
    """Writes datagrams to ``path`` as pcap, rotating past ``max_bytes`` to keep ``files`` files.

    Writes are buffered: :meth:`flush` (the receiver calls it once a second)
    and :meth:`close` put them on disk.
    """

    def __init__(
        self, path: Path, *, max_bytes: int, files: int, stats: RecordStats | None = None
    ) -> None:
        """Opens ``path`` (an existing recording there is rotated first, not overwritten);
        a failure is counted and logged, and nothing is recorded.

        Raises:
            ValueError: ``max_bytes`` cannot hold one full datagram, or ``files`` < 1.
        """
        if max_bytes < _FILE_HEADER + _RECORD_HEADER + 48:
            raise ValueError("max_bytes is too small for a pcap file")
        if files < 1:
            raise ValueError("files must be at least 1")
        self.path = path
        self.max_bytes = max_bytes
        self.files = files
        self.stats = stats if stats is not None else RecordStats()
        self._file: BinaryIO | None = None
        self._writer: Any = None
        self._size = 0
        try:
            existing = path.stat().st_size > 0
        except OSError:
            existing = False
        if existing:
            self._shift()
        self._open()

    def _open(self) -> None:
        import dpkt

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._file = os.fdopen(fd, "wb")
            self._writer = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=LINKTYPE_RAW)
            self._size = _FILE_HEADER
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.stats.errors += 1
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = self._writer = None
        log.error(event("traps_record_failed", path=self.path, error=exc, note="recording stops"))

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = self._writer = None
        if self._shift():
            self._open()

    def _shift(self) -> bool:
        """FILE → FILE.1 → ... (the oldest beyond ``files`` is overwritten); False on failure."""
        try:
            for number in range(self.files - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{number}")
                newer = (
                    self.path
                    if number == 1
                    else self.path.with_name(f"{self.path.name}.{number - 1}")
                )
                if newer.exists():
                    os.replace(newer, older)
            if self.files == 1:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            self._fail(exc)
            return False
        self.stats.rotations += 1
        return True

    def write(
        self, data: bytes, source: tuple[str, int], destination: tuple[str, int], when: float
    ) -> None:
        """Records one datagram received at ``when`` (unix seconds); never raises."""
        if self._writer is None:
            return
        try:
            packet = frame(data, source, destination)
        except (OSError, ValueError):
            self.stats.errors += 1  # not an IP address: nothing sensible to write
            return
        size = _RECORD_HEADER + len(packet)
        if self._size + size > self.max_bytes and self._size > _FILE_HEADER:
            self._rotate()
            if self._writer is None:
                return
        try:
            self._writer.writepkt(packet, ts=when)
        except OSError as exc:
            self._fail(exc)
            return
        self._size += size
        self.stats.recorded += 1
        self.stats.bytes += size

    def flush(self) -> None:
        """Puts buffered records on disk."""
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        """Flushes and closes the current file."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc)
        self._file = self._writer = None


def open_recording(config: TrapsConfig, stats: RecordStats) -> PcapRecorder:
    """The ``[traps] record`` file opened, and logged as the warning it deserves.

    Raises:
        OSError: the file cannot be rotated or opened.
    """
    assert config.record is not None
    recorder = PcapRecorder(
        config.record, max_bytes=config.record_max_bytes, files=config.record_files, stats=stats
    )
    log.warning(
        event(
            "traps_recording",
            path=config.record,
            max_bytes=config.record_max_bytes,
            files=config.record_files,
            note="every datagram, communities included",
        )
    )
    return recorder


def start_recording(config: TrapsConfig, stats: RecordStats) -> PcapRecorder | None:
    """:func:`open_recording` when a receiver starts: a failure is logged, and None returned
    (the receiver runs without the recording)."""
    try:
        return open_recording(config, stats)
    except OSError as exc:
        log.error(event("traps_recording_failed", path=config.record, error=exc))
        return None


def _address(ip: Any) -> tuple[str, str] | None:
    import dpkt

    if isinstance(ip, dpkt.ip.IP):
        return socket.inet_ntop(socket.AF_INET, ip.src), socket.inet_ntop(socket.AF_INET, ip.dst)
    if isinstance(ip, dpkt.ip6.IP6):
        src = socket.inet_ntop(socket.AF_INET6, ip.src)
        dst = socket.inet_ntop(socket.AF_INET6, ip.dst)
        return src.removeprefix("::ffff:"), dst.removeprefix("::ffff:")
    return None


def _network_layer(linktype: int, buf: bytes) -> Any:
    import dpkt

    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype == dpkt.pcap.DLT_LINUX_SLL2:
        return dpkt.sll2.SLL2(buf).data
    if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        return dpkt.loopback.Loopback(buf).data
    if linktype in _RAW_TYPES or linktype in (_IPV4_TYPE, _IPV6_TYPE):
        version = buf[0] >> 4 if buf else 0
        if version == 4:
            return dpkt.ip.IP(buf)
        if version == 6:
            return dpkt.ip6.IP6(buf)
    return None


def read_datagrams(path: Path) -> Iterator[Datagram]:
    """Yields the UDP datagrams of a pcap or pcapng file, in file order.

    Frames that are not UDP over IP, IP fragments and truncated frames are
    skipped.

    Raises:
        ValueError: The file is neither pcap nor pcapng, or its link type is
            not one of Ethernet, Linux cooked (v1, v2), BSD loopback or raw IP.
        OSError: The file cannot be read.
    """
    import dpkt

    with path.open("rb") as handle:
        try:
            reader = dpkt.pcap.UniversalReader(handle)
        except (ValueError, dpkt.dpkt.Error) as exc:
            raise ValueError(f"{path}: not a pcap or pcapng file ({exc})") from None
        linktype = int(reader.datalink())
        known = {
            dpkt.pcap.DLT_EN10MB,
            dpkt.pcap.DLT_LINUX_SLL,
            dpkt.pcap.DLT_LINUX_SLL2,
            dpkt.pcap.DLT_NULL,
            dpkt.pcap.DLT_LOOP,
            _IPV4_TYPE,
            _IPV6_TYPE,
            *_RAW_TYPES,
        }
        if linktype not in known:
            raise ValueError(f"{path}: link type {linktype} is not supported")
        for ts, buf in reader:
            try:
                ip = _network_layer(linktype, bytes(buf))
            except (dpkt.dpkt.Error, IndexError, ValueError):
                continue
            ends = _address(ip)
            if ends is None:
                continue
            if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
                continue  # a fragment: reassembly is not done
            udp = ip.data
            if not isinstance(udp, dpkt.udp.UDP):
                continue
            yield Datagram(
                float(ts), (ends[0], int(udp.sport)), (ends[1], int(udp.dport)), bytes(udp.data)
            )
