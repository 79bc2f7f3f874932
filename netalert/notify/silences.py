"""Silences: time-bound mutes an operator sets with ``netalert silence add``.

Stored in SQLite so the CLI and the running agent share them; the agent reads
the table on each flush (it is tiny), so a silence added from the shell takes
effect on the next group flush without any signal.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from netalert.alerts.model import Alert
from netalert.errors import NetalertError
from netalert.matchers import Matcher, matches_all, parse_matcher
from netalert.state.db import Database

__all__ = [
    "Silence",
    "SilenceStore",
    "Silencer",
    "Silences",
    "is_silenced",
    "new_silence",
    "parse_matchers",
    "silence_of",
    "silence_row",
]

MIGRATIONS = [
    """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        comment TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX silences_ends ON silences(ends_at)
    """
]


@dataclass(frozen=True, slots=True)
class Silence:
    """A mute for the alerts whose labels match every matcher, between two times."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str
    author: str
    created_at: float

    def active(self, now: float) -> bool:
        """True while the silence mutes alerts."""
        return self.starts_at <= now < self.ends_at


def is_silenced(silences: Sequence[Silence], labels: Mapping[str, str], now: float) -> str | None:
    """Returns the id of an active silence covering ``labels``, or None."""
    for silence in silences:
        if silence.active(now) and matches_all(silence.matchers, labels):
            return silence.id
    return None


class Silencer:
    """The silence stage's muter: reads the silences once, at its first question.

    Make one per flush: a silence added from the shell counts from the next flush on.
    """

    def __init__(self, silences: Callable[[float], Sequence[Silence]]) -> None:
        self._read = silences
        self._silences: Sequence[Silence] | None = None

    def mutes(self, alert: Alert, now: float) -> str | None:
        """``"silence <id>"`` when an active silence covers ``alert``."""
        if self._silences is None:
            self._silences = self._read(now)
        found = is_silenced(self._silences, alert.labels, now)
        return None if found is None else f"silence {found}"


def parse_matchers(matchers: Sequence[str]) -> tuple[Matcher, ...]:
    """The matchers of ``netalert silence add --match``.

    Raises:
        NetalertError: No matcher, or a malformed one.
    """
    if not matchers:
        raise NetalertError("a silence needs at least one --match NAME=VALUE")
    try:
        return tuple(parse_matcher(m) for m in matchers)
    except ValueError as exc:
        raise NetalertError(str(exc)) from None


def new_silence(
    parsed: Sequence[Matcher], *, starts_at: float, ends_at: float, comment: str, author: str
) -> Silence:
    """A new silence with a fresh id, checked.

    Raises:
        NetalertError: An empty comment, or an end before the start.
    """
    if not comment.strip():
        raise NetalertError("a silence needs a --comment saying why")
    if ends_at <= starts_at:
        raise NetalertError("a silence must end after it starts")
    return Silence(
        id=secrets.token_hex(4),
        matchers=tuple(parsed),
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        author=author,
        created_at=starts_at,
    )


def silence_row(silence: Silence) -> tuple[str, str, float, float, str, str, float]:
    """The columns of a silence, in table order (the matchers as JSON)."""
    return (
        silence.id,
        json.dumps([[m.name, m.op, m.value] for m in silence.matchers]),
        silence.starts_at,
        silence.ends_at,
        silence.comment,
        silence.author,
        silence.created_at,
    )


class Silences:
    """What the CLI, the ack handler and the agent ask of a silence store: the SQLite
    table (:class:`SilenceStore`) or, on a cluster node, the one every node shares in
    PostgreSQL (``netalert.cluster.shared``)."""

    def list(self, now: float, *, include_expired: bool = False) -> list[Silence]:
        """Silences not yet ended (all with ``include_expired``), newest first."""
        raise NotImplementedError

    def expire(self, silence_id: str, now: float) -> bool:
        """Ends a silence now; False when no active silence has that id."""
        raise NotImplementedError

    def add_matchers(
        self,
        parsed: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """:meth:`add` with matchers already made (a reply's exact labels, netalert/ack).

        Raises:
            NetalertError: An empty comment, or an end before the start.
        """
        raise NotImplementedError

    async def add_matchers_async(
        self,
        parsed: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """:meth:`add_matchers` from the event loop (a reply by mail): SQLite's table is
        local and its write short, made on the loop; the cluster's shared table is written
        in a worker thread (``netalert.cluster.shared``).

        Raises:
            NetalertError: An empty comment, or an end before the start.
        """
        return self.add_matchers(
            parsed, starts_at=starts_at, ends_at=ends_at, comment=comment, author=author
        )

    async def expire_async(self, silence_id: str, now: float) -> bool:
        """:meth:`expire` from the event loop (as :meth:`add_matchers_async`)."""
        return self.expire(silence_id, now)

    def add(
        self,
        matchers: Sequence[str],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """Stores a new silence and returns it.

        Raises:
            NetalertError: No matcher, a malformed matcher, an empty comment, or
                an end before the start.
        """
        return self.add_matchers(
            parse_matchers(matchers),
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            author=author,
        )


class SilenceStore(Silences):
    """The silences table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.migrate("silences", MIGRATIONS)

    def add_matchers(
        self,
        parsed: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """:meth:`add` with matchers already made (a reply's exact labels, netalert/ack).

        Raises:
            NetalertError: An empty comment, or an end before the start.
        """
        silence = new_silence(
            parsed, starts_at=starts_at, ends_at=ends_at, comment=comment, author=author
        )
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)", silence_row(silence))
        return silence

    def list(self, now: float, *, include_expired: bool = False) -> list[Silence]:
        """Returns silences not yet ended (all with ``include_expired``), newest first."""
        query = "SELECT * FROM silences"
        params: tuple[float, ...] = ()
        if not include_expired:
            query += " WHERE ends_at > ?"
            params = (now,)
        rows = self._db.conn.execute(query + " ORDER BY created_at DESC", params).fetchall()
        return [silence_of(r) for r in rows]

    def expire(self, silence_id: str, now: float) -> bool:
        """Ends a silence now; returns False when no active silence has that id."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                (now, silence_id, now),
            )
        return cur.rowcount > 0


def silence_of(row: sqlite3.Row | tuple[object, ...]) -> Silence:
    """A silence from its columns (:func:`silence_row`)."""
    sid, matchers, starts, ends, comment, author, created = row
    return Silence(
        id=str(sid),
        matchers=tuple(Matcher(n, o, v) for n, o, v in json.loads(str(matchers))),
        starts_at=float(str(starts)),
        ends_at=float(str(ends)),
        comment=str(comment),
        author=str(author),
        created_at=float(str(created)),
    )
