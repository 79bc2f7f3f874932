"""The first run's MIB compile says so (issue 19): one line on a terminal, a log event otherwise.

A first ``check-config`` or ``run`` compiles the MIBs into the cache for tens of
seconds; silent, it reads as a hang. On a terminal (a pty here, as a person has)
one line comes first; on a pipe (scripts, the tests that compare stderr) nothing
is printed and the log has ``event=mib_compile`` at INFO instead.
"""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """
[agent]
state_dir = "state"

[mibs]
shared_cache = ""  # a first compile: no tree another state folder of the run built

[traps]
enabled = false
"""
LINE = re.compile(r"^compiling (\d+) MIB modules into the cache \(first run only\)\.\.\.\r?$")


def on_a_terminal(cwd: Path, *args: str, within: float = 300.0) -> tuple[int, str, str]:
    """Runs ``netalert ARGS`` with its stderr on a pty: (status, stdout, what the pty showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "netalert", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            shown += chunk
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        os.close(master)
    return status, out, shown.decode()


@pytest.mark.daemon  # `netalert check-config` in a subprocess, net-snmp's MIB files
def test_the_first_compile_says_so_on_a_terminal_once(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CONFIG)
    status, out, shown = on_a_terminal(tmp_path, "check-config", "-c", "config.toml")
    assert status == 0, (out, shown)
    lines = shown.splitlines()
    found = LINE.match(lines[0]) if lines else None
    assert found is not None, shown
    assert int(found.group(1)) >= 200  # the built-in modules and net-snmp's, not a guess
    assert len(lines) == 1, shown  # and nothing else: check-config's summary is on stdout
    assert out.startswith("config.toml: ok\n"), out
    # the cache is warm now: nothing to say
    status, _, shown = on_a_terminal(tmp_path, "check-config", "-c", "config.toml")
    assert (status, shown) == (0, "")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.unit
def test_off_a_terminal_the_compile_is_an_info_event(caplog: pytest.LogCaptureFixture) -> None:
    from netalert.mib.loader import announce_compile

    pipe = _Stream(tty=False)
    with caplog.at_level(logging.INFO, logger="netalert.mib.loader"):
        announce_compile(303, Path("var/mibs"), stream=pipe)
    assert pipe.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == [
        "event=mib_compile modules=303 cache=var/mibs"
    ]
    assert caplog.records[0].levelno == logging.INFO
    caplog.clear()
    terminal = _Stream(tty=True)
    announce_compile(303, Path("var/mibs"), stream=terminal)
    assert terminal.getvalue() == "compiling 303 MIB modules into the cache (first run only)...\n"
    assert caplog.records == []
