"""The pysnmp engines netalert builds: no MIB compiler, netalert's own password hashes.

pysnmp attaches a pysmi MIB compiler to an engine at its first lookup by name (a
third of a second of CPU for the SMI parser, MIB sources that may be fetched over
the network); every hlapi command looks names up. The engines of the pysnmp poll
backend and of the trap receiver's SNMPv3 fallback must never build one, and the
receiver's engine takes the master keys the fast path computed instead of hashing
each password again with pysnmp's slower code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pysnmp.proto.secmod.rfc3414 import localkey
from pysnmp.smi import compiler as pysnmp_compiler
from pysnmp.smi import error as smi_error

from netalert.config.models import TrapUser
from netalert.poll.client import SnmpError, Target
from netalert.poll.client_pysnmp import PysnmpClient
from netalert.snmp.nomibcompiler import NO_COMPILER
from netalert.snmp.wire.usm import password_to_master
from netalert.traps.v3 import V3Engine
from tests.support.ports import free_udp_port

pytestmark = pytest.mark.unit

ENGINE_ID = bytes.fromhex("800000020109840301")


@pytest.fixture
def no_parser(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and refuses) every pysmi parser or MIB compiler pysnmp would build."""
    built: list[str] = []

    def parser_factory(**_dialect: Any) -> Any:
        built.append("parser")
        raise AssertionError("pysnmp built a pysmi parser")

    def compiler(*_args: Any, **_kwargs: Any) -> Any:
        built.append("compiler")
        raise AssertionError("pysnmp built a MIB compiler")

    monkeypatch.setattr(pysnmp_compiler, "parserFactory", parser_factory)
    monkeypatch.setattr(pysnmp_compiler, "MibCompiler", compiler)
    return built


def test_poll_backend_engine_builds_no_mib_compiler(no_parser: list[str]) -> None:
    client = PysnmpClient()
    # Nothing answers there: the command resolves its OIDs with the MIB, then times out.
    target = Target("127.0.0.1", free_udp_port(), timeout=0.2, retries=0)

    async def ask() -> None:
        try:
            with pytest.raises(SnmpError):
                await client.get(target, ["1.3.6.1.2.1.1.1.0"])
        finally:
            await client.close()

    asyncio.run(ask())
    assert no_parser == []
    builder = client._snmp_engine().get_mib_builder()
    assert builder.get_mib_compiler() is NO_COMPILER
    # A module pysnmp does not carry is not found: never compiled, never downloaded.
    with pytest.raises(smi_error.MibNotFoundError):
        builder.load_modules("NETALERT-NO-SUCH-MIB")
    assert no_parser == []


def _user() -> TrapUser:
    return TrapUser.model_validate(
        {
            "user": "alice",
            "auth_protocol": "SHA",
            "auth_password": "alice-auth-pass",
            "priv_protocol": "AES-128",
            "priv_password": "alice-priv-pass",
        }
    )


def test_v3_engine_uses_netalerts_password_hash(
    no_parser: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(*_args: Any) -> Any:
        raise AssertionError("pysnmp hashed a password")

    monkeypatch.setattr(localkey, "hash_passphrase_sha", slow)
    monkeypatch.setattr(localkey, "hash_passphrase_md5", slow)
    monkeypatch.setattr(localkey, "hash_passphrase", slow)
    engine = V3Engine(
        [_user()], ENGINE_ID, on_notification=lambda _n: None, send=lambda _d, _a: None
    )
    _auth, auth_key, _priv, priv_key = engine._users[b"alice"]
    assert bytes(auth_key) == password_to_master(b"alice-auth-pass", "sha1")
    assert bytes(priv_key) == password_to_master(b"alice-priv-pass", "sha1")
    assert engine._engine.get_mib_builder().get_mib_compiler() is NO_COMPILER
    assert no_parser == []


def test_a_generated_engine_id_is_random_octets_not_the_host_name() -> None:
    from netalert.traps.v3 import random_engine_id

    ids = {random_engine_id() for _ in range(50)}
    assert len(ids) == 50
    for engine_id in ids:
        assert engine_id[:5] == b"\x80\x00\x1f\x88\x05" and len(engine_id) == 17
    # each random position takes many values over 50 IDs: no fixed or textual part
    assert all(len({engine_id[i] for engine_id in ids}) > 20 for i in range(5, 17))
