"""What a MIB load did, module by module: the doctor's report (``netalert mib compile``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netalert.mib.compiler import CompileResult

__all__ = ["NET_SNMP_MODULES", "CompileReport", "net_snmp_notes"]

# What net-snmp's MIB files provide; their absence is worth a sentence.
NET_SNMP_MODULES = ("UCD-SNMP-MIB", "NET-SNMP-AGENT-MIB")


@dataclass(frozen=True, slots=True)
class CompileReport:
    """What a load or ``netalert mib compile`` did, module by module."""

    results: tuple[CompileResult, ...]
    builtin: int
    builtin_failed: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[tuple[Path, str], ...] = ()
    folders: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no source module failed."""
        return all(r.ok for r in self.results)

    def failed(self) -> list[CompileResult]:
        """The modules that failed."""
        return [r for r in self.results if not r.ok]

    def lines(self) -> list[str]:
        """The doctor's output: one line per module, then a summary and notes."""
        out = [r.describe() for r in self.results]
        out += [f"{path}: skipped: {reason}" for path, reason in self.skipped]
        out += [
            f"{name}: built-in module failed to load: {why}"
            for name, why in sorted(self.builtin_failed.items())
        ]
        counts = {
            s: sum(1 for r in self.results if r.status == s)
            for s in ("compiled", "up to date", "failed")
        }
        out.append(
            f"{len(self.results)} source modules: {counts['compiled']} compiled, "
            f"{counts['up to date']} up to date, {counts['failed']} failed; "
            f"{self.builtin} built-in modules (pysnmp, pysnmp-mibs)"
        )
        out += [f"note: {note}" for note in self.notes]
        return out


def net_snmp_notes(
    sources: Iterable[str], known: Iterable[str], sys_paths: Iterable[Path]
) -> tuple[str, ...]:
    """The report's notes on net-snmp's MIBs, when no source of them was found."""
    notes = []
    sources, known = set(sources), set(known)
    absent = [m for m in NET_SNMP_MODULES if m not in sources]
    if absent:
        where = ", ".join(str(p) for p in sys_paths) or "no system folders"
        older = [m for m in absent if m in known]
        if older:
            notes.append(
                f"{', '.join(older)}: no source in {where}; using the older compiled copies "
                "built in (pysnmp-mibs). For net-snmp's current MIBs install them "
                "(Debian/Ubuntu: apt install libsnmp-base) or copy them into a [mibs].paths folder"
            )
        missing = [m for m in absent if m not in known]
        if missing:
            notes.append(
                f"{', '.join(missing)} not available: no source in {where} and none built in "
                "(Debian/Ubuntu: apt install libsnmp-base; or copy them into a [mibs].paths folder)"
            )
    return tuple(notes)
