"""tests/support/keycache.py: pysnmp's password hash, memoised, is still pysnmp's."""

from __future__ import annotations

from hashlib import md5, sha1, sha512

import pytest
from pysnmp.proto.secmod.rfc3414 import localkey

from tests.support.keycache import cached_hash_passphrase

pytestmark = pytest.mark.unit


def test_the_memo_answers_what_pysnmp_computes_once_per_password_and_hash() -> None:
    original = getattr(localkey.hash_passphrase, "cached_original", localkey.hash_passphrase)
    calls: list[tuple[bytes, object]] = []

    def counting(passphrase: object, hash_func: object) -> object:
        calls.append((bytes(passphrase), hash_func))  # type: ignore[call-overload]
        return original(passphrase, hash_func)

    cached = cached_hash_passphrase(counting)
    for password, hash_func in [("maplesyrup", md5), (b"maplesyrup", sha1), ("x" * 70, sha512)]:
        first = cached(password, hash_func)
        assert bytes(first) == bytes(original(password, hash_func))
        assert bytes(cached(password, hash_func)) == bytes(first)
    # RFC 3414 A.3.1: "maplesyrup" hashed with MD5
    assert bytes(cached("maplesyrup", md5)).hex() == "9faf3283884e92834ebc9847d8edd963"
    assert [(p, h) for p, h in calls] == [
        (b"maplesyrup", md5),
        (b"maplesyrup", sha1),
        (b"x" * 70, sha512),
    ]


def test_the_plugin_wraps_pysnmp_in_this_process() -> None:
    assert hasattr(localkey.hash_passphrase, "cached_original")
    assert localkey.hash_passphrase_md5("maplesyrup") == localkey.hash_passphrase_md5("maplesyrup")
