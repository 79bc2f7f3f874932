"""``netalert poll``: configured devices and bare addresses, text and JSON, exit codes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netalert.cli.poll import PollOptions, run_poll
from netalert.config import load_config
from tests.support.faults import ROOT
from tests.support.ports import free_udp_port
from tests.support.snmpd import DEFAULT_USER, Snmpd, SnmpdFactory

# See tests/test_snmp_poller.py: pysnmp_mibs' modules use deprecated pysnmp calls.
pytestmark = [
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]


@pytest.fixture
def agent(snmpd_factory: SnmpdFactory) -> Snmpd:
    return snmpd_factory(community="c0mm", users=[DEFAULT_USER], sys_name="edge-3")


def run(options: PollOptions) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_poll(options, out, err)
    return code, out.getvalue(), err.getvalue()


def test_address_with_community(agent: Snmpd) -> None:
    code, out, err = run(PollOptions(agent.address, community="c0mm"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "SNMPv2-MIB::sysName.0 = edge-3" in lines
    assert "IF-MIB::ifDescr.1 = lo" in lines
    assert "IF-MIB::ifOperStatus.1 = up(1)" in lines
    assert any(line.startswith("SNMPv2-MIB::sysUpTime.0 = ") for line in lines)


def test_address_v3_json_and_explicit_oids(agent: Snmpd) -> None:
    options = PollOptions(
        agent.address,
        json=True,
        user="netalert",
        auth_protocol="SHA-256",
        auth_password=DEFAULT_USER.auth_password,
        priv_protocol="AES-128",
        priv_password=DEFAULT_USER.priv_password,
        get=("SNMPv2-MIB::sysName", "1.3.6.1.2.1.1.99.0"),
    )
    code, out, _ = run(options)
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "ok"
    names = {(s["name"], s["index"]): s for s in data["samples"]}
    assert names[("SNMPv2-MIB::sysName", "0")]["label"] == "edge-3"
    assert names[("SNMPv2-MIB::sysName", "0")]["value"] == {"hex": b"edge-3".hex()}
    assert names[("SNMPv2-MIB::sysUpTime", "0")]["type"] == "TimeTicks"
    # the native backend (the default) keeps the agent's word: no such object
    assert data["missing"] == [{"name": "SNMPv2-MIB::system.99.0", "kind": "noSuchObject"}]


def test_timeout_and_auth_failure_exit_1(agent: Snmpd) -> None:
    code, out, err = run(PollOptions(agent.address, community="wrong", timeout="300ms", retries=1))
    assert (code, out) == (1, "")
    assert err == (
        f"netalert: poll {agent.address}: timeout: {agent.address}: no answer within "
        "0.3s x 2 attempts (check address, port, community)\n"
    )
    code, out, err = run(
        PollOptions(
            agent.address, user="netalert", auth_protocol="SHA-256", auth_password="bad-pass-1"
        )
    )
    assert code == 1
    assert "auth: " in err and "wrongDigest (wrong auth password or auth protocol)" in err


def test_configured_device_from_the_command_line(agent: Snmpd, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[agent]
state_dir = "var"

[snmp]
community = "c0mm"

[[devices]]
name = "edge"
address = "{agent.address}"
collect = ["ifs"]

[collect.ifs]
walk = ["IF-MIB::ifOperStatus"]
"""
    )
    assert load_config(config).devices[0].name == "edge"
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "poll", "edge", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "IF-MIB::ifOperStatus.1 = up(1)" in done.stdout.splitlines()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "netalert",
            "poll",
            f"127.0.0.1:{free_udp_port()}",
            "--community",
            "x",
            "--timeout",
            "200ms",
            "--retries",
            "0",
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    assert "no answer within 0.2s x 1 attempt" in bad.stderr


def test_quick_start_poll_of_an_unknown_device_names_the_configured_ones(
    tmp_path: Path, mib_cache: Path
) -> None:
    # the README's quick start, with the config.toml the repository ships
    shutil.copy(ROOT / "config.toml", tmp_path / "config.toml")
    shutil.copytree(mib_cache, tmp_path / "var" / "mibs")
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "poll", "core-sw1", "-c", "config.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        "poll: no device named 'core-sw1' in config.toml (devices: localhost),"
        " and no host of that name\n"
    )


def test_address_by_host_name(agent: Snmpd) -> None:
    # a host name is resolved first (gufo takes IP addresses only)
    code, out, err = run(PollOptions(f"localhost:{agent.port}", community="c0mm"))
    assert (code, err) == (0, "")
    assert "SNMPv2-MIB::sysName.0 = edge-3" in out.splitlines()


def test_an_unknown_name_names_the_option_that_gave_it(agent: Snmpd) -> None:
    # a typo in --walk or --get: the line names that option (as config errors name their key)
    for option, names in (
        ("--walk", {"walk": ("IF-MIB::ifOperStatu",)}),
        ("--get", {"get": ("SNMPv2-MIB::sysNam.0",)}),
    ):
        code, out, err = run(PollOptions(agent.address, community="c0mm", **names))
        assert (code, out) == (2, "")
        assert err.startswith(f"{option}: unknown MIB name "), err
        assert "did you mean" in err
