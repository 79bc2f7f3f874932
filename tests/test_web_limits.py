"""Bounds of the status page's HTTP server, against a real `netalert run` process.

The attack these tests replay: idle and half-sent requests held connections for
minutes until the process ran out of file descriptors, and asyncio then logged
every failed ``accept()`` (thousands of lines a second). Each test opens raw
loopback sockets to the agent's web port and watches what the agent does with
them: when it closes them, what it answers past the connection cap, what
/metrics counts and what the log holds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.errors import ConfigError
from netalert.web.accept import AcceptErrorLog
from netalert.web.guard import HttpStats
from netalert.web.wiring import descriptors_short
from tests.support.faults import ROOT, AgentProcess, metric_values
from tests.support.ports import free_tcp_port

HEADER = 2.0  # http_header_timeout of the test agent, seconds
BODY = 1.0  # http_body_timeout
IDLE = 1.0  # http_idle_timeout
CAP = 4  # http_max_connections
SLACK = 1.5  # scheduling slack on a shared machine, seconds

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
http_header_timeout = "{header}s"
http_body_timeout = "{body}s"
http_idle_timeout = "{idle}s"
http_max_connections = {cap}

[traps]
enabled = false
"""

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def agent_config(port: int, *, header: float = HEADER, cap: int = CAP) -> str:
    return CONFIG.format(http=port, header=header, body=BODY, idle=IDLE, cap=cap)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, mib_cache: Path) -> Iterator[AgentProcess]:
    """One agent for the timeout and cap tests (each reads counter deltas, not totals)."""
    port = free_tcp_port()
    proc = AgentProcess(tmp_path_factory.mktemp("web-limits"), agent_config(port), port, mib_cache)
    proc.start()
    yield proc
    proc.cleanup()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


