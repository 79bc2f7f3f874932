"""The reader stage: an IMAP session that hands each new message to the handler once.

One connection (implicit TLS, or STARTTLS required), logged in, with
``[ack].folder`` selected. Messages are taken by UID in order, ``max_batch`` at a
time, each read up to ``max_message_bytes``; after each one the last UID handled
and the folder's UIDVALIDITY are committed (``ack_mailbox``), so a message is
handled once across reconnects and restarts, and a folder made anew (a new
UIDVALIDITY) is read from its start, except the messages flagged
``$NetalertDone`` or ``\\Deleted`` (a folder renumbered with the handled messages
still in it). A handled message is moved to ``processed_folder`` (copied and
flagged ``\\Deleted`` when the server cannot move), or flagged ``\\Seen
$NetalertDone``. Between searches the session waits in IDLE when the server
offers it (restarted every ``idle_refresh``), else ``poll_interval``. Any failure
ends the session; the next one starts after an exponential backoff capped at
``reconnect_max``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib

from netalert.ack.config import AckConfig
from netalert.ack.stats import AckStats
from netalert.ack.store import AckTables
from netalert.logs import event
from netalert.mail.transport import CA_FILE_MAX_BYTES
from netalert.readfile import read_bounded

__all__ = ["ImapError", "ImapReader", "imap_context", "reconnect_delay"]

log = logging.getLogger("netalert.ack")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)\b")
_DONE = "$NetalertDone"
_DONE_FLAGS = f"(\\Seen {_DONE})"
_BACKOFF_BASE = 1.0


class ImapError(Exception):
    """The IMAP server refused a command or the session broke."""


def imap_context(config: AckConfig) -> ssl.SSLContext:
    """The TLS context of ``[ack.imap]``: system CAs plus ``ca_file``; ``verify`` off is logged."""
    imap = config.imap
    cadata = None
    if imap.ca_file is not None:  # bounded and never blocking: it may name a FIFO
        cadata = read_bounded(imap.ca_file, CA_FILE_MAX_BYTES).decode("utf-8", "replace")
    context = ssl.create_default_context(cadata=cadata)
    if imap.ca_file is not None:
        context.load_default_certs()
    if not imap.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines)[:200]
        raise ImapError(f"{what}: {response.result} {detail.decode('utf-8', 'replace')}")
    return response


class ImapReader:
    """Reads replies from ``[ack.imap]``; ``handle(raw, now)`` judges and applies each."""

    def __init__(
        self,
        config: AckConfig,
        *,
        store: AckTables,
        handle: Callable[[bytes, float], Awaitable[str]],
        stats: AckStats,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.handle = handle
        self.stats = stats
        self.clock = clock
        self.handled = 0  # messages handed to ``handle`` since the start
        self._lost = asyncio.Event()
        self._wake = asyncio.Event()
        self._failures = 0

    def wake(self) -> None:
        """Search now (tests, and a reload)."""
        self._wake.set()

    async def run(self) -> None:
        """Sessions until cancelled, with backoff after each failure."""
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure ends the session; the next one starts clean
                self._failed(exc)
            self.stats.connected = False
            self.stats.idle = False
            await asyncio.sleep(
                reconnect_delay(self._failures, self.config.reconnect_max.total_seconds())
            )

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.stats.connections["failed"] += 1
        self.stats.last_error = text
        imap = self.config.imap
        log.warning(
            event(
                "ack_imap_failed",
                server=f"{imap.host}:{imap.effective_port}",
                error=text,
                failures=self._failures,
            )
        )

    async def _connect(self) -> aioimaplib.IMAP4:
        imap = self.config.imap
        timeout = imap.timeout.total_seconds()
        context = imap_context(self.config)
        self._lost = asyncio.Event()
        lost = self._lost
        client = aioimaplib.IMAP4(
            host=imap.host,
            port=imap.effective_port,
            timeout=timeout,
            conn_lost_cb=lambda exc: lost.set(),
            ssl_context=context if imap.security == "tls" else None,
        )
        try:
            await client.wait_hello_from_server()
            if imap.security == "starttls":
                await self._starttls(client, context)
            _ok(await client.login(imap.username, imap.password.get_secret_value()), "LOGIN")
        except BaseException:
            _close(client)
            raise
        return client

    async def _starttls(self, client: aioimaplib.IMAP4, context: ssl.SSLContext) -> None:
        timeout = self.config.imap.timeout.total_seconds()
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS ([ack.imap].security)")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), timeout)
        _ok(response, "STARTTLS")
        loop = asyncio.get_running_loop()
        transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self.config.imap.host
            ),
            timeout,
        )
        protocol.transport = transport
        await asyncio.wait_for(protocol.capability(), timeout)  # what it says now counts

    async def _session(self) -> None:
        client = await self._connect()
        try:
            folder = self.config.folder
            selected = _ok(await client.select(folder), f"SELECT {folder}")
            validity = _uidvalidity(selected.lines)
            self.stats.connected = True
            self.stats.connections["ok"] += 1
            self._failures = 0
            log.info(event("ack_imap_ready", folder=folder, idle=client.has_capability("IDLE")))
            while True:
                while await self._drain(client, folder, validity):
                    pass
                if self._lost.is_set():
                    raise ImapError("connection lost")
                if client.has_capability("IDLE"):
                    await self._idle(client)
                else:
                    await self._pause(self.config.poll_interval.total_seconds())
                    _ok(await client.noop(), "NOOP")
        finally:
            self.stats.connected = False
            _close(client)

    async def _pause(self, seconds: float) -> None:
        waits = {
            asyncio.ensure_future(self._lost.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        self._wake.clear()

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        refresh = self.config.idle_refresh.total_seconds()
        # aioimaplib waits for the server's continuation without a bound and does not
        # notice a lost connection meanwhile: a link that failed as IDLE was sent
        # held the reader for ever
        starting = asyncio.ensure_future(client.idle_start(timeout=refresh))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait(
                {starting, lost},
                timeout=self.config.imap.timeout.total_seconds(),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
            if not starting.done():
                starting.cancel()
        if not starting.done() or starting.cancelled():
            raise ImapError(
                "connection lost at IDLE" if self._lost.is_set() else "no answer to IDLE"
            )
        idle = starting.result()
        self.stats.idle = True
        push = asyncio.ensure_future(client.wait_server_push(timeout=refresh + 5))
        waits = {
            push,
            asyncio.ensure_future(self._lost.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=refresh + 10, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            self.stats.idle = False
            self._wake.clear()
        if self._lost.is_set():
            raise ImapError("connection lost during IDLE")
        client.idle_done()
        await asyncio.wait_for(idle, self.config.imap.timeout.total_seconds())

    async def _drain(self, client: aioimaplib.IMAP4, folder: str, validity: int) -> bool:
        """Handles up to ``max_batch`` new messages; True when more may wait."""
        position = await self.store.position(folder)
        last = position[1] if position is not None and position[0] == validity else 0
        # Neither flagged done nor deleted (copied to processed_folder, not yet expunged):
        # a folder renumbered under a new UIDVALIDITY (a restore) does not hand over
        # the handled messages it still holds again.
        found = _ok(
            await client.uid_search(f"UID {last + 1}:* UNKEYWORD {_DONE} UNDELETED", charset=None),
            "UID SEARCH",
        )
        uids = sorted(
            u for line in found.lines[:-1] for u in map(int, bytes(line).split()) if u > last
        )
        batch = uids[: self.config.max_batch]
        for uid in batch:
            await self._one(client, folder, validity, uid)
        return len(uids) > len(batch)

    async def _one(self, client: aioimaplib.IMAP4, folder: str, validity: int, uid: int) -> None:
        limit = self.config.max_message_bytes
        fetched = _ok(await client.uid("fetch", str(uid), f"(UID BODY.PEEK[]<0.{limit}>)"), "FETCH")
        raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
        result = "gone"
        if raw is not None:
            result = await self.handle(raw, self.clock())
            self.handled += 1
        await self.store.save_position(folder, validity, uid)
        log.info(event("ack_reply", uid=uid, result=result))
        done = self.config.processed_folder
        if done and client.has_capability("MOVE"):
            _ok(await client.uid("move", str(uid), done), "MOVE")
        elif done:
            _ok(await client.uid("copy", str(uid), done), "COPY")
            _ok(await client.uid("store", str(uid), "+FLAGS.SILENT (\\Deleted \\Seen)"), "STORE")
            with contextlib.suppress(aioimaplib.Abort):  # no UIDPLUS: left for the next EXPUNGE
                await client.uid("expunge", str(uid))
        else:
            _ok(await client.uid("store", str(uid), f"+FLAGS.SILENT {_DONE_FLAGS}"), "STORE")


def reconnect_delay(failures: int, cap: float) -> float:
    """Seconds before the next session after ``failures`` failed ones in a row:
    1, 2, 4, ... up to ``cap`` (``reconnect_max``)."""
    return min(cap, _BACKOFF_BASE * float(2 ** min(max(failures - 1, 0), 20)))


def _uidvalidity(lines: list[Any]) -> int:
    for line in lines:
        found = _UIDVALIDITY.search(bytes(line))
        if found:
            return int(found.group(1))
    raise ImapError("SELECT did not say the folder's UIDVALIDITY")


def _close(client: aioimaplib.IMAP4) -> None:
    """Closes the session's connection (no LOGOUT: it ends on a failure or a stop).

    Aborted, not closed: a TLS close waits for the peer's answer (up to 30 s) on a
    link that may be dead, and the socket stays open meanwhile."""
    transport = getattr(client.protocol, "transport", None)
    if transport is not None:
        transport.abort()
    for task in (*client.tasks, *client.protocol.tasks, client._client_task):
        task.cancel()
