"""Is the state database file sound? Creating it safely, and moving a damaged one aside.

* :func:`create_database` makes the file with its first table in a temporary file
  and links it into place in one step, so netalert itself never leaves a 0-byte
  ``netalert.db``. A 0-byte file is therefore damage (a lost write after a crash, a
  botched copy), never "empty state": :func:`damage` reports it.
* :func:`damage` runs SQLite's ``PRAGMA quick_check`` (every page and index
  structure, without the slower cross-checks of ``integrity_check``).
* :func:`move_aside` renames the file and its ``-wal``/``-shm`` companions to
  ``netalert.db.corrupt-YYYYmmddTHHMMSSZ`` (``netalert run --recover``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from netalert.errors import StateCorruptError

__all__ = [
    "SCHEMA_TABLE",
    "corrupt_message",
    "create_database",
    "damage",
    "is_corrupt",
    "move_aside",
    "sqlite_code",
]

SCHEMA_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_COMPANIONS = ("-wal", "-shm")


def sqlite_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc`` (the low byte of the extended one)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` says the database file is damaged (never worth a retry)."""
    if isinstance(exc, StateCorruptError):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and sqlite_code(exc) in _CORRUPT


def corrupt_message(path: Path | None, problem: str) -> str:
    """The one line that says a database file is damaged and what to do about it."""
    return (
        f"state database {path or ':memory:'} is damaged ({problem}); stop netalert and run "
        "`netalert run --recover` to move it aside and start with an empty state, "
        "or restore it from a backup"
    )


def damage(path: Path) -> str | None:
    """What is wrong with the database file at ``path``; None when it is sound or absent.

    Raises:
        sqlite3.Error: The file could not be checked for another reason (locked,
            unreadable): not a verdict on its content.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return "the file is 0 bytes: its content was lost"
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if sqlite_code(exc) in _CORRUPT:
            return str(exc)
        raise
    finally:
        conn.close()
    found = [str(row[0]) for row in rows]
    if found == ["ok"]:
        return None
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{found[0]}{more}"


def move_aside(path: Path, now: float | None = None) -> Path:
    """Renames ``path`` (and its -wal/-shm) to ``<name>.corrupt-<UTC time>``; returns the new path.

    Raises:
        OSError: A rename failed.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    os.replace(path, target)
    _sync_dir(path.parent)
    return target


def create_database(path: Path) -> None:
    """Creates a new database at ``path`` holding its first table, in one step.

    Does nothing when ``path`` already exists (another process made it first).

    Raises:
        OSError, sqlite3.Error: The file cannot be written.
    """
    if path.exists():
        return
    temp = path.with_name(f".{path.name}.new-{os.getpid()}")
    for leftover in (temp, *(temp.with_name(temp.name + s) for s in _COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    conn = sqlite3.connect(temp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA_TABLE)
    finally:
        conn.close()  # the last connection: SQLite checkpoints and removes the -wal
    try:
        with temp.open("rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)  # never replaces a file another process created meanwhile
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: rename, unless it appeared
            if not path.exists():
                os.rename(temp, path)
        _sync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
