"""Putting the MIB layer together: built-in facts, sources, cache, compile.

Precedence of a module name: a source in ``[mibs].paths`` (the operator's own
MIBs) first, then a source in ``[mibs].system_paths`` (on Debian, net-snmp's
UCD/NET-SNMP MIBs), then the built-in compiled modules (pysnmp and
pysnmp-mibs, whose compilations date from 2016): a source is the more current
text. A source that fails to compile falls back to its built-in twin, if any.
Every source module is compiled once and cached under ``state_dir/mibs`` with a
key over its bytes and, recursively, its imports', so editing a MIB recompiles
it and its importers, and nothing else.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from netalert.gcpause import end_start
from netalert.logs import event
from netalert.mib.builtin import builtin_modules, builtin_version, extract_builtin
from netalert.mib.cache import CACHE_FORMAT, MibCache
from netalert.mib.compiler import CompileResult, compile_modules
from netalert.mib.node import ModuleFacts, TypeFacts
from netalert.mib.report import NET_SNMP_MODULES, CompileReport, net_snmp_notes
from netalert.mib.snapshot import CACHE_MAX_BYTES
from netalert.mib.sources import MibSource, SourceScan, scan_sources
from netalert.mib.standins import MACRO_MODULES, macro_module_text, standin_text

__all__ = [
    "ANNOUNCE_AT",
    "NET_SNMP_MODULES",
    "CompileReport",
    "MibInputs",
    "announce_compile",
    "compile_inputs",
    "compile_mibs",
    "inputs_key",
    "net_snmp_notes",
    "rank_modules",
    "scan_inputs",
]

log = logging.getLogger(__name__)

_BUILTIN_MEMO: dict[str, tuple[list[ModuleFacts], dict[str, str]]] = {}
# A compile of this many modules is announced: the first run's (~300 modules, about
# 20 s) reads as a hang when silent; one changed vendor MIB takes well under a second.
ANNOUNCE_AT = 20
Announce = Callable[[int, Path], None]


def announce_compile(modules: int, cache: Path, *, stream: TextIO | None = None) -> None:
    """Says a long compile is starting: one line on a terminal, else an INFO event.

    Only a person at a terminal reads a progress line; scripts and tests that
    compare stderr get the log event (``event=mib_compile``) instead.
    """
    out = sys.stderr if stream is None else stream
    try:
        terminal = out.isatty()
    except (OSError, ValueError):  # a closed or odd stream
        terminal = False
    if terminal:
        print(f"compiling {modules} MIB modules into the cache (first run only)...", file=out)
        out.flush()
    else:
        log.info(event("mib_compile", modules=modules, cache=cache))


class _Notice:
    """Announces at most once per load, at the first step that will take long."""

    __slots__ = ("_announce", "_cache", "_done")

    def __init__(self, announce: Announce | None, cache: MibCache | None) -> None:
        self._announce = announce if cache is not None else None  # no cache: nothing to fill
        self._cache = cache
        self._done = False

    def __call__(self, modules: int) -> None:
        if self._done or self._announce is None or self._cache is None or modules < ANNOUNCE_AT:
            return
        self._done = True
        self._announce(modules, self._cache.root)


class _Known:
    """Facts of the modules outside a compile run: lookups and stand-ins."""

    def __init__(self, modules: Mapping[str, ModuleFacts]) -> None:
        self.modules = modules
        self._types: dict[str, dict[str, TypeFacts]] = {}

    def type_facts(self, module: str, name: str) -> TypeFacts | None:
        if module not in self.modules:
            return None
        if module not in self._types:
            self._types[module] = {t.name: t for t in self.modules[module].types}
        return self._types[module].get(name)

    def row_index(self, module: str, name: str) -> tuple[tuple[str, ...], bool] | None:
        facts = self.modules.get(module)
        if facts is None or name not in facts.index_refs:
            return None
        row = next((n for n in facts.nodes if n.name == name), None)
        return facts.index_refs[name], bool(row and row.implied)

    def standin(self, name: str) -> str | None:
        if name in self.modules:
            return standin_text(self.modules[name])
        if name in MACRO_MODULES:
            return macro_module_text(name)
        return None


def _salt() -> str:
    try:
        pysmi = importlib.metadata.version("pysmi")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        pysmi = "none"
    return f"format={CACHE_FORMAT};pysmi={pysmi}"


def _builtin_key() -> str:
    return hashlib.sha256(f"{_salt()};{builtin_version()}".encode()).hexdigest()[:16]


def builtin_ready(cache: MibCache | None) -> bool:
    """True when :func:`builtin_facts` will not extract them again (memory or cache)."""
    key = _builtin_key()
    return key in _BUILTIN_MEMO or (cache is not None and cache.has_builtin(key))


def builtin_facts(
    cache: MibCache | None, *, store: bool = True
) -> tuple[list[ModuleFacts], dict[str, str]]:
    """The built-in modules' facts: from memory, the cache, or pysnmp (seconds).

    With ``store`` False facts not read from ``cache`` are not written to it (5 MB
    of JSON, a fifth of a second): see :func:`netalert.mib.load.load_tree`.
    """
    key = _builtin_key()
    store = store and cache is not None
    if key in _BUILTIN_MEMO:
        facts, failed = _BUILTIN_MEMO[key]
        if cache is not None and store and not failed and not cache.has_builtin(key):
            cache.write_builtin(key, facts)
        return facts, failed
    cached = cache.read_builtin(key) if cache is not None else None
    if cached is not None:
        _BUILTIN_MEMO[key] = (cached, {})
        return cached, {}
    end_start()  # pysnmp's loading makes cyclic garbage
    facts, failed = extract_builtin()
    _BUILTIN_MEMO[key] = (facts, failed)
    # A failure depends on this process (warnings, memory): retry next time.
    if cache is not None and store and not failed:
        cache.write_builtin(key, facts)
    return facts, failed


def _keys(sources: Mapping[str, MibSource], builtin: Iterable[str]) -> dict[str, str]:
    # A module's key covers its bytes and its imports' keys, so a change in an
    # imported module (an OID, a TC) recompiles its importers too.
    salt = _salt()
    builtin_set = set(builtin)
    memo: dict[str, str] = {}
    visiting: set[str] = set()

    def key(name: str) -> str:
        if name in memo:
            return memo[name]
        if name not in sources:
            if name in builtin_set:
                return "builtin"
            return "macro" if name in MACRO_MODULES else "missing"
        source = sources[name]
        if name in visiting:  # import cycles exist in the wild
            return source.digest
        visiting.add(name)
        parts = [salt, source.digest] + [f"{d}={key(d)}" for d in sorted(source.imports)]
        visiting.discard(name)
        memo[name] = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return memo[name]

    return {name: key(name) for name in sorted(sources)}


@dataclass(frozen=True, slots=True)
class MibInputs:
    """What a load reads before any cache: the folders and the sources found in them."""

    user_paths: tuple[Path, ...]
    sys_paths: tuple[Path, ...]
    user: SourceScan
    system: SourceScan

    @property
    def sources(self) -> dict[str, MibSource]:
        """Every source module, a ``paths`` one winning over a ``system_paths`` one."""
        return {**self.system.modules, **self.user.modules}

    @property
    def folders(self) -> tuple[Path, ...]:
        """Every folder searched, in order."""
        return self.user_paths + self.sys_paths


def scan_inputs(paths: Iterable[Path], system_paths: Iterable[Path]) -> MibInputs:
    """Reads (and hashes) every source file of the folders."""
    user_paths, sys_paths = tuple(paths), tuple(system_paths)
    return MibInputs(user_paths, sys_paths, scan_sources(user_paths), scan_sources(sys_paths))


def inputs_key(inputs: MibInputs, salt: str) -> str:
    """A key over everything a load's modules and verdicts depend on: the built-in
    set, every source's key (its bytes and its imports'), which ones are the
    operator's (they name first), and ``salt``. Not the folders' names: a moved
    folder with the same files loads the same tree."""
    sources = inputs.sources
    keys = _keys(sources, builtin_modules())
    parts = [salt, _builtin_key()]
    parts += [f"{name}={keys[name]};{int(name in inputs.user.modules)}" for name in keys]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def compile_mibs(
    paths: Iterable[Path],
    system_paths: Iterable[Path],
    state_dir: Path | None,
    *,
    announce: Announce | None = announce_compile,
) -> tuple[list[ModuleFacts], CompileReport]:
    """Compiles what changed, loads the rest from the cache, reports on each module.

    Never raises for a broken MIB: a failure is a line of the report. A source
    that fails while a built-in module of the same name exists falls back to
    the built-in one. ``announce`` is told once, before a compile of
    :data:`ANNOUNCE_AT` modules or more (a first run), how many modules and which
    cache folder.

    Raises:
        OSError: The cache folder cannot be written.
    """
    facts, report, _ = compile_inputs(scan_inputs(paths, system_paths), state_dir, announce)
    return facts, report


def compile_inputs(
    inputs: MibInputs,
    state_dir: Path | None,
    announce: Announce | None = announce_compile,
    *,
    store_builtin: bool = True,
    max_bytes: int = CACHE_MAX_BYTES,
) -> tuple[list[ModuleFacts], CompileReport, tuple[str, ...]]:
    """:func:`compile_mibs` on scanned inputs; also the sources left for a built-in twin.

    ``store_builtin`` False leaves the built-in facts out of the cache unless they are
    there already (:func:`builtin_facts`). ``max_bytes`` bounds each cache file read.

    Raises:
        OSError: The cache folder cannot be written.
    """
    cache = MibCache(state_dir / "mibs", max_bytes) if state_dir is not None else None
    notice = _Notice(announce, cache)
    all_sources = inputs.sources
    if not builtin_ready(cache):  # an empty cache: the sources are compiled too
        notice(len(builtin_modules()) + len(all_sources))
    builtin, builtin_failed = builtin_facts(cache, store=store_builtin)
    builtin_by_name = {f.name: f for f in builtin}
    searched = ", ".join(str(f) for f in inputs.folders) or "no folders"
    searched += f" and {len(builtin_by_name)} built-in modules"

    # A failed source with a built-in twin is left out and the pass redone, so
    # its importers compile against the built-in facts instead.
    fallback: dict[str, CompileResult] = {}
    while True:
        run = _Run(all_sources, fallback, builtin_by_name, cache, searched, notice)
        more = run.compile()
        if not more:
            break
        fallback.update(more)

    results = dict(run.results)
    for name, failure in fallback.items():
        results[name] = replace(failure, reason=failure.reason + " (using the built-in module)")
    known = run.known
    report = CompileReport(
        results=tuple(results[name] for name in sorted(results)),
        builtin=sum(1 for name in builtin_by_name if name not in run.sources),
        builtin_failed=builtin_failed,
        skipped=tuple(inputs.user.skipped),
        folders=inputs.folders,
        notes=net_snmp_notes(run.sources, known, inputs.sys_paths),
    )
    ordered = [known[name] for name in _source_first(known, inputs.user.modules)]
    return ordered, report, tuple(sorted(fallback))


class _Run:
    """One pass: cache lookups, then one pysmi run for what changed."""

    def __init__(
        self,
        all_sources: Mapping[str, MibSource],
        fallback: Mapping[str, CompileResult],
        builtin: Mapping[str, ModuleFacts],
        cache: MibCache | None,
        searched: str,
        notice: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.notice = notice
        self.sources = {n: s for n, s in all_sources.items() if n not in fallback}
        self.builtin = builtin
        self.cache = cache
        self.searched = searched
        # Keys are computed with every source present, so a failed source's
        # cached verdict is found again on the next start before it is left out.
        self.keys = _keys(self.sources, builtin)
        self.fallback_keys = _keys(all_sources, builtin)
        self.known: dict[str, ModuleFacts] = {
            name: facts for name, facts in builtin.items() if name not in self.sources
        }
        self.results: dict[str, CompileResult] = {}

    def unavailable(self, dep: str) -> str | None:
        if dep in self.sources:
            previous = self.results.get(dep)
            if previous is not None and not previous.ok:
                return "which failed to compile (see its own line)"
            return None
        if dep in self.builtin or dep in MACRO_MODULES:
            return None
        return f"which was not found (searched {self.searched})"

    def compile(self) -> dict[str, CompileResult]:
        """Runs the pass; returns failed sources to replace by built-ins (then redo)."""
        wanted: list[str] = []
        for name in sorted(self.sources):
            cached = self.cache.read_module(name) if self.cache is not None else None
            if cached is not None and cached[0] == self.keys[name]:
                entry = cached[1]
                if isinstance(entry, ModuleFacts):
                    self.known[name] = entry
                    self.results[name] = CompileResult(name, "up to date", self.sources[name].path)
                elif name in self.builtin and cached[0] == self.fallback_keys[name]:
                    return {name: entry}
                else:
                    self.results[name] = entry
            else:
                wanted.append(name)
        if not wanted:
            return {}
        self.notice(len(wanted))
        lookup = _Known(self.known)
        compiled, verdicts = compile_modules(
            wanted, self.sources, lookup.standin, lookup, self.unavailable
        )
        redo: dict[str, CompileResult] = {}
        for name in wanted:
            verdict = verdicts[name]
            result: ModuleFacts | CompileResult = verdict
            if name in compiled and verdict.ok:
                result = compiled[name]
                self.known[name] = compiled[name]
            elif name in self.builtin and self.keys[name] == self.fallback_keys[name]:
                redo[name] = verdict
            if self.cache is not None:
                self.cache.write_module(name, self.keys[name], result)
            self.results[name] = verdict
        return redo


def _source_first(known: Mapping[str, ModuleFacts], user: Mapping[str, MibSource]) -> list[str]:
    return rank_modules(known, first=user)


def rank_modules(names: Iterable[str], first: Iterable[str] = ()) -> list[str]:
    """Module names in naming priority (the first module defining an OID names it).

    The operator's own MIBs first, then the SNMPv2 core (so 0.0 is
    SNMPv2-SMI::zeroDotZero), then the rest by name, then the SMIv1 modules
    that SNMPv2 superseded.
    """
    own = set(first)
    core = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMPv2-MIB")
    legacy = ("RFC1213-MIB", "RFC1158-MIB", "RFC1155-SMI")

    def rank(name: str) -> tuple[int, int, str]:
        if name in own:
            return 0, 0, name
        if name in core:
            return 1, core.index(name), name
        return (3 if name in legacy else 2), 0, name

    return sorted(names, key=rank)
