"""Field types of config.toml: durations, addresses, SNMP protocol names."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "AuthProtocol",
    "Duration",
    "HostPort",
    "PrivProtocol",
    "SnmpVersion",
    "config_duration",
    "format_duration",
    "is_loopback_host",
    "mail_address",
    "parse_duration",
    "parse_hostport",
]

MAX_DURATION = timedelta(days=3650)  # the longest duration config.toml may write
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> timedelta:
    """Parses ``"500ms"``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"`` or ``"1h30m"``.

    A bare number is seconds. Raises ValueError with the accepted forms.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 30s, 5m, 4h, 1d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return _bounded(value, float(value))
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 30s, 5m, 4h, 1d")
    text = value.strip()
    if text == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {value!r}: use e.g. 500ms, 30s, 5m, 4h, 1d")
    return _bounded(value, total)


def _bounded(value: Any, seconds: float) -> timedelta:
    # a NaN is no number a duration text makes; infinity and 1e300 are past the bound
    if not seconds <= MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {value!r}: longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Formats a duration the way config.toml writes it (``"90s"`` → ``"1m30s"``)."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


def config_duration(value: Any) -> timedelta:
    """A duration as config.toml must write it: a string with a unit (``"30s"``).

    A bare TOML number (``for = 30``) is refused: seconds or minutes, the file
    does not say.

    Raises:
        ValueError: A number, or text :func:`parse_duration` refuses.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f'invalid duration {value!r}: a number needs a unit, e.g. "{value}s"'
            " (or 500ms, 5m, 4h, 1d)"
        )
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(config_duration),
    PlainSerializer(format_duration, return_type=str),
]


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host (name, IPv4 or IPv6 literal) and an optional port."""

    host: str
    port: int | None = None

    def with_default(self, port: int) -> HostPort:
        """Returns this address with ``port`` filled in when none was given."""
        return self if self.port is not None else HostPort(self.host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_engine_id(value: str) -> bytes:
    """An SNMP engine ID from hex text (``0x`` prefix and colons allowed).

    Raises:
        ValueError: not hexadecimal, or not 5 to 32 bytes (RFC 3411).
    """
    text = value.strip().lower().removeprefix("0x").replace(":", "")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"engine ID {value!r} is not hexadecimal") from None
    if not 5 <= len(raw) <= 32:
        raise ValueError(f"engine ID {value!r} must be 5 to 32 bytes long")
    return raw


def _check_port(text: str, original: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid port {text!r} in {original!r}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535 in {original!r}")
    return port


def parse_hostport(value: Any) -> HostPort:
    """Parses ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 literal."""
    if isinstance(value, HostPort):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid address {value!r}: use host, host:port or [v6]:port")
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"invalid address {value!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        _valid_ip(host, value, v6=True)
        if not rest:
            return HostPort(host)
        if not rest.startswith(":"):
            raise ValueError(f"invalid address {value!r}: expected ':port' after ']'")
        return HostPort(host, _check_port(rest[1:], value))
    if text.count(":") > 1:
        _valid_ip(text, value, v6=True)
        return HostPort(text)
    host, sep, port = text.partition(":")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"invalid address {value!r}: empty or malformed host")
    return HostPort(host, _check_port(port, value) if sep else None)


def _valid_ip(host: str, original: str, *, v6: bool) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid IPv6 address in {original!r}") from None
    if v6 and ip.version != 6:
        raise ValueError(f"brackets are for IPv6 addresses, got {original!r}")


Address = Annotated[
    HostPort,
    BeforeValidator(parse_hostport),
    PlainSerializer(str, return_type=str),
]


def _version(value: Any) -> Any:
    # TOML users write version = 2 or version = 3 as often as "2c" / "3".
    if isinstance(value, int) and not isinstance(value, bool):
        return {1: "1", 2: "2c", 3: "3"}.get(value, str(value))
    if isinstance(value, str) and value.lower() in ("v1", "v2c", "v3", "2"):
        return {"v1": "1", "v2c": "2c", "v3": "3", "2": "2c"}[value.lower()]
    return value


SnmpVersion = Annotated[Literal["1", "2c", "3"], BeforeValidator(_version)]
AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["DES", "AES-128", "AES-192", "AES-256"]


def is_loopback_host(host: str) -> bool:
    """True when ``host`` names this machine's loopback: ``localhost``, 127.0.0.0/8, ``::1``.

    Decided from the text alone (no resolver): any other name is not loopback,
    even one that happens to resolve to 127.0.0.1.
    """
    text = host.strip().removeprefix("[").removesuffix("]")
    if text.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def mail_address(value: str, kind: str) -> str:
    """Returns ``value`` when it can stand in a mail header as one address.

    Raises:
        ValueError: ``invalid {kind} address '...'`` when it holds a control
            character (CR or LF would start a header of the value's choosing)
            or no ``user@domain`` part.
    """
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(
            f"invalid {kind} address {value!r}: "
            "a mail header cannot hold control characters such as CR or LF"
        )
    if "@" not in parseaddr(value)[1]:
        raise ValueError(f"invalid {kind} address {value!r}")
    return value
