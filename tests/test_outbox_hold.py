"""The outbox while the state database cannot be written (a real SQLite file whose size
is capped: SQLite then answers "database or disk is full" as on a full disk).

The interleaving of issue #16: a mail committed before the disk filled is sent while
the disk is full; the write of its delivery result waits in memory behind other held
writes and is shed past ``[agent].state_hold_max``. The outbox row still says
"pending", but the mail was delivered: it must not be attempted again.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from netalert.mail.entries import RecipientResult
from netalert.mail.outbox import Outbox
from netalert.state import Database, open_database

NOW = 1_790_000_000.0


def message(n: int, body: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "netalert <alerts@example.org>"
    msg["To"] = "noc@example.net"
    msg["Subject"] = f"alert {n}"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content(body or f"body {n}\n")
    return msg


def big(n: int) -> EmailMessage:
    """A message whose row needs new pages: a capped database refuses it."""
    return message(n, "x" * 20_000 + "\n")


def fill(db: Database) -> None:
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count = {pages}")


def free(db: Database) -> None:
    db.conn.execute("PRAGMA max_page_count = 4294967294")


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    db = open_database(tmp_path)
    db.writer.max_held = 2
    return Outbox(db, clock=lambda: NOW)


def ids(outbox: Outbox, now: float) -> list[str]:
    return [e.message_id for e in outbox.due(now)]


def test_a_shed_delivery_result_does_not_send_the_mail_again(outbox: Outbox) -> None:
    db = outbox.db
    assert outbox.enqueue(message(1)) is not None  # committed before the disk fills
    fill(db)
    assert outbox.enqueue(big(2)) is None  # held: the writer holds from now on
    [entry] = outbox.due(NOW)
    assert entry.message_id == "<m1@example.org>"
    # the sender delivered it; its result waits behind the held enqueue
    left = outbox.record(entry, [RecipientResult("noc@example.net", True)], error="", retry_at=NOW)
    assert left is True
    assert db.writer.held == 2
    assert ids(outbox, NOW + 60) == []
    # two more held writes: the oldest (the enqueue of 2, then the result of 1) are shed
    outbox.enqueue(big(3))
    outbox.enqueue(big(4))
    assert db.writer.shed_total == 2 and db.writer.held == 2
    # m1 was delivered: attempting it again would mail it twice
    assert ids(outbox, NOW + 60) == []
    assert outbox.pending() == 2  # m3 and m4 (held), not m1 (delivered) nor m2 (dropped)
    free(db)
    assert db.writer.retry(force=True)
    outbox.rewrite_results()  # the sender does this at each round
    assert db.writer.held == 0
    assert ids(outbox, NOW + 60) == ["<m3@example.org>", "<m4@example.org>"]
    assert [e.message_id for e in outbox.entries()] == ["<m3@example.org>", "<m4@example.org>"]
    assert outbox.pending() == 2


def test_a_shed_partial_result_keeps_the_retry_of_the_rest(outbox: Outbox) -> None:
    """Only the recipients that got the mail are spared; the others are retried as due."""
    db = outbox.db
    msg = message(1)
    del msg["To"]
    msg["To"] = "a@example.net, b@example.net"
    outbox.enqueue(msg)
    fill(db)
    outbox.enqueue(big(2))
    [entry] = outbox.due(NOW)
    results = [
        RecipientResult("a@example.net", True),
        RecipientResult("b@example.net", False, False, 451, "451 try later"),
    ]
    assert outbox.record(entry, results, error="451 try later", retry_at=NOW + 30) is False
    outbox.enqueue(big(3))
    outbox.enqueue(big(4))
    assert db.writer.shed_total == 2
    assert ids(outbox, NOW + 60) == []  # not before its result is written
    free(db)
    assert db.writer.retry(force=True)
    outbox.rewrite_results()
    [again, *_] = outbox.entries()
    assert again.message_id == "<m1@example.org>"
    assert again.recipients == ("b@example.net",)
    assert again.next_attempt == NOW + 30 and again.attempts == 1
    assert again.last_error == "451 try later"


def test_a_shed_result_waits_while_writes_are_held(outbox: Outbox) -> None:
    """A shed result is written again only once nothing is held (else it would queue
    behind the held writes, and maybe be shed again); never lost while the agent runs."""
    db = outbox.db
    outbox.enqueue(message(1))
    fill(db)
    outbox.enqueue(big(2))
    [entry] = outbox.due(NOW)
    outbox.record(entry, [RecipientResult("noc@example.net", True)], error="", retry_at=NOW)
    outbox.enqueue(big(3))
    outbox.enqueue(big(4))
    assert db.writer.retry(force=True) is False  # still full
    outbox.rewrite_results()  # the writer holds: nothing is rewritten yet
    assert ids(outbox, NOW + 60) == []
    free(db)
    db.writer.retry(force=True)
    fill(db)
    outbox.rewrite_results()  # the result is written now (it frees pages, needs none)
    assert db.writer.held == 0
    assert [e.message_id for e in outbox.entries()] == ["<m3@example.org>", "<m4@example.org>"]
