"""``netalert demo`` end to end, as a user runs it: a subprocess, its output, its exit code.

The first test takes the demo's full minute (plus MIB compilation and the drain).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e  # `netalert demo` as a subprocess

SUBJECT = re.compile(r"^\| Subject: \[(FIRING|RESOLVED)(?::\d+)?\] \w+ (\w+) on ([\w-]+)$")


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "netalert", "demo", *args]


def test_demo_mails_firing_and_resolved_alerts_within_a_minute() -> None:
    # The whole scenario (a minute of it) at 4x: polls, `for`, group waits and the
    # devices' own clocks shrink alike, so the same mails arrive in a quarter of the time.
    began = time.monotonic()
    proc = subprocess.run(
        demo_command("--duration", "60", "--speed", "4"),
        capture_output=True,
        text=True,
        timeout=80,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    took = time.monotonic() - began
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"
    subjects = [m.groups() for line in out.splitlines() if (m := SUBJECT.match(line))]
    states = [state for state, _, _ in subjects]
    assert "FIRING" in states and "RESOLVED" in states, out
    # Every scenario event made its way to a mail: each rule fired and resolved.
    for rule, device in (
        ("InterfaceDown", "demo-sw1"),
        ("LinkDown", "demo-sw1"),
        ("ChassisTooHot", "demo-env1"),
    ):
        for state in ("FIRING", "RESOLVED"):
            assert (state, rule, device) in subjects, f"no {state} mail for {rule}:\n{out}"
    summary = re.search(
        r"^summary: (\d+) e-mails received: firing (\d+), resolved (\d+)$", out, re.MULTILINE
    )
    assert summary is not None, out
    assert int(summary[1]) == len(subjects)
    assert (int(summary[2]), int(summary[3])) == (states.count("FIRING"), states.count("RESOLVED"))
    assert re.search(r"^status page: http://127\.0\.0\.1:\d+/$", out, re.MULTILINE), out
    assert "time is up: stopping the agent" in out
    assert "the scenario runs for 60 s at 4x speed (15 s)" in out
    assert re.search(r"^\[t\+  30s\] demo-sw1: trap storm", out, re.MULTILINE), out
    assert took < 60


def test_ctrl_c_stops_the_demo_cleanly() -> None:
    proc = subprocess.Popen(
        demo_command("--duration", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 40
        while not any(line.startswith("the scenario runs for") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "Ctrl-C: stopping the agent" in out
    assert re.search(r"^summary: \d+ e-mails received", out, re.MULTILINE), out
    assert "Traceback" not in err
