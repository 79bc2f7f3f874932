"""What the v3 and access harnesses hold the receiver to, decided without the receiver's code.

* :func:`source_ip` and :func:`inside`: the address a datagram came from, from
  the raw bytes of the socket address (an IPv4-mapped IPv6 address is the IPv4
  address it maps), and whether an ``allow`` list covers it.
* :func:`community_of`: the version and community of a v1/v2c message, read
  with a small BER reader of its own (only the first two fields).
* :class:`V3Judge`: whether an accepted v3 notification came from a configured
  user, at that user's level, with a digest that verifies with the user's key
  (RFC 3414 section 6 and 7, RFC 7860; keys from the passwords with hashlib:
  RFC 3414 appendix A.2 and section 2.6).

Each check returns the names of the violations it found, so a harness can
tolerate a known one (``FUZZ_KNOWN``) and still fail on the others.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable

from fuzz.v3build import FuzzUser

__all__ = [
    "DOCUMENTED",
    "IPAddress",
    "IPNetwork",
    "V3Judge",
    "community_of",
    "inside",
    "source_ip",
    "tolerated",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Violations accepted by design: none. (An authNoPriv trap from a user with a
# priv_protocol, "priv_downgrade", was once; it is refused like snmptrapd does.)
DOCUMENTED: frozenset[str] = frozenset()

# Auth protocol → (hashlib name, bytes of msgAuthenticationParameters): RFC 3414, RFC 7860.
_DIGESTS = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA-224": ("sha224", 16),
    "SHA-256": ("sha256", 24),
    "SHA-384": ("sha384", 32),
    "SHA-512": ("sha512", 48),
}
_AUTH, _PRIV = 0x01, 0x02


def tolerated() -> frozenset[str]:
    """Violations a harness lets pass: :data:`DOCUMENTED` and the names in ``FUZZ_KNOWN``.

    ``FUZZ_KNOWN=empty_user`` (comma-separated names) keeps a fuzzer running
    past a finding already reported, to look for others.
    """
    known = {name.strip() for name in os.environ.get("FUZZ_KNOWN", "").split(",")}
    return DOCUMENTED | {name for name in known if name}


def source_ip(raw: bytes) -> IPAddress:
    """The address 4 or 16 raw bytes name; an IPv4-mapped IPv6 address is its IPv4 address.

    Raises:
        ValueError: ``raw`` is neither 4 nor 16 bytes long.
    """
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if len(raw) == 16:
        six = ipaddress.IPv6Address(raw)
        return six.ipv4_mapped or six
    raise ValueError(f"an address has 4 or 16 bytes, not {len(raw)}")


def inside(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """True when one of ``networks`` (of the address's IP version) contains ``address``."""
    return any(address in net for net in networks if net.version == address.version)


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start, stop) of the TLV at ``pos``; definite lengths only.

    Raises:
        ValueError: the TLV does not fit before ``end``.
    """
    if pos + 2 > end:
        raise ValueError("short")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or pos + count > end:
            raise ValueError("bad length")
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + size > end:
        raise ValueError("overrun")
    return tag, pos, pos + size


def community_of(data: bytes) -> tuple[int, bytes] | None:
    """(version field, community) of a message framed as SEQUENCE { INTEGER, OCTET STRING, ... }.

    None when the first two fields cannot be read that way.
    """
    try:
        tag, start, stop = _tlv(data, 0, len(data))
        if tag != 0x30:
            return None
        tag, v_start, v_stop = _tlv(data, start, stop)
        if tag != 0x02 or v_start == v_stop:
            return None
        version = int.from_bytes(data[v_start:v_stop], "big", signed=True)
        tag, c_start, c_stop = _tlv(data, v_stop, stop)
        if tag != 0x04:
            return None
        return version, data[c_start:c_stop]
    except ValueError:
        return None


class V3Judge:
    """Checks an accepted v3 notification against the configured users (see module doc)."""

    def __init__(
        self, users: Iterable[FuzzUser], trap_engines: Iterable[bytes], own_engine: bytes
    ) -> None:
        """Users as configured; traps may name ``trap_engines``, informs ``own_engine``."""
        self.users = {item.name.encode(): item for item in users}
        self.trap_engines = frozenset(trap_engines) | {own_engine}
        self.own_engine = own_engine
        self._keys: dict[tuple[bytes, bytes], bytes] = {}  # users x engines seen accepted

    def violations(
        self,
        data: bytes,
        *,
        name: bytes,
        engine_id: bytes,
        flags: int,
        auth_at: int,
        auth_params: bytes,
        accepted_user: str,
        inform: bool,
    ) -> list[str]:
        """What is wrong with accepting ``data`` as a notification of ``accepted_user``.

        ``name`` … ``auth_params`` are the message's header fields (user name,
        authoritative engine ID, msgFlags, offset and contents of
        msgAuthenticationParameters). Returns [] when the acceptance is sound.
        """
        if not name:
            return ["empty_user"]  # nothing else can be checked against a user
        if accepted_user != name.decode("utf-8", "replace"):
            return ["user_mismatch"]
        configured = self.users.get(name)
        if configured is None:
            return ["unconfigured_user"]
        found = []
        engines = {self.own_engine} if inform else self.trap_engines
        if engine_id not in engines:
            found.append("unknown_engine")
        if configured.auth is not None:
            if not flags & _AUTH:
                return [*found, "no_auth"]
            if not self._digest_ok(configured, data, engine_id, auth_at, auth_params):
                found.append("bad_digest")
        if configured.priv is not None and not flags & _PRIV:
            found.append("priv_downgrade")
        return found

    def _digest_ok(
        self, configured: FuzzUser, data: bytes, engine_id: bytes, at: int, given: bytes
    ) -> bool:
        assert configured.auth is not None
        hash_name, size = _DIGESTS[configured.auth]
        if len(given) != size or data[at : at + size] != given:
            return False
        key = self._keys.get((configured.name.encode(), engine_id))
        if key is None:
            password = configured.auth_password.encode()
            stream = (password * (1_048_576 // len(password) + 1))[:1_048_576]
            master = hashlib.new(hash_name, stream).digest()
            key = hashlib.new(hash_name, master + engine_id + master).digest()
            if len(self._keys) >= 1024:  # only accepted messages add keys; bounded anyway
                self._keys.clear()
            self._keys[(configured.name.encode(), engine_id)] = key
        zeroed = data[:at] + bytes(size) + data[at + size :]
        return hmac.compare_digest(hmac.digest(key, zeroed, hash_name)[:size], given)
