"""The processes of a running agent, read from /proc: its trap workers and their zygote."""

from __future__ import annotations

import contextlib
from pathlib import Path

__all__ = ["alive", "descendants", "named", "trap_workers", "zygotes"]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(p) for p in (task / "children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def named(pids: list[int], name: str) -> list[int]:
    """Those of ``pids`` whose /proc/PID/comm (what ps shows) is ``name``."""
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                out.append(pid)
    return out


def trap_workers(agent: int) -> list[int]:
    """The trap worker processes of the agent ``agent`` (forked by its zygote)."""
    return named(descendants(agent), "netalert-worker")


def zygotes(agent: int) -> list[int]:
    """The agent's trap zygote (one, or none)."""
    return named(descendants(agent), "netalert-zygote")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
