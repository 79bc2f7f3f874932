"""Loading the MIB tree at start: from its snapshot when nothing changed, else compiled.

Every ``netalert`` process that names OIDs loads the tree: the agent, each reload,
``check-config``, ``test rules``, ``replay``... When the sources, the built-in set
and the versions are those of the snapshot (:mod:`netalert.mib.snapshot`), the tree
and its report come from that one file; otherwise :func:`compile_inputs` builds
them from the per-module cache, compiling what changed, and the snapshot is
written for the next start.

A state folder without its own snapshot (a new one: every test's, a second agent's,
the demo's) first looks in the user's shared folder (``[mibs].shared_cache``), where
every load that compiled left its snapshot: the same key is the same tree, whichever
state folder built it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from netalert.gcpause import collector_paused, end_start
from netalert.logs import event
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
    place_snapshot,
    read_snapshot,
    snapshot_path,
    snapshot_salt,
    untrusted_folder,
    used_snapshot,
    write_snapshot,
)
from netalert.mib.tree import MibTree

__all__ = ["load_tree"]

log = logging.getLogger(__name__)

_UP_TO_DATE = "up to date"


def load_tree(
    paths: list[Path],
    system_paths: list[Path],
    state_dir: Path | None,
    *,
    shared: Path | None = None,
    shared_trees: int = 8,
    announce: Announce | None = announce_compile,
    max_bytes: int = CACHE_MAX_BYTES,
) -> MibTree:
    """The tree of the modules in ``paths``, ``system_paths`` and built in, with its report.

    ``max_bytes`` bounds each cache file read (``[mibs] cache_max_bytes``).
    ``shared``: the folder of snapshots shared by this user's state folders (keeping
    ``shared_trees`` of them), or None.

    Raises:
        OSError: A compile was needed and the cache folder cannot be written.
    """
    inputs = scan_inputs(paths, system_paths)
    root = state_dir / "mibs" if state_dir is not None else None
    key = inputs_key(inputs, snapshot_salt())
    tree = _from_snapshot(root, key, inputs, max_bytes) if root is not None else None
    shared = _usable(shared, root) if tree is None else shared
    if tree is None and shared is not None:
        tree = _from_shared(shared, root, key, inputs, max_bytes)
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
    if report.builtin_failed:  # a failure depends on this process: retry next time
        return tree
    body = _body(tree, report, key, fallback)
    written = write_snapshot(root, key, body) if root is not None else None
    if shared is not None:
        if written is not None:
            place_snapshot(written, shared, key, keep=shared_trees)
        else:
            write_snapshot(shared, key, body, keep=shared_trees)
    return tree


def _usable(shared: Path | None, root: Path | None) -> Path | None:
    """``shared`` when it may be used: not the state folder's own cache, nobody else's."""
    if shared is None or (root is not None and shared.absolute() == root.absolute()):
        return None
    try:
        shared.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:  # no home folder to write (a system service): no shared cache
        log.debug(event("mib_shared_cache_unusable", path=shared, error=exc))
        return None
    why = untrusted_folder(shared)
    if why:
        log.warning(event("mib_shared_cache_untrusted", path=shared, reason=why))
        return None
    return shared


def _from_snapshot(root: Path, key: str, inputs: MibInputs, max_bytes: int) -> MibTree | None:
    with collector_paused():
        body = read_snapshot(root, key, limit=max_bytes)
        return _from_body(body, key, inputs) if body is not None else None


def _from_shared(
    shared: Path, root: Path | None, key: str, inputs: MibInputs, max_bytes: int
) -> MibTree | None:
    """The tree of ``key`` from the shared folder; a copy goes into the state folder,
    so that its next start needs no shared folder."""
    tree = _from_snapshot(shared, key, inputs, max_bytes)
    if tree is None:
        return None
    used_snapshot(shared, key)
    log.debug(event("mib_tree_shared", path=snapshot_path(shared, key)))
    if root is not None:
        place_snapshot(snapshot_path(shared, key), root, key)
    return tree


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
