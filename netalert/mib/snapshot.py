"""The loaded MIB tree as one file: ``state_dir/mibs/tree-<key>.bin``.

The per-module cache (:mod:`netalert.mib.cache`) keeps what each module compiled
to; turning ~300 modules of JSON into a tree costs about half a second of CPU at
every start. The snapshot keeps the tree itself, indexes built, in ``marshal``
form (plain tuples, strings, ints and dicts), and loads in a fraction of that.

It is keyed like the cache: by the inputs' key (every source's bytes and
imports, the built-in set, pysmi's version) plus Python's and the layout's, and
is taken only when all of these checks pass; anything else is a miss, and the
tree is built from the per-module cache and the snapshot written again:

* the name is the file itself (not a symbolic link, no other hard link to it), a
  regular file (not a FIFO, which would block the start), owned by this user or
  root and writable by no one else (``marshal`` is not meant for data someone
  else could have written), of at most ``[mibs] cache_max_bytes``; it is opened
  once and these are checked on what was opened, then read from it;
* its header: the magic line, the format and the key asked for;
* the SHA-256 of the body, against the header's (a truncated or damaged file);
* the body decodes to the expected shape.

``pickle`` is not used: loading a pickle runs whatever code it names.

A shared folder (``[mibs].shared_cache``) holds the snapshots of several keys, each
under its own name, for every state folder of one user: :func:`place_snapshot` puts
a snapshot file there, or from there into a state folder (a hard link, else a copy);
the folder keeps the most recently used ones. It is used only when it is a folder of
this user or root that nobody else can write to (:func:`untrusted_folder`), and each
file in it passes the checks above.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from netalert.logs import event
from netalert.mib.node import MibNode
from netalert.readfile import FileRefused, read_bounded

__all__ = [
    "CACHE_MAX_BYTES",
    "SNAPSHOT_FORMAT",
    "has_snapshot",
    "place_snapshot",
    "read_snapshot",
    "snapshot_salt",
    "untrusted",
    "untrusted_folder",
    "used_snapshot",
    "write_snapshot",
]

log = logging.getLogger(__name__)

# Bump when the body's shape changes (MibTree.state, the report part).
SNAPSHOT_FORMAT = 1
_MAGIC = b"netalert-mib-tree\n"
_DIGEST = 32  # SHA-256
_PREFIX = "tree-"
_SUFFIX = ".bin"
CACHE_MAX_BYTES = 256 * 1024 * 1024  # [mibs] cache_max_bytes' default
# A temporary file this old is a writer's that was killed (kill -9, a crash): removed.
_STALE_AFTER = 3600.0


def snapshot_salt() -> str:
    """What the snapshot depends on besides the MIB inputs: its format, marshal's and
    Python's versions, and MibNode's fields (a row is MibNode's fields in order)."""
    return (
        f"snapshot={SNAPSHOT_FORMAT};marshal={marshal.version};"
        f"python={sys.version_info[0]}.{sys.version_info[1]};"
        f"node={','.join(MibNode.__slots__)}"
    )


def snapshot_path(root: Path, key: str) -> Path:
    """The snapshot file of ``key`` under the cache folder ``root``."""
    return root / f"{_PREFIX}{key[:16]}{_SUFFIX}"


def has_snapshot(root: Path) -> bool:
    """Whether the cache folder ``root`` holds a snapshot of any key (a cache in use)."""
    try:
        return any(root.glob(f"{_PREFIX}*{_SUFFIX}"))
    except OSError:
        return False


def read_snapshot(root: Path, key: str, *, limit: int = CACHE_MAX_BYTES) -> Any:
    """The body stored under ``key``, or None when there is none or it fails a check
    (``limit``: the most bytes read, ``[mibs] cache_max_bytes``)."""
    path = snapshot_path(root, key)
    try:
        data = read_bounded(path, limit, follow=False, check=untrusted)
    except FileRefused as exc:
        log.warning(event("mib_snapshot_untrusted", path=path, reason=str(exc)))
        return None
    except OSError:
        return None
    header = _MAGIC + key.encode() + b"\n"
    if not data.startswith(header) or len(data) < len(header) + _DIGEST:
        log.info(event("mib_snapshot_rebuilt", path=path, reason="foreign or old header"))
        return None
    digest = data[len(header) : len(header) + _DIGEST]
    body = data[len(header) + _DIGEST :]
    if hashlib.sha256(body).digest() != digest:
        log.info(event("mib_snapshot_rebuilt", path=path, reason="checksum mismatch"))
        return None
    try:
        return marshal.loads(body)  # noqa: S302 - our own file: owner, mode, checksum checked
    except (EOFError, ValueError, TypeError):
        log.info(event("mib_snapshot_rebuilt", path=path, reason="undecodable"))
        return None


def write_snapshot(root: Path, key: str, body: Any, *, keep: int = 1) -> Path | None:
    """Stores ``body`` under ``key`` (written aside, then renamed) and removes older
    snapshots past the ``keep`` most recently used (this one included). A snapshot is
    an optimisation: a failure to write it is logged, never raised. Returns its path,
    or None when it could not be written."""
    path = snapshot_path(root, key)
    try:
        data = marshal.dumps(body)
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=root)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + key.encode() + b"\n")
                fh.write(hashlib.sha256(data).digest())
                fh.write(data)
            # mkstemp makes 0600 files; the agent's user must read what an
            # operator's `mib compile` (root) wrote, as with the JSON cache.
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _trim(root, path, keep)
        _remove_stale(root)
    except (OSError, ValueError) as exc:
        log.info(event("mib_snapshot_unwritable", path=path, error=exc))
        return None
    return path


