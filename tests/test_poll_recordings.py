"""The poll backends against recorded real devices: gufo and native must read alike.

Each case serves one walk of a real device (snmpsim-data's recordings, see
:mod:`tests.support.recordings`) through net-snmp's snmpd, relocated under a private
subtree, and reads it with both backends: the whole recording in one walk, and as a
poll reads it (scalars and many columns of different lengths: tables with holes, a
table of 4,094 rows). Every value must be the recorded one, with its wire type for the
native backend, and gufo's must be the same values: Counter64, Opaque floats,
IpAddress, negative Integer32, empty and binary OCTET STRINGs included.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from netalert.poll.client import Target
from netalert.poll.client_gufo import GufoClient
from netalert.poll.client_native import NativeClient
from netalert.snmp.types import SnmpType, VarBind
from tests.support.recordings import Recorded, Recording, load, recording, served
from tests.support.snmpd import DEFAULT_USER, Snmpd, SnmpdFactory

pytestmark = pytest.mark.daemon

PREFIX = "1.3.6.1.4.1.99999.7"
# name: what it brings (checked below, so a change of the data cannot hollow the test)
DEVICES = {
    "os/linux/unknown-003": {SnmpType.OPAQUE, SnmpType.COUNTER64, SnmpType.IP_ADDRESS},
    "cloud/arista-dcs-7150s-52-cl": {SnmpType.COUNTER64, SnmpType.OPAQUE, SnmpType.OID},
    "network/switch/h3c-e528-2": {SnmpType.COUNTER64, SnmpType.TIMETICKS, SnmpType.GAUGE32},
}


@functools.cache
def recorded_device(name: str) -> Recording:
    """The recording ``name`` under :data:`PREFIX`, read once per process (read-only)."""
    return load(recording(name), PREFIX)


def agent_for(snmpd_factory: SnmpdFactory, tmp_path: Path, name: str) -> tuple[Snmpd, Recording]:
    recorded = recorded_device(name)
    agent = snmpd_factory(
        community="public", users=[DEFAULT_USER], passes=[served(recorded, PREFIX, tmp_path)]
    )
    return agent, recorded


def target(agent: Snmpd, version: str) -> Target:
    base = Target(agent.host, agent.port, "2c", timeout=5.0, retries=1, max_repetitions=25)
    if version == "3":
        user = DEFAULT_USER
        return replace(
            base,
            version="3",
            user=user.name,
            auth_protocol=user.auth_protocol,
            auth_password=user.auth_password,
            priv_protocol=user.priv_protocol,
            priv_password=user.priv_password,
        )
    return replace(base, version=version)  # type: ignore[arg-type]


def triples(varbinds: list[VarBind]) -> list[Recorded]:
    return [(vb.oid, vb.type, vb.value) for vb in varbinds]


def gufo_agrees(gufo: list[VarBind], native: list[VarBind]) -> None:
    """gufo infers types (the naming stage sets the MIB's); the values must be the
    native backend's, an Opaque float as gufo decodes it from the same bytes."""
    from netalert.snmp.wire.opaque import decode_opaque

    assert [vb.oid for vb in gufo] == [vb.oid for vb in native]
    for g, n in zip(gufo, native, strict=True):
        if n.type is SnmpType.OPAQUE and isinstance(g.value, float):
            assert isinstance(n.value, bytes)
            assert decode_opaque(n.value) == g.value, n.oid
        else:
            assert g.value == n.value, (n.oid, n.type, g.value, n.value)


def in_v1(entries: tuple[Recorded, ...]) -> list[Recorded]:
    """What SNMPv1 can carry: no Counter64 (snmpd's GETNEXT steps over them)."""
    return [e for e in entries if e[1] is not SnmpType.COUNTER64]


def columns(entries: tuple[Recorded, ...], count: int) -> list[str]:
    """The ``count`` largest groups of instances under one parent OID: columns of
    tables (or parts of their indexes), of different lengths."""
    parents = Counter(oid.rsplit(".", 1)[0] for oid, _, _ in entries)
    return [parent for parent, n in parents.most_common() if n > 1][:count]


@pytest.mark.parametrize("name", sorted(DEVICES))
async def test_a_recorded_device_walked_whole(
    snmpd_factory: SnmpdFactory, tmp_path: Path, name: str
) -> None:
    agent, recorded = agent_for(snmpd_factory, tmp_path, name)
    assert DEVICES[name] <= {kind for _, kind, _ in recorded.entries}
    values = [value for _, _, value in recorded.entries]
    assert any(isinstance(value, int) and value < 0 for value in values)  # negative Integer32
    assert b"" in values
    assert max(Counter(oid.rsplit(".", 1)[0] for oid, _, _ in recorded.entries).values()) > 100
    gufo, native = GufoClient(), NativeClient()
    at = target(agent, "2c")
    try:
        by_native = await native.walk(at, PREFIX, max_varbinds=10**6)
        # gufo-snmp 0.13 fails a 7,308-byte answer of the h3c recording (25 rows of
        # 256-byte strings) with "incomplete"; 10 rows a page it reads
        by_gufo = await gufo.walk(replace(at, max_repetitions=10), PREFIX, max_varbinds=10**6)
    finally:
        await gufo.close()
        await native.close()
    assert triples(by_native) == list(recorded.entries)
    gufo_agrees(by_gufo, by_native)
    assert sum(native.faults.values()) == 0


@pytest.mark.parametrize(
    ("name", "version"),
    [(name, "2c") for name in sorted(DEVICES)]
    + [("os/linux/unknown-003", "1"), ("os/linux/unknown-003", "3")],
)
async def test_a_recorded_device_polled(
    snmpd_factory: SnmpdFactory, tmp_path: Path, name: str, version: str
) -> None:
    """As the poller reads a device: the native backend's scalars and columns in shared
    GETBULKs (GETNEXT for v1), gufo's GET and one walk per column."""
    agent, recorded = agent_for(snmpd_factory, tmp_path, name)
    entries = in_v1(recorded.entries) if version == "1" else list(recorded.entries)
    roots = columns(recorded.entries, 24)
    scalars = [oid for oid, _, _ in entries if oid.endswith(".0")][:12]
    scalars += [f"{PREFIX}.1.3.6.1.2.1.1.99.0"]  # not recorded: noSuchInstance / noSuchName
    gufo, native = GufoClient(), NativeClient()
    at = target(agent, version)
    try:
        got, walks = await native.get_and_walk(at, scalars, roots)
        gufo_got = await gufo.get(at, scalars)
        gufo_walks = [await gufo.walk(replace(at, max_repetitions=10), root) for root in roots]
    finally:
        await gufo.close()
        await native.close()
    recorded_by_oid = {oid: (oid, kind, value) for oid, kind, value in entries}
    assert triples(got[:-1]) == [recorded_by_oid[oid] for oid in scalars[:-1]]
    assert got[-1].value is None and gufo_got[-1].value is None
    gufo_agrees(gufo_got[:-1], got[:-1])
    lengths = set()
    for root, walk, gufo_walk in zip(roots, walks, gufo_walks, strict=True):
        assert triples(walk) == [e for e in entries if e[0].startswith(root + ".")], root
        gufo_agrees(gufo_walk, walk)
        lengths.add(len(walk))
    assert len(lengths) > 1  # columns of different lengths: holes
    assert sum(native.faults.values()) == 0
