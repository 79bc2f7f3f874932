"""A SIGHUP reload changes everything or nothing.

A real ``netalert run`` mailing to aiosmtpd is reloaded with a config that
cannot run: a CA file that does not exist, a templates folder that does not
exist, a trap port or web port another socket holds, an unknown MIB name in a
rule, a TOML syntax error, and hostile values (a secret file that is a FIFO, a
regular expression that backtracks exponentially, a NUL, a duration past the
bound, nesting deeper than TOML's reader). Each time the agent logs ``reload_rejected``, counts
it in ``netalert_reloads_total{result="rejected"}``, keeps running, and a trap
sent to the old port still becomes a mail of the old rule. A good reload
afterwards moves the trap port: the new port is bound before the old one closes.

The rejected reloads all go to one agent (a rejected reload changes nothing, so each
case starts from the config the agent runs: the case writes it back first); the agent
still stops cleanly after all of them. An agent start costs seconds of CPU (its trap
workers included): twelve starts were a tenth of the suite's.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import MAIL_RULE, mail_config, wait_mail
from tests.support.faults import (
    AgentProcess,
    kept_running,
    link_down,
    metric_values,
    send_traps,
)
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def agent(mail_agent: AgentProcess) -> AgentProcess:
    return mail_agent  # one trap rule; each alert mailed alone


def _smtp_option(text: str, option: str) -> str:
    return text.replace("[smtp]\n", f"[smtp]\n{option}\n", 1)


def _bad_ca_file(text: str, _held: int) -> str:
    return _smtp_option(text, 'security = "starttls"\nca_file = "no-such-ca.pem"')


def _bad_templates_dir(text: str, _held: int) -> str:
    return _smtp_option(text, 'templates_dir = "no-such-folder"')


def _trap_port_in_use(text: str, held: int) -> str:
    return text.replace('listen = ["127.0.0.1:', f'listen = ["127.0.0.1:{held}"]\n# was: ', 1)


def _web_port_in_use(text: str, held: int) -> str:
    return text.replace('http = "127.0.0.1:', f'http = "127.0.0.1:{held}"\n# was: ', 1)


def _unknown_mib_name(text: str, _held: int) -> str:
    return text.replace('trap = "IF-MIB::linkDown"', 'trap = "IF-MIB::linkDownn"', 1)


def _trap_workers_changed(text: str, _held: int) -> str:
    # 17: more than workers = 0 ever starts, so it differs from the running count anywhere
    return text.replace("[traps]\n", "[traps]\nworkers = 17\n", 1)


def _toml_error(text: str, _held: int) -> str:
    return text + "\n[[rules]\nname = \n"


def _fifo_secret(text: str, _held: int) -> str:
    return text + '\n[snmp]\ncommunity_file = "secret.fifo"\n'  # made by the test


def _backtracking_regex(text: str, _held: int) -> str:
    return text + '\n[[routes]]\nmatch = ["device=~(a+)+$"]\nto = ["x@example.org"]\n'


def _nul_value(text: str, _held: int) -> str:
    return text + '\n[snmp]\ncommunity = "pub\\u0000lic"\n'


def _huge_duration(text: str, _held: int) -> str:
    return text + '\n[snmp]\ninterval = "99999999999999999d"\n'


def _deep_nesting(text: str, _held: int) -> str:
    return text + "\n[snmp]\nx = " + "[" * 5000 + "]" * 5000 + "\n"


BAD: dict[str, tuple[Callable[[str, int], str], str]] = {
    # change, a word the rejection names
    "ca_file": (_bad_ca_file, "no-such-ca.pem"),
    "templates_dir": (_bad_templates_dir, "no-such-folder"),
    "trap_port_in_use": (_trap_port_in_use, "cannot listen"),
    "trap_workers_changed": (_trap_workers_changed, "changes at a restart"),
    "web_port_in_use": (_web_port_in_use, "cannot listen"),
    "unknown_mib_name": (_unknown_mib_name, "linkDownn"),
    "toml_error": (_toml_error, "config.toml"),
    # hostile values: each one line, none a hang (the FIFO) or a traceback
    "fifo_secret": (_fifo_secret, "is not a regular file"),
    "backtracking_regex": (_backtracking_regex, "exponential time"),
    "nul_value": (_nul_value, "contains a NUL character"),
    "huge_duration": (_huge_duration, "longer than 3650d"),
    "deep_nesting": (_deep_nesting, "nested deeper"),
}


def _reloads(agent: AgentProcess) -> dict[str, float]:
    status, body = agent.get("/metrics")
    assert status == 200, body
    return metric_values(body, "netalert_reloads_total")


def _wait_log(agent: AgentProcess, text: str, count: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while agent.log().count(text) < count:
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()[-4000:]
        assert time.monotonic() < deadline, f"{text!r} not logged {count}x:\n{agent.log()[-4000:]}"
        time.sleep(0.05)


def _mailed(agent: AgentProcess, smtp: SmtpServer, index: int, count: int) -> None:
    """A linkDown for ``index`` sent to the agent's original trap port is the ``count``th mail."""
    send_traps(agent.traps_port, [link_down(index)])
    got = wait_mail(smtp, count, within=20)
    body = got[-1].parsed().get_body(("plain",))
    assert body is not None and f"fault-test ifIndex={index}" in body.get_content()
    assert MAIL_RULE in str(got[-1].parsed()["Subject"])


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, mib_cache: Path
) -> Iterator[tuple[AgentProcess, SmtpServer]]:
    """One started agent (the config of ``mail_agent``) and its SMTP server for every
    rejected reload; stopped at the end, where it must exit 0."""
    smtp = SmtpServer()
    smtp.start()
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp.port, http=http)
    agent = AgentProcess(
        tmp_path_factory.mktemp("rejected"), text, http, mib_cache, traps_port=traps
    )
    try:
        with kept_running(agent):
            yield agent, smtp
    finally:
        smtp.stop()


