"""The part of the MIB layer (netalert.mib) the rules use, as protocols.

The tree is the one :class:`~netalert.snmp.naming.MibTreeLike` of the poller
and the receiver; a node as the rules read it is :class:`MibNodeLike`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from netalert.errors import MibError
from netalert.snmp.naming import MibTreeLike

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


def short_name(name: str) -> str:
    """``IF-MIB::ifOperStatus`` → ``ifOperStatus``; a name without module is kept."""
    return name.rpartition("::")[2]
