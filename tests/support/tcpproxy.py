"""A loopback TCP proxy that can be cut like a network partition (in the test's loop).

``await TcpProxy.start(host, port)`` listens on a free loopback port and forwards
every connection to ``host:port``. :meth:`TcpProxy.cut` makes it a black hole:
bytes in either direction are dropped and new connections are accepted but go
nowhere, so the client sees no error, only silence (as behind a dead link, not a
closed port). :meth:`TcpProxy.heal` closes the connections that lived through the
cut and forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["ProxyThread", "TcpProxy"]


class TcpProxy:
    """See the module docstring; ``port`` is where clients connect."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.cut_off = False
        self.accepted = 0  # connections accepted so far
        self._closed = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, target_host: str, target_port: int) -> TcpProxy:
        proxy = cls(target_host, target_port)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    def cut(self) -> None:
        """From now on nothing passes, and nothing is closed."""
        self.cut_off = True

    async def heal(self) -> None:
        """Closes the connections that were cut; new ones are forwarded again."""
        self.cut_off = False
        await self._close_all(once=True)

    async def close(self) -> None:
        """Stops listening and closes every connection, the ones still being set up too;
        when it returns, no task of the proxy runs and its sockets are closed."""
        self._closed = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._close_all()

    async def _close_all(self, *, once: bool = False) -> None:
        # A connection being set up (its task waiting for the target) is cancelled like the
        # others. Closing, the rounds go on until none is left: one may have been accepted
        # just before the server closed.
        while self._tasks or self._writers:
            writers, self._writers = list(self._writers), set()
            for writer in writers:
                writer.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            self._tasks.difference_update(tasks)
            for writer in writers:  # the sockets released, not only asked to close
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if once:
                return

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # the proxy's to cancel while it connects, not only its pipes
        task.add_done_callback(self._tasks.discard)
        self._writers.add(writer)
        if self.cut_off:  # accepted, then silence
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while await reader.read(65536):
                    pass
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if self._closed:  # connected as the proxy closed: closed at once, not forwarded
            up_writer.close()
            writer.close()
            return
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(pipe)
            pipe.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    if self.cut_off:
                        continue  # dropped on the dead link
                    sink.write(data)
                    await sink.drain()
        finally:
            sink.close()


class ProxyThread:
    """A :class:`TcpProxy` on an event loop of its own thread (the test itself is sync)."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self._call(TcpProxy.start(host, port))

    def _call(self, coro: object) -> TcpProxy:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)  # type: ignore[arg-type]

    def cut(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.cut)

    def heal(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.heal(), self.loop).result(timeout=10)

    def close(self) -> None:
        """Closes the proxy, then :meth:`stop`."""
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result(timeout=10)
        self.stop()

    def stop(self) -> None:
        """Stops and closes the event loop (what still runs on it never runs again)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
