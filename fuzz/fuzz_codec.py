"""atheris harness: the decoder of trap messages on the cluster's stream
(:mod:`netalert.cluster.codec`), what a node reads from NATS.

Properties checked on every input, beyond "does not crash":

* :func:`decode` raises nothing but :class:`CodecError`, whose ``reason`` is one
  ``netalert_cluster_traps_rejected_total`` counts;
* a decoded trap holds only what can be stored and mailed: its text encodes as
  UTF-8, its numbers are finite and in their SNMP range;
* a decoded trap re-encodes to a message that decodes to the same trap (the same bytes
  once more).

Run by ``make fuzz`` (see fuzz/run.py); alone:
``.venv/bin/python fuzz/fuzz_codec.py -max_total_time=60 build/fuzz/corpus/codec``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

from fuzz.instrument import instrumented

with instrumented(__name__):
    from fuzz.slow import SlowWatch
    from netalert.cluster.codec import decode, encode
    from netalert.cluster.errors import CodecError

REASONS = {"too_large", "not_json", "wrong_version", "malformed"}


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    try:
        trap = decode(data)
    except CodecError as exc:
        assert exc.reason in REASONS, exc.reason
        return
    texts = [trap.source, trap.trap_oid, trap.trap_name, trap.device, trap.community, trap.user]
    for vb in trap.varbinds:
        texts += [vb.oid, vb.name, vb.index, vb.label]
        if isinstance(vb.value, str):
            texts.append(vb.value)
        if isinstance(vb.value, int):
            assert -(2**63) <= vb.value < 2**64, vb.value
    for text in texts:
        text.encode("utf-8")  # raises on a lone surrogate
    assert 0 <= trap.source_port <= 65535
    assert math.isfinite(trap.received)
    again = encode(trap)
    assert encode(decode(again)) == again  # bytes: a NaN value is not equal to itself


test_one_input = SlowWatch("fuzz_codec", check)


if __name__ == "__main__":
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
