"""One reply, start to end: checks, token, command, action, confirmation.

:meth:`ReplyHandler.handle` returns the result counted in
``netalert_ack_replies_total{result}``. Refused messages (see
:mod:`netalert.ack.policy`, and a missing, bad, expired or replayed token) change
nothing and are never answered; accepted ones act, write an audit line per alert,
and get one confirmation (rate-limited per sender).
"""

from __future__ import annotations

import email
import email.policy
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from typing import Protocol

from netalert.ack.body import message_body
from netalert.ack.commands import Command, Verb, parse_command
from netalert.ack.config import AckConfig
from netalert.ack.policy import authenticated, from_address, is_operator, loop_reason
from netalert.ack.reply import HELP, SenderLimiter, confirmation
from netalert.ack.stats import AckStats
from netalert.ack.store import Ack, AckTables, IssuedToken, audit
from netalert.ack.token import mac, parse_token, token_pattern
from netalert.alerts.model import Alert, AlertState
from netalert.config.types import format_duration
from netalert.logs import event
from netalert.mail.queue import MailQueue
from netalert.matchers import Matcher
from netalert.notify.silences import Silences

__all__ = ["AckTarget", "ReplyHandler"]

log = logging.getLogger("netalert.ack")

_REFERENCE = re.compile(r"<ack\.([a-z2-7]{48})@", re.IGNORECASE)
_ADDRESS_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")


class AckTarget(Protocol):
    """What the handler acts on: the agent's alerts (``service.py`` provides it)."""

    async def alert(self, fingerprint: str) -> Alert | None:
        """The alert now, or None when it is gone (another node's: read from PostgreSQL)."""

    def resolvable(self, fingerprint: str) -> bool:
        """True for a firing trap alert whose rule has no clear trap."""

    def resolve(self, fingerprint: str, now: float, by: str) -> bool:
        """Resolves such an alert; False when it could not."""

    def changed(self) -> None:
        """Acks or silences changed: the next flush must see them."""


@dataclass(frozen=True, slots=True)
class _Verdict:
    result: str
    sender: str = ""
    issued: IssuedToken | None = None
    command: Command | None = None


