"""Versioned PostgreSQL schema migrations, shipped in the package (``migrations/``).

Each migration is a file ``NNNN_name.sql`` numbered from 0001 without gaps. The
table ``netalert_migrations`` records the versions a database has; :func:`migrate`
applies the missing ones in order, all in one transaction under an advisory lock,
so nodes starting together migrate once and a failed migration leaves nothing
half done. A database newer than this version is refused, never downgraded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import AsyncConnection

from netalert.cluster.errors import SchemaError
from netalert.logs import event

__all__ = ["MIGRATIONS_TABLE", "Migration", "applied_versions", "migrate", "migrations"]

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "netalert_migrations"
# pg_advisory_xact_lock key: "netalert" in ASCII, so unrelated users of the database
# are unlikely to pick it.
_LOCK_KEY = 0x6E6574616C657274
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The package's migrations in order.

    Raises:
        SchemaError: The files are misnumbered (a gap or a duplicate): a packaging bug.
    """
    folder = resources.files("netalert.cluster") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match.group(1)), match.group(2), text))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations are not numbered 1..{len(found)} without gaps")
    return found


async def applied_versions(conn: AsyncConnection[Any]) -> list[int]:
    """The versions recorded in the database (empty when it has none)."""
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))
    row = await cur.fetchone()
    if row is None or not row[0]:
        return []
    cur = await conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
    return [int(version) for (version,) in await cur.fetchall()]


async def migrate(conn: AsyncConnection[Any]) -> list[int]:
    """Brings the database to the package's newest schema; returns the versions applied.

    Raises:
        SchemaError: The database has a version this package does not know (it was
            migrated by a newer netalert).
        psycopg.Error: The database failed; nothing was applied.
    """
    known = migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied timestamptz NOT NULL DEFAULT now())"
        )
        done = set(await applied_versions(conn))
        newest = known[-1].version if known else 0
        unknown = sorted(v for v in done if v > newest)
        if unknown:
            raise SchemaError(
                f"the cluster database has schema version {unknown[-1]}, newer than this "
                f"netalert's {newest}: upgrade netalert on this node"
            )
        applied = []
        for migration in known:
            if migration.version in done:
                continue
            await conn.execute(migration.sql.encode())
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    if applied:
        log.info(event("cluster_schema_migrated", versions=",".join(map(str, applied))))
    return applied
