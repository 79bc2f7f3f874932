"""Choosing an :class:`~netalert.poll.client.SnmpClient` adapter by its backend name.

The one module that knows every adapter. :mod:`netalert.poll.client` defines
what an adapter is (the protocol, :class:`~netalert.poll.client.Target`, the
errors); the adapters (:mod:`netalert.poll.client_gufo`,
:mod:`netalert.poll.client_pysnmp`) import those, and nothing imports back:
``client`` knows no adapter. Each adapter is imported only when chosen, so a
process that polls with gufo never loads pysnmp's high-level API for it.
"""

from __future__ import annotations

from netalert.poll.client import Backend, EngineCallback, SnmpClient

__all__ = ["make_client"]


def make_client(
    backend: Backend, *, on_engine_id: EngineCallback | None = None, max_sessions: int = 50_000
) -> SnmpClient:
    """Returns the adapter for ``backend`` ("gufo", "native" or "pysnmp"); ``max_sessions``
    bounds gufo's open sessions (see :func:`netalert.poll.client_gufo.session_cap`) and
    the native client's known targets.

    Raises:
        ValueError: An unknown backend name.
    """
    if backend == "gufo":
        from netalert.poll.client_gufo import GufoClient

        return GufoClient(on_engine_id=on_engine_id, max_sessions=max_sessions)
    if backend == "native":
        from netalert.poll.client_native import NativeClient

        return NativeClient(on_engine_id=on_engine_id, max_sessions=max_sessions)
    if backend == "pysnmp":
        from netalert.poll.client_pysnmp import PysnmpClient

        return PysnmpClient(on_engine_id=on_engine_id)
    raise ValueError(f"unknown SNMP backend {backend!r}: use 'gufo', 'native' or 'pysnmp'")
