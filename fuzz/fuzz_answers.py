"""atheris harness: the native poll backend's answer path (``netalert.poll.client_native``).

Every datagram that reaches the native client's socket goes through
:func:`request.message_key`, then the waiting request's decoder: the v1/v2c
decoder cut short at a walk's subtree, or the v3 USM checks of
:class:`usmclient.UsmPeer`. Properties checked on every input, beyond "does
not crash":

* :func:`message_key` never raises, and names the request-id of every message
  the decoder takes (the msgID of every v3 header it takes);
* a decode cut at a subtree never reports an internal error; when the whole
  message decodes too, the cut one's variable bindings are the first of the
  whole one's, every one but the last inside the subtree, and when some were
  left unread, the last outside it;
* :meth:`UsmPeer.open` never raises, for a peer that signs and one that does not,
  and what it returns is an answer to the request it was asked about.

Run by ``make fuzz`` (see fuzz/run.py); alone:
``.venv/bin/python fuzz/fuzz_answers.py -max_total_time=60 build/fuzz/corpus/answers``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

from fuzz.instrument import instrumented

with instrumented(__name__):
    from fuzz.slow import SlowWatch
    from fuzz.v3build import SENDER_ENGINE, user
    from netalert.snmp.wire import ber, berenc, berv3
    from netalert.snmp.wire.request import message_key
    from netalert.snmp.wire.usmclient import Discovered, Refusal, UsmPeer, UsmUser

# The walk roots the cut decode is tried with: a column, a short prefix, a long one.
ROOTS = ("1.3.6.1.2.1.2.2.1.2", "1.3", "1.3.6.1.4.1.8072.3.2.10.99.1")
KEY = 0x0123_4567  # the request-id and msgID the peers are asked about (the seeds')


def _peer(name: str) -> UsmPeer:
    """A peer of the fuzz user ``name`` (fuzz/v3build.py), keyed for the seeds' engine."""
    fuzz_user = user(name)
    peer = UsmPeer(
        UsmUser(
            name, fuzz_user.auth, fuzz_user.auth_password, fuzz_user.priv, fuzz_user.priv_password
        )
    )
    peer.learn(Discovered(SENDER_ENGINE, 1, 100))
    return peer


PEERS = (_peer("privaes"), _peer("plain"))


def _inside(oid: str, root: str) -> bool:
    return oid == root or oid.startswith(root + ".")


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    key = message_key(data)
    whole = ber.decode_message(data)
    if isinstance(whole, ber.Message) and whole.pdu_type != ber.PduType.TRAP_V1:
        assert key == whole.request_id, (key, whole.request_id)
    header = berv3.decode_v3_header(data)
    if isinstance(header, berv3.V3Header):
        assert key == header.msg_id, (key, header.msg_id)
    for root in ROOTS:
        cut = ber.decode_message(data, subtrees=(berenc.encode_oid(root),))
        if isinstance(cut, ber.DecodeError):
            assert not cut.reason.startswith("internal:"), f"decoder bug: {cut}"
            continue
        if not isinstance(whole, ber.Message):
            continue  # the cut decode did not read what made the whole one fail
        got = cut.varbinds
        assert got == whole.varbinds[: len(got)], (root, got, whole.varbinds)
        assert all(_inside(oid, root) for oid, _, _ in got[:-1]), (root, got)
        if len(got) < len(whole.varbinds):
            assert got and not _inside(got[-1][0], root), (root, got)
    if key is None:
        return
    for peer in PEERS:
        answer = peer.open(key, key, (berenc.encode_oid(ROOTS[0]),), 0, data)
        assert answer is None or isinstance(answer, Refusal | berv3.ScopedPdu), answer
        if isinstance(answer, berv3.ScopedPdu):
            assert answer.pdu_type == ber.PduType.RESPONSE and answer.request_id == key


test_one_input = SlowWatch("fuzz_answers", check)


if __name__ == "__main__":
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
