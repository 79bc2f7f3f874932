"""Both SNMP client adapters against net-snmp snmpd: versions, walks, errors, parity."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

import netalert.poll.client_pysnmp  # noqa: F401 - see test_errors_are_clear_and_bounded
from netalert.poll.backends import make_client
from netalert.poll.client import (
    SnmpAuthError,
    SnmpClient,
    SnmpTimeoutError,
    Target,
)
from netalert.snmp.types import SnmpType
from tests.support.order import timing
from tests.support.snmpd import DEFAULT_USER, Snmpd, SnmpdFactory, V3User

SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_TABLE = "1.3.6.1.2.1.2.2"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
MD5_DES = V3User("md5des", "MD5", "auth-pass-md5", "DES", "priv-pass-des")
SHA512_AES256 = V3User("sha512", "SHA-512", "auth-pass-512", "AES-256", "priv-pass-256")
USERS = [DEFAULT_USER, MD5_DES, SHA512_AES256]
BACKENDS = ["gufo", "native", "pysnmp"]


@pytest.fixture
def agent(snmpd_factory: SnmpdFactory) -> Snmpd:
    return snmpd_factory(community="c0mmunity", users=USERS, sys_name="router-9")


@pytest.fixture(params=BACKENDS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[SnmpClient]:
    engines: list[tuple[Target, bytes]] = []
    made = make_client(request.param, on_engine_id=lambda t, e: engines.append((t, e)))
    made.engines_seen = engines  # type: ignore[attr-defined]
    yield made
    await made.close()


def v3(agent: Snmpd, user: V3User, **kw: object) -> Target:
    return Target(
        agent.host,
        agent.port,
        "3",
        user=user.name,
        auth_protocol=user.auth_protocol,
        auth_password=user.auth_password,
        priv_protocol=user.priv_protocol,
        priv_password=user.priv_password,
        timeout=1.0,
        **kw,  # type: ignore[arg-type]
    )


def targets(agent: Snmpd) -> dict[str, Target]:
    return {
        "v1": Target(agent.host, agent.port, "1", community="c0mmunity", timeout=1.0),
        "v2c": Target(agent.host, agent.port, "2c", community="c0mmunity", timeout=1.0),
        "v3-sha256-aes128": v3(agent, DEFAULT_USER),
        "v3-md5-des": v3(agent, MD5_DES),
        "v3-sha512-aes256": v3(agent, SHA512_AES256),
    }


def net_snmp_walk(agent: Snmpd, oid: str) -> list[str]:
    out = agent.snmpget(oid, tool="snmpwalk")
    return [line.split(" ", 1)[0].lstrip(".") for line in out.splitlines() if line]


@pytest.mark.parametrize(
    "version", ["v1", "v2c", "v3-sha256-aes128", "v3-md5-des", "v3-sha512-aes256"]
)
async def test_get_and_walk(agent: Snmpd, client: SnmpClient, version: str) -> None:
    target = targets(agent)[version]
    got = await client.get(target, [SYS_NAME, SYS_UPTIME, "1.3.6.1.2.1.1.99.0"])
    assert [vb.oid for vb in got] == [SYS_NAME, SYS_UPTIME, "1.3.6.1.2.1.1.99.0"]
    assert (got[0].type, got[0].value) == (SnmpType.OCTET_STRING, b"router-9")
    assert isinstance(got[1].value, int) and got[1].value >= 0
    # per OID, not a failure of the request
    assert got[2].type in (SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE)
    assert got[2].value is None

    walked = await client.walk(target, IF_TABLE)
    assert [vb.oid for vb in walked] == net_snmp_walk(agent, IF_TABLE)
    descr = [vb for vb in walked if vb.oid.startswith(IF_DESCR + ".")]
    assert descr and all(isinstance(vb.value, bytes) for vb in descr)
    if version.startswith("v3"):
        assert (target, agent.engine_id) in client.engines_seen  # type: ignore[attr-defined]


async def test_walk_of_an_instance_returns_it(agent: Snmpd, client: SnmpClient) -> None:
    target = targets(agent)["v2c"]
    walked = await client.walk(target, SYS_NAME)
    assert [(vb.oid, vb.value) for vb in walked] == [(SYS_NAME, b"router-9")]
    assert await client.walk(target, "1.3.6.1.2.1.1.99") == []


@pytest.mark.parametrize("version", ["v1", "v2c", "v3-sha256-aes128"])
@pytest.mark.parametrize("reps", [2, 25])
async def test_walk_stops_at_max_varbinds(
    agent: Snmpd, client: SnmpClient, version: str, reps: int
) -> None:
    """The bound holds inside a GETBULK answer and across answers (PDU boundaries)."""
    target = replace(targets(agent)[version], max_repetitions=reps)
    every = [vb.oid for vb in await client.walk(target, IF_TABLE)]
    assert len(every) > 5
    for bound in (1, 4, 5):
        walked = await client.walk(target, IF_TABLE, max_varbinds=bound)
        assert [vb.oid for vb in walked] == every[:bound]


async def test_get_next(agent: Snmpd, client: SnmpClient) -> None:
    got = await client.get_next(targets(agent)["v2c"], [SYS_NAME])
    assert [(vb.oid, vb.value) for vb in got] == [("1.3.6.1.2.1.1.6.0", b"test lab")]


@pytest.mark.parametrize(
    ("case", "error", "text"),
    [
        ("community", SnmpTimeoutError, "no answer within 0.4s x 2 attempts"),
        ("auth-password", SnmpAuthError, "wrongDigest (wrong auth password or auth protocol)"),
        ("user", SnmpAuthError, "unknownUserName (the agent has no such user)"),
        ("auth-protocol", SnmpAuthError, "wrongDigest"),
    ],
)
@timing("in-process")  # a bound on the wall time an error takes
async def test_errors_are_clear_and_bounded(
    agent: Snmpd, client: SnmpClient, case: str, error: type[Exception], text: str
) -> None:
    good = v3(agent, DEFAULT_USER, retries=1)
    bad = {
        "community": Target(agent.host, agent.port, "2c", community="wrong", timeout=0.4),
        "auth-password": v3(agent, DEFAULT_USER.__class__("netalert", "SHA-256", "nope-nope-1")),
        "user": v3(agent, V3User("ghost")),
        "auth-protocol": v3(agent, V3User("netalert", "SHA-512", "auth-pass-123")),
    }[case]
    # A fresh client's one-time costs are not the error's: pysnmp builds its engine on the
    # first request, and gufo's client diagnoses a v3 error through pysnmp, imported then
    # (imported above). Together up to a second of CPU on a busy machine: paid before the
    # clock starts.
    warm = Target(agent.host, agent.port, "2c", community="c0mmunity", timeout=5.0)
    assert (await client.get(warm, [SYS_NAME]))[0].value == b"router-9"
    started = time.monotonic()
    with pytest.raises(error) as info:
        await client.get(bad, [SYS_NAME])
    elapsed = time.monotonic() - started
    assert text in str(info.value)
    assert f"127.0.0.1:{agent.port}" in str(info.value)
    assert elapsed < bad.timeout * (bad.retries + 1) + 1.0
    # the client still works for good targets afterwards
    assert (await client.get(good, [SYS_NAME]))[0].value == b"router-9"


async def test_backends_agree(agent: Snmpd) -> None:
    gufo, pysnmp = make_client("gufo"), make_client("pysnmp")
    try:
        for name, target in targets(agent).items():
            # ifIndex..ifPhysAddress and ifAdminStatus do not move while we poll
            stable = [f"1.3.6.1.2.1.2.2.1.{col}" for col in (1, 2, 3, 4, 5, 6, 7)]
            for oid in stable:
                a = await gufo.walk(target, oid)
                b = await pysnmp.walk(target, oid)
                assert [(x.oid, x.value) for x in a] == [(x.oid, x.value) for x in b], name
            a = await gufo.get(target, [SYS_NAME, "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.99.0"])
            b = await pysnmp.get(target, [SYS_NAME, "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.99.0"])
            assert [(x.oid, x.value) for x in a] == [(x.oid, x.value) for x in b], name
            assert a[1].type == b[1].type == SnmpType.OID
    finally:
        await gufo.close()
        await pysnmp.close()


@pytest.mark.parametrize(
    "version", ["v1", "v2c", "v3-sha256-aes128", "v3-md5-des", "v3-sha512-aes256"]
)
@pytest.mark.parametrize("reps", [1, 3, 25])
async def test_native_walk_many_equals_the_walks(agent: Snmpd, version: str, reps: int) -> None:
    """The native client's walk of several columns per GETBULK, against snmpd: the same
    instances and values as walking each column, including a column snmpd does not
    have and an instance (walked like snmpwalk does: the instance itself)."""
    from netalert.poll.client_native import NativeClient

    client = NativeClient()
    target = replace(targets(agent)[version], max_repetitions=reps)
    # stable columns of ifTable (ifIndex .. ifPhysAddress), a missing one, an instance
    columns = [f"1.3.6.1.2.1.2.2.1.{col}" for col in (1, 2, 3, 4, 6, 7)]
    columns += ["1.3.6.1.2.1.2.2.1.99", SYS_NAME]
    try:
        together = await client.walk_many(target, columns)
        apart = [await client.walk(target, column) for column in columns]
    finally:
        await client.close()
    assert [[(vb.oid, vb.type, vb.value) for vb in walk] for walk in together] == [
        [(vb.oid, vb.type, vb.value) for vb in walk] for walk in apart
    ]
    assert together[-2] == [] and [vb.value for vb in together[-1]] == [b"router-9"]
    assert all(together[:6])


@pytest.mark.parametrize(
    "version", ["v1", "v2c", "v3-sha256-aes128", "v3-md5-des", "v3-sha512-aes256"]
)
async def test_native_get_and_walk_equals_the_get_and_the_walks(agent: Snmpd, version: str) -> None:
    """A poll in one GETBULK (the scalars as non-repeaters), against snmpd: what the GET
    and the walks return, a missing scalar and a column snmpd does not have included."""
    from netalert.poll.client_native import NativeClient

    client = NativeClient()
    target = targets(agent)[version]
    gets = [SYS_UPTIME, SYS_NAME, "1.3.6.1.2.1.1.99.0", "1.3.6.1.2.1.2.2.1.2.1"]
    columns = [f"1.3.6.1.2.1.2.2.1.{col}" for col in (1, 2, 3, 7, 99)]
    try:
        got, together = await client.get_and_walk(target, gets, columns)
        alone = await client.get(target, gets)
        apart = [await client.walk(target, column) for column in columns]
    finally:
        await client.close()
    assert [(vb.oid, vb.type) for vb in got] == [(vb.oid, vb.type) for vb in alone]
    assert [vb.value for vb in got[1:]] == [vb.value for vb in alone[1:]]  # not the clock
    assert [[(vb.oid, vb.value) for vb in walk] for walk in together] == [
        [(vb.oid, vb.value) for vb in walk] for walk in apart
    ]
