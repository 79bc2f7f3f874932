"""The fuzzers' seed corpus, made at run time (nothing binary is committed).

Three sources: messages built with :mod:`netalert.snmp.wire.berenc` (every PDU type
and value type, v1 and v2c); authentic SNMPv3 traps and informs of the users
in fuzz/v3build.py, at each level, and an engine-ID discovery probe; and what
net-snmp's own senders put on the wire, captured on a loopback socket
(snmptrap v1/v2c/v3 at each security level, as those users, snmpinform v2c).
Missing net-snmp tools only shrink the corpus.

Usage: ``python fuzz/seeds.py DIR`` writes one file per datagram into
DIR/datagrams and, for fuzz/fuzz_access.py, each datagram framed with an
allowed and with a refused source address into DIR/access.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from fuzz.fuzz_access import ALLOWED, REFUSED, frame
from fuzz.v3build import (
    OWN_ENGINE,
    SENDER_ENGINE,
    USERS,
    FuzzUser,
    build_v3,
    discovery_probe,
    scoped_pdu,
    user,
    varbind,
)
from netalert.cluster.codec import encode as encode_trap
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.snmp.wire.ber import PduType, RawVarBind, V1Trap
from netalert.snmp.wire.berenc import encode_message, encode_tlv
from netalert.snmp.wire.berv3 import FLAG_AUTH, FLAG_REPORTABLE

__all__ = [
    "access_seeds",
    "built_seeds",
    "captured_seeds",
    "codec_seeds",
    "v3_seeds",
    "write_seeds",
]

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
ENGINE_ID = "0x" + SENDER_ENGINE.hex()

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
    # as users of fuzz/v3build.py, so that the v3 harnesses accept them
    yield [*_v3_args(user("plain")), target, "", LINK_DOWN, *vbs[:3]]
    yield [*_v3_args(user("authsha")), target, "", LINK_DOWN, *vbs]
    yield [*_v3_args(user("privaes")), target, "", LINK_DOWN, *vbs]
    yield [*_v3_args(user("privdes")), target, "", LINK_DOWN, *vbs[:3]]


def _v3_args(sender: FuzzUser) -> list[str]:
    level, security = "noAuthNoPriv", []
    if sender.auth is not None:
        level, security = "authNoPriv", ["-a", sender.auth, "-A", sender.auth_password]
    if sender.priv is not None:
        level = "authPriv"
        security += ["-x", sender.priv.removesuffix("-128"), "-X", sender.priv_password]
    return ["snmptrap", "-v", "3", "-e", ENGINE_ID, "-u", sender.name, "-l", level, *security]


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


def _own_engine_boots() -> int:
    """snmpEngineBoots of a fresh pysnmp engine, as the harnesses' engine will have it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pysnmp.entity import engine as pengine

    (boots,) = (
        pengine.SnmpEngine()
        .get_mib_builder()
        .import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
    )
    return int(boots.syntax)


def v3_seeds() -> Iterator[bytes]:
    """Authentic v3 traps and informs of fuzz/v3build.py's users, and the odd cases.

    Informs carry this receiver's boots and engine time 0: pysnmp takes them in
    the first 150 s of its engine (the harnesses rebuild theirs every 100 s).
    """
    boots = _own_engine_boots()
    inform = scoped_pdu(pdu=0xA6, context_engine=OWN_ENGINE, context=b"ctx")
    for sender in USERS:
        yield build_v3(sender, scoped_pdu())
        flags = sender.flags | FLAG_REPORTABLE
        yield build_v3(sender, inform, flags=flags, engine=OWN_ENGINE, boots=boots, time=0)
    yield discovery_probe()
    privaes = user("privaes")
    # accepted by design: authNoPriv from a privacy user
    yield build_v3(privaes, scoped_pdu(), flags=FLAG_AUTH, msg_id=78)
    # the second discovery step of an inform sender: authenticated, time unknown
    yield build_v3(privaes, inform, flags=privaes.flags | FLAG_REPORTABLE, engine=OWN_ENGINE,
                   boots=0, time=0)  # fmt: skip
    yield build_v3(user("authsha"), scoped_pdu(), engine=bytes.fromhex("8000000001020304"))
    yield build_v3(user("authsha"), scoped_pdu(pdu=0xA0))  # a Get to the trap port
    yield build_v3(user("plain"), scoped_pdu(), name=b"nobody")