def wait_closed(
    sock: socket.socket, within: float, *, trickle: bytes = b"", every: float = 0.2
) -> float | None:
    """Seconds until the peer closed ``sock`` (EOF or reset), or None if it is still open
    after ``within``. Sends ``trickle`` every ``every`` seconds meanwhile (a slow client);
    whatever the peer sends is read and dropped."""
    start = time.monotonic()
    deadline = start + within
    next_send = start
    while (now := time.monotonic()) < deadline:
        if trickle and now >= next_send:
            try:
                sock.sendall(trickle)
            except OSError:  # reset or broken pipe: the agent closed it
                return time.monotonic() - start
            next_send = now + every
        wake = min(deadline, next_send) if trickle else deadline
        sock.settimeout(max(0.01, wake - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    return None


def read_response(sock: socket.socket, within: float = 5.0) -> tuple[int, bytes, bytes]:
    """Reads one HTTP response (status, head, body); fails on EOF or after ``within``."""
    deadline = time.monotonic() + within
    buf = b""

    def more() -> None:
        nonlocal buf
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        assert data, f"connection closed mid-response: {buf!r}"
        buf += data

    while b"\r\n\r\n" not in buf:
        more()
    head, _, body = buf.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        more()
        body = buf.partition(b"\r\n\r\n")[2]
    return int(head.split(b" ", 2)[1]), head, body[:length]


def scrape(agent: AgentProcess, name: str) -> dict[str, float] | None:
    """The samples of ``name`` in /metrics, or None when the agent refused the scrape."""
    status, body = agent.get("/metrics")
    if status == 503:
        return None
    assert status == 200, body
    return metric_values(body, name)


def counter(agent: AgentProcess, name: str, labels: str = "") -> float:
    values = scrape(agent, name)
    assert values is not None, "scrape refused"
    assert labels in values, f"{name}{{{labels}}} not in /metrics"
    return values[labels]


def healthy(agent: AgentProcess) -> bool:
    """True when /healthz answers 200 on a fresh connection within a second."""
    try:
        return agent.get("/healthz", timeout=1.0)[0] == 200
    except OSError:  # refused, reset or timed out
        return False


def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# --- timeouts ----------------------------------------------------------------------------


def test_half_sent_request_is_closed_within_the_header_timeout(agent: AgentProcess) -> None:
    before = counter(agent, "netalert_http_timeouts_total", 'phase="header"')
    with connect(agent.http_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # slowloris: a header line every 200 ms, never the blank line that ends them
        took = wait_closed(sock, HEADER + SLACK, trickle=b"X-Slow: 1\r\n", every=0.2)
    assert took is not None, (
        f"a half-sent request still held its connection after {HEADER + SLACK}s"
    )
    assert took >= HEADER - 0.5, f"closed after {took:.2f}s, before the header timeout"
    after = counter(agent, "netalert_http_timeouts_total", 'phase="header"')
    assert after >= before + 1


def test_idle_keep_alive_connection_is_closed_within_the_idle_timeout(
    agent: AgentProcess,
) -> None:
    before = counter(agent, "netalert_http_timeouts_total", 'phase="idle"')
    with connect(agent.http_port) as sock:
        # keep-alive works while the pauses stay under the idle timeout
        for _ in range(3):
            sock.sendall(REQUEST)
            status, _, body = read_response(sock)
            assert (status, body) == (200, b"ok\n")
            time.sleep(IDLE / 4)
        took = wait_closed(sock, IDLE + SLACK)
    assert took is not None, f"an idle keep-alive connection was still open after {IDLE + SLACK}s"
    assert counter(agent, "netalert_http_timeouts_total", 'phase="idle"') >= before + 1


def test_request_body_is_not_waited_for(agent: AgentProcess) -> None:
    # The routes are GET only and never read a body: one announced but sent slowly
    # must not keep the connection once the answer is out.
    with connect(agent.http_port) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
            + b"x" * 100
        )
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"ok\n")
        took = wait_closed(sock, BODY + SLACK, trickle=b"x" * 10, every=0.1)
    assert took is not None, "a trickled request body held the connection after the response"


# --- connection cap ----------------------------------------------------------------------


def open_accepted(port: int) -> socket.socket:
    """A connection the agent accepted (not refused): retried while one that just
    closed may still count against the cap."""
    for _ in range(40):
        sock = connect(port)
        if wait_closed(sock, 0.25) is None:
            return sock
        sock.close()
    raise AssertionError("every connection under the cap was refused")


def test_connections_past_the_cap_are_refused_and_counted(agent: AgentProcess) -> None:
    eventually(
        lambda: scrape(agent, "netalert_http_connections") == {"": 1.0},
        10.0,
        "the scrape's own connection should be the only one open",
    )
    refused_before = counter(agent, "netalert_http_connections_refused_total")
    idle: list[socket.socket] = []
    try:
        idle += [connect(agent.http_port) for _ in range(CAP - 1)]
        # under the cap, a fresh connection is answered; /metrics sees the idle ones
        eventually(lambda: healthy(agent), HEADER / 2, "/healthz not answered under the cap")
        gauge = scrape(agent, "netalert_http_connections")
        assert gauge in ({"": float(CAP)}, None), gauge
        idle.append(open_accepted(agent.http_port))  # now at the cap
        for _ in range(3):
            with connect(agent.http_port) as extra:
                began = time.monotonic()
                status, head, _ = read_response(extra, within=HEADER / 2)
                assert status == 503, head
                assert wait_closed(extra, 1.0) is not None, "a refused connection stayed open"
                assert time.monotonic() - began < HEADER / 2
        # the idle connections are closed by the header timeout, freeing the cap
        for sock in idle:
            assert wait_closed(sock, HEADER + SLACK) is not None, "an idle connection stayed"
    finally:
        for sock in idle:
            sock.close()
    eventually(lambda: healthy(agent), 5.0, "/healthz not answered once the idle ones left")
    refused = counter(agent, "netalert_http_connections_refused_total")
    assert refused >= refused_before + 3
    # one log line for the lot (http_log_interval is 60 s, the default)
    lines = [line for line in agent.log().splitlines() if "http_refused" in line]
    assert len(lines) == 1, lines
    assert f"http_refused open={CAP} max_connections={CAP} suppressed=0" in lines[0]


# --- accept() errors in the log ----------------------------------------------------------


def test_accept_errors_are_logged_once_per_interval(tmp_path: Path, mib_cache: Path) -> None:
    port = free_tcp_port()
    # The cap is far above what 64 descriptors allow: accept() itself fails (EMFILE).
    text = agent_config(port, cap=1000)
    agent = AgentProcess(tmp_path, text, port, mib_cache, rlimit_nofile=64)
    clients: list[socket.socket] = []
    try:
        agent.start()
        clients += [connect(port) for _ in range(100)]  # the kernel queues what is not accepted
        time.sleep(1.0)
        for sock in clients:
            sock.close()
        clients.clear()
        eventually(lambda: healthy(agent), 15.0, "/healthz not answered after the clients left")
        errors = counter(agent, "netalert_http_accept_errors_total")
    finally:
        for sock in clients:
            sock.close()
        agent.cleanup()
    log = agent.log()
    accept_lines = [line for line in log.splitlines() if "accept" in line]
    assert len(accept_lines) == 1, f"{len(accept_lines)} accept lines, {len(log)} bytes of log"
    assert errors >= 2, f"accept errors counted: {errors}"
    assert "http_accept_failed" in accept_lines[0] and "errno=EMFILE" in accept_lines[0]
    assert "http_max_connections_high max_connections=1000 nofile=64" in log
    assert len(log) < 20_000


def test_descriptor_headroom_check() -> None:
    assert descriptors_short(1000, 64)
    assert descriptors_short(256, 300)
    assert not descriptors_short(256, 1024)
    assert not descriptors_short(100_000, -1)  # RLIM_INFINITY


def emfile_context(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
    """What asyncio's selector loop passes to the exception handler on EMFILE."""
    return {
        "message": "socket.accept() out of system resource",
        "exception": OSError(errno.EMFILE, "Too many open files"),
    }


def test_accept_error_log_unit(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    stats = HttpStats()
    handler = AcceptErrorLog(stats, interval=60.0, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(500):
                handler(loop, emfile_context(loop))
            now[0] += 30.0
            handler(loop, emfile_context(loop))
            now[0] += 31.0  # a full interval after the first line
            handler(loop, emfile_context(loop))
            handler(loop, {"message": "something else\nforged=1", "exception": ValueError()})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "netalert.web.accept"]
    head = 'event=http_accept_failed errno=EMFILE error="Too many open files"'
    assert lines == [f"{head} suppressed=0 interval=60s", f"{head} suppressed=500 interval=60s"]
    assert stats.accept_errors == 502
    # anything that is not an accept error goes to asyncio's own handler, unchanged
    others = [r for r in caplog.records if r.name == "asyncio"]
    assert len(others) == 1 and others[0].getMessage().startswith("something else")


def test_timeouts_must_be_positive() -> None:
    text = '[agent]\nhttp_header_timeout = "0s"\nhttp_max_connections = 0\n'
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.toml", env={})
    assert info.value.problems == [
        "agent.http_header_timeout: must be longer than 0s",
        "agent.http_max_connections: must be at least 1, got 0",
    ]


# --- reload and the systemd unit ---------------------------------------------------------


def test_reload_applies_a_new_cap(tmp_path: Path, mib_cache: Path) -> None:
    port = free_tcp_port()
    # a long header timeout: the held connection keeps its slot for the whole test
    agent = AgentProcess(tmp_path, agent_config(port, header=30, cap=1), port, mib_cache)
    try:
        agent.start()
        with open_accepted(port):
            assert agent.get("/healthz")[0] == 503  # the one slot is taken
        assert agent.proc is not None
        agent.config.write_text(agent_config(port, header=30, cap=2))
        agent.proc.send_signal(signal.SIGHUP)
        eventually(lambda: "reloaded" in agent.log(), 15.0, "no reload")
        with open_accepted(port):
            # under the old cap the held connection keeps the only slot for its 30 s header
            # timeout: an answer within 20 s is the new cap's (3 s was missed at load 18)
            eventually(lambda: healthy(agent), 20.0, "the new cap is not in force")
    finally:
        agent.cleanup()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.daemon
def test_unit_raises_the_descriptor_limit(tmp_path: Path) -> None:
    text = (ROOT / "contrib" / "netalert.service").read_text()
    service = text.split("[Service]", 1)[1].split("[Install]", 1)[0]
    assert re.search(r"(?m)^LimitNOFILE=65536$", service)
    # verify it with a command that exists here (the unit's path is the installed one)
    unit = tmp_path / "netalert.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", text))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


# --- a client that leaves before its answer -------------------------------------------------


@pytest.mark.unit
async def test_a_client_gone_before_its_answer_is_counted_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the timing tests on a loaded machine: a /healthz client that gave up before a
    slow answer left an aiohttp traceback ("Error handling request", ClientConnectionResetError)
    in the agent's log, which the log checks of the disk tests then failed on."""
    from aiohttp import web

    from netalert.web.app import start_web
    from netalert.web.guard import HttpStats

    answer = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await answer.wait()
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/healthz", slow)
    stats = HttpStats()
    server = await start_web(app, "127.0.0.1", 0, stats=stats)
    caplog.set_level(logging.DEBUG)
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # an RST: the client is gone
        for _ in range(100):  # bounded: the server sees the reset
            await asyncio.sleep(0.01)
            if stats.open == 0:
                break
        answer.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if stats.clients_gone:
                break
    finally:
        await server.stop()
    assert stats.clients_gone == 1
    assert not [
        r for r in caplog.records if r.exc_info or "Error handling request" in r.getMessage()
    ]
