"""A private PostgreSQL server for tests (pytest plugin).

Fixtures:

* ``postgres_server`` (session): one server for the whole session: Debian's
  ``initdb`` into a fresh directory (in a test run, a copy of the run's first
  ``initdb``), then ``postgres`` on a free loopback port with its unix socket in
  that directory. Run as root, both run as ``nobody``
  (PostgreSQL refuses root), from a directory owned by that user.
* ``postgres``: the DSN of a database of its own for one test (created on the
  session server, dropped after).
* ``postgres_factory``: servers of the test's own, for tests that stop or restart
  one (:meth:`PostgresServer.restart`); stopped after the test.

With ``NETALERT_TEST_POSTGRES`` set to a ``postgresql://`` URI (a role allowed to
create databases),
``postgres`` creates its databases there and no server is started. A missing
PostgreSQL skips the test, except in CI (``NETALERT_REQUIRE_SNMPD=1``), where it
fails. Every server is stopped by its PID (SIGINT: a fast shutdown, then SIGKILL).

Example::

    async def test_x(postgres):
        async with await psycopg.AsyncConnection.connect(postgres) as conn: ...
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.support.ports import free_tcp_port
from tests.support.shared import locked, shared_dir
from tests.support.stopping import stop_pid

__all__ = [
    "PostgresError",
    "PostgresServer",
    "find_bindir",
    "postgres",
    "postgres_factory",
    "postgres_server",
    "required",
]

ENV_DSN = "NETALERT_TEST_POSTGRES"
SUPERUSER = "netalert"
UNPRIVILEGED = "nobody"


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up, started or reached."""


def required() -> bool:
    """True in CI: a missing server is then a failure, not a skip."""
    return bool(os.environ.get("NETALERT_REQUIRE_SNMPD"))


def find_bindir() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: ``$NETALERT_TEST_PG_BINDIR``, else
    Debian's ``/usr/lib/postgresql/<newest>/bin`` (its commands are not on PATH),
    else the folder of an ``initdb`` on PATH."""
    forced = os.environ.get("NETALERT_TEST_PG_BINDIR")
    if forced:
        return Path(forced)
    versions = [Path(p).parent.parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    debian = sorted((int(v.name) if v.name.isdigit() else 0, str(v)) for v in versions)
    if debian:
        return Path(debian[-1][1]) / "bin"
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def missing(what: str) -> None:
    """Skips the test, or fails it in CI."""
    if required():
        pytest.fail(what, pytrace=False)
    pytest.skip(what)


@dataclass
class PostgresServer:
    """One ``postgres`` process on ``127.0.0.1:port`` with its data under ``directory``.

    ``dsn`` reaches database ``postgres`` as the superuser ``netalert`` (trust
    authentication, loopback only); :meth:`dsn_for` another database.
    """

    directory: Path
    bindir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise PostgresError("postgres is not running")
        return self.process.pid

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _as_owner(self) -> dict[str, object]:
        # PostgreSQL refuses to run as root: then initdb and postgres run as `nobody`.
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(UNPRIVILEGED)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def init(self) -> PostgresServer:
        """A fresh data directory: a copy of the run's first ``initdb`` (the same files a new
        ``initdb`` makes, for a tenth of its CPU), or ``initdb`` itself outside a run."""
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        if shared_dir() is None:
            return self.initdb()
        with locked("postgres-initdb") as folder:
            template = folder / "postgres-initdb"
            if not template.exists():
                # initdb runs as `nobody`, who cannot enter the run's folder: it writes into
                # this server's directory, and the result moves into the run's folder.
                self.initdb()
                shutil.move(self.data, template)
            # -a keeps the owner (`nobody` under root) and the modes PostgreSQL checks
            done = subprocess.run(
                ["cp", "-a", str(template), str(self.data)],
                capture_output=True,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            raise PostgresError(f"copying the initdb template failed: {done.stderr.decode()}")
        return self

    def initdb(self) -> PostgresServer:
        """Runs ``initdb`` (trust authentication, no fsync: test data only)."""
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            timeout=120,
            cwd=self.directory,
            check=False,
            **self._as_owner(),  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            raise PostgresError(f"initdb failed: {done.stderr.decode(errors='replace')[-2000:]}")
        return self

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """Starts ``postgres`` (on a free port the first time, the same port after)."""
        if self.port == 0:
            self.port = free_tcp_port()
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.directory}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                **self._as_owner(),  # type: ignore[arg-type]
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise PostgresError(f"postgres exited at start:\n{self.log()[-2000:]}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError(
                        f"postgres did not answer within {timeout}s:\n{self.log()[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops postgres by its PID: SIGINT (fast shutdown), SIGKILL after ``timeout``."""
        proc, self.process = self.process, None
        stop_pid(proc, signal.SIGINT, timeout)

    def restart(self) -> PostgresServer:
        """Stops and starts again on the same port, with the same data."""
        self.stop()
        return self.start()

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        return create_database(self.dsn)


def create_database(admin_dsn: str) -> str:
    """Creates a database with a fresh name through ``admin_dsn``; returns its DSN."""
    name = f"netalert_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drops the database of ``dsn`` (closing its connections first)."""
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


PostgresFactory = Callable[[], PostgresServer]


def _new_server(bindir: Path) -> PostgresServer:
    # Not under pytest's base temp: that is root's private folder, which `nobody` cannot enter.
    directory = Path(tempfile.mkdtemp(prefix="netalert-pg-"))
    server = PostgresServer(directory=directory, bindir=bindir)
    try:
        return server.init().start()
    except PostgresError:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _bindir_or_skip() -> Path:
    bindir = find_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        missing("PostgreSQL's initdb/postgres not found: run `make debs` (Debian's postgresql)")
        raise AssertionError("unreachable")
    return bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """The session's PostgreSQL server (None when ``NETALERT_TEST_POSTGRES`` names one)."""
    if os.environ.get(ENV_DSN):
        yield None
        return
    bindir = _bindir_or_skip()
    try:
        server = _new_server(bindir)
    except PostgresError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def postgres(postgres_server: PostgresServer | None) -> Iterator[str]:
    """The DSN of a fresh database for this test."""
    admin = os.environ.get(ENV_DSN) or (postgres_server.dsn if postgres_server else "")
    dsn = create_database(admin)
    yield dsn
    drop_database(admin, dsn)


@pytest.fixture
def postgres_factory() -> Iterator[PostgresFactory]:
    """Starts private PostgreSQL servers; each is stopped (by PID) after the test."""
    bindir = _bindir_or_skip()
    started: list[PostgresServer] = []

    def make() -> PostgresServer:
        try:
            server = _new_server(bindir)
        except PostgresError as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