# one worker takes every case, so the module's agent starts once
@pytest.mark.xdist_group("reload_rejected")
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_reload_keeps_the_old_config_running(
    running: tuple[AgentProcess, SmtpServer], case: str
) -> None:
    agent, smtp_server = running
    change, named = BAD[case]
    agent.config.write_text(agent.config_text)  # what the agent runs: no case left its change
    first = 2 * sorted(BAD).index(case) + 1  # this case's two alerts (ifIndex), new ones
    mails = len(smtp_server.received())
    before = _reloads(agent)  # the cases before this one: each rejected once
    assert before == {'result="ok"': 0.0, 'result="rejected"': before['result="rejected"']}
    _mailed(agent, smtp_server, first, mails + 1)
    lines = len(agent.log().splitlines())
    original = agent.config.read_text()
    kind = socket.SOCK_STREAM if case == "web_port_in_use" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))  # another program's socket, without SO_REUSEPORT
        if kind == socket.SOCK_STREAM:
            holder.listen()
        if case == "fifo_secret":
            os.mkfifo(agent.config.with_name("secret.fifo"))  # nobody ever writes to it
        agent.config.write_text(change(original, holder.getsockname()[1]))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        _wait_log(agent, "event=reload_rejected", int(before['result="rejected"']) + 1)
    time.sleep(0.5)  # a reload that went on regardless would have done its harm by now
    assert agent.proc.poll() is None, agent.log()[-4000:]
    new_lines = agent.log().splitlines()[lines:]
    rejected = [line for line in new_lines if "event=reload_rejected" in line]
    assert any(named in line for line in rejected), rejected
    assert "event=reloaded " not in agent.log()
    assert _reloads(agent) == {**before, 'result="rejected"': before['result="rejected"'] + 1}
    # the old rule, on the old port, through the old sender
    _mailed(agent, smtp_server, first + 1, mails + 2)
    assert agent.get("/healthz")[0] == 200  # the old web server too


def test_good_reload_after_a_rejected_one_moves_the_trap_port(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    original = agent.config.read_text()
    agent.config.write_text(_toml_error(original, 0))
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGHUP)
    _wait_log(agent, "event=reload_rejected", 1)
    new_port = free_udp_port()
    agent.config.write_text(_trap_port_in_use(original, new_port))
    agent.proc.send_signal(signal.SIGHUP)
    _wait_log(agent, "event=reloaded ", 1)
    assert _reloads(agent) == {'result="ok"': 1.0, 'result="rejected"': 1.0}
    old_port, agent.traps_port = agent.traps_port, new_port
    _mailed(agent, smtp_server, 3, 1)
    # the old port is closed: another program can bind it now
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", old_port))
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_keeping_the_trap_address_loses_no_trap(
    agent: AgentProcess, smtp_server: SmtpServer, workers: int
) -> None:
    """A reload that changes [traps] but not its address keeps the socket bound throughout
    (with trap workers: the new workers share the sockets and read once the old ones have
    handed over their last traps)."""
    agent.config_text = agent.config_text.replace("[traps]\n", f"[traps]\nworkers = {workers}\n")
    assert f"workers = {workers}" in agent.config_text
    agent.start()
    original = agent.config.read_text()
    assert "storm_rate = 1000000.0" in original
    agent.config.write_text(original.replace("storm_rate = 1000000.0", "storm_rate = 900000.0"))
    datagram = link_down(7)  # one alert: every trap after the first only refreshes it
    sent = 0
    reloaded_at: float | None = None
    assert agent.proc is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        deadline = time.monotonic() + 60
        while reloaded_at is None or time.monotonic() < reloaded_at + 0.5:
            assert time.monotonic() < deadline, agent.log()[-4000:]
            for _ in range(10):
                sock.sendto(datagram, ("127.0.0.1", agent.traps_port))
            sent += 10
            if sent == 200:
                agent.proc.send_signal(signal.SIGHUP)
            if reloaded_at is None and sent % 100 == 0 and "event=reloaded " in agent.log():
                reloaded_at = time.monotonic()
            time.sleep(0.005)
    # the receiver's own counters start again with the new receiver: wait until they settle
    last, still = -1.0, 0
    while still < 10:
        body = agent.get("/metrics")[1]
        received = metric_values(body, "netalert_traps_received_total").get('version="2c"', 0)
        still = still + 1 if received == last else 0
        last = received
        time.sleep(0.1)
    assert metric_values(body, "netalert_trap_socket_drops").get("", 0.0) == 0
    assert _reloads(agent) == {'result="ok"': 1.0, 'result="rejected"': 0.0}
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
    [closing] = [line for line in agent.log().splitlines() if " event=stopped " in line]
    assert f" traps={sent} " in closing, (sent, closing)  # every trap sent reached the rules
