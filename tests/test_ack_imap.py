"""[ack] against a real Dovecot: replies read over IMAP, judged, applied, confirmed once.

The ack stage runs in this process on the test's event loop (its reader, handler,
tables and outbox are the agent's own); its alerts are real ``Alert`` values held
by the test in place of the agent's store. Replies are delivered into Dovecot's
Maildir as a delivery agent does. The whole path through a real `netalert run`
is in tests/test_ack_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from netalert.ack.config import AckConfig
from netalert.ack.issuer import ReplyHeaders
from netalert.ack.stage import AckStage, AgentHooks
from netalert.alerts.model import Alert, AlertState, Transition, fingerprint
from netalert.mail.outbox import Outbox
from netalert.notify.silences import SilenceStore, is_silenced
from netalert.state import open_database
from tests.support.dovecot import Dovecot
from tests.support.imapmitm import ImapRelay
from tests.support.tcpproxy import TcpProxy

OPERATOR = "oncall@example.org"
WITHIN = 20.0


def make_alert(device: str, index: str) -> Alert:
    labels = {"rule": "LinkDown", "severity": "warning", "device": device, "ifIndex": index}
    return Alert(
        fingerprint=fingerprint(labels),
        rule="LinkDown",
        severity="warning",
        device=device,
        labels=labels,
        annotations={"summary": f"{device} port {index} down"},
        state=AlertState.FIRING,
        starts_at=1_700_000_000.0 + int(index),
        ends_at=None,
        updated_at=1_700_000_000.0,
        value="down",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
    )


class Harness:
    """The ack stage over a state database in ``tmp_path``, reading ``dovecot``."""

    def __init__(
        self,
        tmp_path: Path,
        dovecot: Dovecot,
        ca_file: Path,
        *,
        port: int | None = None,
        timeout: str = "5s",
        **ack: Any,
    ) -> None:
        """``port``: where the reader connects (a relay's), else Dovecot's TLS port."""
        self.dovecot = dovecot
        self.db = open_database(tmp_path / "state")
        self.outbox = Outbox(self.db)
        self.alerts = {a.fingerprint: a for a in (make_alert("sw1", "1"), make_alert("sw1", "2"))}
        self.other = make_alert("sw2", "7")  # in no mail
        self.alerts[self.other.fingerprint] = self.other
        self.changed = 0
        settings: dict[str, Any] = {
            "imap": {
                "host": dovecot.host,
                "port": port or dovecot.tls_port,
                "username": dovecot.user,
                "password": dovecot.password,
                "ca_file": str(ca_file),
                "timeout": timeout,
            },
            "reply_to": "alerts+{token}@example.org",
            "operators": [OPERATOR, "*@ops.example.org"],
            "secret_file": str(tmp_path / "ack.key"),
            "reconnect_max": "1s",
            "poll_interval": "1s",
        }
        settings.update(ack)
        self.config = AckConfig.model_validate(settings)
        self.stage = AckStage(
            self.config,
            self.db,
            state_dir=tmp_path,
            outbox=self.outbox,
            mail_from="netalert <netalert@example.org>",
            hooks=AgentHooks(
                alert=self._alert,
                alerts=lambda: list(self.alerts.values()),
                resolvable=lambda fp: False,
                resolve=lambda fp, now, by: [],
                after=self._after,
                changed=self._changed,
            ),
        )
        self.task: asyncio.Task[None] | None = None

    async def _alert(self, fingerprint: str) -> Alert | None:
        return self.alerts.get(fingerprint)

    def _after(self, transitions: list[Transition]) -> None:
        pass

    def _changed(self) -> None:
        self.changed += 1

    def mail(self, *, clock: float | None = None) -> tuple[ReplyHeaders, str]:
        """Issues the token of an alert mail listing the two sw1 alerts; returns it and its id."""
        issuer = self.stage.issuer
        if clock is not None:
            issuer = replace_clock(issuer, clock)
        listed = tuple(a for a in self.alerts.values() if a.device == "sw1")
        reply = issuer.issue(listed, "example.org")
        assert reply is not None
        message_id = f"<na.{reply.nid}@example.org>"
        with self.db.transaction() as conn:
            reply.record(conn, message_id, "[FIRING:2] warning LinkDown on sw1", time.time())
        return reply, message_id

    def reply(
        self,
        headers: ReplyHeaders,
        message_id: str,
        body: str,
        *,
        sender: str = OPERATOR,
        to: str | None = None,
        extra: dict[str, str] | None = None,
        html: str | None = None,
    ) -> bytes:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = to if to is not None else headers.reply_to
        msg["Subject"] = "Re: [FIRING:2] warning LinkDown on sw1"
        msg["Message-ID"] = f"<reply.{time.time_ns()}@example.org>"
        msg["In-Reply-To"] = message_id
        msg["References"] = f"{headers.reference} {message_id}"
        msg["Return-Path"] = f"<{sender}>"
        for name, value in (extra or {}).items():
            msg[name] = value
        if html is None:
            msg.set_content(f"{body}\n\nOn Mon, netalert wrote:\n> [FIRING:2] LinkDown\n")
        else:  # HTML only, no text/plain part, as many phone mail apps send
            msg.set_content(html, subtype="html")
        return msg.as_bytes()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.stage.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.db.close()

    async def until(self, what: Callable[[], bool], within: float = WITHIN) -> None:
        deadline = time.monotonic() + within
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not within {within}s: replies={dict(self.stage.stats.replies)} "
                    f"error={self.stage.stats.last_error!r}\n{self.dovecot.log()[-1500:]}"
                )
            await asyncio.sleep(0.05)

    async def handled(self, count: int) -> None:
        await self.until(lambda: self.stage.reader.handled >= count)

    def confirmations(self) -> list[bytes]:
        rows = self.db.conn.execute("SELECT data FROM outbox ORDER BY id").fetchall()
        return [bytes(r[0]) for r in rows]


def replace_clock(issuer: Any, at: float) -> Any:
    from netalert.ack.issuer import TokenIssuer

    return TokenIssuer(issuer.config, issuer.key, clock=lambda: at)


@pytest.fixture
async def harness(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, dovecot, dovecot_ca_file)
    yield h
    await h.stop()


def sw1(h: Harness) -> list[Alert]:
    return [a for a in h.alerts.values() if a.device == "sw1"]


async def test_ack_reply_acks_the_mails_alerts_and_is_confirmed_once(harness: Harness) -> None:
    headers, mid = harness.mail()
    harness.dovecot.deliver(harness.reply(headers, mid, "ACK looking at it"))
    harness.start()
    await harness.handled(1)
    assert harness.stage.stats.replies == {"ack": 1}
    assert harness.stage.all_acked(sw1(harness))
    assert not harness.stage.all_acked([harness.other])
    assert "acked by oncall@example.org" in harness.stage.ack_line(sw1(harness)[0])
    assert "looking at it" in harness.stage.ack_line(sw1(harness)[0])
    [confirmation] = harness.confirmations()
    assert b"Auto-Submitted: auto-replied" in confirmation
    assert f"In-Reply-To: {mid}".encode() in confirmation
    assert b"To: oncall@example.org" in confirmation
    # handled once: flagged in the folder, not read again after a reconnect
    await harness.until(
        lambda: any("S" in p.name.rpartition(",")[2] for p in harness.dovecot.messages())
    )
    harness.stage.reader.wake()
    await asyncio.sleep(0.5)
    assert harness.stage.reader.handled == 1


async def test_silence_reply_silences_exactly_the_mails_alerts(harness: Harness) -> None:
    headers, mid = harness.mail()
    harness.dovecot.deliver(harness.reply(headers, mid, "silence 2h maintenance"))
    harness.start()
    await harness.handled(1)
    assert harness.stage.stats.replies == {"silence": 1}
    now = time.time()
    silences = SilenceStore(harness.db).list(now)
    assert len(silences) == 2
    for alert in sw1(harness):
        assert is_silenced(silences, alert.labels, now) is not None
    assert is_silenced(silences, harness.other.labels, now) is None
    # another port of the same device and rule: not in the mail, not silenced
    assert is_silenced(silences, {**sw1(harness)[0].labels, "ifIndex": "3"}, now) is None
    assert all(7190 <= s.ends_at - s.starts_at <= 7210 for s in silences)
    assert all(s.author == OPERATOR and s.comment == "maintenance" for s in silences)


async def test_forged_sender_with_a_valid_token_is_refused_unanswered(harness: Harness) -> None:
    headers, mid = harness.mail()
    harness.dovecot.deliver(harness.reply(headers, mid, "ack", sender="mallory@evil.example"))
    harness.dovecot.deliver(harness.reply(headers, mid, "ack", sender="x@sub.ops.example.org"))
    harness.start()
    await harness.handled(2)
    assert harness.stage.stats.replies == {"not_operator": 2}
    assert not harness.stage.all_acked(sw1(harness))
    assert harness.confirmations() == []


async def test_tampered_expired_and_replayed_tokens_are_refused(harness: Harness) -> None:
    headers, mid = harness.mail()
    token = headers.reply_to.split("+")[1].split("@")[0]
    flipped = token[:-3] + ("a" if token[-3] != "a" else "b") + token[-2:]
    tampered = replace(
        headers,
        reply_to=headers.reply_to.replace(token, flipped),
        reference=headers.reference.replace(token, flipped),
    )
    old, old_mid = harness.mail(clock=time.time() - 8 * 86400)  # expired a day ago
    harness.dovecot.deliver(harness.reply(tampered, mid, "ack"))
    harness.dovecot.deliver(harness.reply(old, old_mid, "ack"))
    harness.dovecot.deliver(harness.reply(headers, mid, "ack"))
    harness.dovecot.deliver(harness.reply(headers, mid, "ack again"))  # the same command again
    harness.start()
    await harness.handled(4)
    assert harness.stage.stats.replies == {
        "bad_token": 1,
        "expired_token": 1,
        "ack": 1,
        "replayed": 1,
    }
    assert len(harness.confirmations()) == 1  # the accepted one only


async def test_out_of_office_reply_is_ignored_and_not_answered(harness: Harness) -> None:
    headers, mid = harness.mail()
    harness.dovecot.deliver(
        harness.reply(
            headers, mid, "I am out of the office.", extra={"Auto-Submitted": "auto-replied"}
        )
    )
    harness.dovecot.deliver(harness.reply(headers, mid, "Away", extra={"X-Autoreply": "yes"}))
    harness.dovecot.deliver(harness.reply(headers, mid, "ack", extra={"Precedence": "bulk"}))
    harness.start()
    await harness.handled(3)
    assert harness.stage.stats.replies == {"auto_reply": 3}
    assert harness.confirmations() == []
    assert not harness.stage.all_acked(sw1(harness))


async def test_authserv_id_trusts_only_its_own_authentication_results(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    h = Harness(tmp_path, dovecot, dovecot_ca_file, authserv_id="mx.example.org")
    try:
        headers, mid = h.mail()
        forged = (
            "mx.evil.example; dkim=pass header.d=example.org; dmarc=pass header.from=example.org"
        )
        failed = "mx.example.org; dkim=fail header.d=example.org; dmarc=fail"
        good = "mx.example.org; dkim=pass (good signature) header.d=example.org"
        h.dovecot.deliver(h.reply(headers, mid, "ack", extra={"Authentication-Results": forged}))
        h.dovecot.deliver(h.reply(headers, mid, "ack", extra={"Authentication-Results": failed}))
        h.start()
        await h.handled(2)
        assert h.stage.stats.replies == {"unauthenticated": 2}
        h.dovecot.deliver(h.reply(headers, mid, "ack", extra={"Authentication-Results": good}))
        h.stage.reader.wake()
        await h.handled(3)
        assert h.stage.stats.replies == {"unauthenticated": 2, "ack": 1}
    finally:
        await h.stop()


async def test_starttls_session_reads_replies(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    h = Harness(tmp_path, dovecot, dovecot_ca_file)
    h.config = h.config.model_copy(
        update={
            "imap": h.config.imap.model_copy(
                update={"security": "starttls", "port": dovecot.starttls_port}
            )
        }
    )
    h.stage.reader.config = h.config
    try:
        headers, mid = h.mail()
        h.dovecot.deliver(h.reply(headers, mid, "unack"))
        h.start()
        await h.handled(1)
        assert h.stage.stats.replies == {"unack": 1}
        assert h.stage.stats.connections["ok"] == 1
    finally:
        await h.stop()


async def test_imap_restart_mid_idle_reconnects_and_handles_each_message_once(
    harness: Harness,
) -> None:
    headers, mid = harness.mail()
    harness.dovecot.deliver(harness.reply(headers, mid, "ack"))
    harness.start()
    await harness.handled(1)
    await harness.until(lambda: harness.stage.stats.idle)
    harness.dovecot.restart()
    await harness.until(lambda: harness.stage.stats.connections["ok"] >= 2)
    harness.dovecot.deliver(harness.reply(headers, mid, "unack"))
    await harness.handled(2)
    await asyncio.sleep(1.0)  # a second read of either would show here
    assert harness.stage.reader.handled == 2
    assert harness.stage.stats.replies == {"ack": 1, "unack": 1}
    assert (
        harness.stage.stats.connections["failed"] >= 1 or harness.stage.stats.connections["ok"] >= 2
    )
    assert len(harness.confirmations()) == 2


async def test_unknown_commands_get_help_and_confirmations_are_rate_limited(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    h = Harness(tmp_path, dovecot, dovecot_ca_file, confirm_per_sender=2, processed_folder="Done")
    try:
        headers, mid = h.mail()
        for body in ("thanks, looking", "resolve", "ack", "unack"):
            h.dovecot.deliver(h.reply(headers, mid, body))
        h.start()
        await h.handled(4)
        assert h.stage.stats.replies == {"help": 1, "not_applicable": 1, "ack": 1, "unack": 1}
        assert h.stage.stats.confirmations == {"queued": 2, "rate_limited": 2}
        help_mail, resolve_mail = h.confirmations()
        assert b"did not understand" in help_mail
        assert b"Nothing resolved" in resolve_mail
        assert not h.stage.all_acked(sw1(h))  # acked, then unacked
        # moved out of the folder read
        await h.until(lambda: len(h.dovecot.messages("Done")) == 4 and not h.dovecot.messages())
    finally:
        await h.stop()


async def test_html_only_replies_are_read_from_their_html_part(harness: Harness) -> None:
    headers, mid = harness.mail()
    quote = (
        '<div class="gmail_quote"><div>On Mon, netalert wrote:</div>'
        "<blockquote>[FIRING:2] LinkDown<br>silence 2h</blockquote></div>"
    )
    html = f'<html><body><div dir="ltr">Ack&nbsp;on it</div><br>{quote}</body></html>'
    raw = harness.reply(headers, mid, "", html=html)
    assert b"text/plain" not in raw and b"text/html" in raw
    harness.dovecot.deliver(raw)
    harness.dovecot.deliver(
        harness.reply(headers, mid, "", html="<blockquote>ack</blockquote><p>silence 1h</p>")
    )
    harness.start()
    await harness.handled(2)
    assert harness.stage.stats.replies == {"ack": 1, "silence": 1}
    assert "on it" in harness.stage.ack_line(sw1(harness)[0])
    assert all(b"did not understand" not in c for c in harness.confirmations())


async def test_a_new_uidvalidity_reads_reused_uids_as_new_and_handled_messages_never_again(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    folder = "Replies"
    dovecot.make_folder(folder)
    h = Harness(tmp_path, dovecot, dovecot_ca_file, folder=folder)
    try:
        headers, mid = h.mail()
        dovecot.deliver(h.reply(headers, mid, "ack"), folder)
        dovecot.deliver(h.reply(headers, mid, "thanks"), folder)
        h.start()
        await h.handled(2)
        first = await h.stage.store.position(folder)
        assert first is not None and first[1] == 2

        # The folder deleted and made anew: its new messages get UIDs 1 and 2 again.
        dovecot.stop()
        dovecot.make_folder(folder)
        dovecot.deliver(h.reply(headers, mid, "unack"), folder)
        dovecot.deliver(h.reply(headers, mid, "silence 1h"), folder)
        dovecot.start()
        await h.handled(4)
        second = await h.stage.store.position(folder)
        assert second is not None and second[0] != first[0] and second[1] == 2, (first, second)
        assert h.stage.stats.replies == {"ack": 1, "help": 1, "unack": 1, "silence": 1}
        await h.until(
            lambda: sum("S" in p.name.rpartition(",")[2] for p in dovecot.messages(folder)) == 2
        )

        # The folder renumbered under a new UIDVALIDITY, its two handled messages kept
        # (a restore from a backup): only the one new message is handled.
        dovecot.stop()
        dovecot.renumber(folder)
        later, later_mid = h.mail()
        dovecot.deliver(h.reply(later, later_mid, "ack"), folder)
        dovecot.start()
        await h.handled(5)
        third = await h.stage.store.position(folder)
        assert third is not None and third[0] != second[0], (second, third)
        h.stage.reader.wake()
        await asyncio.sleep(1.5)  # a second read of an old one would show here
        assert h.stage.reader.handled == 5
        assert h.stage.stats.replies == {"ack": 2, "help": 1, "unack": 1, "silence": 1}
    finally:
        await h.stop()


def test_a_restart_of_the_test_server_ends_its_old_sessions(
    dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    """The harness's restart leaves no old imap process serving a session (one that
    could not run when the master told it to end, as on a loaded machine, is killed)."""
    import imaplib
    import signal
    import ssl

    context = ssl.create_default_context(cafile=str(dovecot_ca_file))
    session = imaplib.IMAP4_SSL(dovecot.host, dovecot.tls_port, ssl_context=context, timeout=5)
    try:
        session.login(dovecot.user, dovecot.password)
        assert dovecot.proc is not None
        imap = [pid for pid in _descendants(dovecot.proc.pid) if _comm(pid) == "imap"]
        assert imap, "no imap process for the session"
        for pid in imap:
            os.kill(pid, signal.SIGSTOP)  # it cannot act on the master's word to end
        dovecot.restart()
        assert not [pid for pid in imap if _alive(pid)], "old imap processes left"
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            session.noop()
    finally:
        with contextlib.suppress(Exception):
            session.shutdown()


def _stat(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def _descendants(root: int) -> list[int]:
    parents = {int(e): int(st[1]) for e in os.listdir("/proc") if e.isdigit() and (st := _stat(e))}
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found.extend(frontier)
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


async def test_a_session_gone_silent_in_idle_is_found_and_replaced(
    tmp_path: Path, dovecot: Dovecot, dovecot_ca_file: Path
) -> None:
    """A link that drops everything without a reset (a NAT or firewall forgot the
    connection) is found at the next IDLE refresh, within ``imap.timeout``; the reader
    connects again and reads what came meanwhile."""
    proxy = await TcpProxy.start(dovecot.host, dovecot.tls_port)
    h = Harness(
        tmp_path, dovecot, dovecot_ca_file, port=proxy.port, timeout="2s", idle_refresh="2s"
    )
    try:
        headers, mid = h.mail()
        h.start()
        await h.until(lambda: h.stage.stats.idle)
        proxy.cut()
        h.dovecot.deliver(h.reply(headers, mid, "ack"))
        await h.until(lambda: not h.stage.stats.connected, within=15.0)
        assert h.stage.reader.handled == 0
        await proxy.heal()
        await h.handled(1)
        assert h.stage.stats.replies == {"ack": 1}
        assert h.stage.stats.connections["ok"] >= 2
    finally:
        await h.stop()
        await proxy.close()


@pytest.mark.parametrize("how", ["silence", "close"])
@pytest.mark.parametrize("command", ["IDLE", "DONE", "UID", "SELECT"])
async def test_a_link_failing_at_any_command_is_replaced_and_nothing_is_lost(
    tmp_path: Path,
    dovecot: Dovecot,
    dovecot_ca: trustme.CA,
    dovecot_ca_file: Path,
    how: str,
    command: str,
) -> None:
    """Whatever the reader waits for when the link fails (the IDLE continuation, the
    end of IDLE, a search or a fetch, the folder), it gives up within
    ``imap.timeout``, connects again and handles each reply once."""
    relay = await ImapRelay.start(dovecot.host, dovecot.tls_port, dovecot_ca)
    h = Harness(
        tmp_path, dovecot, dovecot_ca_file, port=relay.port, timeout="2s", idle_refresh="60s"
    )
    try:
        headers, mid = h.mail()
        h.dovecot.deliver(h.reply(headers, mid, "ack"))
        relay.fail_after(command, how)  # type: ignore[arg-type]
        h.start()
        await h.handled(1)
        await h.until(lambda: relay.failed.is_set() or h.stage.stats.idle)
        if not relay.failed.is_set():  # not met before the first reply: met after it
            h.dovecot.deliver(h.reply(headers, mid, "thanks"))
            h.stage.reader.wake()
        await h.until(relay.failed.is_set, within=10.0)
        h.dovecot.deliver(h.reply(headers, mid, "unack"))
        h.stage.reader.wake()
        await h.until(lambda: h.stage.stats.replies.get("unack") == 1, within=15.0)
        await asyncio.sleep(0.5)  # a second read of any would show here
        assert h.stage.stats.replies["ack"] == 1
        assert h.stage.stats.connections["failed"] >= 1
    finally:
        await h.stop()
        await relay.close()
