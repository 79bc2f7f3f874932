"""The fuzzers' seed corpus, made at run time (nothing binary is committed).

Two sources: messages built with :mod:`netalert.snmp.berenc` (every PDU type
and value type, v1 and v2c), and what net-snmp's own senders put on the wire,
captured on a loopback socket (snmptrap v1/v2c/v3 at each security level,
snmpinform v2c). Missing net-snmp tools only shrink the corpus.

Usage: ``python fuzz/seeds.py DIR`` writes one file per seed into DIR.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from netalert.snmp.ber import PduType, RawVarBind, V1Trap
from netalert.snmp.berenc import encode_message
from netalert.snmp.types import SnmpType

__all__ = ["built_seeds", "captured_seeds", "write_seeds"]

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
ENGINE_ID = "0x80001f8880aabbccdd01"

_VALUES: list[RawVarBind] = [
    ("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3),
    ("1.3.6.1.2.1.2.2.1.2.3", SnmpType.OCTET_STRING, b"GigabitEthernet0/3\r\nBcc: x"),
    ("1.3.6.1.2.1.2.2.1.7.3", SnmpType.INTEGER, -2147483648),
    ("1.3.6.1.2.1.1.2.0", SnmpType.OID, "1.3.6.1.4.1.8072.3.2.10"),
    ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", SnmpType.IP_ADDRESS, "10.0.0.1"),
    ("1.3.6.1.2.1.2.2.1.10.3", SnmpType.COUNTER32, 4294967295),
    ("1.3.6.1.2.1.2.2.1.5.3", SnmpType.GAUGE32, 1000000000),
    ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 123456),
    ("1.3.6.1.4.1.99999.1.0", SnmpType.OPAQUE, b"\x9f\x78\x04\x3f\x80\x00\x00"),
    ("1.3.6.1.2.1.31.1.1.1.6.3", SnmpType.COUNTER64, 2**64 - 1),
    ("1.3.6.1.2.1.1.9.0", SnmpType.NULL, None),
]
_EXCEPTIONS: list[RawVarBind] = [
    ("1.3.6.1.2.1.1.5.0", SnmpType.NO_SUCH_OBJECT, None),
    ("1.3.6.1.2.1.1.6.0", SnmpType.NO_SUCH_INSTANCE, None),
    ("1.3.6.1.2.1.1.7.0", SnmpType.END_OF_MIB_VIEW, None),
]


def built_seeds() -> Iterator[bytes]:
    """Messages built with berenc: each PDU type, each value type, both versions."""
    head: list[RawVarBind] = [
        (SYS_UPTIME, SnmpType.TIMETICKS, 4200),
        (TRAP_OID, SnmpType.OID, LINK_DOWN),
    ]
    v1_values = [v for v in _VALUES if v[1] is not SnmpType.COUNTER64]
    for generic, specific, enterprise in ((2, 0, "1.3.6.1.6.3.1.1.5"), (6, 17, "1.3.6.1.4.1.9")):
        trap = V1Trap(enterprise, "192.0.2.7", generic, specific, 987654)
        yield encode_message(
            version=0,
            community=b"public",
            pdu_type=PduType.TRAP_V1,
            varbinds=v1_values,
            v1_trap=trap,
        )
    for pdu in (PduType.TRAP_V2, PduType.INFORM):
        yield encode_message(
            version=1, community=b"public", pdu_type=pdu, request_id=1234, varbinds=head + _VALUES
        )
    yield encode_message(
        version=1, community=b"public", pdu_type=PduType.TRAP_V2, request_id=-5, varbinds=head
    )
    yield encode_message(
        version=1,
        community=b"x" * 200,  # long-form lengths
        pdu_type=PduType.TRAP_V2,
        request_id=2**31 - 1,
        varbinds=head + [(f"1.3.6.1.4.1.99999.{i}", SnmpType.INTEGER, i) for i in range(40)],
    )
    for pdu in (PduType.GET, PduType.GET_NEXT, PduType.SET):
        for version in (0, 1):
            yield encode_message(
                version=version,
                community=b"private",
                pdu_type=pdu,
                request_id=7,
                varbinds=[(oid, SnmpType.NULL, None) for oid, _, _ in _VALUES[:3]],
            )
    yield encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.GET_BULK,
        request_id=8,
        error_status=1,
        error_index=25,
        varbinds=[("1.3.6.1.2.1.2.2.1.2", SnmpType.NULL, None)],
    )
    for pdu in (PduType.RESPONSE, PduType.REPORT):
        yield encode_message(
            version=1,
            community=b"public",
            pdu_type=pdu,
            request_id=9,
            error_status=2,
            error_index=1,
            varbinds=_VALUES + _EXCEPTIONS,
        )


def _tool_runs(port: int) -> Iterator[list[str]]:
    target = f"127.0.0.1:{port}"
    vbs = ["1.3.6.1.2.1.2.2.1.1.2", "i", "2", "1.3.6.1.2.1.2.2.1.2.2", "s", "eth1\u00e9"]
    vbs += ["1.3.6.1.2.1.4.20.1.1.10.0.0.1", "a", "10.0.0.1", "1.3.6.1.2.1.2.2.1.10.2", "c", "7"]
    vbs += ["1.3.6.1.4.1.99999.1.0", "x", "DEADBEEF", "1.3.6.1.2.1.1.2.0", "o", "1.3.6.1.4.1.9"]
    yield ["snmptrap", "-v", "1", "-c", "public", target, "1.3.6.1.4.1.9", "192.0.2.1",
           "6", "17", "", *vbs]  # fmt: skip
    yield ["snmptrap", "-v", "1", "-c", "public", target, "", "", "2", "0", "", *vbs[:3]]
    yield ["snmptrap", "-v", "2c", "-c", "public", target, "", LINK_DOWN, *vbs]
    yield ["snmpinform", "-r", "0", "-t", "0.2", "-v", "2c", "-c", "public", target, "",
           LINK_DOWN, *vbs[:6]]  # fmt: skip
    v3 = ["snmptrap", "-v", "3", "-e", ENGINE_ID, "-u", "trapper"]
    yield [*v3, "-l", "noAuthNoPriv", target, "", LINK_DOWN, *vbs[:3]]
    yield [*v3, "-l", "authNoPriv", "-a", "SHA", "-A", "auth-pass-1", target, "", LINK_DOWN,
           *vbs]  # fmt: skip
    yield [*v3, "-l", "authPriv", "-a", "SHA-256", "-A", "auth-pass-1", "-x", "AES",
           "-X", "priv-pass-1", target, "", LINK_DOWN, *vbs]  # fmt: skip
    yield [*v3, "-l", "authPriv", "-a", "MD5", "-A", "auth-pass-1", "-x", "DES",
           "-X", "priv-pass-1", target, "", LINK_DOWN, *vbs[:3]]  # fmt: skip


def captured_seeds(workdir: Path) -> Iterator[bytes]:
    """What net-snmp's snmptrap/snmpinform send, captured on a loopback port."""
    if shutil.which("snmptrap") is None:
        print("seeds: net-snmp tools not found; built seeds only", file=sys.stderr)
        return
    conf = workdir / "net-snmp"
    conf.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SNMPCONFPATH": str(conf), "SNMP_PERSISTENT_DIR": str(conf), "MIBS": ""}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        port = sock.getsockname()[1]
        for command in _tool_runs(port):
            subprocess.run(command, env=env, capture_output=True, timeout=10, check=False)
            while True:
                try:
                    yield sock.recv(65535)
                except TimeoutError:
                    break


def write_seeds(directory: Path) -> int:
    """Writes every seed into ``directory`` (named by content); returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in [*built_seeds(), *captured_seeds(directory.parent / "seed-tools")]:
        name = hashlib.sha1(seed, usedforsecurity=False).hexdigest()
        (directory / name).write_bytes(seed)
        count += 1
    return count


if __name__ == "__main__":
    print(write_seeds(Path(sys.argv[1])))
