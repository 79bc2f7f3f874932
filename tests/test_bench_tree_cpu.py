"""The trap-workers bench counts the CPU of every process of a receiver: the zygote is
started from a thread of the agent's, and its workers below it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.bench_trap_workers import _tree_cpu_ns
from bench.bench_traps import cpu_ns

pytestmark = pytest.mark.daemon

# a parent that starts, from a thread that stays, a child that burns 0.3 s of CPU and waits
_PARENT = """
import subprocess, sys, threading, time
code = (
    "import time\\nt = time.process_time()\\n"
    "while time.process_time() - t < 0.3: pass\\ntime.sleep(60)"
)
def start():  # and stays, as an executor's thread does
    subprocess.Popen([sys.executable, "-c", code])
    time.sleep(60)
threading.Thread(target=start, daemon=True).start()
time.sleep(60)
"""


def test_the_cpu_of_a_child_started_from_a_thread_is_counted() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT])
    try:
        deadline = time.monotonic() + 20
        while _tree_cpu_ns(parent.pid) - cpu_ns(parent.pid) < 0.25e9:
            assert time.monotonic() < deadline, "the child's CPU was never counted"
            time.sleep(0.05)
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait(10)
