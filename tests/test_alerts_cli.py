"""``netalert alerts`` and the rule checks of ``netalert check-config``, run as commands.

One call of each command starts a real ``netalert`` process (its exit code and streams);
the others run the same command line in this process (``tests/support/cli.py``), which
spares a Python start and the MIB tree's load each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netalert.alerting import Alerting
from netalert.alerts.store import SqliteAlertStore
from netalert.config import load_config
from netalert.state import open_database
from tests.support.cli import netalert_in_process
from tests.support.polls import Device, unlabelled
from tests.support.trees import builtin_tree

pytestmark = [
    pytest.mark.daemon,  # `netalert` commands as processes
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]

CONFIG = """
[agent]
state_dir = "state"

[mibs]
paths = []
system_paths = []

[traps]
allow = ["192.0.2.0/24"]           # no "traps from anywhere" warning on stderr

[[devices]]
name = "sw1"
address = "192.0.2.1"
collect = ["if"]

[collect.if]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus"]

[[rules]]
name = "InterfaceDown"
expr = "{expr}"
severity = "critical"
summary = "{{{{ device }}}} {{{{ ifDescr }}}} is down"
"""


def netalert_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def netalert(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return netalert_in_process(capsys, *args, cwd=cwd)


def alerting(path: Path) -> Alerting:
    """The rule engine of the config at ``path`` on its SQLite state, as the agent has it."""
    config = load_config(path)
    return Alerting(config, builtin_tree(), SqliteAlertStore(open_database(config.agent.state_dir)))


def write(tmp_path: Path, expr: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(expr=expr))
    return path


def test_check_config_reports_rule_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "ifOperStatu == 'down'")
    result = netalert_process("check-config", "-c", "config.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "rules[0].expr: unknown name 'ifOperStatu' at column 1 (did you mean 'ifOperStatus'?)\n"
    )
    write(tmp_path, "ifOperStatus == 'down' and ifAdminStatus == 'up'")
    result = netalert(capsys, "check-config", "-c", "config.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "rules: 1 (1 poll, 0 trap)" in result.stdout


def test_check_config_warns_of_a_template_name_nothing_provides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 19: {{ ifDesc }} (for ifDescr) renders empty in every mail; the config stays valid
    path = write(tmp_path, "ifOperStatus == 'down'")
    path.write_text(path.read_text().replace("{{ ifDescr }}", "{{ ifDesc }}"))
    result = netalert(capsys, "check-config", "-c", "config.toml", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        0,
        "warning: rules[0].summary: rule 'InterfaceDown': {{ ifDesc }} names nothing this rule"
        " provides; it writes nothing (did you mean ifDescr?)\n",
    )
    assert "rules: 1 (1 poll, 0 trap)" in result.stdout


def test_alerts_lists_active_alerts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ifOperStatus == 'down' and ifAdminStatus == 'up'")
    assert netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout == "no active alerts\n"
    assert not (tmp_path / "state").exists()  # listing does not create state

    engine = alerting(path)
    rows = {
        "1": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": b"eth0\x1b[31m"},
        "2": {"ifOperStatus": 1, "ifAdminStatus": 1, "ifDescr": b"eth1"},
    }
    sw1 = Device("sw1")
    # raw values without the DISPLAY-HINT rendering: the control character stays in the bytes
    fired = engine.on_poll(unlabelled(sw1.poll(1_800_000_000.0, rows)), 1_800_000_000.0)
    assert len(fired) == 1

    table = netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path)
    assert table.returncode == 0
    short = fired[0].fingerprint[:8]  # the ID `netalert ack` takes (issue 19)
    assert table.stdout.splitlines() == [
        "ID        STATE   SEVERITY  RULE           DEVICE  SINCE                 VALUE  COUNT"
        "  LABELS",
        f"{short}  firing  critical  InterfaceDown  sw1     2027-01-15 08:00:00Z  down   1    "
        "  ifIndex=1",
    ]
    acked = netalert_process(
        "ack", table.stdout.splitlines()[1].split()[0], "-c", str(path), cwd=tmp_path
    )
    assert (acked.returncode, acked.stdout) == (
        0,
        f"acked {fired[0].fingerprint} (InterfaceDown on sw1)\n",
    )
    data = json.loads(netalert(capsys, "alerts", "--json", "-c", str(path), cwd=tmp_path).stdout)
    assert len(data) == 1
    assert data[0]["fingerprint"] == fired[0].fingerprint
    assert data[0]["labels"] == {
        "rule": "InterfaceDown",
        "severity": "critical",
        "device": "sw1",
        "ifIndex": "1",
    }
    # a control character makes the string binary: shown as hex, never sent to a terminal
    assert data[0]["annotations"]["summary"] == "sw1 65:74:68:30:1b:5b:33:31:6d is down"
    assert (data[0]["state"], data[0]["source"], data[0]["count"]) == ("firing", "poll", 1)

    engine.on_poll(sw1.poll(1_800_000_060.0, {"2": rows["2"]}), 1_800_000_060.0)
    assert netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout == "no active alerts\n"


def test_alerts_with_a_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.toml").write_text("[agent]\nnope = 1\n")
    result = netalert_process("alerts", "-c", "config.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("agent.nope: unknown key")


def test_alerts_marks_a_cut_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ifDescr != '' and ifOperStatus == 'down'")
    engine = alerting(path)
    long = "GigabitEthernet0/0/1 uplink to core router 7, building B"
    short = "Gi0/0/2 uplink"
    rows = {
        "1": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": long.encode()},
        "2": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": short.encode()},
    }
    assert len(engine.on_poll(Device("sw1").poll(1.8e9, rows), 1.8e9)) == 2
    lines = netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout.splitlines()
    cut, whole = lines[1], lines[2]
    assert long[:39] + "…" in cut and long not in cut
    assert f"  {short}  " in whole and "…" not in whole
    # the full value is in the JSON
    data = json.loads(netalert(capsys, "alerts", "--json", "-c", str(path), cwd=tmp_path).stdout)
    assert sorted(a["value"] for a in data) == sorted([long, short])


def test_ack_and_unack_from_the_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ifOperStatus == 'down'")
    engine = alerting(path)
    rows = {"1": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": b"eth0"}}
    [fired] = engine.on_poll(Device("sw1").poll(1.8e9, rows), 1.8e9)
    fp = fired.fingerprint

    acked = netalert(
        capsys,
        "ack",
        fp[:8],
        "--comment",
        "on it",
        "--author",
        "ann",
        "-c",
        str(path),
        cwd=tmp_path,
    )
    assert (acked.returncode, acked.stdout) == (0, f"acked {fp} (InterfaceDown on sw1)\n")
    # this config has no [ack]: a running agent would not honour the ack, and says so
    assert "[ack] is not configured" in acked.stderr
    table = netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout.splitlines()
    assert table[1].startswith(f"{fp[:8]}  firing,acked  critical  InterfaceDown")
    [row] = json.loads(netalert(capsys, "alerts", "--json", "-c", str(path), cwd=tmp_path).stdout)
    assert {k: row["ack"][k] for k in ("by", "comment", "via")} == {
        "by": "ann",
        "comment": "on it",
        "via": "cli",
    }

    unacked = netalert(capsys, "unack", fp, "-c", str(path), cwd=tmp_path)
    assert (unacked.returncode, unacked.stdout) == (0, f"unacked {fp} (InterfaceDown on sw1)\n")
    [row] = json.loads(netalert(capsys, "alerts", "--json", "-c", str(path), cwd=tmp_path).stdout)
    assert row["ack"] is None
    again = netalert_process("unack", fp, "-c", str(path), cwd=tmp_path)
    assert (again.returncode, again.stderr) == (
        1,
        f"alert {fp} is not acknowledged\n",
    )
    unknown = netalert(capsys, "ack", "ffffffffffffffff", "-c", str(path), cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no firing alert with id 'ffffffffffffffff'" in unknown.stderr


def test_alerts_shows_which_alerts_a_silence_mutes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an operator who just ran `silence add` sees it take effect in `netalert alerts`
    path = write(tmp_path, "ifOperStatus == 'down'")
    engine = alerting(path)
    rows = {
        "1": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": b"eth0"},
        "2": {"ifOperStatus": 2, "ifAdminStatus": 1, "ifDescr": b"eth1"},
    }
    fired = engine.on_poll(unlabelled(Device("sw1").poll(1_800_000_000.0, rows)), 1_800_000_000.0)
    assert len(fired) == 2
    added = netalert_process(
        "silence", "add", "--match", "ifIndex=1", "--for", "1h", "--comment", "card swap",
        "-c", str(path), cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence = added.stdout.strip()

    table = netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout.splitlines()
    assert [line.split()[1] for line in table] == ["STATE", "firing,silenced", "firing"]
    assert table[1].endswith("ifIndex=1") and table[2].endswith("ifIndex=2")
    data = json.loads(netalert(capsys, "alerts", "--json", "-c", str(path), cwd=tmp_path).stdout)
    assert {row["labels"]["ifIndex"]: row["silence"] for row in data} == {"1": silence, "2": None}

    assert (
        netalert_process("silence", "expire", silence, "-c", str(path), cwd=tmp_path).returncode
        == 0
    )
    table = netalert(capsys, "alerts", "-c", str(path), cwd=tmp_path).stdout.splitlines()
    assert [line.split()[1] for line in table] == ["STATE", "firing", "firing"]
