"""The narrow SNMP client the poller talks to, and what it returns or raises.

Two adapters implement :class:`SnmpClient`: gufo-snmp (default, Rust core, fast)
in :mod:`netalert.poll.client_gufo` and the pysnmp 7 hlapi (the reference) in
:mod:`netalert.poll.client_pysnmp`. Both return the same :class:`VarBind` lists
for the same agent; ``tests/test_snmp_client.py`` runs them side by side. They
import this module, which imports neither: :func:`netalert.poll.backends.make_client`
chooses one.

An adapter is created once per process and serves every device: it keeps one
session (gufo) or one shared SnmpEngine (pysnmp) and caches per-target state,
never one engine per device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from netalert.errors import SnmpError
from netalert.snmp.types import SnmpType, VarBind

__all__ = [
    "AUTH_PROTOCOLS",
    "PRIV_PROTOCOLS",
    "Backend",
    "EngineCallback",
    "SessionStats",
    "SnmpAuthError",
    "SnmpClient",
    "SnmpProtocolError",
    "SnmpTimeoutError",
    "Target",
    "is_missing",
    "oid_in_subtree",
    "parse_oid",
]

Backend = Literal["gufo", "native", "pysnmp"]
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("DES", "AES-128", "AES-192", "AES-256")

# Hints printed next to each v3 failure: what an operator checks first.
_V3_HINTS = {
    "unknownUserName": "the agent has no such user",
    "wrongDigest": "wrong auth password or auth protocol",
    "notInTimeWindow": "engine boots/time out of window (agent clock or reboot)",
    "unsupportedSecLevel": "the user does not support this security level",
    "unknownEngineID": "engine ID discovery failed",
    "decryptionError": "wrong priv password or priv protocol",
    "authenticationFailed": "wrong user, auth password or auth protocol",
}


class SnmpTimeoutError(SnmpError, TimeoutError):
    """No answer within timeout x (retries + 1): the device is unreachable."""

    def __init__(self, target: Target) -> None:
        attempts = target.retries + 1
        super().__init__(
            f"{target.address}: no answer within {target.timeout:g}s x {attempts} "
            f"attempt{'s' if attempts > 1 else ''} (check address, port, "
            f"{'credentials' if target.version == '3' else 'community'})"
        )
        self.target = target


class SnmpAuthError(SnmpError):
    """An SNMPv3 request was refused; ``reason`` is the USM report's name."""

    def __init__(self, target: Target, reason: str) -> None:
        hint = _V3_HINTS.get(reason, "")
        super().__init__(
            f"{target.address}: SNMPv3 authentication failed for user {target.user!r}: "
            f"{reason}" + (f" ({hint})" if hint else "")
        )
        self.target = target
        self.reason = reason


class SnmpProtocolError(SnmpError):
    """The agent answered with an error status (genErr, tooBig...)."""

    def __init__(self, target: Target, status: str, oid: str = "") -> None:
        where = f" at {oid}" if oid else ""
        super().__init__(f"{target.address}: agent returned {status}{where}")
        self.target = target
        self.status = status


class SessionStats:
    """Counters of a client's session cache, for /metrics (``netalert_poll_sessions*``)."""

    __slots__ = ("_kept", "evicted", "exhausted")

    def __init__(self, kept: Callable[[], int] = lambda: 0) -> None:
        self._kept = kept  # how many sessions the client keeps now
        self.evicted = 0  # dropped for the cap or to free descriptors
        self.exhausted = 0  # a session could not be opened: out of descriptors

    @property
    def open(self) -> int:
        """Sessions kept now."""
        return self._kept()


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one agent. Secrets never appear in ``repr``."""

    host: str
    port: int = 161
    version: Literal["1", "2c", "3"] = "2c"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: str | None = None
    auth_password: str = field(default="", repr=False)
    priv_protocol: str | None = None
    priv_password: str = field(default="", repr=False)
    context: str = ""
    timeout: float = 2.0
    retries: int = 1
    max_repetitions: int = 25

    def __post_init__(self) -> None:
        if self.auth_protocol is not None and self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"unknown auth protocol {self.auth_protocol!r}")
        if self.priv_protocol is not None and self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"unknown priv protocol {self.priv_protocol!r}")

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets), as messages print it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# Called with (target, engine ID) when a v3 exchange reveals the agent's engine ID.
EngineCallback = Callable[[Target, bytes], None]


class SnmpClient(Protocol):
    """Get, get-next and walk against any target; one instance serves all devices.

    OIDs are dotted numeric strings without a leading dot. Missing objects come
    back as VarBinds typed noSuchObject / noSuchInstance with value None (per
    OID, never a failure of the whole request); SNMPv1's noSuchName is mapped
    the same way.
    """

    backend: Backend

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """One value per requested OID, in request order.

        Raises:
            SnmpTimeoutError: no answer within timeout x (retries + 1).
            SnmpAuthError: an SNMPv3 report refused the request.
            SnmpProtocolError: the agent answered with an error status.
        """
        ...

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """The successor of each OID (endOfMibView typed when none).

        Raises:
            SnmpTimeoutError: no answer within timeout x (retries + 1).
            SnmpAuthError: an SNMPv3 report refused the request.
            SnmpProtocolError: the agent answered with an error status.
        """
        ...

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        """Every instance under ``oid``: GETBULK for v2c/v3, GETNEXT for v1.

        Raises:
            SnmpTimeoutError: no answer within timeout x (retries + 1) for one PDU.
            SnmpAuthError: an SNMPv3 report refused the request.
            SnmpProtocolError: the agent answered with an error status or OIDs
                that do not increase.
        """
        ...

    async def close(self) -> None:
        """Releases sockets and engines."""
        ...


def parse_oid(oid: str) -> tuple[int, ...]:
    """``"1.3.6.1"`` or ``".1.3.6.1"`` as a tuple of ints.

    Raises:
        ValueError: not a dotted numeric OID.
    """
    text = oid.strip().lstrip(".")
    try:
        parts = tuple(int(p) for p in text.split("."))
    except ValueError:
        raise ValueError(f"invalid numeric OID {oid!r}") from None
    if len(parts) < 2 or any(p < 0 for p in parts):
        raise ValueError(f"invalid numeric OID {oid!r}")
    return parts


def oid_in_subtree(oid: str, root: str) -> bool:
    """True when ``oid`` is ``root`` itself or lies below it (string prefix on arcs)."""
    return oid == root or oid.startswith(root + ".")


_MISSING = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW})


def is_missing(vb: VarBind) -> bool:
    """True for the exception values noSuchObject, noSuchInstance, endOfMibView."""
    return vb.type in _MISSING
