"""netalert/traps/pcap.py: recordings that tcpdump reads, captures netalert reads back.

The recorder writes classic pcap (raw IP link type) with each datagram's source,
destination and time; real tcpdump must list them as UDP packets. The reader takes
its own files, pcapng, and the Ethernet framing tcpdump uses on Linux loopback.
Rotation keeps at most ``record_files`` files of at most ``record_max_bytes``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from netalert.traps.pcap import PcapRecorder, read_datagrams

SAMPLES = [
    (b"\x30\x03\x02\x01\x01", ("192.0.2.10", 50001), ("127.0.0.1", 162), 1_900_000_000.25),
    (b"trap two" * 40, ("2001:db8::7", 50002), ("::1", 10162), 1_900_000_001.5),
    (b"\x00\x01", ("198.51.100.1", 161), ("0.0.0.0", 162), 1_900_000_002.000125),
]


def _record(path: Path, **limits: int) -> PcapRecorder:
    recorder = PcapRecorder(
        path, max_bytes=limits.get("max_bytes", 1 << 20), files=limits.get("files", 3)
    )
    for data, source, destination, when in SAMPLES:
        recorder.write(data, source, destination, when)
    recorder.close()
    return recorder


def test_a_recording_reads_back_with_addresses_ports_and_times(tmp_path: Path) -> None:
    path = tmp_path / "traps.pcap"
    recorder = _record(path)
    got = list(read_datagrams(path))
    assert [(d.data, d.source, d.destination) for d in got] == [s[:3] for s in SAMPLES]
    assert [round(d.time, 6) for d in got] == [s[3] for s in SAMPLES]
    assert recorder.stats.recorded == 3
    assert recorder.stats.errors == 0


@pytest.mark.skipif(
    shutil.which("tcpdump") is None and not os.environ.get("NETALERT_REQUIRE_SNMPD"),
    reason="make debs installs tcpdump (in CI a missing tool fails)",
)
@pytest.mark.daemon
def test_tcpdump_lists_the_recording_as_udp_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "traps.pcap"
    _record(path)
    listed = subprocess.run(
        ["tcpdump", "-q", "-nn", "-r", str(path)], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3, listed.stdout
    assert "IP 192.0.2.10.50001 > 127.0.0.1.162: UDP, length 5" in lines[0]
    assert "IP6 2001:db8::7.50002 > ::1.10162: UDP, length 320" in lines[1]


def test_rotation_keeps_at_most_files_of_at_most_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "traps.pcap"
    recorder = PcapRecorder(path, max_bytes=4096, files=3)
    for number in range(100):
        recorder.write(b"x" * 200, ("192.0.2.10", 50000 + number), ("127.0.0.1", 162), 1e9 + number)
    recorder.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["traps.pcap", "traps.pcap.1", "traps.pcap.2"]
    assert all((tmp_path / n).stat().st_size <= 4096 for n in names)
    assert recorder.stats.rotations > 2
    # the newest datagrams are in the current file, the older ones in .1 then .2
    newest = list(read_datagrams(path))
    older = list(read_datagrams(tmp_path / "traps.pcap.1"))
    assert newest[-1].source == ("192.0.2.10", 50099)
    assert older[-1].source[1] == newest[0].source[1] - 1
    assert recorder.stats.recorded == 100


def _ethernet_ipv4(payload: bytes, sport: int, dport: int) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(
        src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 1]), p=dpkt.ip.IP_PROTO_UDP, data=udp
    )
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, data=ip))


def test_pcapng_with_ethernet_framing_as_tcpdump_writes_on_loopback(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    writer = dpkt.pcapng.Writer(buffer, linktype=dpkt.pcap.DLT_EN10MB)
    writer.writepkt(_ethernet_ipv4(b"first", 40000, 162), ts=1_900_000_000.5)
    writer.writepkt(b"\x00" * 20, ts=1_900_000_001.0)  # not IP: skipped
    writer.writepkt(_ethernet_ipv4(b"second", 40001, 162), ts=1_900_000_002.0)
    path = tmp_path / "capture.pcapng"
    path.write_bytes(buffer.getvalue())
    got = list(read_datagrams(path))
    assert [(d.data, d.source, d.destination) for d in got] == [
        (b"first", ("127.0.0.1", 40000), ("127.0.0.1", 162)),
        (b"second", ("127.0.0.1", 40001), ("127.0.0.1", 162)),
    ]


def test_a_file_that_is_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not pcap\n")
    with pytest.raises(ValueError, match="not a pcap or pcapng file"):
        list(read_datagrams(path))
