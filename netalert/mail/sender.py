"""The sender: drains the outbox over one reused SMTP connection.

Each round takes the due entries in batches, opens (or reuses) one
connection — the primary server, else the fallback smarthost — and submits
them one after another. What the server answers is recorded per recipient:
accepted and permanently refused recipients leave, the others wait for
:func:`~netalert.mail.outbox.next_backoff`. aiosmtplib raises only when every
recipient is refused; partial refusals come back in ``sendmail``'s return
value and are read from there.

While connections fail, the whole sender holds off for the same capped
backoff (so a dead server costs one connection attempt per interval, not one
per message). The connection is closed after ``idle_close`` seconds without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from netalert.logs import event
from netalert.mail.classify import (
    RetryClass,
    classify_smtp_error,
    classify_smtp_reply,
    describe,
    failure_kind,
)
from netalert.mail.errors import MailError
from netalert.mail.outbox import OutboxEntry, RecipientResult, next_backoff
from netalert.mail.queue import MailQueue
from netalert.mail.stats import MailStats
from netalert.mail.transport import (
    SmtpTarget,
    close_client,
    connect,
    tls_context,
    warn_unverified,
)

__all__ = ["Sender"]

log = logging.getLogger("netalert.mail")

_STALE_CHECK_EVERY = 1.0


class Sender:
    """Delivers what the outbox holds; one per process."""

    def __init__(
        self,
        outbox: MailQueue,
        primary: SmtpTarget,
        *,
        fallback: SmtpTarget | None = None,
        stats: MailStats | None = None,
        retry_max: float = 60.0,
        max_age: float = 3600.0,
        batch_size: int = 100,
        idle_close: float = 10.0,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        tls: Sequence[ssl.SSLContext | None] | None = None,
    ) -> None:
        """Prepares the sender.

        ``tls`` holds the TLS contexts of ``primary`` and ``fallback`` built
        beforehand (:func:`netalert.prepare.prepare`); without it they are built
        here, once.

        Raises:
            MailTlsError: A ``ca_file`` cannot be loaded (only without ``tls``).
        """
        self.outbox = outbox
        self.stats = stats if stats is not None else MailStats()
        self.retry_max = retry_max
        self.max_age = max_age
        self.batch_size = batch_size
        self.idle_close = idle_close
        self.clock = clock
        self.rand = rand
        if tls is None:
            self._targets = [(primary, tls_context(primary))]
            if fallback is not None:
                self._targets.append((fallback, tls_context(fallback)))
        else:
            self._targets = [(primary, tls[0])]
            warn_unverified(primary)
            if fallback is not None:
                self._targets.append((fallback, tls[1]))
                warn_unverified(fallback)
        self._client: aiosmtplib.SMTP | None = None
        self._target: SmtpTarget | None = None
        self._last_used = 0.0
        self._connect_failures = 0
        self._hold_until = 0.0
        self._next_stale_check = 0.0
        self._wake = asyncio.Event()
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------

    def wake(self) -> None:
        """Tells the sender something was enqueued."""
        self._wake.set()

    async def run(self) -> None:
        """Delivers until :meth:`stop`; sleeps until the next due entry or a wake-up."""
        while not self._stopping:
            await self.run_once()
            now = self.clock()
            deadlines = [now + _STALE_CHECK_EVERY * 5]
            due = self.outbox.next_due()
            if due is not None:
                deadlines.append(max(due, self._hold_until))
            if self._client is not None:
                deadlines.append(self._last_used + self.idle_close)
            delay = max(0.0, min(deadlines) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._client is not None and self.clock() - self._last_used >= self.idle_close:
                await self.close()

    async def stop(self) -> None:
        """Ends :meth:`run` after its current message and closes the connection."""
        self._stopping = True
        self._wake.set()
        await self.close()

    async def close(self) -> None:
        """Closes the SMTP connection politely (QUIT), if one is open."""
        client, self._client = self._client, None
        if client is not None:
            await close_client(client)

    # ---- one round -----------------------------------------------------------------

    async def run_once(self) -> int:
        """Attempts every due entry once; returns how many were attempted."""
        now = self.clock()
        self._check_stale(now)
        attempted = 0
        if now >= self._hold_until:
            while not self._stopping:
                entries = self.outbox.due(now, self.batch_size)
                if not entries:
                    break
                done = await self._send_batch(entries)
                attempted += done
                if done < len(entries):
                    break  # connection trouble: the rest waits for the hold-off
                now = self.clock()
            if self._target is not None and self._target is not self._targets[0][0]:
                # on the fallback: give the primary a chance at the next round
                await self.close()
        self.stats.pending = self.outbox.pending()
        if self.stats.stale:
            self.stats.stale = self.outbox.stale_count()
        return attempted

    async def _send_batch(self, entries: Sequence[OutboxEntry]) -> int:
        # a mail goes out only once its outbox row is on disk (group commit, see StateWriter)
        await self.outbox.synced()
        for index, entry in enumerate(entries):
            now = self.clock()
            try:
                client, fresh = await self._connection(now)
            except MailError as exc:
                self._connection_failed(entries[index:], exc, now)
                return index
            attempt = await self._attempt(client, entry)
            if (
                isinstance(attempt.exc, aiosmtplib.SMTPServerDisconnected)
                and not fresh
                and not client.is_connected
            ):
                # a reused connection the server had closed while idle: one fresh try
                try:
                    client, fresh = await self._connection(now)
                except MailError:
                    pass
                else:
                    attempt = await self._attempt(client, entry)
            self._record(entry, attempt)
            self._last_used = self.clock()
        return len(entries)

    async def _connection(self, now: float) -> tuple[aiosmtplib.SMTP, bool]:
        if self._client is not None and self._client.is_connected:
            return self._client, False
        if self._client is not None:
            self._client.close()  # dropped by the server: release the socket too
            self._client = None
        last: MailError | None = None
        for target, context in self._targets:
            try:
                client = await connect(target, context)
            except MailError as exc:
                if last is not None:
                    exc = type(exc)(f"{last}; fallback: {exc}", server=exc.server, code=exc.code)
                last = exc
                if len(self._targets) > 1 and target is self._targets[0][0]:
                    log.warning(
                        event("smtp_primary_failed", error=str(exc), note="trying the fallback")
                    )
                continue
            self._client, self._target = client, target
            self._connect_failures = 0
            self.stats.using_fallback = target is not self._targets[0][0]
            return client, True
        assert last is not None
        raise last

    def _connection_failed(
        self, entries: Sequence[OutboxEntry], exc: MailError, now: float
    ) -> None:
        kind = failure_kind(exc)
        self._connect_failures += 1
        hold = next_backoff(self._connect_failures, cap=self.retry_max, rand=self.rand)
        self._hold_until = now + hold
        self.stats.failure(kind, str(exc), now)
        log.error(
            event(
                "smtp_connect_failed",
                kind=kind,
                error=str(exc),
                waiting=len(entries),
                retry_in=f"{hold:.1f}s",
            )
        )
        for entry in entries:
            retry_at = now + next_backoff(entry.attempts + 1, cap=self.retry_max, rand=self.rand)
            self.outbox.record(entry, (), error=str(exc), retry_at=max(retry_at, self._hold_until))

    async def _attempt(self, client: aiosmtplib.SMTP, entry: OutboxEntry) -> _Attempt:
        where = self._target.label if self._target is not None else "?"
        try:
            errors, _ = await client.sendmail(entry.sender, list(entry.recipients), entry.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = [_refusal(r.recipient, r.code, r.message) for r in exc.recipients]
            return _Attempt(tuple(refused), f"{where}: {describe(exc)}", None)
        except Exception as exc:  # every failure must be recorded, none may stop the sender
            retry = classify_smtp_error(exc)
            error = f"{where}: {describe(exc)}"
            code = getattr(exc, "code", None)
            results = tuple(
                RecipientResult(a, False, retry is RetryClass.PERMANENT, code, error)
                for a in entry.recipients
            )
            return _Attempt(results, error, exc)
        results = tuple(
            _refusal(a, errors[a].code, errors[a].message)
            if a in errors
            else RecipientResult(a, True)
            for a in entry.recipients
        )
        error = "; ".join(f"{r.address}: {r.error}" for r in results if not r.accepted)
        return _Attempt(results, f"{where}: {error}" if error else "", None)

    def _record(self, entry: OutboxEntry, attempt: _Attempt) -> bool:
        now = self.clock()
        accepted = sum(1 for r in attempt.results if r.accepted)
        if accepted:
            self.stats.success(now, accepted)
        if attempt.exc is not None:
            kind = failure_kind(attempt.exc)
            self.stats.failure(kind, attempt.error, now)
            log.warning(
                event(
                    "mail_attempt_failed",
                    message_id=entry.message_id,
                    kind=kind,
                    permanent=classify_smtp_error(attempt.exc) is RetryClass.PERMANENT,
                    error=attempt.error,
                )
            )
        else:
            for r in attempt.results:
                if r.accepted:
                    continue
                kind = "rejected" if r.permanent else failure_kind(MailError("", code=r.code))
                self.stats.failure(kind, f"{r.address}: {r.error}", now)
                log.warning(
                    event(
                        "mail_recipient_refused",
                        message_id=entry.message_id,
                        rcpt=r.address,
                        permanent=r.permanent,
                        reply=r.error,
                    )
                )
        for r in attempt.results:
            if r.permanent:
                log.error(
                    event(
                        "mail_failed",
                        message_id=entry.message_id,
                        rcpt=r.address,
                        reply=r.error,
                        subject=entry.subject,
                    )
                )
        retry_at = now + next_backoff(entry.attempts + 1, cap=self.retry_max, rand=self.rand)
        return self.outbox.record(
            entry, attempt.results, error=attempt.error, retry_at=retry_at, now=now
        )

    def _check_stale(self, now: float) -> None:
        if now < self._next_stale_check:
            return
        self._next_stale_check = now + _STALE_CHECK_EVERY
        for entry in self.outbox.mark_stale(now, self.max_age):
            log.error(
                event(
                    "mail_stale",
                    message_id=entry.message_id,
                    age=f"{now - entry.created:.0f}s",
                    attempts=entry.attempts,
                    rcpt=",".join(entry.recipients),
                    last_error=entry.last_error,
                    subject=entry.subject,
                    note="alert mail is NOT getting through; it stays queued",
                )
            )
        self.stats.stale = self.outbox.stale_count()


@dataclass(frozen=True, slots=True)
class _Attempt:
    results: tuple[RecipientResult, ...]
    error: str
    exc: BaseException | None


def _refusal(address: str, code: int, message: str) -> RecipientResult:
    permanent = classify_smtp_reply(code) is RetryClass.PERMANENT
    return RecipientResult(address, False, permanent, code, f"{code} {message}".strip())
