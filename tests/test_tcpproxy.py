"""The partition proxy of the cluster tests (tests/support/tcpproxy.py) leaves no socket open.

A connection the proxy was still setting up when it closed used to stay open: its
forwarding task was not the proxy's to cancel, so the connection to the target went on
(or waited for the target) after the proxy's event loop was closed, and pytest met it later,
in another test, as an unclosed transport garbage-collected there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import warnings

from tests.support.tcpproxy import ProxyThread


def _leaks() -> list[str]:
    """The ResourceWarnings (unclosed sockets and transports) of a full collection."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def _others() -> int:
    """How many tasks besides this one the proxy's loop runs."""
    return len(asyncio.all_tasks() - {asyncio.current_task()})


def test_a_connection_set_up_while_the_proxy_closes_is_closed_with_it() -> None:
    assert _leaks() == []  # nothing of earlier tests in the way
    late: list[socket.socket] = []
    with socket.socket() as target:
        # The target's accept queue is full (listen(0) and one connection it does not
        # accept yet): the proxy's connection to it waits for the handshake, and the
        # proxy closes while it does.
        target.bind(("127.0.0.1", 0))
        target.listen(0)
        filler = socket.create_connection(target.getsockname(), timeout=5)
        proxy = ProxyThread(*target.getsockname())
        try:
            with socket.create_connection(("127.0.0.1", proxy.proxy.port), timeout=5):
                deadline = time.monotonic() + 10
                while proxy.proxy.accepted == 0:
                    assert time.monotonic() < deadline, "the proxy never accepted"
                    time.sleep(0.01)
                asyncio.run_coroutine_threadsafe(proxy.proxy.close(), proxy.loop).result(10)
            # The target takes connections again: one the proxy still made would arrive
            # now (the kernel retries the handshake within a second or so).
            with filler, target.accept()[0]:
                pass
            target.settimeout(0.05)
            deadline = time.monotonic() + 10
            while not late and time.monotonic() < deadline:
                if not asyncio.run_coroutine_threadsafe(_others(), proxy.loop).result(10):
                    break  # nothing of the proxy runs any more
                with contextlib.suppress(TimeoutError):
                    late.append(target.accept()[0])
            while late and time.monotonic() < deadline:  # let the proxy take it up
                if asyncio.run_coroutine_threadsafe(_others(), proxy.loop).result(10) > 1:
                    break
                time.sleep(0.01)
        finally:
            proxy.stop()  # as ProxyThread.close() does right after the proxy's close
        del proxy
        for sock in late:
            sock.close()
        assert _leaks() == []
        assert late == []


def test_connections_forwarded_when_the_proxy_closes_are_closed_at_both_ends() -> None:
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        target.listen(8)
        target.settimeout(10)
        proxy = ProxyThread(*target.getsockname())
        try:
            client = socket.create_connection(("127.0.0.1", proxy.proxy.port), timeout=10)
            upstream, _ = target.accept()
            upstream.settimeout(10)
            client.sendall(b"ping")
            assert upstream.recv(4) == b"ping"
        finally:
            proxy.close()
        with client, upstream:
            assert upstream.recv(4) == b""  # closed by the proxy
            assert client.recv(4) == b""
        del proxy
        assert _leaks() == []
