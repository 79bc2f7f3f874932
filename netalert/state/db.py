"""SQLite access shared by the stages that persist something.

Each stage owns its tables and declares them as an ordered list of migrations
under a component name (``"alerts"``, ``"outbox"``, ``"silences"``...).
:meth:`Database.migrate` applies the ones not yet applied, recorded per
component in ``schema_versions``, so stages evolve their schema independently.

One process writes: the agent's event loop. SQLite runs in WAL mode so the CLI
(``netalert alerts``, ``silence add``) can read and make small writes while the
agent runs; ``busy_timeout`` covers the short lock waits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from netalert.errors import StateError

__all__ = ["Database", "open_database"]

DB_NAME = "netalert.db"


class Database:
    """A SQLite connection with per-component migrations."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        self.conn.commit()

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Applies the migrations of ``component`` not yet applied.

        Args:
            component: The owner of the tables, e.g. ``"outbox"``.
            migrations: SQL scripts in order; never edit one that shipped, append.

        Raises:
            StateError: A migration failed (the database is left as before it).
        """
        row = self.conn.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
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
                raise StateError(
                    f"{self.path or ':memory:'}: migration {component} #{number} failed: {exc}"
                ) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Runs the block in one transaction: committed on success, rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        else:
            self.conn.commit()

    def close(self) -> None:
        """Closes the connection."""
        self.conn.close()


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def open_database(state_dir: Path | str | None) -> Database:
    """Opens (creating if needed) the state database in ``state_dir``.

    ``None`` opens a private in-memory database (tests, ``netalert demo``).

    Raises:
        StateError: The directory cannot be created or written, or the file is
            not a usable SQLite database; the message names the path and the fix.
    """
    if state_dir is None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        return Database(conn, None)
    directory = Path(state_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"state_dir {directory}: cannot create it ({exc.strerror}); "
            "set [agent].state_dir to a writable folder"
        ) from exc
    path = directory / DB_NAME
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return Database(conn, path)
    except sqlite3.Error as exc:
        raise StateError(
            f"{path}: cannot open the state database ({exc}); check that the folder is "
            "writable by the netalert user and the disk is not full"
        ) from exc
