"""atheris harness: the SNMPv1/v2c BER decoder (:mod:`netalert.snmp.wire.ber`).

Properties checked on every input, beyond "does not crash":

* :func:`decode_message` never reports an internal error (it catches every
  exception and names it ``internal:<type>``: each one is a decoder bug);
* :func:`message_version` agrees with the decoded version;
* a decoded message re-encoded with :mod:`netalert.snmp.wire.berenc` decodes to
  the same message (the decoder accepts nothing the encoder cannot express);
* the Response to a decoded InformRequest decodes, with the request-id and the
  variable bindings of the inform.

Run by ``make fuzz`` (see fuzz/run.py); alone:
``.venv/bin/python fuzz/fuzz_ber.py -max_total_time=60 build/fuzz/corpus/ber``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

with atheris.instrument_imports(include=["netalert"]):
    from fuzz.slow import SlowWatch
    from netalert.snmp.wire import ber, berenc


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    msg = ber.decode_message(data)
    version = ber.message_version(data)
    if isinstance(msg, ber.DecodeError):
        assert not msg.reason.startswith("internal:"), f"decoder bug: {msg}"
        return
    assert version == msg.version, (version, msg.version)
    encoded = berenc.encode_message(
        version=msg.version,
        community=msg.community,
        pdu_type=msg.pdu_type,
        varbinds=msg.varbinds,
        request_id=msg.request_id,
        error_status=msg.error_status,
        error_index=msg.error_index,
        v1_trap=msg.v1_trap,
    )
    again = ber.decode_message(encoded)
    assert isinstance(again, ber.Message), f"re-encoded message does not decode: {again}"
    assert dataclasses.replace(again, varbinds_at=msg.varbinds_at) == msg, (msg, again)
    if msg.pdu_type == ber.PduType.INFORM:
        response = ber.decode_message(berenc.encode_inform_response(data, msg))
        assert isinstance(response, ber.Message), f"inform Response does not decode: {response}"
        assert response.pdu_type == ber.PduType.RESPONSE
        assert response.request_id == msg.request_id
        assert response.varbinds == msg.varbinds
        assert (response.error_status, response.error_index) == (0, 0)


test_one_input = SlowWatch("fuzz_ber", check)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
