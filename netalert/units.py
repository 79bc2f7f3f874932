"""Numbers as people read them: bit rates, bytes, percentages, durations, TimeTicks.

The one place netalert turns a number into human units. Each function is
also a Jinja2 filter (:data:`FILTERS`) for rule templates (``summary``,
``resolved_summary``, ``description``) and mail templates::

    {{ rate | bits }}          1200000000   -> 1.2 Gbit/s    (bits per second, SI)
    {{ size | bytes }}         3650722201   -> 3.4 GiB       (bytes, IEC: 1024)
    {{ share | percent }}      97.3147      -> 97.3%         (already in percent)
    {{ seconds | duration }}   3725         -> 1h 2m
    {{ sysUpTime | uptime }}   31536000     -> 3d 15h        (TimeTicks: 1/100 s)

A filter accepts a number or text that reads as one (the rule engine hands
templates the shown ``value`` as text). Anything else (a label such as
``down``, text from a device, an empty value) is returned as text unchanged,
so a filter never makes a template fail on odd data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from netalert.present import octets_text

__all__ = ["FILTERS", "bits", "bytes_iec", "duration", "number", "percent", "uptime"]

# Longest text parsed as a number: a device can send kilobytes of digits.
_MAX_NUMBER_TEXT = 64
_SI = ("", "k", "M", "G", "T", "P", "E")
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number.

    Accepts int and float (not bool) and text such as ``"97.31"``, ``" 12 "``
    or ``"1e9"`` of at most 64 characters; NaN and infinities give None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:  # an int too large for a float
            return None
    elif isinstance(value, str) and len(value) <= _MAX_NUMBER_TEXT:
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return octets_text(value)
    try:
        return value if isinstance(value, str) else str(value)
    except ValueError:  # an int with more digits than Python prints
        return ""


def _significant(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, trailing zeros removed: 1.20 -> 1.2, 950."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(value: Any, base: int, names: tuple[str, ...], suffix: str) -> str:
    x = number(value)
    if x is None:
        return _text(value)
    step = 0
    while abs(x) >= base and step < len(names) - 1:
        x /= base
        step += 1
    # 999.7 rounds to "1000": show the next unit instead
    if abs(float(_significant(x))) >= base and step < len(names) - 1:
        x /= base
        step += 1
    return f"{_significant(x)} {names[step]}{suffix}"


def bits(value: Any) -> str:
    """Bits per second with SI prefixes: ``1200000000`` -> ``1.2 Gbit/s``, ``950 bit/s``."""
    return _scaled(value, 1000, _SI, "bit/s")


def bytes_iec(value: Any) -> str:
    """Bytes with IEC prefixes (powers of 1024): ``3650722201`` -> ``3.4 GiB``, ``512 B``."""
    return _scaled(value, 1024, _IEC, "")


def percent(value: Any, decimals: int = 1) -> str:
    """A number already in percent, rounded: ``97.3147`` -> ``97.3%``, ``92.0`` -> ``92%``.

    ``decimals`` (0 to 6) sets the rounding. A ratio (0.97) must be multiplied by
    100 first: the filter does not guess.
    """
    x = number(value)
    if x is None:
        return _text(value)
    places = min(max(int(decimals), 0), 6)
    text = f"{x:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


def duration(value: Any) -> str:
    """Seconds as the two largest units: ``3725`` -> ``1h 2m``, ``86400`` -> ``1d``, ``45s``.

    The second unit is left out when it is zero; fractions of a second are
    dropped, and a negative number counts as ``0s``.
    """
    x = number(value)
    if x is None:
        return _text(value)
    total = int(max(0.0, x))
    for position, (name, size) in enumerate(_UNITS):
        if total >= size or name == "s":
            first = total // size
            parts = [f"{first}{name}"]
            if position + 1 < len(_UNITS):
                below, below_size = _UNITS[position + 1]
                second = (total % size) // below_size
                if second:
                    parts.append(f"{second}{below}")
            return " ".join(parts)
    return "0s"  # pragma: no cover - the loop always returns at "s"


def uptime(value: Any) -> str:
    """SNMP TimeTicks (hundredths of a second, as ``sysUpTime``) as a duration:
    ``31536000`` -> ``3d 15h``."""
    x = number(value)
    if x is None:
        return _text(value)
    return duration(x / 100)


FILTERS: dict[str, Callable[..., str]] = {
    "bits": bits,
    "bytes": bytes_iec,
    "percent": percent,
    "duration": duration,
    "uptime": uptime,
}
