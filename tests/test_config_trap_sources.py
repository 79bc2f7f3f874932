"""Trap sources: restrictive examples, and a warning while traps are accepted from anywhere.

The warning line is asserted as users see it: from ``config_warnings``, from
``netalert check-config`` run as a process (exit status still 0), and in the log
of a real ``netalert run`` (once at start, again after a reload that keeps it).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netalert.config import load_config, load_config_text
from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

ROOT = Path(__file__).resolve().parent.parent

OPEN_TRAPS_DEFAULT = (
    "traps.allow: traps are accepted from anywhere (the default 0.0.0.0/0, ::/0); "
    'list the networks your devices send from, e.g. allow = ["192.0.2.0/24"]'
)
OPEN_TRAPS = (
    "traps.allow: traps are accepted from anywhere ({nets}); "
    'list the networks your devices send from, e.g. allow = ["192.0.2.0/24"]'
)


@pytest.mark.parametrize(
    ("traps", "expected"),
    [
        ("", [OPEN_TRAPS_DEFAULT]),
        ('allow = ["0.0.0.0/0"]', [OPEN_TRAPS.format(nets="0.0.0.0/0")]),
        ('allow = ["10.0.0.0/8", "::/0"]', [OPEN_TRAPS.format(nets="::/0")]),
        ('allow = ["0.0.0.0/0", "::/0"]', [OPEN_TRAPS.format(nets="0.0.0.0/0, ::/0")]),
        ('allow = ["10.0.0.0/8", "2001:db8::/32"]', []),
        ('allow = ["0.0.0.0/1", "128.0.0.0/1"]', []),  # wide, but a choice someone wrote
        ("enabled = false", []),  # no receiver, nothing accepted
    ],
)
def test_config_warnings(traps: str, expected: list[str]) -> None:
    from netalert.config.risks import config_warnings

    config = load_config_text(f"[traps]\n{traps}\n", env={})
    assert [str(w) for w in config_warnings(config)] == expected


# --- as processes ------------------------------------------------------------------------


def netalert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def write_config(directory: Path, text: str, mib_cache: Path) -> Path:
    """config.toml in ``directory`` with a warm MIB cache, so check-config takes ~1 s."""
    if not (directory / "state" / "mibs").exists():
        shutil.copytree(mib_cache, directory / "state" / "mibs")
    path = directory / "config.toml"
    path.write_text(f'[agent]\nstate_dir = "state"\nhttp = ""\n{text}')
    return path


def test_check_config_warns_about_open_trap_sources(tmp_path: Path, mib_cache: Path) -> None:
    write_config(tmp_path, "", mib_cache)
    open_ = netalert("check-config", "-c", "config.toml", cwd=tmp_path)
    assert open_.returncode == 0, open_.stderr
    assert open_.stderr.splitlines() == ["warning: " + OPEN_TRAPS_DEFAULT]
    assert "config.toml: ok" in open_.stdout
    write_config(tmp_path, '[traps]\nallow = ["192.0.2.0/24"]\n', mib_cache)
    closed = netalert("check-config", "-c", "config.toml", cwd=tmp_path)
    assert (closed.returncode, closed.stderr) == (0, "")


def test_shipped_config_is_restrictive() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.traps.allow and all(net.prefixlen > 0 for net in config.traps.allow)
    from netalert.config.risks import config_warnings

    assert config_warnings(config) == []


def test_readme_examples_are_restrictive() -> None:
    # the README and every page of docs/ (the examples moved there from the README)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs = "\n".join(page.read_text() for page in pages)
    blocks = re.findall(r"```toml\n(.*?)```", docs, re.DOTALL)
    # every example that sets up a receiver (listen) also says whom it accepts
    receivers = [b for b in blocks if re.search(r"^\[traps\]\nlisten = ", b, re.MULTILINE)]
    assert receivers, "the docs show [traps] examples"
    for block in receivers:
        assert re.search(r"^allow = \[", block, re.MULTILINE), block
    for line in docs.splitlines():
        if re.search(r"\ballow = \[", line):
            assert not re.search(r"/0\"", line), line


# --- netalert run ------------------------------------------------------------------------

RUN_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "1s"

[traps]
listen = ["127.0.0.1:{traps}"]
{allow}

[smtp]
host = "127.0.0.1"
port = {smtp}
"""
WARNING_EVENT = re.compile(
    r"^level=warning logger=netalert\.service event=config_warning ", re.MULTILINE
)


