"""What the figures were measured on, and how busy the machine was meanwhile.

The machine is usually shared: ``CpuWatch`` reads /proc/stat and /proc/loadavg
before and after a run, so a result can say how much CPU went to steal and to
processes other than the bench (load average) while it ran.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["CpuWatch", "describe"]

LIBRARIES = ("pysnmp", "gufo_snmp", "aiosmtplib", "aiosmtpd", "pydantic", "cryptography")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (out.stdout + out.stderr).strip()


def describe() -> dict[str, Any]:
    """CPU model, cores, memory, OS, kernel, Python, net-snmp and library versions, date."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    snmpd = re.search(r"NET-SNMP version:\s*(\S+)", _run("/usr/sbin/snmpd", "-v"))
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "os": os_name.group(1) if os_name else platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "net_snmp": snmpd.group(1) if snmpd else None,
        "net_snmp_package": _run("dpkg-query", "-W", "-f", "${Version}", "snmpd") or None,
        "virtualisation": _run("systemd-detect-virt") or None,
        "libraries": versions,
    }


def _cpu_times() -> list[int]:
    """The aggregate "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal."""
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu "):
            return [int(x) for x in line.split()[1:9]]
    return [0] * 8


def _own_cpu() -> float:
    """CPU seconds of this process and of every child it has waited for (and theirs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class CpuWatch:
    """Machine-wide CPU use between ``start()`` and ``stop()``, the bench's own and others'.

    Call ``stop()`` after every child has been waited for: their CPU is then
    in RUSAGE_CHILDREN, and what is left of the machine's busy time went to
    other processes (other users' tests, builds) - the noise in the figures.
    """

    started: float = 0.0
    before: list[int] = field(default_factory=list)
    own_before: float = 0.0
    load_before: str = ""

    def start(self) -> CpuWatch:
        self.started = time.monotonic()
        self.before = _cpu_times()
        self.own_before = _own_cpu()
        self.load_before = _read("/proc/loadavg").split(" ")[0]
        return self

    def stop(self) -> dict[str, Any]:
        after = _cpu_times()
        delta = [b - a for a, b in zip(self.before, after, strict=True)]
        total = sum(delta) or 1
        busy = total - delta[3] - delta[4]
        hz = os.sysconf("SC_CLK_TCK")
        own = (_own_cpu() - self.own_before) * hz  # in the same ticks as /proc/stat
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            "busy_pct": round(100 * busy / total, 1),
            "bench_pct": round(100 * min(own, busy) / total, 1),
            "others_pct": round(100 * max(0.0, busy - own) / total, 1),
            "steal_pct": round(100 * delta[7] / total, 2),
            "loadavg_1m_before": self.load_before,
            "loadavg_1m_after": _read("/proc/loadavg").split(" ")[0],
        }