def place_snapshot(source: Path, root: Path, key: str, *, keep: int = 1) -> None:
    """Puts a copy of the snapshot file ``source`` (of ``key``) into the folder ``root``
    too, then keeps the ``keep`` most recently used there. Never raises: logged.

    A copy, not a hard link: a cache file with more than one name is refused when read
    (:func:`untrusted`), since a link planted in a state folder is how another file
    would be passed off as the snapshot."""
    path = snapshot_path(root, key)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{path.name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            shutil.copyfile(source, tmp, follow_symlinks=False)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _trim(root, path, keep)
    except OSError as exc:
        log.info(event("mib_snapshot_unwritable", path=path, error=exc))


def used_snapshot(root: Path, key: str) -> None:
    """Marks the snapshot of ``key`` in ``root`` as just used (its modification time)."""
    with contextlib.suppress(OSError):
        os.utime(snapshot_path(root, key))


def untrusted_folder(folder: Path) -> str:
    """Why the shared folder ``folder`` must not be used ("" when it may)."""
    try:
        info = folder.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return "not a folder" if not stat.S_ISDIR(info.st_mode) else _foreign(info)


def _trim(root: Path, path: Path, keep: int) -> None:
    others = []
    for old in root.glob(f"{_PREFIX}*{_SUFFIX}"):
        if old.name != path.name:
            try:
                others.append((old.stat().st_mtime_ns, old))
            except OSError:  # removed meanwhile
                continue
    others.sort(reverse=True)
    for _, old in others[max(keep - 1, 0) :]:
        old.unlink(missing_ok=True)
    if keep > 1 and len(others) >= keep:
        log.debug(event("mib_snapshots_removed", folder=root, count=len(others) - keep + 1))


def _remove_stale(root: Path) -> None:
    """Removes the temporary files of writers killed mid-write (never a younger one:
    another agent's write may be under way)."""
    before = time.time() - _STALE_AFTER
    for left in root.glob(f".{_PREFIX}*{_SUFFIX}.*"):
        try:
            if left.lstat().st_mtime < before:
                left.unlink()
        except OSError:
            continue


def untrusted(info: os.stat_result) -> str:
    """Why a cache file with status ``info`` cannot be trusted ("": it can)."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_nlink > 1:  # 0: replaced since it was opened, by a whole new one
        return f"has {info.st_nlink} names (hard links)"
    return _foreign(info)


def _foreign(info: os.stat_result) -> str:
    """Why someone other than this user or root could have written it ("" if nobody)."""
    if info.st_uid not in (os.geteuid(), 0):
        return f"owned by uid {info.st_uid}, not by this user or root"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by group or others"
    return ""
