"""Recording and replay against the real things: net-snmp's snmptrap, tcpdump, `netalert run`.

A real agent receives real snmptrap traffic on a free loopback port while tcpdump
captures that port on ``lo`` (and the agent records it itself, ``[traps] record``).
``netalert replay`` of either capture must print the same transitions, in the same
order, for the same alerts (fingerprints), as the live agent logged.

The replays of the live run and the one that mails run as processes; the others run
the same command line in this process (``tests/support/cli.py``), which spares a Python
start and the MIB tree's load each.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netalert.traps.pcap import PcapRecorder, read_datagrams
from tests.support.cli import netalert_in_process
from tests.support.faults import AgentProcess, link_down
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.shared import python_path
from tests.support.v3build import build_v3, scoped_pdu, trap_varbinds

ROOT = Path(__file__).resolve().parents[1]
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
IF_INDEX, IF_ADMIN, IF_OPER = "1.3.6.1.2.1.2.2.1.1", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8"
LIVE = re.compile(r"event=alert\b.*?\bkind=(\w+) rule=(\w+) .*?fingerprint=(\w+)")
REPLAYED = re.compile(r" transition (\w+) (\w+) .*?fingerprint=(\w+)")

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"

[[devices]]
name = "sw1"
address = "127.0.0.1"

[traps]
listen = ["127.0.0.1:{traps}"]
communities = ["public"]
allow = ["127.0.0.0/8"]
record = "own.pcap"
record_max_bytes = 1048576
record_files = 2

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
key = ["ifIndex"]
severity = "warning"

[smtp]
host = "127.0.0.1"
port = {smtp}

[[routes]]
to = ["netops@example.org"]
group_wait = "1s"
"""


def snmptrap(port: int, community: str, trap: str, index: int, oper: int, home: Path) -> None:
    """One v2c trap sent by net-snmp's snmptrap (numeric OIDs: no MIB files needed)."""
    subprocess.run(
        [
            "snmptrap",
            "-v",
            "2c",
            "-c",
            community,
            f"127.0.0.1:{port}",
            "",
            trap,
            f"{IF_INDEX}.{index}",
            "i",
            str(index),
            f"{IF_ADMIN}.{index}",
            "i",
            "1",
            f"{IF_OPER}.{index}",
            "i",
            str(oper),
        ],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "MIBS": "",
            "SNMP_PERSISTENT_DIR": str(home),
        },
        check=True,
        timeout=10,
        capture_output=True,
    )


def replay(config: Path, capture: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "netalert", "replay", str(capture)),
            *("-c", str(config), "--as-fast-as-possible"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": python_path(ROOT)},
    )


def replay_in_process(
    capsys: pytest.CaptureFixture[str], config: Path, capture: Path
) -> subprocess.CompletedProcess[str]:
    """:func:`replay`'s command line, run in this process."""
    args = ("replay", str(capture), "-c", str(config), "--as-fast-as-possible")
    return netalert_in_process(capsys, *args)


def on_disk(path: Path) -> int:
    """Datagrams readable in ``path`` now (0 while not even its header is written)."""
    try:
        return len(list(read_datagrams(path)))
    except (ValueError, OSError):
        return 0


