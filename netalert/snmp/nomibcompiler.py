"""pysnmp engines without pysnmp's MIB compiler.

pysnmp attaches a pysmi MIB compiler to an engine's MIB builder at its first
lookup by name (``ObjectIdentity.resolve_with_mib``, which every hlapi command
runs, even for numeric OIDs): a SMI parser built in a third of a second of CPU,
and readers of MIB sources that pysmi may fetch over the network. netalert's
engines only need the modules compiled into pysnmp (netalert names OIDs with
its own MIB tree), so :func:`refuse_mib_compiler` makes the builder report a
compiler already present: none is ever built, and a module pysnmp does not
carry is "not found", never compiled or downloaded.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NO_COMPILER", "refuse_mib_compiler"]


class _NoCompiler:
    """Stands for a compiler in ``get_mib_compiler``; never compiles anything."""

    def __repr__(self) -> str:
        return "<no MIB compiler: netalert loads only pysnmp's compiled modules>"


NO_COMPILER = _NoCompiler()


def refuse_mib_compiler(engine: Any) -> None:
    """Keeps pysnmp from attaching a MIB compiler to ``engine``'s MIB builder.

    pysnmp adds one only when ``get_mib_compiler()`` answers nothing; the builder's
    own loading still sees none, so a missing module raises ``MibNotFoundError``.
    """
    builder = engine.get_mib_builder()
    builder.get_mib_compiler = lambda: NO_COMPILER
