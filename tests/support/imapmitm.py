"""A TLS-terminating IMAP relay that can fail a session at a chosen command.

``await ImapRelay.start(server, ca)`` listens on a free loopback port with a
certificate of the test CA ``ca``, and relays each session, in clear text
inside, to ``server``'s implicit-TLS port. The relay reads the client's command
lines, so a test can make the link fail as a given command is sent (it never
reaches the server):
:meth:`ImapRelay.fail_after` with ``"silence"`` drops everything from then on in
both directions and closes nothing (a dead link); with ``"close"`` it closes both
sides (a server that died). Only the first session that sends the command fails;
later sessions are relayed as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Literal

import trustme

__all__ = ["ImapRelay"]

Failure = Literal["silence", "close"]


class ImapRelay:
    """See the module docstring; ``port`` is where clients connect."""

    def __init__(self, host: str, port: int, ca: trustme.CA) -> None:
        self.target = (host, port)
        self.port = 0
        self.commands: list[bytes] = []  # every client line seen, across sessions
        self.failed = asyncio.Event()
        self._trigger: tuple[bytes, Failure] | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        cert = ca.issue_cert(host, "localhost")
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._server_context)
        self._client_context = ssl.create_default_context()
        ca.configure_trust(self._client_context)

    @classmethod
    async def start(cls, host: str, port: int, ca: trustme.CA) -> ImapRelay:
        relay = cls(host, port, ca)
        relay._server = await asyncio.start_server(
            relay._accept, host, 0, ssl=relay._server_context
        )
        relay.port = relay._server.sockets[0].getsockname()[1]
        return relay

    def fail_after(self, command: str, how: Failure) -> None:
        """The link fails ``how`` at the next client line whose command (after the
        tag) is ``command`` (case-insensitive); that line is not relayed."""
        self.failed.clear()
        self._trigger = (command.upper().encode(), how)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.target, ssl=self._client_context, server_hostname="localhost"
            )
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        dead = asyncio.Event()  # this session's link: set once it failed silently
        down = asyncio.create_task(self._down(up_reader, writer, dead))
        self._tasks.add(down)
        down.add_done_callback(self._tasks.discard)
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                if dead.is_set():
                    continue  # dropped on the dead link
                self.commands.append(line)
                if self._trigger is not None and self._matches(line):
                    how = self._trigger[1]
                    self._trigger = None
                    self.failed.set()
                    if how == "close":
                        break
                    dead.set()  # the command is lost on the way: no answer ever comes
                    continue
                up_writer.write(line)
                await up_writer.drain()
        if not dead.is_set():
            up_writer.close()
            writer.close()

    def _matches(self, line: bytes) -> bool:
        assert self._trigger is not None
        words = line.upper().split(maxsplit=2)
        # "tag COMMAND ...", or DONE, which ends IDLE untagged
        return words[1:2] == [self._trigger[0]] or words == [self._trigger[0]]

    async def _down(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, dead: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                if dead.is_set():
                    continue
                sink.write(data)
                await sink.drain()
        if not dead.is_set():
            sink.close()
