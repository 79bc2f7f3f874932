"""The snmpd fixture itself: isolation, users, pass scripts, restart, stop by PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.snmpd import (
    DEFAULT_USER,
    PassScript,
    Snmpd,
    SnmpdError,
    SnmpdFactory,
    V3User,
    discover_engine,
)

SYS_NAME = ".1.3.6.1.2.1.1.5.0"
SYS_UPTIME = ".1.3.6.1.2.1.1.3.0"
ENGINE_BOOTS = ".1.3.6.1.6.3.10.2.1.2.0"


def test_default_agent_answers_v2c_and_v3(snmpd: Snmpd) -> None:
    assert snmpd.host == "127.0.0.1" and snmpd.port > 0
    assert snmpd.snmpget(SYS_NAME) == f'{SYS_NAME} "netalert-test"\n'
    assert snmpd.snmpget(SYS_NAME, user=DEFAULT_USER) == f'{SYS_NAME} "netalert-test"\n'
    assert len(snmpd.engine_id) >= 5
    assert discover_engine(snmpd.host, snmpd.port) == snmpd.engine_id


def test_chosen_system_values_users_and_engine_id(snmpd_factory: SnmpdFactory) -> None:
    users = [
        V3User("md5des", "MD5", "auth-pass-1", "DES", "priv-pass-1"),
        V3User("sha512", "SHA-512", "auth pass 2", "AES-256", "priv-pass-2"),
        V3User("authonly", "SHA", "auth-pass-3", None),
    ]
    agent = snmpd_factory(
        community=None,
        users=users,
        sys_name="edge-7",
        sys_location="rack 4",
        engine_id_hex="80000000010203040506",
    )
    assert agent.engine_id == bytes.fromhex("80000000010203040506")
    for user in users:
        out = agent.snmpget(SYS_NAME, ".1.3.6.1.2.1.1.6.0", user=user)
        assert out == f'{SYS_NAME} "edge-7"\n.1.3.6.1.2.1.1.6.0 "rack 4"\n'
    with pytest.raises(SnmpdError, match="Timeout"):  # no community configured
        agent.snmpget(SYS_NAME, timeout=0.5)
    wrong = V3User("md5des", "MD5", "wrong-pass-1", "DES", "priv-pass-1")
    with pytest.raises(SnmpdError, match=r"(?i)authentication|digest"):
        agent.snmpget(SYS_NAME, user=wrong)


def test_pass_script_overrides_sysuptime(snmpd_factory: SnmpdFactory) -> None:
    script = f"""#!{sys.executable}
import sys
if sys.argv[1] in ("-g", "-n") and sys.argv[2].startswith(".1.3.6.1.2.1.1.3"):
    if sys.argv[1] == "-g" and sys.argv[2] != ".1.3.6.1.2.1.1.3.0":
        sys.exit(0)
    print(".1.3.6.1.2.1.1.3.0"); print("timeticks"); print(4242)
"""
    agent = snmpd_factory(passes=[PassScript(".1.3.6.1.2.1.1.3", script, priority=10)])
    assert agent.snmpget(SYS_UPTIME) == f"{SYS_UPTIME} 4242\n"


def test_pass_script_runs_for_every_request(snmpd_factory: SnmpdFactory, tmp_path: Path) -> None:
    """Two identical GETs in a row each run the script: a test that changes what the
    script reads between them sees the change (snmpd caches a ``pass`` command's
    output for 30 s while the same command line repeats)."""
    ticks = tmp_path / "ticks"
    ticks.write_text("100")
    script = f"""#!{sys.executable}
import sys
if sys.argv[1:] == ["-g", "{SYS_UPTIME}"]:
    print("{SYS_UPTIME}"); print("timeticks"); print(open({str(ticks)!r}).read().strip())
"""
    agent = snmpd_factory(passes=[PassScript(".1.3.6.1.2.1.1.3", script, priority=10)])
    assert agent.snmpget(SYS_UPTIME) == f"{SYS_UPTIME} 100\n"
    ticks.write_text("200")
    assert agent.snmpget(SYS_UPTIME) == f"{SYS_UPTIME} 200\n"
    assert agent.snmpget(SYS_NAME) == f'{SYS_NAME} "netalert-test"\n'
    ticks.write_text("300")
    assert agent.snmpget(SYS_UPTIME) == f"{SYS_UPTIME} 300\n"


def test_restart_keeps_engine_and_counts_boots(snmpd: Snmpd) -> None:
    engine, port, pid = snmpd.engine_id, snmpd.port, snmpd.pid
    assert snmpd.snmpget(ENGINE_BOOTS) == f"{ENGINE_BOOTS} 1\n"
    snmpd.restart()
    assert (snmpd.engine_id, snmpd.port) == (engine, port)
    assert snmpd.pid != pid
    assert snmpd.snmpget(ENGINE_BOOTS) == f"{ENGINE_BOOTS} 2\n"


def test_stop_by_pid(snmpd: Snmpd) -> None:
    pid = snmpd.pid
    snmpd.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert discover_engine(snmpd.host, snmpd.port, timeout=0.3) is None
    with pytest.raises(SnmpdError):
        _ = snmpd.pid


def test_isolated_from_system_config(snmpd: Snmpd) -> None:
    env = snmpd.env
    assert "/etc/snmp" not in env["SNMPCONFPATH"]
    assert (snmpd.persist_dir / "snmpd.conf").exists() or snmpd.persist_dir.is_dir()
    assert "createUser netalert SHA-256" in snmpd.config_path.read_text()


def _quiet_stderr(env: dict[str, str], snmpd: Snmpd) -> str:
    result = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", "public", "-On", snmpd.address, "1.3.6.1.2.1.1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    )
    return result.stderr


def test_tools_say_nothing_about_their_persistent_folder(snmpd: Snmpd) -> None:
    """A fresh net-snmp persistent folder makes a tool print "Created directory: ..." on
    stderr, which tests reading a tool's stderr would take for its answer."""
    assert _quiet_stderr(snmpd.env, snmpd) == ""
    # the tools a test starts with the run's environment: a folder of this process, not
    # /var/lib/snmp (shared by every worker and every run), and already made
    persistent = Path(os.environ["SNMP_PERSISTENT_DIR"])
    assert persistent.is_dir() and not persistent.is_relative_to("/var/lib/snmp")
    assert _quiet_stderr(dict(os.environ), snmpd) == ""
