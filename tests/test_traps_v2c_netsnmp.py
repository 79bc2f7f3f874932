"""The v2c fast path on what net-snmp's own senders put on the wire.

Datagrams from ``snmptrap`` and ``snmpinform`` (v1, v2c, v3; every value type
the tools can send; fuzz/seeds.py's captures and the bench's linkDown), each
sent twice, go through a receiver with the fast path and one without: the same
events and counters, and every v2c Trap of a configured community was read by
the fast path.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from fuzz.seeds import captured_seeds
from netalert.snmp.wire.ber import Message, PduType
from tests.test_traps_v2c import general, receivers

pytestmark = pytest.mark.daemon

ALL_TYPES = [
    "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
    "1.3.6.1.2.1.2.2.1.2.7", "s", "Gi0/7 uplink",
    "1.3.6.1.2.1.2.2.1.6.7", "x", "00163E112233",
    "1.3.6.1.2.1.2.2.1.7.7", "i", "2",
    "1.3.6.1.2.1.2.2.1.9.7", "t", "4242",
    "1.3.6.1.2.1.2.2.1.10.7", "c", "99",
    "1.3.6.1.2.1.2.2.1.5.7", "u", "1000000000",
    "1.3.6.1.2.1.4.20.1.1.10.0.0.1", "a", "10.0.0.1",
    "1.3.6.1.2.1.1.2.0", "o", "1.3.6.1.4.1.8072.3.2.10",
    "1.3.6.1.2.1.31.1.1.1.6.7", "C", "18446744073709551615",
]  # fmt: skip


def _capture(workdir: Path, *args: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        command = ["snmptrap", "-v", "2c", "-c", "public", f"127.0.0.1:{port}", *args]
        env = {
            **os.environ,
            "MIBS": "",
            "SNMPCONFPATH": str(workdir),
            "SNMP_PERSISTENT_DIR": str(workdir),
        }
        with subprocess.Popen(command, env=env) as proc:
            data = sock.recv(65535)
            proc.wait(10)
    return data


def test_net_snmp_datagrams_make_the_same_events_with_the_fast_path(tmp_path: Path) -> None:
    datagrams = list(captured_seeds(tmp_path))
    datagrams += [
        _capture(tmp_path, "", "1.3.6.1.6.3.1.1.5.3", *ALL_TYPES),
        _capture(tmp_path, "12345", "1.3.6.1.4.1.8072.2.3.0.1", *ALL_TYPES[:6]),
        _capture(tmp_path, "", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.1.1.0", "s", "x" * 200),
    ]
    fast, slow, fast_events, slow_events = receivers()
    read = fast._v2c.read
    taken = []
    for data in datagrams * 2:
        taken.append(read(data) is not None)
        for receiver in (fast, slow):
            receiver.handle(data, ("127.0.0.1", 50162))
    assert repr(fast_events) == repr(slow_events)
    assert fast.stats.as_dict() == slow.stats.as_dict()
    traps = [
        isinstance(msg := general(data), Message)
        and msg.version == 1
        and msg.pdu_type == PduType.TRAP_V2
        and msg.community == b"public"
        for data in datagrams * 2
    ]
    assert sum(traps) >= 6 and taken == traps