class ReplyHandler:
    """Judges and applies replies; see the module docstring."""

    def __init__(
        self,
        config: AckConfig,
        *,
        key: bytes,
        store: AckTables,
        silences: Silences,
        target: AckTarget,
        outbox: MailQueue | None,
        mail_from: str,
        stats: AckStats,
    ) -> None:
        self.config = config
        self.key = key
        self.store = store
        self.silences = silences
        self.target = target
        self.outbox = outbox
        self.mail_from = mail_from
        self.stats = stats
        self.limiter = SenderLimiter(
            config.confirm_per_sender,
            config.confirm_window.total_seconds(),
            config.confirm_senders_max,
        )
        self._pattern = token_pattern(config.reply_to)

    async def handle(self, raw: bytes, now: float) -> str:
        """Handles one message; returns its result (never raises for what a message holds)."""
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        verdict = await self._judge(msg, now)
        result = verdict.result
        if verdict.command is not None and verdict.issued is not None:
            result, text = await self._apply(verdict.command, verdict.issued, verdict.sender, now)
            self._confirm(verdict.sender, verdict.issued, text, now)
        else:
            log.warning(
                event(
                    "ack_refused",
                    result=result,
                    sender=verdict.sender or str(msg.get("From", "")),
                    message_id=str(msg.get("Message-ID", "")),
                )
            )
        self.stats.replies[result] += 1
        return result

    # --- judging ------------------------------------------------------------------------

    async def _judge(self, msg: Message, now: float) -> _Verdict:
        if loop_reason(msg) is not None:
            return _Verdict("auto_reply")
        sender = from_address(msg)
        if sender is None:
            return _Verdict("not_operator")
        if self.config.authserv_id and not authenticated(msg, self.config.authserv_id, sender):
            return _Verdict("unauthenticated", sender)
        if not is_operator(sender, self.config.operators):
            return _Verdict("not_operator", sender)
        text = self._token_text(msg)
        if text is None:
            return _Verdict("no_token", sender)
        parsed = parse_token(text)
        issued = await self.store.token(parsed.nid) if parsed is not None else None
        if parsed is None or issued is None:
            return _Verdict("bad_token", sender)
        expected = mac(self.key, parsed.nid, parsed.expires, (a.fingerprint for a in issued.alerts))
        if not hmac.compare_digest(expected, parsed.mac):
            return _Verdict("bad_token", sender)
        if parsed.expires < now or issued.expires < now:
            return _Verdict("expired_token", sender)
        command = parse_command(message_body(msg))
        if command.verb is not Verb.HELP and await self.store.used(issued.nid, command.verb.value):
            return _Verdict("replayed", sender)
        return _Verdict("accepted", sender, issued, command)

    def _token_text(self, msg: Message) -> str | None:
        values = [str(v) for name in _ADDRESS_HEADERS for v in msg.get_all(name) or []]
        for _, address in getaddresses(values):
            found = self._pattern.search(address)
            if found:
                return found.group(1).lower()
        for name in ("In-Reply-To", "References"):
            for value in msg.get_all(name) or []:
                ref = _REFERENCE.search(str(value))
                if ref:
                    return ref.group(1).lower()
        return None

    # --- acting -------------------------------------------------------------------------

    async def _apply(
        self, command: Command, issued: IssuedToken, sender: str, now: float
    ) -> tuple[str, str]:
        """Acts; returns the result and the confirmation's text."""
        if command.verb is Verb.HELP:
            return "help", HELP
        alerts = [await self.target.alert(a.fingerprint) for a in issued.alerts]
        firing = [a for a in alerts if a is not None and a.state is AlertState.FIRING]
        verb = command.verb
        if verb is Verb.SILENCE:
            text = await self._silence(command, issued, sender, now)
            result = "silence"
        elif verb is Verb.RESOLVE:
            done = [a for a in firing if self.target.resolvable(a.fingerprint)]
            for alert in done:
                if self.target.resolve(alert.fingerprint, now, sender):
                    audit(
                        "resolve", alert=alert.fingerprint, rule=alert.rule, by=sender, via="mail"
                    )
            result = "resolve" if done else "not_applicable"
            text = (
                f"Resolved by {sender}:\n{_listing(done)}"
                if done
                else "Nothing resolved: `resolve` applies only to firing trap alerts whose "
                "rule has no clear trap.\n"
            )
        else:
            text, result = self._ack(verb, firing, command.comment, sender, now)
        acked = verb is Verb.ACK
        await self.store.apply(
            issued.nid,
            verb.value,
            now,
            put=[
                Ack(alert.fingerprint, alert.starts_at, sender, now, command.comment, "mail")
                for alert in (firing if acked else ())
            ],
            delete=[alert.fingerprint for alert in firing] if verb is Verb.UNACK else [],
        )
        for alert in firing if verb in (Verb.ACK, Verb.UNACK) else ():
            audit(
                verb.value,
                alert=alert.fingerprint,
                rule=alert.rule,
                device=alert.device,
                by=sender,
                via="mail",
                comment=command.comment,
            )
        self.target.changed()
        return result, text

    def _ack(
        self, verb: Verb, firing: Sequence[Alert], comment: str, sender: str, now: float
    ) -> tuple[str, str]:
        if not firing:
            return "Nothing to do: none of the alerts of this mail fires now.\n", "not_applicable"
        if verb is Verb.ACK:
            note = f" ({comment})" if comment else ""
            return (
                f"Acknowledged by {sender}{note}:\n{_listing(firing)}\n"
                "They are not mailed again until they resolve; reply `unack` to undo.\n",
                "ack",
            )
        return (
            f"Acknowledgement removed by {sender}:\n{_listing(firing)}\n"
            "They are mailed again every repeat_interval while they fire.\n",
            "unack",
        )

    async def _silence(self, command: Command, issued: IssuedToken, sender: str, now: float) -> str:
        cap = self.config.max_silence.total_seconds()
        seconds = min(command.seconds, cap)
        comment = command.comment or "silenced by reply"
        made = []
        for alert in issued.alerts:
            matchers = [Matcher(k, "=", v) for k, v in sorted(alert.labels.items())]
            silence = await self.silences.add_matchers_async(
                matchers, starts_at=now, ends_at=now + seconds, comment=comment, author=sender
            )
            made.append(silence.id)
            audit(
                "silence",
                alert=alert.fingerprint,
                silence=silence.id,
                duration=f"{seconds:.0f}s",
                by=sender,
                via="mail",
                comment=comment,
            )
        length = format_duration_seconds(seconds)
        capped = " (capped at [ack].max_silence)" if seconds < command.seconds else ""
        return (
            f"Silenced for {length}{capped} by {sender}: {len(made)} alert(s), "
            f"silence ids {', '.join(made)}.\nEnd one early with `netalert silence expire ID`.\n"
        )

    def _confirm(self, sender: str, issued: IssuedToken, text: str, now: float) -> None:
        if self.outbox is None:
            return
        if not self.limiter.allow(sender, now):
            self.stats.confirmations["rate_limited"] += 1
            log.warning(event("ack_confirmation_limited", to=sender))
            return
        msg = confirmation(
            sender=self.mail_from,
            to=sender,
            subject=issued.subject,
            in_reply_to=issued.message_id,
            text=text,
            now=now,
        )
        self.outbox.enqueue(msg, [sender], now=now)
        self.stats.confirmations["queued"] += 1


def format_duration_seconds(seconds: float) -> str:
    """``7200`` as ``2h``."""
    from datetime import timedelta

    return format_duration(timedelta(seconds=seconds))


def _listing(alerts: Sequence[Alert]) -> str:
    return "".join(f"  - {a.rule} on {a.device} ({a.fingerprint})\n" for a in alerts)
