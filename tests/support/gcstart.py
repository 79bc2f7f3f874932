"""The cyclic garbage collector kept out of a pytest process's start-up (pytest plugin).

A pytest process of this suite (each xdist worker) imports every test module and
what they import (pysnmp, pydantic's models, aiohttp, hypothesis...) and builds the
built-in MIB tree at collection: hundreds of thousands of objects that live until the
process ends. Every collection of the oldest generation walks all of them again, to
free next to nothing: about a second of CPU per process during collection, and a
third of the collector's time afterwards (measured on five unit modules: 3.8 s of
19.7 s of CPU spent collecting). As the ``netalert`` command does for its own start
(:mod:`netalert.gcpause`), the collector is off from this plugin's import to the end
of collection; then what start-up built is frozen (``gc.freeze``: later collections
skip it) and the collector is switched back on. Tests see a collector that works as
usual: garbage made after collection is collected, ``gc.collect()`` collects it, and a
test that unfreezes (tests/test_heap.py) only gives the frozen objects back to it.

Load with ``pytest_plugins = ["tests.support.gcstart", ...]`` first (tests/conftest.py).
"""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest

__all__ = ["resume"]

_paused = gc.isenabled()
gc.disable()


def resume() -> None:
    """Freezes what is alive and switches the collector back on (once; if this paused it)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


@pytest.hookimpl(hookwrapper=True)
def pytest_collection() -> Generator[None, None, None]:
    try:
        yield
    finally:
        resume()


def pytest_unconfigure() -> None:
    resume()  # a session that never collected (--help, a usage error)
