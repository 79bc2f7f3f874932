"""Loading the MIB tree at start: from its snapshot when nothing changed, else compiled.

Every ``netalert`` process that names OIDs loads the tree: the agent, each reload,
``check-config``, ``test rules``, ``replay``... When the sources, the built-in set
and the versions are those of the snapshot (:mod:`netalert.mib.snapshot`), the tree
and its report come from that one file; otherwise :func:`compile_inputs` builds
them from the per-module cache, compiling what changed, and the snapshot is
written for the next start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netalert.gcpause import collector_paused, end_start
from netalert.mib.compiler import CompileResult
from netalert.mib.loader import (
    Announce,
    MibInputs,
    announce_compile,
    compile_inputs,
    inputs_key,
    scan_inputs,
)
from netalert.mib.report import CompileReport, net_snmp_notes
from netalert.mib.snapshot import (
    CACHE_MAX_BYTES,
    has_snapshot,
    read_snapshot,
    snapshot_salt,
    write_snapshot,
)
from netalert.mib.tree import MibTree

__all__ = ["load_tree"]

_UP_TO_DATE = "up to date"


def load_tree(
    paths: list[Path],
    system_paths: list[Path],
    state_dir: Path | None,
    *,
    announce: Announce | None = announce_compile,
    max_bytes: int = CACHE_MAX_BYTES,
) -> MibTree:
    """The tree of the modules in ``paths``, ``system_paths`` and built in, with its report.

    ``max_bytes`` bounds each cache file read (``[mibs] cache_max_bytes``).

    Raises:
        OSError: A compile was needed and the cache folder cannot be written.
    """
    inputs = scan_inputs(paths, system_paths)
    root = state_dir / "mibs" if state_dir is not None else None
    key = inputs_key(inputs, snapshot_salt())
    tree = _from_snapshot(root, key, inputs, max_bytes) if root is not None else None
    end_start()  # the start-up is over; and before a compile: pysmi's garbage has cycles
    if tree is not None:
        return tree
    # A cache with no snapshot yet is a fresh one (a new state folder): the built-in
    # facts' JSON would serve only a later compile, which a stale snapshot announces.
    # Until then the snapshot is all the next start reads (see docs/mibs.md).
    store_builtin = root is not None and has_snapshot(root)
    facts, report, fallback = compile_inputs(
        inputs, state_dir, announce, store_builtin=store_builtin, max_bytes=max_bytes
    )
    with collector_paused():
        tree = MibTree(facts, report)
    if root is None:
        return tree
    if not report.builtin_failed:  # a failure depends on this process: retry next time
        write_snapshot(root, key, _body(tree, report, key, fallback))
    return tree


def _from_snapshot(root: Path, key: str, inputs: MibInputs, max_bytes: int) -> MibTree | None:
    with collector_paused():
        body = read_snapshot(root, key, limit=max_bytes)
        return _from_body(body, key, inputs) if body is not None else None


def _body(tree: MibTree, report: CompileReport, key: str, fallback: tuple[str, ...]) -> Any:
    # What the next start cannot work out from the scan: the verdicts (a module
    # compiled now is up to date then), the built-in count, which sources fell back.
    results = tuple(
        (
            r.module,
            _UP_TO_DATE if r.status == "compiled" else r.status,
            str(r.path) if r.path is not None else "",
            r.line,
            r.reason,
        )
        for r in report.results
    )
    return (key, tree.state(), results, report.builtin, fallback)


def _from_body(body: Any, key: str, inputs: MibInputs) -> MibTree | None:
    try:
        stored_key, state, results, builtin, fallback = body
        if stored_key != key:
            return None
        sources = inputs.sources
        verdicts = []
        for module, status, path, line, reason in results:
            where = Path(path) if path else None
            if status == _UP_TO_DATE and module in sources:
                where = sources[module].path  # the same bytes, maybe under another folder
            verdicts.append(CompileResult(str(module), str(status), where, int(line), str(reason)))
        tree = MibTree.from_state(state)
        report = CompileReport(
            results=tuple(verdicts),
            builtin=int(builtin),
            skipped=tuple(inputs.user.skipped),
            folders=inputs.folders,
            notes=net_snmp_notes(
                (name for name in sources if name not in set(fallback)),
                tree.modules,
                inputs.sys_paths,
            ),
        )
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    tree.report = report
    return tree
