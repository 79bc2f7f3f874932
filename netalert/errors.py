"""The one exception root of netalert and its direct children.

Every error a user can act on derives from :class:`NetalertError` and carries the
context needed to act (file and line, device, OID, SMTP code).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "MibError",
    "NetalertError",
    "SnmpError",
    "StateCorruptError",
    "StateError",
    "StateWriteError",
]


class NetalertError(Exception):
    """Root of every error netalert raises on purpose."""


class ConfigError(NetalertError):
    """The configuration is invalid; ``problems`` holds one ``path: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class MibError(NetalertError):
    """A MIB name, OID or module could not be resolved or compiled."""


class SnmpError(NetalertError):
    """An SNMP request failed (timeout, authentication, protocol error)."""


class StateError(NetalertError):
    """The state directory or database is unusable."""


class StateWriteError(StateError):
    """A write to the state database failed for a reason that may pass (disk full,
    I/O error, a lock held too long); retrying the same write later can succeed."""


class StateCorruptError(StateError):
    """The state database file is damaged; netalert cannot go on with it.

    The message names the file and what to do (``netalert run --recover``).
    """
