"""Keeping the cyclic garbage collector out of start-up and bulk loads.

Starting a command imports a few hundred modules, builds the config's pydantic
models and loads the MIB tree: hundreds of thousands of objects that live as
long as the process and hold few cycles. Every allocation counts towards the
collector's next run, and every run walks what was built so far to find almost
nothing to free: a quarter to a third of a start's CPU. So:

* the ``netalert`` command switches the collector off first thing
  (:func:`pause_start`), and :func:`end_start` freezes what start-up built
  (``gc.freeze``: later collections skip it) and switches it back on. That
  happens once the MIB tree is loaded, before a MIB compile or the built-in
  modules' extraction (pysmi and pysnmp make cyclic garbage), and before a
  command's event loop starts; a short command that does none of these ends with
  the collector still off;
* :func:`collector_paused` keeps it off around one bulk load (the tree, from its
  snapshot or from the per-module cache), in any process.

The agent collects and freezes again once its stages have started
(``service.freeze_heap``, :mod:`netalert.heap`): what the stages made since. What
start-up froze is left alone (walking the MIB tree again cost every start 50 to
70 ms of CPU, for a few hundred import-time cycles) until a reload unfreezes it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "end_start", "pause_start"]

_paused = False


def pause_start() -> None:
    """Switches the collector off until :func:`end_start` (the command line's start-up)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def end_start() -> None:
    """Ends :func:`pause_start`'s pause: freezes what is alive, switches the collector on.

    Does nothing when start-up was not paused (tests, a library caller, a reload).
    """
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs; afterwards, as before.

    Reference counting still frees what the block drops; only cycles wait for
    the next collection after it. Not for a block that makes cyclic garbage in
    bulk (a MIB compile).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
