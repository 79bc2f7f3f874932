"""A small filesystem for an agent's state directory that a test can fill and free.

Two ways to make "the disk is full" for a running `netalert run`:

* :class:`TmpfsDisk` - a real 12 MB tmpfs mounted on the state directory (needs
  root and a kernel that lets us mount; the test process and the agent share the
  mount namespace). Filling it writes a filler file until ``ENOSPC``; freeing it
  removes the file. SQLite then fails exactly as on a full disk.
* :class:`PageLimitDisk` - for machines where mounting is not possible: the agent
  is started with ``NETALERT_TEST_DB_PAGE_LIMIT_FILE`` naming a file; while it holds
  a number, the agent's database may not grow past that many pages
  (``PRAGMA max_page_count``), which SQLite reports as ``database or disk is full``.

Both give the agent the same error (``SQLITE_FULL``) on the same write path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from pathlib import Path

__all__ = ["Disk", "PageLimitDisk", "TmpfsDisk", "can_mount_tmpfs"]

SIZE = "12m"
_CHUNK = bytes(64 * 1024)


def can_mount_tmpfs(where: Path) -> bool:
    """True when this process may mount a tmpfs on ``where`` (root, mount allowed)."""
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
        timeout=10,
    )
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], capture_output=True, check=True, timeout=10)
    return True


class Disk:
    """The interface both kinds share."""

    env: dict[str, str]

    def fill(self) -> None:
        raise NotImplementedError

    def free(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TmpfsDisk(Disk):
    """A 12 MB tmpfs mounted on ``state`` (unmounted by :meth:`close`)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.filler = state / "filler"
        self.env = {}
        state.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(state)],
            capture_output=True,
            check=True,
            timeout=10,
        )

    def fill(self) -> None:
        """Writes the filler until the filesystem refuses (ENOSPC)."""
        try:
            # unbuffered: a buffered file would flush its refused tail again at close, and
            # raise ENOSPC there (it did, depending on where the free space ended)
            fh = self.filler.open("wb", buffering=0)
        except OSError as exc:  # full before the filler: say what filled it
            sizes = sorted(
                ((p.stat().st_size, str(p.relative_to(self.state))) for p in self.state.rglob("*")),
                reverse=True,
            )
            raise AssertionError(f"{self.state} full before the filler: {sizes[:8]}") from exc
        with fh:
            while True:
                try:
                    if not fh.write(_CHUNK):  # a short write fills the last bytes
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        assert self.filler.stat().st_size > 0

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        # lazy: a process that still has a file open there must not fail the teardown
        subprocess.run(["umount", "-l", str(self.state)], capture_output=True, timeout=10)


class PageLimitDisk(Disk):
    """The agent's database capped at its current size through the test hook."""

    def __init__(self, state: Path, directory: Path) -> None:
        self.db = state / "netalert.db"
        self.limit = directory / "page-limit"
        self.limit.write_text("")
        self.env = {"NETALERT_TEST_DB_PAGE_LIMIT_FILE": str(self.limit)}

    def fill(self) -> None:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        finally:
            conn.close()
        self.limit.write_text(f"{pages}\n")

    def free(self) -> None:
        self.limit.write_text("")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.limit.unlink()
