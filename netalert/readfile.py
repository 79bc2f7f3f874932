"""Reading a file a config names, bounded: it may be a FIFO, a device or huge.

``config.toml``, a ``*_file`` secret, a ``ca_file`` or ``[ack].secret_file`` are
paths an operator (or whoever could write the config) chose. A FIFO would block
the reader for ever (at ``check-config``, at start, on SIGHUP), ``/dev/zero``
would never end, a huge file would fill memory: :func:`read_bounded` opens
without blocking, reads only a regular file, and at most ``limit`` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileRefused", "read_bounded", "why"]

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class FileRefused(OSError):
    """The file is not a regular file, or is larger than the bound."""


def read_bounded(path: Path | str, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    A file that grows while it is read is refused once it passes ``limit``.

    Raises:
        OSError: It cannot be opened; :class:`FileRefused` when it is not a
            regular file or is too large (:func:`why` says it in words).
    """
    fd = os.open(path, _FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("is not a regular file")
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
