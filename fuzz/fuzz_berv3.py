"""atheris harness: the SNMPv3 header and ScopedPDU parser (:mod:`netalert.snmp.wire.berv3`).

Properties: no internal error from :func:`decode_v3_header` or
:func:`decode_scoped_pdu` (both catch every exception and name it
``internal:<type>``); a decoded header's offsets point into the datagram at
the fields they describe; :func:`message_version` agrees (3).

Run by ``make fuzz`` (see fuzz/run.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

with atheris.instrument_imports(include=["netalert"]):
    from fuzz.slow import SlowWatch
    from netalert.snmp.wire import ber, berv3


def _no_bug(result: object) -> None:
    if isinstance(result, ber.DecodeError):
        assert not result.reason.startswith("internal:"), f"parser bug: {result}"


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    # the same bytes as a decrypted ScopedPDU (what the privacy path hands over)
    _no_bug(berv3.decode_scoped_pdu(data))
    header = berv3.decode_v3_header(data)
    if isinstance(header, ber.DecodeError):
        _no_bug(header)
        return
    assert ber.message_version(data) == 3
    at, size = header.auth_at, len(header.auth_params)
    assert 0 <= at <= at + size <= len(data) and data[at : at + size] == header.auth_params
    start, stop = header.data_at
    assert 0 < start <= stop == len(data), header.data_at
    assert header.level in ("noAuthNoPriv", "authNoPriv", "authPriv")
    if not header.flags & berv3.FLAG_PRIV:
        _no_bug(berv3.decode_scoped_pdu(data, header.data_at))


test_one_input = SlowWatch("fuzz_berv3", check)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
