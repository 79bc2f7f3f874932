"""The part of the MIB layer (netalert.mib, MIB-API.md) the rules use, as protocols.

Typing against these protocols rather than importing ``MibTree`` keeps the rule
compiler usable with any object offering the same methods (the tests of pure
units use a small stand-in; the service passes the real tree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from netalert.errors import MibError

__all__ = ["MIB_ERRORS", "MibNodeLike", "MibTreeLike", "short_name"]

# What a tree raises for a name, OID or index it cannot resolve (MibError by
# contract; the others from malformed, untrusted indexes).
MIB_ERRORS: tuple[type[Exception], ...] = (MibError, LookupError, ValueError, TypeError)


class MibNodeLike(Protocol):
    """One named OID (netalert.mib.MibNode)."""

    @property
    def module(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def oid(self) -> tuple[int, ...]: ...
    @property
    def kind(self) -> str: ...
    @property
    def syntax(self) -> str: ...
    @property
    def tc(self) -> str: ...
    @property
    def enums(self) -> Mapping[int, str]: ...
    @property
    def display_hint(self) -> str: ...
    @property
    def index(self) -> tuple[str, ...]: ...


class MibTreeLike(Protocol):
    """Name ⇄ OID resolution (netalert.mib.MibTree)."""

    def oid(self, name: str) -> tuple[int, ...]: ...
    def node(self, name: str) -> MibNodeLike: ...
    def lookup(self, oid: tuple[int, ...]) -> tuple[Any, str]: ...
    def name(self, oid: str) -> str: ...
    # ``node`` is typed Any: the real tree takes its own MibNode class, and a
    # protocol parameter must accept at least what callers pass.
    def decode_index(self, node: Any, index: str) -> dict[str, int | str | bytes]: ...
    def notification_objects(self, trap_oid: str) -> list[str]: ...


def short_name(name: str) -> str:
    """``IF-MIB::ifOperStatus`` → ``ifOperStatus``; a name without module is kept."""
    return name.rpartition("::")[2]
