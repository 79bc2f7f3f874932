"""Finding MIB source files: which module each file defines, what it imports.

Vendors ship MIBs under any file name (``cisco-foo.my``, ``FOO-MIB.txt``,
``foo.mib``), so a file is identified by the module names it defines, read from
its text, not by its name. The scan reads each file once, hashes its bytes (the
cache key) and pulls out the IMPORTS ... FROM module names with a tolerant
regular expression; pysmi does the real parsing later.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MibSource", "SourceScan", "scan_sources"]

# Larger files are not MIBs (the largest IETF MIBs are well under 1 MB).
MAX_SOURCE_BYTES = 8 * 1024 * 1024
_SKIP_SUFFIXES = frozenset(
    {".py", ".pyc", ".json", ".md", ".rst", ".html", ".gz", ".bz2", ".xz", ".zip", ".tar"}
)
_MIB_SUFFIXES = frozenset({"", ".mib", ".my", ".txt", ".smi", ".asn", ".asn1", ".mi2"})

# Strings and comments hide text that would confuse the patterns below. An
# ASN.1 comment runs from "--" to the next "--" or the end of the line.
_NOISE = re.compile(r'"[^"]*"|--[^\n]*?(?:--|$)', re.MULTILINE)
_MODULE = re.compile(
    r"(?<![\w-])([A-Z][A-Za-z0-9-]*)\s*(?:\{[^}]*\}\s*)?DEFINITIONS"
    r"(?:\s+(?:EXPLICIT|IMPLICIT|AUTOMATIC)\s+TAGS)?\s*::=\s*BEGIN(?![\w-])"
)
_IMPORTS = re.compile(r"(?<![\w-])IMPORTS(?![\w-])(.*?);", re.DOTALL)
_BLANK = re.compile(r"[^\n]")
_FROM = re.compile(r"(?<![\w-])FROM\s+([A-Z][A-Za-z0-9-]*)")


@dataclass(frozen=True, slots=True)
class MibSource:
    """One module found in a source file."""

    module: str
    path: Path
    digest: str
    imports: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class SourceScan:
    """What a scan of the MIB folders found.

    ``modules`` maps each module to the first source defining it (folders in
    the order given); ``skipped`` lists files that hold no module as
    ``(path, reason)``, ``shadowed`` later definitions of a module already found.
    """

    modules: dict[str, MibSource]
    skipped: list[tuple[Path, str]]
    shadowed: list[MibSource]
    folders: tuple[Path, ...]


def scan_sources(folders: Iterable[Path]) -> SourceScan:
    """Reads every MIB source file under ``folders`` (recursively, in order).

    A folder that does not exist is ignored: the system folders are optional.
    """
    modules: dict[str, MibSource] = {}
    skipped: list[tuple[Path, str]] = []
    shadowed: list[MibSource] = []
    folder_list = tuple(folders)
    for folder in folder_list:
        for path in _files(folder):
            found = _read(path, skipped)
            for source in found:
                if source.module in modules:
                    shadowed.append(source)
                else:
                    modules[source.module] = source
    return SourceScan(modules, skipped, shadowed, folder_list)


def _files(folder: Path) -> list[Path]:
    out: list[Path] = []
    if not folder.is_dir():
        return out
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name == "index":
                continue
            path = Path(root) / name
            if path.suffix.lower() in _SKIP_SUFFIXES:
                continue
            out.append(path)
    return out


def _read(path: Path, skipped: list[tuple[Path, str]]) -> list[MibSource]:
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            skipped.append((path, f"larger than {MAX_SOURCE_BYTES // 1024 // 1024} MB"))
            return []
        data = path.read_bytes()
    except OSError as exc:
        skipped.append((path, f"cannot read it: {exc.strerror or exc}"))
        return []
    text = data.decode("utf-8", errors="replace")
    found = parse_header(text)
    if not found:
        if path.suffix.lower() in _MIB_SUFFIXES:
            skipped.append((path, "no 'NAME DEFINITIONS ::= BEGIN' in it: not a MIB module"))
        return []
    digest = hashlib.sha256(data).hexdigest()
    return [MibSource(name, path, digest, imports, line) for name, imports, line in found]


def parse_header(text: str) -> list[tuple[str, tuple[str, ...], int]]:
    """The modules a MIB text defines: (name, imported modules, line of DEFINITIONS)."""
    # Blank out comments and strings but keep every newline, so offsets in the
    # cleaned text are offsets in the original and line numbers stay true.
    clean = _NOISE.sub(lambda m: _BLANK.sub(" ", m.group(0)), text)
    starts = list(_MODULE.finditer(clean))
    out = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(clean)
        body = clean[match.end() : end]
        imports_match = _IMPORTS.search(body)
        imports: tuple[str, ...] = ()
        if imports_match:
            imports = tuple(dict.fromkeys(_FROM.findall(imports_match.group(1))))
        line = clean.count("\n", 0, match.start()) + 1
        out.append((match.group(1), imports, line))
    return out
