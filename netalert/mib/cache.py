"""The on-disk MIB cache under ``state_dir/mibs``.

``builtin-<key>.json`` holds the facts of every built-in compiled module,
keyed by the installed pysnmp/pysnmp-mibs versions. ``modules/<MODULE>.json``
holds the facts (or the failure) of one module compiled from a source, with
the key of the inputs it came from (its bytes and, recursively, its imports').
Files are written to a temporary name and renamed, so a reader never sees half
a file; an unreadable file, or one the snapshot's checks refuse (a link, a FIFO,
another user's, writable by others, past ``[mibs] cache_max_bytes``:
:func:`netalert.mib.snapshot.untrusted`), is a cache miss, never an error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from netalert.logs import event
from netalert.mib.compiler import CompileResult
from netalert.mib.node import ModuleFacts
from netalert.mib.snapshot import CACHE_MAX_BYTES, untrusted
from netalert.readfile import FileRefused, read_bounded

__all__ = ["CACHE_FORMAT", "MibCache"]

# Bump when ModuleFacts' JSON form or the conversion changes meaning.
CACHE_FORMAT = 1

log = logging.getLogger(__name__)


class MibCache:
    """Reads and writes the cache files of one state directory."""

    def __init__(self, root: Path, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes  # read at most (a larger file is a miss)

    def has_builtin(self, key: str) -> bool:
        """Whether built-in facts are stored under ``key``."""
        return (self.root / f"builtin-{key}.json").is_file()

    def read_builtin(self, key: str) -> list[ModuleFacts] | None:
        """The built-in facts stored under ``key``, or None."""
        data = self._read(self.root / f"builtin-{key}.json", self.max_bytes)
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None
        try:
            return [ModuleFacts.from_json(item) for item in data["modules"]]
        except (KeyError, TypeError, ValueError):
            return None

    def write_builtin(self, key: str, facts: list[ModuleFacts]) -> None:
        """Stores the built-in facts and removes those of older keys."""
        data = {"format": CACHE_FORMAT, "modules": [f.to_json() for f in facts]}
        self._write(self.root / f"builtin-{key}.json", data)
        for old in self.root.glob("builtin-*.json"):
            if old.name != f"builtin-{key}.json":
                old.unlink(missing_ok=True)

    def read_module(self, module: str) -> tuple[str, ModuleFacts | CompileResult] | None:
        """The key and the cached facts or failure of a source module, or None."""
        data = self._read(self.root / "modules" / f"{module}.json", self.max_bytes)
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None
        try:
            if "failed" in data:
                fail = data["failed"]
                return str(data["key"]), CompileResult(
                    module=module,
                    status="failed",
                    path=Path(fail["path"]) if fail.get("path") else None,
                    line=int(fail.get("line", 0)),
                    reason=str(fail["reason"]),
                )
            return str(data["key"]), ModuleFacts.from_json(data["facts"])
        except (KeyError, TypeError, ValueError):
            return None

    def write_module(self, module: str, key: str, result: ModuleFacts | CompileResult) -> None:
        """Stores a module's facts or its failure under ``key``."""
        data: dict[str, Any] = {"format": CACHE_FORMAT, "key": key}
        if isinstance(result, ModuleFacts):
            data["facts"] = result.to_json()
        else:
            data["failed"] = {
                "path": str(result.path) if result.path else "",
                "line": result.line,
                "reason": result.reason,
            }
        self._write(self.root / "modules" / f"{module}.json", data)

    @staticmethod
    def _read(path: Path, limit: int) -> Any:
        # What the tree (and its snapshot) will be made of: trusted as the snapshot is,
        # or a miss (a FIFO, which would block, a link, a huge file, another's file).
        try:
            return json.loads(read_bounded(path, limit, follow=False, check=untrusted))
        except FileRefused as exc:
            log.warning(event("mib_cache_untrusted", path=path, reason=str(exc)))
            return None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _write(path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                # dumps, not dump: json.dump streams through the pure-Python encoder,
                # five times slower on the 5 MB of built-in facts than the C one
                fh.write(json.dumps(data, separators=(",", ":")))
            # mkstemp makes 0600 files; the cache holds nothing secret, and the
            # agent's user must read what an operator's `mib compile` wrote.
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