def access_seeds(datagrams: list[bytes]) -> Iterator[bytes]:
    """Each datagram framed with one allowed and one refused source, in turn."""
    for i, datagram in enumerate(datagrams):
        for kind, raw in (ALLOWED[i % len(ALLOWED)], REFUSED[i % len(REFUSED)]):
            yield frame(kind, raw, 50162, datagram)


def _write(directory: Path, seeds: list[bytes]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        name = hashlib.sha1(seed, usedforsecurity=False).hexdigest()
        (directory / name).write_bytes(seed)
    return len(seeds)


def codec_seeds() -> Iterator[bytes]:
    """Trap messages of the cluster's stream (fuzz/fuzz_codec.py): each built value as a
    varbind of its own, then all of them in one trap, as every version."""
    varbinds = [
        VarBind(oid, kind, value.decode("latin-1") if isinstance(value, bytes) else value)
        for oid, kind, value in _VALUES
    ]
    varbinds += [
        VarBind("1.3.6.1.4.1.1.1", SnmpType.OCTET_STRING, b"\x00\xff raw"),
        VarBind("1.3.6.1.4.1.1.2", SnmpType.OPAQUE, float("nan"), "X::y", "1.2", "up"),
        VarBind("1.3.6.1.4.1.1.3", SnmpType.NULL, None),
    ]
    for n, version in enumerate(("1", "2c", "3")):
        for vb in varbinds:
            trap = TrapEvent(
                "192.0.2.1", 162, version, LINK_DOWN, "IF-MIB::linkDown", (vb,), n, 1.5
            )
            yield encode_trap(trap)
        yield encode_trap(
            TrapEvent(
                "2001:db8::1", 50162, version, LINK_DOWN, "", tuple(varbinds), None, 1e9,
                device="core-sw1", community="public", user="trapper", inform=True, storm_count=7,
            )
        )  # fmt: skip


def answer_seeds() -> Iterator[bytes]:
    """What agents answer the native poll backend: a GETBULK page that leaves the walked
    column (v2c), and authentic v3 Responses and a Report of the fuzz users, all with the
    request-id :data:`fuzz.fuzz_answers.KEY` (and that msgID)."""
    from fuzz.fuzz_answers import KEY, ROOTS  # the harness's peers and roots

    column = ROOTS[0]
    page: list[RawVarBind] = [
        (f"{column}.{i}", SnmpType.OCTET_STRING, b"eth%d" % i) for i in (1, 2)
    ]
    page += [("1.3.6.1.2.1.2.2.1.3.1", SnmpType.INTEGER, 6), *_VALUES]
    yield encode_message(
        version=1, community=b"public", pdu_type=PduType.RESPONSE, request_id=KEY, varbinds=page
    )
    varbinds = tuple(varbind(f"{column}.{i}", encode_tlv(0x04, b"if")) for i in (1, 2, 3))
    for name, pdu in (("privaes", 0xA2), ("plain", 0xA2), ("privaes", 0xA8)):
        scoped = scoped_pdu(varbinds, pdu=pdu, context_engine=SENDER_ENGINE, request_id=KEY)
        yield build_v3(user(name), scoped, msg_id=KEY)


def write_seeds(directory: Path) -> str:
    """Writes the datagrams into DIR/datagrams, the framed ones into DIR/access; says how many."""
    datagrams = [
        *built_seeds(),
        *answer_seeds(),
        *v3_seeds(),
        *captured_seeds(directory.parent / "seed-tools"),
    ]
    count = _write(directory / "datagrams", datagrams)
    framed = _write(directory / "access", list(access_seeds(datagrams)))
    messages = _write(directory / "codec", list(codec_seeds()))
    return f"{count} datagram, {framed} access and {messages} codec"


if __name__ == "__main__":
    print(write_seeds(Path(sys.argv[1])))
