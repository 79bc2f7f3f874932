"""The v3, access and cluster codec fuzz harnesses (fuzz/): oracles, seeds, mutators, timing.

The harnesses run for minutes under ``make fuzz``; these tests keep them honest
in seconds, without atheris: the seeds pass and are accepted (so the
properties are not vacuous), each oracle catches the receiver accepting what
it must not (a receiver configured wider than the oracle), and the structured
mutator produces messages that decode and still authenticate.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import fuzz_access, fuzz_codec, fuzz_pysnmp
from fuzz.mutators import mutate_community, mutate_v3
from fuzz.oracles import V3Judge, community_of, inside, source_ip
from fuzz.seeds import access_seeds, built_seeds, codec_seeds, v3_seeds
from fuzz.slow import SlowWatch
from fuzz.v3build import (
    OWN_ENGINE,
    SENDER_ENGINE,
    USERS,
    FuzzUser,
    V3Fields,
    assemble,
    build_v3,
    scoped_pdu,
    user,
)
from netalert.mib import MibTree
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import Message, decode_message
from netalert.snmp.wire.berenc import encode_message
from netalert.snmp.wire.berv3 import FLAG_REPORTABLE, V3Header, decode_v3_header

EMPTY = MibTree([])  # names are fuzz_receiver's business; the built-in MIBs take 10 s to load
V4_OUT = (fuzz_access.KIND_V4, bytes([203, 0, 113, 9]))
V4_IN = (fuzz_access.KIND_V4, bytes([192, 0, 2, 7]))


def _keep(data: bytes, max_size: int) -> bytes:
    return data  # a byte mutator that changes nothing: only the structured changes remain


def _v2c(community: bytes) -> bytes:
    varbinds = [
        ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 42),
        ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
    ]
    return encode_message(
        version=1, community=community, pdu_type=0xA7, request_id=5, varbinds=varbinds
    )


def _inform(sender: FuzzUser) -> bytes:
    scoped = scoped_pdu(pdu=0xA6, context_engine=OWN_ENGINE)
    flags = sender.flags | FLAG_REPORTABLE
    return build_v3(sender, scoped, flags=flags, engine=OWN_ENGINE, boots=2, time=0)


@pytest.fixture(scope="module")
def pysnmp_target() -> fuzz_pysnmp.Target:
    return fuzz_pysnmp.Target()


@pytest.fixture
def access_target() -> Iterator[fuzz_access.Target]:
    target = fuzz_access.Target(tree=EMPTY)
    yield target
    target.close()


# --- oracles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        (bytes([192, 0, 2, 1]), "192.0.2.1"),
        (bytes.fromhex("00000000000000000000ffffc0000201"), "192.0.2.1"),  # mapped
        (bytes.fromhex("000000000000000000000000c0000201"), "::c000:201"),  # compatible
        (bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1"),
    ],
)
def test_source_ip_maps_only_ipv4_mapped_addresses(raw: bytes, address: str) -> None:
    assert source_ip(raw) == ipaddress.ip_address(address)


def test_inside_compares_only_networks_of_the_same_version() -> None:
    nets = [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("::/0")]
    assert inside(ipaddress.ip_address("192.0.2.255"), nets)
    assert not inside(ipaddress.ip_address("192.0.3.0"), nets)
    assert inside(ipaddress.ip_address("::ffff:203.0.113.1"), nets)  # as IPv6: ::/0
    assert not inside(ipaddress.ip_address("203.0.113.1"), nets[:1])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_v2c(b"public"), (1, b"public")),
        (_v2c(b"x" * 300), (1, b"x" * 300)),  # long-form lengths
        (_v2c(b"public")[:5], None),
        (b"\x30\x03\x02\x01\x01", None),
        (build_v3(user("plain"), scoped_pdu()), None),  # v3: no community
    ],
)
def test_community_of_reads_version_and_community(
    data: bytes, expected: tuple[int, bytes] | None
) -> None:
    assert community_of(data) == expected


# --- fuzz_pysnmp ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [item.name for item in USERS])
def test_pysnmp_harness_accepts_each_users_trap_and_inform(
    pysnmp_target: fuzz_pysnmp.Target, name: str
) -> None:
    sender = user(name)
    assert pysnmp_target.run(build_v3(sender, scoped_pdu())) == "accepted"
    assert pysnmp_target.run(_inform(sender)) == "accepted"
    (reply, _), *_ = pysnmp_target.replies  # the Response to the inform
    assert len(reply) <= len(_inform(sender)) + fuzz_pysnmp.REPLY_SLACK


def test_pysnmp_harness_passes_every_seed(pysnmp_target: fuzz_pysnmp.Target) -> None:
    outcomes = Counter(pysnmp_target.run(seed) for seed in [*built_seeds(), *v3_seeds()])
    # every user's trap and inform; the privacy user's authNoPriv trap is refused
    assert outcomes["accepted"] == 2 * len(USERS), outcomes
    assert pysnmp_target.counts == {}
    assert outcomes["header"] >= 10  # the v1/v2c seeds stop at the v3 header


@pytest.mark.parametrize(
    ("judged", "sent", "violation"),
    [
        (FuzzUser("someone"), user("plain"), "unconfigured_user"),
        (FuzzUser("plain", "SHA"), user("plain"), "no_auth"),
        (FuzzUser("authsha", "MD5"), user("authsha"), "bad_digest"),
    ],
)
def test_pysnmp_harness_catches_what_the_oracle_does_not_allow(
    judged: FuzzUser, sent: FuzzUser, violation: str
) -> None:
    """The engine is configured as usual; the oracle is told a stricter configuration."""
    target = fuzz_pysnmp.Target(judge=V3Judge([judged], [SENDER_ENGINE], OWN_ENGINE))
    with pytest.raises(AssertionError, match=violation):
        target.run(build_v3(sent, scoped_pdu()))


def test_pysnmp_harness_catches_a_trap_from_an_engine_the_oracle_does_not_know() -> None:
    target = fuzz_pysnmp.Target(judge=V3Judge(USERS, [], OWN_ENGINE))
    with pytest.raises(AssertionError, match="unknown_engine"):
        target.run(build_v3(user("authsha"), scoped_pdu()))


def test_oracle_flags_an_accepted_empty_user_name() -> None:
    data = build_v3(user("plain"), scoped_pdu(), name=b"")
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    judge = V3Judge(USERS, [SENDER_ENGINE], OWN_ENGINE)
    found = judge.violations(
        data,
        name=header.user,
        engine_id=header.engine_id,
        flags=header.flags,
        auth_at=header.auth_at,
        auth_params=header.auth_params,
        accepted_user="b''",
        inform=False,
    )
    assert found == ["empty_user"]


# --- fuzz_access ---------------------------------------------------------------------


def test_access_harness_passes_every_seed(access_target: fuzz_access.Target) -> None:
    datagrams = [*built_seeds(), *v3_seeds()]
    outcomes: Counter[tuple[str, str]] = Counter()
    for seed in access_seeds(datagrams):
        parts = fuzz_access.unframe(seed)
        assert parts is not None
        allowed = inside(parts[0], access_target.allow)
        outcome = access_target.run(seed)
        versions = {event.version for event in access_target.events}
        outcomes[("allowed" if allowed else "refused", outcome)] += 1
        for version in versions:
            outcomes[("version", version)] += 1
    assert outcomes[("refused", "accepted")] == 0
    assert outcomes[("allowed", "accepted")] >= 10
    assert {v for k, v in outcomes if k == "version"} == {"1", "2c", "3"}, outcomes


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        V4_OUT,
        (fuzz_access.KIND_MAPPED, bytes([198, 51, 100, 1])),
        (fuzz_access.KIND_V6, bytes.fromhex("20010db9000000000000000000000001")),
        (fuzz_access.KIND_V6, bytes.fromhex("000000000000000000000000c0000207")),
    ],
)
def test_access_harness_catches_an_event_from_outside_allow(kind: int, raw: bytes) -> None:
    """The receiver allows everything; the oracle holds it to the usual allow list."""
    target = fuzz_access.Target(configured_allow=("0.0.0.0/0", "::/0"), tree=EMPTY)
    try:
        with pytest.raises(AssertionError, match="source_not_allowed"):
            target.run(fuzz_access.frame(kind, raw, 162, _v2c(b"public")))
        with pytest.raises(AssertionError, match="source_not_allowed"):
            target.run(fuzz_access.frame(kind, raw, 162, build_v3(user("privaes"), scoped_pdu())))
    finally:
        target.close()


def test_access_harness_catches_an_unconfigured_community() -> None:
    target = fuzz_access.Target(
        configured_communities=(b"public", b"s3cret", b"private"), tree=EMPTY
    )
    try:
        assert target.run(fuzz_access.frame(*V4_IN, 162, _v2c(b"s3cret"))) == "accepted"
        with pytest.raises(AssertionError, match="community_not_configured"):
            target.run(fuzz_access.frame(*V4_IN, 162, _v2c(b"private")))
    finally:
        target.close()


def test_access_harness_catches_a_reply_to_a_refused_source() -> None:
    inform = encode_message(
        version=1,
        community=b"public",
        pdu_type=0xA6,
        request_id=9,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 1),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
        ],
    )
    target = fuzz_access.Target(configured_allow=("0.0.0.0/0",), tree=EMPTY)
    try:
        with pytest.raises(AssertionError, match="reply_not_allowed"):
            target.run(fuzz_access.frame(*V4_OUT, 162, inform))
    finally:
        target.close()


def test_access_harness_catches_a_log_line_with_a_line_break(
    access_target: fuzz_access.Target,
) -> None:
    access_target.run(fuzz_access.frame(*V4_IN, 162, _v2c(b"public")))
    assert access_target._judge_lines() == []
    # The agent's formatter escapes even a stray printf-style call ...
    logging.getLogger("netalert.traps").warning("event=x detail=%s", "a\nlevel=error forged")
    assert access_target._judge_lines() == []
    # ... and a line that still carried a break would be caught.
    access_target.lines.lines.append("level=warning event=x detail=a\nlevel=error forged")
    assert access_target._judge_lines() == ["log_control"]


def test_access_frame_round_trips_each_address_kind() -> None:
    for kind, raw in fuzz_access.ADDRESSES:
        parts = fuzz_access.unframe(fuzz_access.frame(kind, raw, 50162, b"\x30\x00"))
        assert parts is not None
        address, addr, datagram = parts
        assert (addr[1], datagram) == (50162, b"\x30\x00")
        plain = ipaddress.ip_address(addr[0].partition("%")[0])
        assert address == (getattr(plain, "ipv4_mapped", None) or plain)
    assert fuzz_access.unframe(b"\x00\x01\x02") is None


# --- mutators ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [item.name for item in USERS])
def test_v3_fields_reassemble_to_the_same_message(name: str) -> None:
    data = build_v3(user(name), scoped_pdu())
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    assert assemble(V3Fields.of(data, header)) == data


def test_v3_mutator_keeps_messages_decodable_and_authentic(
    pysnmp_target: fuzz_pysnmp.Target,
) -> None:
    seeds = [build_v3(item, scoped_pdu()) for item in USERS]
    outcomes: Counter[str] = Counter()
    names: Counter[bytes] = Counter()
    for seed in range(400):
        out = mutate_v3(seeds[seed % len(seeds)], 4096, seed, _keep)
        assert out is not None
        header = decode_v3_header(out)
        if isinstance(header, V3Header):
            names[header.user] += 1
        try:
            outcomes[pysnmp_target.run(out)] += 1
        except AssertionError:  # e.g. an empty user name accepted: the fuzzer's business
            outcomes["finding"] += 1
    assert outcomes["accepted"] >= 40, outcomes  # changed, signed again, accepted
    assert outcomes["bad_digest"] >= 5, outcomes  # some left with a wrong digest
    assert sum(names.values()) >= 300, names  # most changes keep the header decodable
    assert names[b""] >= 3 and names[b"plain"] >= 10 and names[b"privdes"] >= 10, names


def test_v3_mutator_leaves_other_messages_to_libfuzzer() -> None:
    assert mutate_v3(_v2c(b"public"), 4096, 1, _keep) is None
    assert mutate_v3(b"\x30\x80", 4096, 1, _keep) is None


def test_community_mutator_reencodes_with_another_community() -> None:
    communities = set()
    for seed in range(60):
        out = mutate_community(_v2c(b"public"), 4096, seed, _keep, (b"s3cret",))
        assert out is not None
        msg = decode_message(out)
        assert isinstance(msg, Message)
        communities.add(msg.community)
    assert {b"s3cret", b"", b"private", b"public"} <= communities


# --- timing --------------------------------------------------------------------------


def test_slow_watch_saves_only_inputs_over_the_threshold(tmp_path: Path) -> None:
    def check(data: bytes) -> None:
        if data == b"slow":
            time.sleep(0.03)

    watch = SlowWatch("t", check, threshold_ms=10, directory=tmp_path)
    watch(b"fast")
    assert list(tmp_path.glob("slow-*")) == []
    watch(b"slow")
    (saved,) = tmp_path.glob("slow-*")
    assert saved.read_bytes() == b"slow"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["over"] == 1 and summary["slowest_ms"] >= 30
    assert summary["slowest_hex_head"] == b"slow".hex()


# --- fuzz_codec --------------------------------------------------------------------


def test_codec_harness_passes_every_seed_and_each_cut_of_one() -> None:
    seeds = list(codec_seeds())
    assert len(seeds) > 30
    for seed in seeds:
        fuzz_codec.check(seed)  # decodes, and the properties hold
    longest = max(seeds, key=len)
    for end in range(0, len(longest), 7):  # truncated messages: refused, never a crash
        fuzz_codec.check(longest[:end])


def test_codec_harness_catches_a_decoder_that_lets_a_lone_surrogate_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oracle is not vacuous: a decoder without the UTF-8 check is a finding."""
    import json as _json

    from netalert.cluster import codec

    data = next(iter(codec_seeds())).replace(b'"192.0.2.1"', b'"\\ud800"')
    with pytest.raises(codec.CodecError):
        codec.decode(data)
    monkeypatch.setattr(codec, "_text", lambda value, what: codec._want(value, str, what))
    assert _json.loads(data)[1] == "\ud800"
    with pytest.raises(UnicodeEncodeError):
        fuzz_codec.check(data)