def socket_to(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    return sock


def wait_for(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.skipif(
    shutil.which("snmptrap") is None and not os.environ.get("NETALERT_REQUIRE_SNMPD"),
    reason="make debs installs net-snmp (in CI a missing tool fails)",
)
def test_a_tcpdump_capture_replays_with_the_transitions_of_the_live_run(
    tmp_path: Path, mib_cache: Path
) -> None:
    traps, http, smtp = free_udp_port(), free_tcp_port(), free_tcp_port()
    agent = AgentProcess(
        tmp_path, CONFIG.format(http=http, traps=traps, smtp=smtp), http, mib_cache, traps
    )
    capture = tmp_path / "tcpdump.pcap"
    tcpdump = None
    try:
        agent.start()
        if shutil.which("tcpdump") is not None:
            tcpdump = subprocess.Popen(
                [
                    *("tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w", str(capture)),
                    *("udp and dst port", str(traps)),
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
            assert tcpdump.stderr is not None
            line = tcpdump.stderr.readline()  # "listening on lo, ..." once it captures
            assert "listening on" in line, line
        snmptrap(traps, "public", LINK_DOWN, 3, 2, tmp_path)
        snmptrap(traps, "public", LINK_DOWN, 4, 2, tmp_path)
        snmptrap(traps, "guessed", LINK_DOWN, 5, 2, tmp_path)  # refused: recorded all the same
        snmptrap(traps, "public", LINK_UP, 3, 1, tmp_path)
        wait_for(lambda: len(LIVE.findall(agent.log())) >= 3, 30, agent.log())
        wait_for(lambda: agent.metric("netalert_traps_recorded_total") >= 4, 10, "not recorded")
        if tcpdump is not None:  # -U: each packet is in the file once written
            wait_for(lambda: len(list(read_datagrams(capture))) >= 4, 10, "tcpdump saw < 4")
    finally:
        if tcpdump is not None:
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(timeout=10)
            assert tcpdump.stderr is not None
            tcpdump.stderr.close()
        if agent.proc is not None and agent.proc.poll() is None:
            agent.terminate()
        agent.cleanup()
    live = LIVE.findall(agent.log())
    assert [(kind, rule) for kind, rule, _ in live] == [
        ("firing", "LinkDown"),
        ("firing", "LinkDown"),
        ("resolved", "LinkDown"),
    ]
    own = tmp_path / "own.pcap"
    recorded = list(read_datagrams(own))
    assert len(recorded) == 4  # the refused trap too
    assert {d.destination for d in recorded} == {("127.0.0.1", traps)}
    captures = [own]
    if tcpdump is not None:
        assert len(list(read_datagrams(capture))) == 4
        captures.append(capture)
    for path in captures:
        result = replay(agent.config, path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert REPLAYED.findall(result.stdout) == live, result.stdout
        assert "4 datagrams, 3 traps accepted, 1 refused (bad_community 1)" in result.stdout
        assert "notification routes[0] new to=netops@example.org" in result.stdout


V3_CONFIG = """
[agent]
state_dir = "state"
http = ""

[[devices]]
name = "sw1"
address = "192.0.2.10"

[traps]
listen = ["127.0.0.1:10162"]
allow = ["192.0.2.0/24"]

[[traps.users]]
user = "trapper"
auth_protocol = "SHA"
auth_password = "auth-secret-1"
priv_protocol = "AES-128"
priv_password = "priv-secret-1"
engine_ids = ["{engine}"]

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]

[[routes]]
to = ["netops@example.org"]
"""


def test_v3_traps_replay_with_the_configured_users_and_a_relaxed_window(
    tmp_path: Path, mib_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = bytes.fromhex("80001f8880aabbccdd00112233")

    def trap(index: int, time_: int, auth: str = "auth-secret-1") -> bytes:
        return build_v3(
            "trapper",
            scoped_pdu(trap_varbinds(index), context_engine=engine),
            engine=engine,
            auth="SHA",
            auth_password=auth,
            priv="AES-128",
            priv_password="priv-secret-1",
            boots=3,
            time=time_,
        )

    first = trap(3, 1000)
    sent = [  # (seconds into the capture, datagram)
        (0, first),
        (200, first),  # the same message 200 s later: live refuses it (not_in_time_window)
        (201, trap(4, 500)),  # 700 s behind the sender's clock: live refuses it too
        (202, trap(5, 1202, auth="wrong-password")),  # forged: refused in replay as live
    ]
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    config = tmp_path / "config.toml"
    config.write_text(V3_CONFIG.format(engine=engine.hex()))
    capture = tmp_path / "v3.pcap"
    recorder = PcapRecorder(capture, max_bytes=1 << 20, files=1)
    for offset, data in sent:
        recorder.write(data, ("192.0.2.10", 40000), ("127.0.0.1", 10162), 1.9e9 + offset)
    recorder.close()

    result = replay_in_process(capsys, config, capture)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 datagrams, 3 traps accepted, 1 refused (bad_digest 1)" in result.stdout
    assert "time window is relaxed for a recording: 2 traps accepted only because" in (
        result.stdout
    )
    fired = re.findall(r"transition firing LinkDown device=sw1 ifIndex=(\d+)", result.stdout)
    assert fired == ["3", "4"], result.stdout


@pytest.mark.daemon
def test_netalert_traps_record_writes_accepted_and_refused_datagrams(tmp_path: Path) -> None:
    port = free_udp_port()
    capture = tmp_path / "cli.pcap"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "netalert", "traps", "--listen", f"127.0.0.1:{port}"),
            *("--record", str(capture)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": python_path(ROOT)},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while "recording every datagram" not in proc.stderr.readline():
            assert time.monotonic() < deadline and proc.poll() is None
        snmptrap(port, "public", LINK_DOWN, 3, 2, tmp_path)
        with socket_to(port) as sock:
            sock.send(b"\x30\x02junk")  # refused as malformed, recorded all the same
        # the recorder puts its buffer on disk once a second
        wait_for(lambda: on_disk(capture) >= 2, 10, "not on disk")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    got = list(read_datagrams(capture))
    assert [d.destination for d in got] == [("127.0.0.1", port)] * 2
    assert got[1].data == b"\x30\x02junk"
    assert "received 1, rejected 1" in err


def test_replay_mails_only_with_mail(
    tmp_path: Path, mib_cache: Path, smtp_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    config = tmp_path / "config.toml"
    text = CONFIG.format(http=free_tcp_port(), traps=10162, smtp=smtp_server.port)
    config.write_text(text.replace('record = "own.pcap"', 'record = ""'))
    capture = tmp_path / "one.pcap"
    recorder = PcapRecorder(capture, max_bytes=1 << 20, files=1)
    recorder.write(link_down(3), ("127.0.0.1", 40000), ("127.0.0.1", 10162), 1.9e9)
    recorder.close()

    dry = replay_in_process(capsys, config, capture)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "notification routes[0] new to=netops@example.org alerts=1" in dry.stdout
    assert smtp_server.received() == []

    sent = subprocess.run(
        [
            *(sys.executable, "-m", "netalert", "replay", str(capture), "-c", str(config)),
            *("--mail", "--as-fast-as-possible"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": python_path(ROOT)},
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "replay: 1 mails sent, 0 left in the outbox" in sent.stdout
    (message,) = smtp_server.received()
    assert message.rcpt_tos == ("netops@example.org",)
    assert "LinkDown" in str(message.parsed()["Subject"])


def test_a_capture_made_on_another_port_names_it(
    tmp_path: Path, mib_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Traps captured on a port the config does not listen on are skipped, and the
    summary says which port they went to and how to replay them, not just a count."""
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    config = tmp_path / "config.toml"
    text = CONFIG.format(http=free_tcp_port(), traps=10162, smtp=free_tcp_port())
    config.write_text(text.replace('record = "own.pcap"', 'record = ""'))
    capture = tmp_path / "other.pcap"
    recorder = PcapRecorder(capture, max_bytes=1 << 20, files=1)
    for n, port in enumerate((10163, 10163, 20162)):
        recorder.write(link_down(3), ("127.0.0.1", 40000), ("127.0.0.1", port), 1.9e9 + n)
    recorder.close()

    got = replay_in_process(capsys, config, capture)
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.splitlines()[-1] == (
        "replay: 0 datagrams, 0 traps accepted, 0 refused, 0 transitions, 0 notifications,"
        " 3 to other ports skipped (10163: 2, 20162: 1; --port replays them)"
    )

    wide = tmp_path / "wide.pcap"  # a capture of all UDP: the line names five ports
    recorder = PcapRecorder(wide, max_bytes=1 << 20, files=1)
    for n, port in enumerate(range(30001, 30008)):
        for _ in range(port - 30000):
            recorder.write(link_down(3), ("127.0.0.1", 40000), ("127.0.0.1", port), 1.9e9 + n)
    recorder.close()
    got = replay_in_process(capsys, config, wide)
    assert got.stdout.splitlines()[-1].endswith(
        " 28 to other ports skipped (30007: 7, 30006: 6, 30005: 5, 30004: 4, 30003: 3,"
        " 2 more ports; --port replays them)"
    )
