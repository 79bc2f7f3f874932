"""``netalert check-config`` reports the problems of every stage in one run.

A config with a schema problem (a port out of range, ``for = 30`` without a
unit), an unknown MIB name and rules that can never fire must list all of
them, each with the path of the original file (list indexes unchanged by the
entries that failed earlier stages), not only the first stage's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netalert.config.salvage import salvage_config
from tests.support.faults import ROOT

CONFIG = """
[agent]
state_dir = "state"

[traps]
allow = ["192.0.2.0/24"]

[[devices]]
name = "srv"
address = "192.0.2.7"
collect = ["sys", "ucd", "apc"]

[[devices]]
name = "bad"
address = "192.0.2.8:99999"

[collect.sys]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysNam.0"]

[collect.ucd]
walk = ["UCD-SNMP-MIB::laLoad"]

[collect.apc]
walk = ["1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"]

[[rules]]
name = "Slow"
expr = "laLoad == '9.99'"
for = 30

[[rules]]
name = "Load"
expr = "laLoad > 4"

[[rules]]
name = "Pdu"
expr = "'1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1' > 250"
devices = ["srv"]

[[rules]]
name = "PduOk"
expr = "value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1') > 250"

[smtp]
port = 70000
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_check_config_reports_every_stage_at_once(tmp_path: Path, mib_cache: Path) -> None:
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    done = check(path)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.splitlines() == [
        # the config's own checks
        "devices[1].address: port 99999 out of range 1-65535 in '192.0.2.8:99999'",
        'rules[0].for: invalid duration 30: a number needs a unit, e.g. "30s"'
        " (or 500ms, 5m, 4h, 1d)",
        "smtp.port: must be at most 65535, got 70000",
        # MIB names, on what the config's checks let through
        "collect.sys.get[1]: unknown MIB name 'SNMPv2-MIB::sysNam'"
        " (did you mean 'SNMPv2-MIB::sysName'?)",
        # rules: indexes as in the file, although rules[0] failed above
        "rules[1].expr: laLoad (text, DisplayString) is compared with the number 4 at column 1:"
        " that is never true",
        "rules[2].expr: the text '1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1' is compared with the"
        " number 250 at column 1: that is never true (to read a polled instance by its OID,"
        " use value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1'))",
    ]


@pytest.mark.daemon  # runs `netalert` as a process
def test_a_config_that_cannot_be_parsed_stops_at_the_first_stage(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[agent\n")
    done = check(path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "TOML syntax error" in done.stderr


CASCADE = """
[[devices]]
name = "sw1"
address = "192.0.2.1"
collect = ["if"]
credentials = "v3"

[credentials.v3]
user = "u"
auth_protocol = "SHA"

[collect.if]
wlak = ["IF-MIB::ifOperStatus"]

[[rules]]
name = "IfDown"
expr = "ifOperStatus == 'down'"
devices = ["sw1", "sw9"]
"""


def test_problems_that_only_follow_from_an_earlier_one_are_not_repeated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CASCADE)
    salvaged = salvage_config(path)
    assert salvaged.config is not None
    assert salvaged.problems == [
        "credentials.v3: 'auth_protocol' is set but 'auth_password' is missing",
        "collect.if.wlak: unknown key",
        # devices[0].credentials naming the failed credentials is not repeated
        "rules[0].devices[1]: unknown device 'sw9'",
    ]
    # the rule reads what the failed group would have collected: not reported again
    assert salvaged.later(["rules[0].expr: 'ifOperStatus' is not collected by ..."]) == []
