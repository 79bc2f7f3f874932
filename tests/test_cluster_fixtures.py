"""The PostgreSQL and NATS fixtures themselves: private, on loopback, unprivileged, stoppable."""

from __future__ import annotations

import os
import pwd
import socket

import nats
import psycopg
import pytest

from tests.support.nats import NatsServer
from tests.support.postgres import PostgresFactory, PostgresServer, find_bindir

pytestmark = pytest.mark.daemon


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_bindir_is_the_real_postgresql() -> None:
    bindir = find_bindir()
    assert bindir is not None
    assert (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def test_postgres_database_is_fresh_and_on_loopback(postgres: str) -> None:
    with psycopg.connect(postgres) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        address = conn.execute("SELECT inet_server_addr()::text").fetchone()
    assert tables == (0,)
    assert address is not None and address[0].startswith("127.")


def test_postgres_databases_are_separate(postgres: str, postgres_server: object) -> None:
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE TABLE mine (x int)")
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and name[0].startswith("netalert_test_")


def test_the_servers_of_a_run_start_from_one_initdb(
    postgres_factory: PostgresFactory, postgres_server: PostgresServer | None
) -> None:
    # initdb costs about 0.8 s of CPU; a copy of the run's first data directory a tenth.
    # The copies share initdb's system identifier (pg_control's first 8 bytes), and each
    # server writes only to its own.
    first, second = postgres_factory(), postgres_factory()
    identifiers = {
        (server.data / "global" / "pg_control").read_bytes()[:8]
        for server in (first, second, *([postgres_server] if postgres_server else []))
    }
    assert len(identifiers) == 1
    with psycopg.connect(first.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(second.dsn) as conn:
        found = conn.execute("SELECT to_regclass('only_here')").fetchone()
    assert found == (None,)


def test_postgres_server_runs_unprivileged_and_stops_by_pid(
    postgres_factory: PostgresFactory,
) -> None:
    server = postgres_factory()
    pid = server.pid
    owner = os.stat(f"/proc/{pid}").st_uid
    if os.geteuid() == 0:
        assert pwd.getpwuid(owner).pw_name == "nobody"
    else:
        assert owner == os.geteuid()
    assert (server.directory / f".s.PGSQL.{server.port}").exists()  # socket in its own dir
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    server.restart()
    assert server.pid != pid and not _alive(pid)
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
    port, pid = server.port, server.pid
    server.stop()
    assert not _alive(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn_for("postgres"), connect_timeout=2)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_nats_server_has_jetstream_and_restarts(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        info = await js.account_info()
        assert info.limits is not None
        await js.add_stream(name="FIXTURE", subjects=["fixture.>"])
        ack = await js.publish("fixture.a", b"kept")
        assert ack.seq == 1
    finally:
        await nc.close()
    pid = nats_server.pid
    nats_server.restart()
    assert not _alive(pid)
    nc = await nats.connect(nats_server.url)
    try:
        message = await nc.jetstream().get_msg("FIXTURE", 1)
        assert message.data == b"kept"  # the store survived the restart
    finally:
        await nc.close()
    pid = nats_server.pid
    nats_server.stop()
    assert not _alive(pid)
