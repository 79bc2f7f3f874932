"""`netalert run` and its trap zygote: the processes it leaves behind, its death, a reload.

The agent forks the zygote (a process holding the loaded MIB tree) before its
loop starts, and the zygote forks the workers. A kill -9 of the agent must
leave no worker and no zygote; a zygote that dies is logged and a new one
starts the next worker; a reload with other MIBs names traps with them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import wait_mail
from tests.support.faults import AgentProcess, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.procs import alive, descendants, trap_workers, zygotes
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.e2e

MIBS = Path(__file__).resolve().parent.parent / "mibs"
DEMO_HIGH = "1.3.6.1.4.1.32473.1.0.1"  # NETALERT-DEMO-MIB::demoTemperatureHigh
SOURCES = ("127.0.0.1", "127.0.0.2")  # one per worker of two

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
workers = {workers}
{mibs}
[[rules]]
name = "AnyTrap"
trap = "*"
key = ["ifIndex"]
summary = "zygote-test {{{{ trap }}}} ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = ["..."]
group_wait = "0s"
"""

DEMO_MIBS = f'[mibs]\npaths = ["{MIBS}"]\nload = ["NETALERT-DEMO-MIB"]\n'


def _config(agent_ports: tuple[int, int], smtp: int, *, workers: int, mibs: str = "") -> str:
    http, traps = agent_ports
    return CONFIG.format(http=http, traps=traps, smtp=smtp, workers=workers, mibs=mibs)


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = _config((http, traps), smtp_server.port, workers=2)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def _trap(agent: AgentProcess, oid: str, index: int, source: str = "127.0.0.1") -> None:
    done = subprocess.run(
        ["snmptrap", "-v", "2c", "-c", "public", f"--clientaddr={source}",
         f"127.0.0.1:{agent.traps_port}", "", oid, "1.3.6.1.2.1.2.2.1.1", "i", str(index)],
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


def _until(check: Callable[[], bool], agent: AgentProcess, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, agent.log()[-4000:]
        time.sleep(0.05)


def _summaries(smtp: SmtpServer) -> list[str]:
    out = []
    for message in smtp.received():
        body = message.parsed().get_body(("plain",))
        assert body is not None
        out += [line.strip() for line in body.get_content().splitlines() if "zygote-test" in line]
    return out


@pytest.mark.parametrize("phase", ["running", "reload", "stop"])
def test_kill9_of_the_agent_leaves_no_worker_and_no_zygote(agent: AgentProcess, phase: str) -> None:
    """At any phase: running, while a reload starts new workers (another MIB tree sent
    to the zygote), while a stop drains them."""
    agent.start()
    assert agent.proc is not None
    workers, zygote = trap_workers(agent.proc.pid), zygotes(agent.proc.pid)
    assert len(workers) == 2 and len(zygote) == 1, agent.log()[-4000:]
    assert "event=trap_zygote_started" in agent.log() and "start=fork" in agent.log()
    if phase == "reload":
        agent.config.write_text(agent.config_text.replace("[[rules]]", DEMO_MIBS + "[[rules]]"))
        agent.proc.send_signal(signal.SIGHUP)
        # a new worker started (the old ones may be gone already: the overlap can be
        # shorter than a look every 50 ms, and then a look waited for ever)
        _until(lambda: bool(set(trap_workers(agent.proc.pid)) - set(workers)), agent)  # type: ignore[union-attr]
    elif phase == "stop":
        agent.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the workers told to drain, the agent waiting for them
    found = [*workers, *zygote, *descendants(agent.proc.pid)]
    if agent.proc.poll() is None:
        agent.kill9()
    _until(lambda: not any(alive(pid) for pid in found), agent, within=20)


def test_a_dead_zygote_is_logged_and_the_next_worker_start_runs_another(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    assert agent.proc is not None
    (first,) = zygotes(agent.proc.pid)
    victim, survivor = trap_workers(agent.proc.pid)
    os.kill(first, signal.SIGKILL)
    _until(lambda: "event=trap_zygote_exited" in agent.log(), agent)
    assert alive(victim) and alive(survivor)  # the running workers go on
    os.kill(victim, signal.SIGKILL)
    restarts = "netalert_trap_worker_restarts_total"
    _until(lambda: metric_values(agent.get("/metrics")[1], restarts) == {"": 1.0}, agent)
    # the new worker is the new zygote's; the survivor, whose parent died, is init's now
    _until(lambda: len(trap_workers(agent.proc.pid)) == 1, agent)  # type: ignore[union-attr]
    assert "start=spawn" in agent.log() and alive(survivor), agent.log()[-4000:]
    for n, source in enumerate(SOURCES):  # one of them reaches the new worker
        _trap(agent, "1.3.6.1.6.3.1.1.5.3", n + 1, source)
    wait_mail(smtp_server, 2, within=30)
    (second,) = zygotes(agent.proc.pid)
    (new,) = trap_workers(agent.proc.pid)
    assert second != first and new not in (victim, survivor) and not alive(victim)
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
    assert not any(alive(pid) for pid in (new, survivor, second))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_with_other_mibs_names_traps_with_them(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path, workers: int
) -> None:
    """A trap of a module the reload loads is named by it, in the workers as in the agent."""
    ports = free_tcp_port(), free_udp_port()
    text = _config(ports, smtp_server.port, workers=workers)
    agent = AgentProcess(tmp_path, text, ports[0], mib_cache, traps_port=ports[1])
    try:
        agent.start()
        _trap(agent, DEMO_HIGH, 1)
        wait_mail(smtp_server, 1, within=30)
        (before,) = _summaries(smtp_server)
        assert "ifIndex=1" in before and "demoTemperatureHigh" not in before  # not loaded yet
        agent.config.write_text(_config(ports, smtp_server.port, workers=workers, mibs=DEMO_MIBS))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        _until(lambda: "event=reloaded " in agent.log(), agent, within=60)
        for source in SOURCES:  # both workers
            _trap(agent, DEMO_HIGH, 2 if source == SOURCES[0] else 3, source)
        wait_mail(smtp_server, 3, within=30)
        assert sorted(_summaries(smtp_server)[1:]) == [
            f"zygote-test demoTemperatureHigh ifIndex={n}" for n in (2, 3)
        ], agent.log()[-4000:]
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]
    finally:
        agent.cleanup()


def test_a_stopped_worker_is_killed_and_started_again(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    """A worker that stops answering (SIGSTOP here; a loop it cannot leave, a machine
    swapping) would leave the traps of its sources in its socket for ever: the agent
    hears from each worker at least every second, and kills and restarts a silent one."""
    ports = free_tcp_port(), free_udp_port()
    text = _config(ports, smtp_server.port, workers=2)
    text = text.replace("workers = 2\n", 'workers = 2\nworker_stall_timeout = "3s"\n')
    agent = AgentProcess(tmp_path, text, ports[0], mib_cache, traps_port=ports[1])
    try:
        agent.start()
        assert agent.proc is not None
        victim, survivor = trap_workers(agent.proc.pid)
        os.kill(victim, signal.SIGSTOP)
        for n, source in enumerate(SOURCES):  # one of them waits in the victim's socket
            _trap(agent, "1.3.6.1.6.3.1.1.5.3", n + 1, source)
        wait_mail(smtp_server, 2, within=30)
        assert not alive(victim) and alive(survivor)
        assert "event=trap_worker_stalled" in agent.log(), agent.log()[-4000:]
        body = agent.get("/metrics")[1]
        assert metric_values(body, "netalert_trap_worker_stalls_total") == {"": 1.0}
        assert metric_values(body, "netalert_trap_worker_restarts_total") == {"": 1.0}
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]
    finally:
        agent.cleanup()


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def test_the_zygote_and_the_workers_keep_none_of_the_agents_environment(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    """The agent's environment may hold secrets (``${VAR}`` in the config: an SMTP
    password, a database's): a process that parses strangers' datagrams keeps only what
    a Python needs (PATH, the locale, TZ...), forked (at start) or spawned (later)."""
    secret = f"netalert-test-secret-{os.urandom(6).hex()}"
    ports = free_tcp_port(), free_udp_port()
    text = _config(ports, smtp_server.port, workers=2)
    agent = AgentProcess(tmp_path, text, ports[0], mib_cache, traps_port=ports[1])
    agent.env = {"NETALERT_TEST_SMTP_PASSWORD": secret, "TZ": "UTC"}
    try:
        agent.start()
        assert agent.proc is not None
        assert secret.encode() in _environ(agent.proc.pid)  # the control
        (first,) = zygotes(agent.proc.pid)
        victim, survivor = trap_workers(agent.proc.pid)
        for pid in (first, victim, survivor):
            assert secret.encode() not in _environ(pid), pid
            assert b"\0TZ=UTC\0" in b"\0" + _environ(pid), pid
        os.kill(first, signal.SIGKILL)  # the next worker comes from a spawned zygote
        _until(lambda: "event=trap_zygote_exited" in agent.log(), agent)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: len(trap_workers(agent.proc.pid)) == 1, agent)  # type: ignore[union-attr]
        (second,) = zygotes(agent.proc.pid)
        (new,) = trap_workers(agent.proc.pid)
        for pid in (second, new):
            assert secret.encode() not in _environ(pid), pid
            assert b"\0TZ=UTC\0" in b"\0" + _environ(pid), pid
        for n, source in enumerate(SOURCES):  # the workers work
            _trap(agent, "1.3.6.1.6.3.1.1.5.3", n + 1, source)
        wait_mail(smtp_server, 2, within=30)
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]
    finally:
        agent.cleanup()


def _held(pid: int) -> dict[int, str]:
    out = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            out[int(fd.name)] = os.readlink(fd)
    return out


def _tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            inodes.add(f"socket:[{line.split()[9]}]")
    return inodes


def test_a_worker_holds_only_its_sockets_its_channel_and_its_output(
    agent: AgentProcess,
) -> None:
    """No descriptor of the agent's reaches a worker but its output: not the state
    database, not the web port, not another worker's socket; forked (the zygote of the
    start) or spawned (a zygote run later)."""
    agent.start()
    assert agent.proc is not None
    output = {_held(agent.proc.pid)[n] for n in (0, 1, 2)}  # stdin, stdout, stderr
    (first,) = zygotes(agent.proc.pid)
    checked = list(trap_workers(agent.proc.pid))
    os.kill(first, signal.SIGKILL)
    _until(lambda: "event=trap_zygote_exited" in agent.log(), agent)
    os.kill(checked[0], signal.SIGKILL)
    _until(lambda: len(trap_workers(agent.proc.pid)) == 1, agent)  # type: ignore[union-attr]
    checked += trap_workers(agent.proc.pid)  # the spawned zygote's worker
    agents = set(_held(agent.proc.pid).values())
    tcp = _tcp_inodes()
    assert tcp & agents, "the control: the agent holds its web port"
    for pid in checked[1:]:
        held = _held(pid)
        files = {t for t in held.values() if t.startswith("/")}
        assert files <= output, (pid, held)
        assert not (set(held.values()) & tcp), (pid, held)
        assert sum(t.startswith("socket:") for t in held.values()) <= 5, (pid, held)
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
