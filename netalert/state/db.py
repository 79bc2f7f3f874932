"""SQLite access shared by the stages that persist something.

Each stage owns its tables and declares them as an ordered list of migrations
under a component name (``"alerts"``, ``"outbox"``, ``"silences"``...).
:meth:`Database.migrate` applies the ones not yet applied, recorded per
component in ``schema_versions``, so stages evolve their schema independently.

One process writes: the agent's event loop. SQLite runs in WAL mode so the CLI
(``netalert alerts``, ``silence add``) can read and make small writes while the
agent runs; ``busy_timeout`` covers the short lock waits. Commits run with
``synchronous=NORMAL`` (the WAL is synced at checkpoints: the last commits may
be lost on a power cut, never the database). A durable write (a new mail in the
outbox) is followed by :meth:`Database.sync`, which fsyncs the WAL: that commit
and every one before it are then on disk. The writer groups these syncs (in the
agent: in a thread of their own, one at a time), and the sender waits for them
before any SMTP attempt.

Stages write through :attr:`Database.writer` (:mod:`netalert.state.writer`),
which holds writes in memory while the disk cannot take them. Opening checks
the file first (:mod:`netalert.state.integrity`): a damaged or 0-byte database
is refused with one line saying what to do, or moved aside with ``recover``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from netalert.errors import StateCorruptError, StateError
from netalert.logs import event
from netalert.state.integrity import (
    SCHEMA_TABLE,
    corrupt_message,
    create_database,
    damage,
    is_corrupt,
    move_aside,
)
from netalert.state.writer import StateWriter

__all__ = ["Database", "check_state_dir", "open_database"]

log = logging.getLogger("netalert.state")

DB_NAME = "netalert.db"
# Test hook (tests/support/disk.py): a file holding a page count caps the database
# at that size (PRAGMA max_page_count), which SQLite reports as a full disk; an
# empty file lifts the cap. Read before each write transaction when set.
PAGE_LIMIT_ENV = "NETALERT_TEST_DB_PAGE_LIMIT_FILE"
_NO_PAGE_LIMIT = 4294967294
# Bytes the write probe needs: SQLite's WAL index alone takes 32 KiB, so a disk
# with less room than this is as good as full for the agent.
PROBE_BYTES = 64 * 1024

# What to do about each reason a state directory cannot be written.
_FIXES = {
    errno.EROFS: "the filesystem is read-only: remount it read-write, or set "
    "[agent].state_dir to a writable folder (systemd: StateDirectory=netalert)",
    errno.ENOSPC: "the disk is full: free space on it, or set [agent].state_dir "
    "to a folder on another disk",
    errno.EDQUOT: "the disk quota is used up: free space, or set [agent].state_dir elsewhere",
    errno.EACCES: "make it writable by the user netalert runs as, or set "
    "[agent].state_dir to a writable folder",
    errno.ENOTDIR: "part of the path is a file, not a folder: set [agent].state_dir to a folder",
    errno.EEXIST: "a file is in the way: set [agent].state_dir to a folder",
}
_FIXES[errno.EPERM] = _FIXES[errno.EACCES]


class Database:
    """A SQLite connection with per-component migrations.

    ``writer`` commits the stages' writes; it holds nothing until the agent
    enables it (:meth:`StateWriter.max_held <netalert.state.writer.StateWriter>`).

    Raises:
        StateError: The first table cannot be created (``StateCorruptError`` when
            the file is damaged).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self.writer = StateWriter(self.transaction, path, sync=self.sync)
        limit_file = os.environ.get(PAGE_LIMIT_ENV) if path is not None else None
        self._limit_file = Path(limit_file) if limit_file else None
        self._limit_seen: tuple[float, int] | None = None
        try:
            self.conn.execute(SCHEMA_TABLE)
            self.conn.commit()
        except sqlite3.Error as exc:
            raise _open_error(path, exc) from exc

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Applies the migrations of ``component`` not yet applied.

        Args:
            component: The owner of the tables, e.g. ``"outbox"``.
            migrations: SQL scripts in order; never edit one that shipped, append.

        Raises:
            StateError: A migration failed (the database is left as before it);
                ``StateCorruptError`` when the file is damaged.
        """
        try:
            row = self.conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _open_error(self.path, exc) from exc
        current = int(row[0]) if row else 0
        for number, script in enumerate(migrations[current:], start=current + 1):
            try:
                with self.transaction() as conn:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_versions(component, version) VALUES (?, ?)"
                        " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                        (component, number),
                    )
            except sqlite3.Error as exc:
                if is_corrupt(exc):
                    raise _open_error(self.path, exc) from exc
                raise StateError(
                    f"{self.path or ':memory:'}: migration {component} #{number} failed: {exc}"
                ) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Runs the block in one transaction: committed on success, rolled back on error.

        Raises:
            sqlite3.Error: The transaction could not start or commit (stages write
                through :attr:`writer`, which turns this into a ``StateError``).
        """
        if self._limit_file is not None:
            self._apply_page_limit(self._limit_file)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.commit()
        except BaseException:
            # a failed COMMIT (disk full, busy) may leave the transaction open: end it,
            # so the next write (a retry) can begin
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.rollback()
            raise

    def sync(self) -> None:
        """Puts every commit so far on disk (fsync of the WAL, as ``synchronous=FULL`` would).

        Raises:
            OSError: The disk reported an error.
        """
        if self.path is None:
            return
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: the database file holds it all
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Writes what the writer has of this loop turn (see ``per_turn``), puts the
        durable commits on disk, then closes.

        Raises:
            StateCorruptError: The database is damaged.
        """
        try:
            self.writer.end_turn()
        finally:
            self.writer.close()
            self.conn.close()

    def _apply_page_limit(self, limit_file: Path) -> None:
        try:
            stat = limit_file.stat()
            seen = (stat.st_mtime, stat.st_size)
            if seen == self._limit_seen:
                return
            text = limit_file.read_text().strip()
        except OSError:
            return
        self._limit_seen = seen
        pages = int(text) if text.isdigit() else _NO_PAGE_LIMIT
        self.conn.execute(f"PRAGMA max_page_count = {pages}")


def _open_error(path: Path | None, exc: sqlite3.Error) -> StateError:
    if is_corrupt(exc):
        return StateCorruptError(corrupt_message(path, str(exc)))
    return StateError(
        f"{path or ':memory:'}: cannot use the state database ({exc}); check that the folder "
        "is writable by the netalert user and the disk is not full"
    )


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _unusable(directory: Path, what: str, exc: OSError) -> str:
    fix = _FIXES.get(exc.errno or 0, "set [agent].state_dir to a writable folder")
    return f"state_dir {directory}: {what} ({exc.strerror or exc}); {fix}"


def check_state_dir(state_dir: Path | str) -> Path:
    """Creates ``state_dir`` if needed and proves it can be written; returns it.

    A probe file of :data:`PROBE_BYTES` is written, synced and removed, so a
    read-only or full filesystem is found before anything starts.

    Raises:
        StateError: One line naming the folder, the system's reason and the fix.
    """
    directory = Path(state_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(_unusable(directory, "cannot create it", exc)) from None
    probe = directory / f".netalert-probe-{os.getpid()}"
    try:
        with probe.open("wb") as fh:
            fh.write(bytes(PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StateError(_unusable(directory, "cannot write there", exc)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return directory


def open_database(state_dir: Path | str | None, *, recover: bool = False) -> Database:
    """Opens (creating if needed) the state database in ``state_dir``.

    ``None`` opens a private in-memory database (tests, ``netalert demo``). An
    existing file is checked first (``PRAGMA quick_check``; a 0-byte file counts
    as damaged, see :mod:`netalert.state.integrity`).

    Args:
        state_dir: The folder of ``netalert.db``.
        recover: Move a damaged file aside as ``netalert.db.corrupt-TIMESTAMP``
            (logged, with the reason) and start with an empty database.

    Raises:
        StateCorruptError: The file is damaged and ``recover`` is false; the
            message names the file and says what to do.
        StateError: The directory cannot be created or written, or the file
            cannot be opened; the message names the path and the fix.
    """
    if state_dir is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        return Database(conn, None)
    directory = Path(state_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(_unusable(directory, "cannot create it", exc)) from None
    path = directory / DB_NAME
    try:
        problem = damage(path)
        if problem is not None:
            if not recover:
                raise StateCorruptError(corrupt_message(path, problem))
            moved = move_aside(path)
            log.warning(event("state_recovered", path=path, moved_to=moved, problem=problem))
        create_database(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except OSError as exc:
        raise StateError(_unusable(directory, "cannot create the state database", exc)) from None
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from exc
    return Database(conn, path)
