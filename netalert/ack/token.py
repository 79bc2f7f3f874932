"""Signed reply tokens: pure functions over bytes, and the key file.

A token names one notification mail and is valid for the alerts that mail
listed until it expires. It is the base32 text (lower case, no padding, so it
survives a mail system that folds the case of a local part) of::

    nid (10 random bytes) | expiry (4 bytes, unix seconds) | mac (16 bytes)

where ``mac`` is the first 16 bytes of HMAC-SHA256 under the key in
``secret_file`` over the nid, the expiry and the sorted fingerprints of the
mail's firing alerts. The fingerprints are not in the token: they are kept
with the nid in the ``ack_tokens`` table, so a token cannot be stretched to
other alerts, and a forged nid finds nothing. Every comparison of a MAC is
constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netalert.errors import NetalertError
from netalert.readfile import read_bounded, why

__all__ = [
    "TOKEN_CHARS",
    "ParsedToken",
    "load_secret",
    "mac",
    "make_token",
    "parse_token",
    "token_pattern",
]

_NID = 10
_MAC = 16
_RAW = _NID + 4 + _MAC
TOKEN_CHARS = 48  # base32 of 30 bytes, no padding
_DOMAIN = b"netalert-ack-v1"
KEY_BYTES = 32
SECRET_MAX_BYTES = 64 * 1024  # a secret_file, at most (as a config *_file)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token's parts; nothing here is verified yet (see :func:`mac`)."""

    nid: str  # hex
    expires: int
    mac: bytes


def mac(key: bytes, nid: str, expires: int, fingerprints: Iterable[str]) -> bytes:
    """The MAC of a token: nid, expiry and the sorted fingerprints, under ``key``."""
    message = b"\0".join(
        (
            _DOMAIN,
            bytes.fromhex(nid),
            struct.pack(">I", expires),
            ",".join(sorted(fingerprints)).encode("ascii", "replace"),
        )
    )
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC]


def make_token(
    key: bytes, fingerprints: Iterable[str], expires: int, *, nid: str | None = None
) -> tuple[str, str]:
    """A new token for a mail listing ``fingerprints``; returns ``(nid, token)``."""
    nid = nid if nid is not None else secrets.token_hex(_NID)
    raw = bytes.fromhex(nid) + struct.pack(">I", expires) + mac(key, nid, expires, fingerprints)
    return nid, base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def parse_token(text: str) -> ParsedToken | None:
    """Splits a token into its parts; None when it is not one (wrong length or alphabet)."""
    if len(text) != TOKEN_CHARS:
        return None
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8), casefold=False)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _RAW:
        return None
    (expires,) = struct.unpack(">I", raw[_NID : _NID + 4])
    return ParsedToken(raw[:_NID].hex(), int(expires), raw[_NID + 4 :])


def token_pattern(reply_to: str) -> re.Pattern[str]:
    """A regex finding the token in an address made from the ``reply_to`` template."""
    local = reply_to.partition("@")[0]
    before, _, after = local.partition("{token}")
    return re.compile(
        re.escape(before) + f"([a-z2-7]{{{TOKEN_CHARS}}})" + re.escape(after) + "@",
        re.IGNORECASE,
    )


def load_secret(path: Path) -> bytes:
    """The HMAC key in ``path``; made there (32 random bytes, mode 0600) when absent.

    Raises:
        NetalertError: The file cannot be read or made, or holds fewer than 16 bytes.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise NetalertError(
            f"[ack].secret_file {path}: cannot create it ({exc.strerror})"
        ) from None
    else:
        try:
            os.write(fd, secrets.token_hex(KEY_BYTES).encode("ascii") + b"\n")
        finally:
            os.close(fd)
    try:
        data = read_bounded(path, SECRET_MAX_BYTES).strip()  # never a FIFO's endless wait
    except OSError as exc:
        raise NetalertError(f"[ack].secret_file {path}: cannot read it ({why(exc)})") from None
    if len(data) < 16:
        raise NetalertError(f"[ack].secret_file {path}: holds fewer than 16 bytes")
    return data
