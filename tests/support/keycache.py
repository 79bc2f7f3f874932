"""pysnmp's SNMPv3 password hashing, once per password and hash in each pytest process
(pytest plugin).

Every pysnmp engine a test makes (the trap receiver's reference path, the pysnmp client
backend, the test's own senders) hashes each user's passwords again: RFC 3414's 1 MB of
hashing, done by pysnmp in a Python loop of 16,384 steps (about 4 ms each time). The
tests make hundreds of engines from a handful of passwords. The plugin wraps
``pysnmp.proto.secmod.rfc3414.localkey.hash_passphrase``, through which every pysnmp
authentication and privacy protocol hashes a password, with a bounded memo keyed by the
password and the hash function: the result is the one pysnmp computed the first time.
Only the pytest processes: the processes the tests start hash as they always do.

Load with ``pytest_plugins = ["tests.support.keycache"]`` (tests/conftest.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["cached_hash_passphrase"]

_MEMO_SIZE = 256  # passwords x hash functions of the whole suite: a few dozen


def cached_hash_passphrase(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``original`` (pysnmp's ``hash_passphrase(passphrase, hashFunc)``), memoised."""

    @functools.lru_cache(maxsize=_MEMO_SIZE)
    def memo(passphrase: bytes, hash_func: Any) -> Any:
        return original(passphrase, hash_func)

    @functools.wraps(original)
    def hash_passphrase(passphrase: Any, hashFunc: Any) -> Any:
        from pyasn1.type import univ

        return memo(univ.OctetString(passphrase).asOctets(), hashFunc)

    hash_passphrase.cached_original = original  # type: ignore[attr-defined]
    return hash_passphrase


def pytest_configure(config: pytest.Config) -> None:
    from pysnmp.proto.secmod.rfc3414 import localkey

    if not hasattr(localkey.hash_passphrase, "cached_original"):
        localkey.hash_passphrase = cached_hash_passphrase(localkey.hash_passphrase)
