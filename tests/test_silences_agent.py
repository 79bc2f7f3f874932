"""Silences as a real ``netalert run`` applies them, on a real snmpd, mail to aiosmtpd.

The rule (Alertmanager's): a silenced alert sends nothing, its resolution
included, unless its firing mail already went out; then the resolution is
mailed, silence or not. And ``netalert silence add`` warns (exit 0) when a
matcher names a label no alert has and the config cannot produce.

The first ``netalert silence add`` is a real process; the others run the same command
line in this process (``tests/support/cli.py``), which spares a Python start and the
imports each.

snmpd serves UCD-SNMP-MIB's laLoadInt.1 and .2 through a ``pass`` script that
reads the values from files the test writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import netalert_in_process
from tests.support.faults import ROOT, AgentProcess
from tests.support.ports import free_tcp_port
from tests.support.smtp import ReceivedMessage, SmtpServer
from tests.support.snmpd import PassScript, Snmpd, SnmpdFactory

LA_LOAD_INT = ".1.3.6.1.4.1.2021.10.1.5"

LOAD_SCRIPT = f"""#!{sys.executable}
import pathlib, sys

here = pathlib.Path(__file__).resolve().parent
rows = [1, 2]
mode, oid = sys.argv[1], sys.argv[2]
wanted = [int(x) for x in oid.strip(".").split(".")]
base = [int(x) for x in "{LA_LOAD_INT}".strip(".").split(".")]
for row in rows:
    full = base + [row]
    if (mode == "-g" and wanted == full) or (mode == "-n" and wanted < full):
        print("{LA_LOAD_INT}." + str(row))
        print("integer")
        print((here / f"la{{row}}").read_text().strip())
        break
"""

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
device_unreachable = false

[snmp]
timeout = "5s"  # a Python start per request (the pass script): slow under load
retries = 0
interval = "1s"
jitter = 0.0

[[devices]]
name = "srv"
address = "{device}"
collect = ["load"]

[collect.load]
walk = ["UCD-SNMP-MIB::laLoadInt"]

[traps]
enabled = false

[[rules]]
name = "HighLoad"
expr = "laLoadInt > 100"
severity = "warning"
summary = "load row {{{{ laIndex }}}} at {{{{ value }}}}"
flap_detection = false

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = ["device"]
group_wait = "0s"
group_interval = "1s"
"""


@pytest.fixture
def device(snmpd_factory: SnmpdFactory) -> Snmpd:
    agent = snmpd_factory(passes=[PassScript(LA_LOAD_INT, LOAD_SCRIPT, priority=10)])
    set_load(agent, 1, 5)
    set_load(agent, 2, 5)
    return agent


def set_load(device: Snmpd, row: int, value: int) -> None:
    path = device.directory / f"la{row}"
    path.with_suffix(".tmp").write_text(f"{value}\n")
    path.with_suffix(".tmp").replace(path)


@pytest.fixture
def agent(
    tmp_path: Path, device: Snmpd, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[AgentProcess]:
    http = free_tcp_port()
    text = CONFIG.format(http=http, device=device.address, smtp=smtp_server.port)
    proc = AgentProcess(tmp_path, text, http, mib_cache)
    yield proc
    proc.cleanup()


def _silence_args(agent: AgentProcess, matchers: tuple[str, ...]) -> list[str]:
    args = [arg for m in matchers for arg in ("--match", m)]
    return [
        "silence",
        "add",
        *args,
        "--for",
        "1h",
        "--comment",
        "maintenance",
        "-c",
        str(agent.config),
    ]


def silence_process(agent: AgentProcess, *matchers: str) -> subprocess.CompletedProcess[str]:
    """``netalert silence add`` as an operator runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "netalert", *_silence_args(agent, matchers)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def silence(
    capsys: pytest.CaptureFixture[str], agent: AgentProcess, *matchers: str
) -> subprocess.CompletedProcess[str]:
    """The same command line in this process: its exit code, stdout and stderr."""
    return netalert_in_process(capsys, *_silence_args(agent, matchers))


def wait_for(what: Callable[[], Any], agent: AgentProcess, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)


def told(message: ReceivedMessage) -> tuple[str, list[str]]:
    """(FIRING or RESOLVED, the rows the text body names)."""
    parsed = message.parsed()
    body = parsed.get_body(("plain",))
    assert body is not None
    subject = str(parsed["Subject"])
    state = "RESOLVED" if subject.startswith("[RESOLVED") else "FIRING"
    rows = sorted(set(re.findall(r"load row (\d+) at", body.get_content())))
    return state, rows


def alert_rows(agent: AgentProcess, state: str) -> set[str]:
    rows = agent.query(f"SELECT labels FROM alerts WHERE rule = 'HighLoad' AND state = '{state}'")
    return {re.sub(r".*\"laIndex\": \"(\d+)\".*", r"\1", str(labels)) for (labels,) in rows}


def test_resolution_mailed_only_for_alerts_told_before_their_silence(
    agent: AgentProcess,
    device: Snmpd,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_load(device, 1, 500)
    set_load(device, 2, 500)
    agent.start()
    (first,) = wait_for(lambda: smtp_server.received(), agent)
    assert told(first) == ("FIRING", ["1", "2"])
    assert first.parsed().get_all("X-Netalert-Rule") == ["HighLoad"]

    done = silence_process(agent, "laIndex=1")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    # row 2 resolves: its own mail; row 1 (silenced, told) is not listed
    set_load(device, 2, 5)
    mails = wait_for(lambda: (m := smtp_server.received())[1:] and m, agent)
    assert [told(m) for m in mails[1:]] == [("RESOLVED", ["2"])]
    # row 1 resolves under its silence: its firing mail went out, so its resolution does too
    set_load(device, 1, 5)
    mails = wait_for(lambda: (m := smtp_server.received())[2:] and m, agent)
    assert [told(m) for m in mails[2:]] == [("RESOLVED", ["1"])]

    # silenced before it fired: nothing at all, resolution included
    assert silence(capsys, agent, "laIndex=2").returncode == 0
    set_load(device, 2, 500)
    wait_for(lambda: "2" in alert_rows(agent, "firing"), agent)
    set_load(device, 2, 5)
    wait_for(lambda: "2" in alert_rows(agent, "resolved"), agent)
    time.sleep(2.5)  # two group intervals
    assert len(smtp_server.received()) == 3, [told(m) for m in smtp_server.received()]
    code, _ = agent.terminate()
    assert code == 0, agent.log()
    assert len(smtp_server.received()) == 3  # the drain on stop has nothing to say either


def test_silence_on_a_label_nobody_has_warns(
    agent: AgentProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    agent.start()
    typo = silence(capsys, agent, "laIdnex=1", "device=srv")
    assert typo.returncode == 0, typo.stderr
    assert re.fullmatch(r"[0-9a-f]{8}\n", typo.stdout), typo.stdout
    assert typo.stderr == (
        "warning: no alert has a label 'laIdnex' and no rule gives one"
        " (labels: device, laIndex, rule, severity); this silence matches nothing\n"
    )
    negated = silence(capsys, agent, "laIdnex!=1")
    assert negated.stderr.endswith("; 'laIdnex!=1' holds for every alert\n"), negated.stderr
    # the labels the config gives are known, whatever the operator
    good = silence(capsys, agent, "laIndex=~1|2", "severity!=info")
    assert (good.returncode, good.stderr) == (0, "")
