"""snmpd serving values a test controls: a ``pass_persist`` script reading a JSON file.

:func:`served_by` returns the :class:`~tests.support.snmpd.PassScript` list for
``snmpd_factory(passes=...)``; :class:`Values` writes the file the scripts read
on every request, so a test changes what the device answers between polls::

    values = Values(tmp_path / "values.json")
    values.write({"1.3.6.1.2.1.2.2.1.8.3": ("integer", 2)})
    agent = snmpd_factory(passes=served_by(values, ["1.3.6.1.2.1.2.2"]))

A value is ``(type, value)`` with a pass type (``integer``, ``gauge``,
``counter``, ``counter64``, ``timeticks``, ``objectid``, ``string``), or
``(type, {"start": N, "rate": R, "epoch": E})`` for a value that grows by R per
second from N (a counter, sysUpTime); a new ``epoch`` starts it again from N
(a reboot). Each script is one long-lived process (``pass_persist``), so a walk
costs no process start per value. The script never evaluates what it reads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.snmpd import PassScript

__all__ = ["Values", "served_by"]

_SCRIPT = """#!{python}
import json, sys, time

PREFIX = tuple(int(x) for x in {prefix!r}.strip(".").split("."))
VALUES = {path!r}
grown = {{}}  # (oid, epoch) -> (value, time)


def key(oid):
    return tuple(int(x) for x in oid.strip().strip(".").split(".") if x)


def table():
    try:
        with open(VALUES) as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return {{}}
    return {{key(k): v for k, v in raw.items() if key(k)[: len(PREFIX)] == PREFIX}}


def value_of(oid, kind, value):
    if not isinstance(value, dict):
        return value
    now = time.time()
    slot = (oid, value.get("epoch", 0))
    current, then = grown.get(slot, (value["start"], now))
    current += value["rate"] * (now - then)
    grown[slot] = (current, now)
    return int(current) % (2**64 if kind == "counter64" else 2**32)


def answer(oid, kind, value):
    text = ".".join(map(str, oid))
    print("." + text)
    print(kind)
    print(value_of(text, kind, value))


for line in sys.stdin:
    command = line.strip()
    if command == "PING":
        print("PONG")
    elif command in ("get", "getnext"):
        wanted = key(sys.stdin.readline())
        values = table()
        if command == "get":
            found = [o for o in values if o == wanted]
        else:
            found = sorted(o for o in values if o > wanted)
        if found:
            answer(found[0], *values[found[0]])
        else:
            print("NONE")
    elif command == "set":
        sys.stdin.readline()
        sys.stdin.readline()
        print("not-writable")
    sys.stdout.flush()
"""


@dataclass(frozen=True, slots=True)
class Values:
    """The JSON file the scripts read: numeric OID (no leading dot) -> (type, value)."""

    path: Path

    def write(self, values: Mapping[str, tuple[str, Any]]) -> None:
        """Replaces what the device answers (atomically: a poll never reads half a file)."""
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps({k: list(v) for k, v in values.items()}))
        os.replace(scratch, self.path)


def served_by(values: Values, prefixes: Sequence[str]) -> list[PassScript]:
    """One ``pass_persist`` script per subtree in ``prefixes``, at priority 10 so it
    takes over what snmpd implements itself.

    snmpd registers some tables per column (hrStorageTable): a subtree above
    such a registration does not take it over, so give those tables' columns
    one by one (``1.3.6.1.2.1.25.2.3.1.3``). ifTable, ifXTable and sysUpTime
    work from their entry (``1.3.6.1.2.1.2.2.1``) or object.
    """
    return [
        PassScript(
            "." + prefix.strip("."),
            _SCRIPT.format(python=sys.executable, prefix=prefix, path=str(values.path)),
            persist=True,
            priority=10,
        )
        for prefix in prefixes
    ]
