"""Fault tests: an unusable state directory stops `netalert run` at once, with one clear line.

Three ways the state directory can be unusable, each made for real and without
privileges (tests run as root here, so permissions alone would prove nothing):

* its parent is a regular file (ENOTDIR): a wrong path;
* it is on a read-only filesystem (EROFS): a bind mount remounted read-only in
  a private user+mount namespace (``unshare -rm``), as ``ProtectSystem=strict``
  without ``StateDirectory=`` would leave it;
* its filesystem is full (ENOSPC): a small tmpfs mounted in such a namespace and
  filled up, holding a MIB cache and a database from an earlier run.

In each case `netalert run` exits non-zero within seconds with one line on
stderr that names the path and says what to do, and no traceback; it does not
keep running half-started (systemd's StartLimitBurst ends the restarts).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netalert.state import open_database
from tests.support.faults import ROOT
from tests.support.ports import free_udp_port
from tests.support.shared import python_path

CONFIG = """
[agent]
state_dir = "{state}"
http = ""

[traps]
listen = ["127.0.0.1:{traps}"]

[smtp]
host = "127.0.0.1"
port = 9
"""

MAX_SECONDS = 15.0  # a cold MIB compile takes ~4 s on this machine; the failure must come first


def write_config(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=state, traps=free_udp_port()))
    return path


def run(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "NOTIFY_SOCKET": "", "PYTHONPATH": python_path(ROOT)}
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False
    )
    return done, time.monotonic() - started


def in_namespace(script: str) -> list[str]:
    """``sh -ec script`` as root of a new user and mount namespace: mounts without privileges."""
    assert shutil.which("unshare"), "util-linux unshare is needed (apt-get install util-linux)"
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-ec", script]


def agent_command(config: Path) -> str:
    return shlex.join([sys.executable, "-m", "netalert", "run", "-c", str(config)])


def check_failure(done: subprocess.CompletedProcess[str], took: float, path: Path) -> str:
    """Non-zero exit, quickly, one error line naming ``path``, no traceback; returns the line."""
    output = done.stdout + done.stderr
    assert done.returncode not in (0, None), output
    assert took < MAX_SECONDS, (took, output)
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if not line.startswith("level=")]
    assert len(errors) == 1, done.stderr
    [line] = errors
    assert line.startswith("netalert: "), line
    assert str(path) in line, line
    assert "[agent].state_dir" in line, line  # the fix names the setting
    return line


@pytest.mark.e2e
def test_state_dir_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be\n")
    state = blocker / "state"
    config = write_config(tmp_path, state)
    done, took = run([sys.executable, "-m", "netalert", "run", "-c", str(config)], tmp_path)
    line = check_failure(done, took, state)
    assert "Not a directory" in line, line


def test_read_only_state_dir(tmp_path: Path, mib_cache: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(mib_cache, state / "mibs")
    open_database(state).close()  # it worked yesterday: a database from an earlier run
    config = write_config(tmp_path, state)
    q = shlex.quote(str(state))
    script = f"mount --bind {q} {q}\nmount -o remount,bind,ro {q}\nexec {agent_command(config)}"
    done, took = run(in_namespace(script), tmp_path)
    line = check_failure(done, took, state)
    assert "Read-only file system" in line, line


def test_full_state_filesystem(tmp_path: Path, mib_cache: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    state = disk / "state"
    seed = tmp_path / "seed"
    shutil.copytree(mib_cache, seed / "mibs")
    open_database(seed).close()
    config = write_config(tmp_path, state)
    d, s = shlex.quote(str(disk)), shlex.quote(str(seed))
    # room for the seed (the MIB cache and an empty database) and 1 MiB more, then filled
    size = sum(f.stat().st_size for f in seed.rglob("*") if f.is_file()) // 2**20 + 2
    script = (
        f"mount -t tmpfs -o size={size}m tmpfs {d}\n"
        f"cp -r {s} {d}/state\n"
        # fill the rest of the filesystem: dd stops at ENOSPC
        f"dd if=/dev/zero of={d}/filler bs=64k 2>/dev/null || true\n"
        f"exec {agent_command(config)}"
    )
    done, took = run(in_namespace(script), tmp_path)
    line = check_failure(done, took, state)
    assert "No space left on device" in line or "full" in line, line
