"""Choosing an :class:`~netalert.snmp.client.SnmpClient` adapter by its backend name.

The one module that knows every adapter. :mod:`netalert.snmp.client` defines
what an adapter is (the protocol, :class:`~netalert.snmp.client.Target`, the
errors); the adapters (:mod:`netalert.snmp.client_gufo`,
:mod:`netalert.snmp.client_pysnmp`) import those, and nothing imports back:
``client`` knows no adapter. Each adapter is imported only when chosen, so a
process that polls with gufo never loads pysnmp's high-level API for it.
"""

from __future__ import annotations

from netalert.snmp.client import Backend, EngineCallback, SnmpClient

__all__ = ["make_client"]


def make_client(backend: Backend, *, on_engine_id: EngineCallback | None = None) -> SnmpClient:
    """Returns the adapter for ``backend`` ("gufo" or "pysnmp").

    Raises:
        ValueError: An unknown backend name.
    """
    if backend == "gufo":
        from netalert.snmp.client_gufo import GufoClient

        return GufoClient(on_engine_id=on_engine_id)
    if backend == "pysnmp":
        from netalert.snmp.client_pysnmp import PysnmpClient

        return PysnmpClient(on_engine_id=on_engine_id)
    raise ValueError(f"unknown SNMP backend {backend!r}: use 'gufo' or 'pysnmp'")
