"""Stopping a server a test fixture started, by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["stop_pid"]


def stop_pid(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Sends ``sig`` to a still running ``proc``; SIGKILL if it has not ended after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