def wait_log(agent: AgentProcess, pattern: str, count: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while agent.log().count(pattern) < count:
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)


def test_run_logs_open_trap_sources_once(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    http, traps = free_tcp_port(), free_udp_port()

    def text(allow: str) -> str:
        return RUN_CONFIG.format(http=http, traps=traps, smtp=smtp_server.port, allow=allow)

    agent = AgentProcess(tmp_path, text(""), http, mib_cache, traps_port=traps)
    try:
        agent.start()
        wait_log(agent, "event=started ", 1)
        warnings = WARNING_EVENT.findall(agent.log())
        assert len(warnings) == 1, agent.log()
        expected = (
            "config_warning path=traps.allow problem="
            '"traps are accepted from anywhere (the default 0.0.0.0/0, ::/0); '
            'list the networks your devices send from, e.g. allow = [\\"192.0.2.0/24\\"]"'
        )
        assert expected in agent.log(), agent.log()
        # a reload to a restrictive config says nothing; back to everywhere warns again
        agent.config.write_text(text('allow = ["127.0.0.0/8"]'))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        wait_log(agent, "event=reloaded ", 1)
        assert len(WARNING_EVENT.findall(agent.log())) == 1, agent.log()
        agent.config.write_text(text('allow = ["127.0.0.0/8", "::/0"]'))
        agent.proc.send_signal(signal.SIGHUP)
        wait_log(agent, "event=reloaded ", 2)
        assert len(WARNING_EVENT.findall(agent.log())) == 2, agent.log()
        assert "traps are accepted from anywhere (::/0)" in agent.log()
        # a template name no trap can carry (issue 19): the reload logs it, as check-config
        typo = '[[rules]]\nname = "LinkDown"\ntrap = "IF-MIB::linkDown"\nsummary = "{{ ifDesc }}"\n'
        agent.config.write_text(text('allow = ["127.0.0.0/8"]') + typo)
        agent.proc.send_signal(signal.SIGHUP)
        wait_log(agent, "event=reloaded ", 3)
        assert len(WARNING_EVENT.findall(agent.log())) == 3, agent.log()
        assert (
            "config_warning path=rules[0].summary problem=\"rule 'LinkDown': {{ ifDesc }} names"
            ' nothing this rule provides; it writes nothing (did you mean ifDescr?)"'
        ) in agent.log(), agent.log()
        code, _ = agent.terminate()
        assert code == 0, agent.log()
    finally:
        agent.cleanup()


def test_devices_sharing_an_address_are_warned_about(tmp_path: Path, mib_cache: Path) -> None:
    devices = "".join(
        f'[[devices]]\nname = "{name}"\naddress = "{address}"\n'
        for name, address in (("sw1", "192.0.2.1"), ("sw2", "192.0.2.2"), ("sw1b", "192.0.2.1"))
    )
    write_config(tmp_path, f'[traps]\nallow = ["192.0.2.0/24"]\n{devices}', mib_cache)
    shared = netalert("check-config", "-c", "config.toml", cwd=tmp_path)
    assert shared.returncode == 0, shared.stderr
    assert shared.stderr.splitlines() == [
        "warning: devices[2].address: 'sw1b' has the address of 'sw1' (192.0.2.1): traps "
        "from it are credited to 'sw1'; give 'sw1b' an engine_id (SNMPv3) or its own address"
    ]