def test_the_answers_harness_holds_and_is_not_vacuous() -> None:
    """fuzz_answers (the native poll backend's answer path): its properties hold on every
    seed, the cut decode stops where it must, and the v3 peers take the seeds built for
    them (an authentic Response each, a Report named)."""
    from fuzz import fuzz_answers
    from fuzz.seeds import answer_seeds
    from netalert.snmp.wire.berenc import encode_oid
    from netalert.snmp.wire.berv3 import ScopedPdu
    from netalert.snmp.wire.usmclient import Refusal

    answers = list(answer_seeds())
    for data in [*built_seeds(), *answers, *v3_seeds()]:
        fuzz_answers.check(data)
    page, signed, plain, report = answers
    whole = decode_message(page)
    cut = decode_message(page, subtrees=(encode_oid(fuzz_answers.ROOTS[0]),))
    assert isinstance(whole, Message) and isinstance(cut, Message)
    assert len(whole.varbinds) > 3 and len(cut.varbinds) == 3  # two inside, the first outside
    key = fuzz_answers.KEY
    privaes, plain_peer = fuzz_answers.PEERS
    assert isinstance(privaes.open(key, key, (), 0, signed), ScopedPdu)
    assert privaes.open(key, key, (), 0, plain) is None  # unsigned, for a user who signs
    assert isinstance(plain_peer.open(key, key, (), 0, plain), ScopedPdu)
    assert privaes.open(key + 1, key, (), 0, signed) is None  # another request's msgID
    assert privaes.open(key, key, (), 0, report) == Refusal("report 1.3.6.1.2.1.2.2.1.2.1", True)
