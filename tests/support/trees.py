"""One tree of the built-in MIB modules per test process, shared by the tests that only read it.

:meth:`MibTree.builtin` indexes ~300 modules on each call (a tenth of a second of CPU, after
the facts are loaded); a tree is read-only (its lookup memo is a cache of a pure function),
so the tests that need "the built-in tree" and nothing of their own share this one. Built on
the first call, not at import: a worker that collects a module but runs none of its tests
pays nothing.
"""

from __future__ import annotations

import functools

from netalert.mib import MibTree

__all__ = ["builtin_tree"]


@functools.cache
def builtin_tree() -> MibTree:
    """The process's shared :meth:`MibTree.builtin` tree (do not change it)."""
    return MibTree.builtin()
