"""Reading a file a config names, bounded: it may be a FIFO, a device or huge.

``config.toml``, a ``*_file`` secret, a ``ca_file`` or ``[ack].secret_file`` are
paths an operator (or whoever could write the config) chose. A FIFO would block
the reader for ever (at ``check-config``, at start, on SIGHUP), ``/dev/zero``
would never end, a huge file would fill memory: :func:`read_bounded` opens
without blocking, reads only a regular file, and at most ``limit`` bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = ["FileRefused", "read_bounded", "why"]

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class FileRefused(OSError):
    """The file is not a regular file, or is larger than the bound."""


def read_bounded(
    path: Path | str,
    limit: int,
    *,
    follow: bool = True,
    check: Callable[[os.stat_result], str] | None = None,
) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    A file that grows while it is read is refused once it passes ``limit``. Not
    ``follow``: a symbolic link at ``path`` (its last part) is refused. ``check``
    judges the opened file's status (what is read is what was checked: one open);
    a non-empty answer refuses it, in those words.

    Raises:
        OSError: It cannot be opened; :class:`FileRefused` when it is not a
            regular file, is too large or ``check`` refuses it (:func:`why` says
            it in words).
    """
    try:
        fd = os.open(path, _FLAGS if follow else _FLAGS | os.O_NOFOLLOW)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:
            raise FileRefused("is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("is not a regular file")
        refused = check(info) if check is not None else ""
        if refused:
            raise FileRefused(refused)
        if info.st_size > limit:
            raise FileRefused(f"is larger than {limit} bytes")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 65536))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise FileRefused(f"is larger than {limit} bytes")
    return b"".join(chunks)


def why(exc: OSError) -> str:
    """Why a file could not be read, in words (``No such file or directory``)."""
    if isinstance(exc, FileRefused):
        return str(exc)
    return exc.strerror or type(exc).__name__
