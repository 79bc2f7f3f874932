"""``netalert traps``: live output of real traps, clean exit on SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netalert.cli.traps import format_event
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from tests.support.ports import free_udp_port
from tests.support.shared import python_path

ROOT = Path(__file__).resolve().parents[1]


def _netalert(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=python_path(ROOT))
    env.pop("NETALERT_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "netalert", "traps", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )


def _trap(port: int, community: str) -> None:
    subprocess.run(
        ["snmptrap", "-v", "2c", "-c", community, f"127.0.0.1:{port}", "",
         "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.8.4", "i", "2"],
        check=True, timeout=10,
    )  # fmt: skip


@pytest.mark.daemon
def test_prints_json_lines_and_exits_0_on_sigint(tmp_path: Path) -> None:
    port = free_udp_port()
    proc = _netalert(tmp_path, "--listen", f"127.0.0.1:{port}", "--json")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"netalert traps exited early: rc={proc.poll()}"
            if "listening on" in line:
                break
        _trap(port, "wrong")
        _trap(port, "public")
        event = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert rest == ""  # the wrong community printed nothing
    assert (event["trap"], event["version"], event["inform"]) == ("IF-MIB::linkDown", "2c", False)
    status = next(vb for vb in event["varbinds"] if vb["name"] == "IF-MIB::ifOperStatus")
    assert (status["index"], status["value"], status["label"]) == ("4", 2, "down")
    assert "reason=bad_community" in err
    assert "received 1, rejected 1" in err


@pytest.mark.daemon
def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    proc = _netalert(tmp_path, "-c", str(tmp_path / "missing.toml"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "missing.toml: no such file" in err


def test_text_output_escapes_what_the_sender_chose() -> None:
    hostile = "eth0\n\x1b[2K\rforged\x9b31m\u2028\x7f"
    event = TrapEvent(
        source="192.0.2.7",
        source_port=40000,
        version="3",
        trap_oid="1.3.6.1.6.3.1.1.5.3",
        trap_name="IF-MIB::linkDown",
        varbinds=(
            VarBind(
                "1.3.6.1.2.1.2.2.1.2.4", SnmpType.OCTET_STRING, hostile.encode(), label=hostile
            ),
            VarBind("1.3.6.1.2.1.2.2.1.8.4", SnmpType.INTEGER, 2, label="down\x1b[0m"),
        ),
        uptime=None,
        received=0.0,
        user="ops\x1b]0;x\x07",
    )
    head, body = format_event(event, str).split("\n")
    assert head.endswith("user=ops\\u001b]0;x\\u0007:")
    first, second = body.split("\t")
    assert json.loads(first.split("STRING: ", 1)[1]) == hostile
    assert second.endswith("INTEGER: down\\u001b[0m(2)")
    assert all(c.isprintable() for c in head + first + second)
