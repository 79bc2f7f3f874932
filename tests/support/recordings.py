"""Recorded walks of real devices, served by snmpd, for the poll backends' trial.

The recordings are the ``.snmprec`` files of the ``snmpsim-data`` distribution (walks
of switches, routers, firewalls, hosts; one ``OID|type|value`` line each), installed
into the venv by ``make venv`` (with ``--no-deps``: its own requirements pin an older
pysmi than netalert's) and read from there, never copied into this repository.

:func:`recording` finds one (a test skips when the distribution is missing, and fails
under CI, where ``make venv`` must have installed it); :func:`load` reads what snmpd's
``pass`` protocol can carry, with the value and wire type a client must decode;
:func:`served` is the ``pass_persist`` script that answers them under ``prefix``
(relocated there, so snmpd's own MIB modules never answer in their place).
"""

from __future__ import annotations

import bz2
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from netalert.snmp.types import SnmpType, Value
from tests.support.snmpd import PassScript

__all__ = ["DISTRIBUTION", "Recorded", "Recording", "load", "recording", "served"]

DISTRIBUTION = "snmpsim-data==1.0.1"
# The longest OCTET STRING passed on: snmpd reads a pass_persist answer's value as
# one line of hex (3 characters a byte) into a buffer of a few kilobytes.
_MAX_OCTETS = 1000
_U32 = 2**32

Recorded = tuple[str, SnmpType, Value]  # OID (relocated), wire type, value as decoded


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording's values that snmpd can serve: ``entries`` in OID order, ``lines``
    the pass_persist answers (OID, pass type, value text), ``left_out`` by why."""

    entries: tuple[Recorded, ...]
    lines: tuple[tuple[str, str, str], ...]
    left_out: dict[str, int]


def recording(name: str) -> Path:
    """The path of ``name`` (``network/switch/h3c-e528-2``) in snmpsim-data."""
    spec = importlib.util.find_spec("snmpsim_data")
    if spec is None or spec.origin is None:
        message = f"{DISTRIBUTION} is not installed: run `make venv` (device recordings)"
        if os.environ.get("CI") or os.environ.get("NETALERT_REQUIRE_SNMPD"):  # make test sets it
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    data = Path(spec.origin).parent / "data"
    for suffix in (".snmprec", ".snmprec.bz2"):
        path = data / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no recording {name!r} in {data}")


def _arcs(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


def _convert(tag: str, raw: bytes) -> tuple[str, str, SnmpType, Value] | str:
    """(pass type, pass value, wire type, decoded value), or why it is left out."""
    text = raw.decode("latin-1")
    if tag in ("4", "4x"):
        octets = bytes.fromhex(text) if tag == "4x" else raw
        if len(octets) > _MAX_OCTETS:
            return "long_octets"
        return "octet", " ".join(f"{b:02x}" for b in octets), SnmpType.OCTET_STRING, octets
    if tag == "2":
        number = int(text)
        if not -(2**31) <= number < 2**31:
            return "out_of_range"
        return "integer", text, SnmpType.INTEGER, number
    unsigned = {
        "65": ("counter", SnmpType.COUNTER32, _U32),
        "66": ("gauge", SnmpType.GAUGE32, _U32),
        "67": ("timeticks", SnmpType.TIMETICKS, _U32),
        "70": ("counter64", SnmpType.COUNTER64, 2**64),
    }
    if tag in unsigned:
        kind, wire, bound = unsigned[tag]
        number = int(text)
        if not 0 <= number < bound:
            return "out_of_range"
        return kind, text, wire, number
    if tag in ("64", "64x"):
        octets = bytes.fromhex(text) if tag == "64x" else bytes(map(int, text.split(".")))
        if len(octets) != 4:
            return "bad_ip"
        address = ".".join(map(str, octets))
        return "ipaddress", address, SnmpType.IP_ADDRESS, address
    if tag == "6":
        oid = text.strip(".")
        if len(oid.split(".")) < 2:
            return "short_oid"
        return "objectid", "." + oid, SnmpType.OID, oid
    if tag == "68x":
        octets = bytes.fromhex(text)
        return "opaque", " ".join(f"{b:02x}" for b in octets), SnmpType.OPAQUE, octets
    return f"type_{tag}"  # NULL, variation modules (2:numeric...), anything else


def load(path: Path, prefix: str, *, limit: int = 0) -> Recording:
    """The recording at ``path`` relocated under ``prefix``; its first ``limit`` OIDs
    (in OID order) when ``limit`` is set."""
    data = path.read_bytes()
    if path.suffix == ".bz2":
        data = bz2.decompress(data)
    found: dict[tuple[int, ...], tuple[str, str, str, SnmpType, Value]] = {}
    left_out: dict[str, int] = {}
    for line in data.splitlines():
        parts = line.split(b"|", 2)
        if len(parts) != 3:
            continue
        oid, tag, raw = parts[0].decode().strip("."), parts[1].decode(), parts[2]
        try:
            got = _convert(tag, raw) if oid else "no_oid"
        except ValueError:
            got = "unreadable"
        if isinstance(got, str):
            left_out[got] = left_out.get(got, 0) + 1
            continue
        moved = f"{prefix}.{oid}"
        found[_arcs(moved)] = (moved, *got)
    ordered = [found[key] for key in sorted(found)]
    if limit:
        ordered = ordered[:limit]
    return Recording(
        entries=tuple((oid, wire, value) for oid, _, _, wire, value in ordered),
        lines=tuple((oid, kind, text) for oid, kind, text, _, _ in ordered),
        left_out=left_out,
    )


_SCRIPT = """#!{python}
import bisect, sys

KEYS, ANSWERS = [], []
with open({path!r}) as f:
    for line in f:
        oid, kind, value = line.rstrip("\\n").split("\\t")
        KEYS.append(tuple(int(x) for x in oid.split(".")))
        ANSWERS.append("." + oid + "\\n" + kind + "\\n" + value + "\\n")


def key(text):
    return tuple(int(x) for x in text.strip().strip(".").split(".") if x)


for line in sys.stdin:
    command = line.strip()
    if command == "PING":
        sys.stdout.write("PONG\\n")
    elif command in ("get", "getnext"):
        wanted = key(sys.stdin.readline())
        if command == "get":
            at = bisect.bisect_left(KEYS, wanted)
            hit = at < len(KEYS) and KEYS[at] == wanted
        else:
            at = bisect.bisect_right(KEYS, wanted)
            hit = at < len(KEYS)
        sys.stdout.write(ANSWERS[at] if hit else "NONE\\n")
    elif command == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        sys.stdout.write("not-writable\\n")
    sys.stdout.flush()
"""


def served(recorded: Recording, prefix: str, directory: Path) -> PassScript:
    """The ``pass_persist`` handler answering ``recorded`` under ``prefix``: the
    answers written to a file in ``directory``, read once by the script."""
    path = directory / f"recording-{abs(hash(prefix))}.tsv"
    path.write_text("".join(f"{oid}\t{kind}\t{text}\n" for oid, kind, text in recorded.lines))
    source = _SCRIPT.format(python=sys.executable, path=str(path))
    return PassScript("." + prefix, source, persist=True, priority=10)
