"""The native adapter against a scripted agent: paging, retries, and hostile answers.

The agent runs in this process (:class:`tests.test_gufo_exchange.Agent`, answers
built with netalert's BER encoder) and each test picks what goes wrong: answers
from another address, with another request-id, another community, cut short,
``tooBig``. A datagram that is not the answer must cost nothing but itself: the
request still gets its own answer, and the drop is counted by why.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from netalert.poll.client import SnmpProtocolError, SnmpTimeoutError, Target
from netalert.poll.client_native import NativeClient
from netalert.snmp.types import SnmpType, VarBind
from netalert.snmp.wire.ber import Message, PduType, decode_message
from netalert.snmp.wire.berenc import encode_message
from tests.test_gufo_exchange import ROOT, Agent, Entry, arcs, if_table

pytestmark = pytest.mark.unit

Serve = Callable[..., "asyncio.Future[tuple[Agent, Target]]"]


def subtree(table: list[Entry], root: str = ROOT) -> list[Entry]:
    """A walk's answer: the subtree in OID order, with the wire types as sent."""
    return sorted((e for e in table if e[0].startswith(root + ".")), key=lambda e: arcs(e[0]))


def triples(varbinds: list[VarBind]) -> list[Entry]:
    return [(vb.oid, vb.type, vb.value) for vb in varbinds]


def failed(msg: Message, status: int, index: int = 0) -> bytes:
    """The agent's answer to ``msg`` with error-status ``status`` (at ``index``)."""
    return encode_message(
        version=1,
        community=msg.community,
        pdu_type=PduType.RESPONSE,
        varbinds=msg.varbinds,
        request_id=msg.request_id,
        error_status=status,
        error_index=index,
    )


class Hostile(Agent):
    """Answers as :class:`Agent`, after the datagrams ``before`` makes for each request."""

    before: Callable[[Message, bytes], list[bytes]] | None = None
    too_big_above: int = 0  # GETBULK repetitions or GET OIDs above this: tooBig

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = decode_message(data)
        assert isinstance(msg, Message), msg
        assert self.transport is not None
        size = msg.error_index if msg.pdu_type == PduType.GET_BULK else len(msg.varbinds)
        if self.too_big_above and size > self.too_big_above:
            self.requests.append(msg)
            self.transport.sendto(failed(msg, 1), addr)
            return
        if self.before is not None:
            right = self._encode(msg, msg.request_id, [])  # shape only; the faults rewrite it
            for datagram in self.before(msg, right):
                self.transport.sendto(datagram, addr)
        if msg.pdu_type == PduType.GET_BULK and (len(msg.varbinds) > 1 or msg.error_status):
            self.requests.append(msg)
            self.transport.sendto(self._encode(msg, msg.request_id, self.rows(msg)), addr)
            return
        super().datagram_received(data, addr)

    def rows(self, msg: Message) -> list[Entry]:
        """A GETBULK of several OIDs: the non-repeaters' next instances, then row by row
        each repeater's."""
        ordered = sorted(self.table, key=lambda e: arcs(e[0]))
        end = ("1.3.6.1.9.9.9", SnmpType.END_OF_MIB_VIEW, None)
        after = [[e for e in ordered if arcs(e[0]) > arcs(oid)] for oid, _, _ in msg.varbinds]
        heads = [column[0] if column else end for column in after[: msg.error_status]]
        return heads + [
            column[row] if row < len(column) else end
            for row in range(msg.error_index)
            for column in after[msg.error_status :]
        ]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    endpoints: list[asyncio.DatagramTransport] = []

    async def start(table: list[Entry], **kw: object) -> tuple[Agent, Target]:
        loop = asyncio.get_running_loop()
        transport, agent = await loop.create_datagram_endpoint(
            lambda: Hostile(list(table)), local_addr=("127.0.0.1", 0)
        )
        for name, value in kw.items():
            setattr(agent, name, value)
        endpoints.append(transport)
        port = transport.get_extra_info("sockname")[1]
        return agent, Target("127.0.0.1", port, "2c", timeout=0.3, retries=1, max_repetitions=4)

    yield start  # type: ignore[misc]
    for transport in endpoints:
        transport.close()


@pytest.mark.parametrize(("rows", "reps"), [(1, 4), (3, 4), (4, 4), (9, 4), (9, 1), (12, 25)])
async def test_walk_pages_with_wire_types(serve: Serve, rows: int, reps: int) -> None:
    table = [*if_table(rows), (f"{ROOT}.{rows + 1}", SnmpType.COUNTER64, 2**64 - 1)]
    agent, target = await serve(table)
    client = NativeClient()
    try:
        got = await client.walk(replace(target, max_repetitions=reps), ROOT)
    finally:
        await client.close()
    assert triples(got) == subtree(table)
    # one GETBULK per page, until a page holds the first OID past the subtree
    assert len(agent.requests) == (rows + 1) // reps + 1


async def test_a_dropped_request_is_sent_again_and_silence_is_a_timeout(serve: Serve) -> None:
    table = if_table(3)
    agent, target = await serve(table, drop=1)
    client = NativeClient()
    try:
        assert triples(await client.walk(target, ROOT)) == subtree(table)
        agent.drop = 100
        with pytest.raises(SnmpTimeoutError, match=r"no answer within 0\.3s x 2 attempts"):
            await client.get(target, [f"{ROOT}.1"])
    finally:
        await client.close()
    # the first GETBULK twice (dropped, then answered), then the GET twice
    assert [m.pdu_type for m in agent.requests] == [PduType.GET_BULK] * 2 + [PduType.GET] * 2
    assert agent.requests[0].request_id == agent.requests[1].request_id


def _rewritten(msg: Message, request_id: int, community: bytes, varbinds: list[Entry]) -> bytes:
    return encode_message(
        version=1,
        community=community,
        pdu_type=PduType.RESPONSE,
        varbinds=varbinds,
        request_id=request_id,
    )


FAKE = [(f"{ROOT}.1", SnmpType.OCTET_STRING, b"forged")]
FAULTS: dict[str, tuple[Callable[[Message, bytes], list[bytes]], str]] = {
    "wrong-request-id": (
        lambda m, ok: [_rewritten(m, m.request_id ^ 0x5A5A, m.community, FAKE)],
        "stray",
    ),
    "wrong-community": (lambda m, ok: [_rewritten(m, m.request_id, b"other", FAKE)], "malformed"),
    "truncated": (
        lambda m, ok: [_rewritten(m, m.request_id, m.community, FAKE)[:-3]],
        "malformed",
    ),
    "garbage-after-the-id": (
        lambda m, ok: [_rewritten(m, m.request_id, m.community, FAKE)[:-9] + b"\xff" * 9],
        "malformed",
    ),
    "a-request-not-an-answer": (
        lambda m, ok: [
            encode_message(
                version=1,
                community=m.community,
                pdu_type=PduType.GET,
                varbinds=FAKE,
                request_id=m.request_id,
            )
        ],
        "malformed",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_a_hostile_answer_is_dropped_and_counted(serve: Serve, fault: str) -> None:
    make, reason = FAULTS[fault]
    table = if_table(5)
    agent, target = await serve(table, before=make)
    client = NativeClient()
    try:
        assert triples(await client.walk(target, ROOT)) == subtree(table)
        got = await client.get(target, [f"{ROOT}.1"])
    finally:
        await client.close()
    assert triples(got) == [(f"{ROOT}.1", SnmpType.OCTET_STRING, b"eth1")]
    stats = client.exchanges.stats
    dropped = {"stray": stats.stray, "malformed": stats.malformed, "spoofed": stats.spoofed}
    assert dropped[reason] == len(agent.requests)  # one per request, each still answered
    assert sum(dropped.values()) == dropped[reason]


async def test_the_drops_reach_the_metrics(serve: Serve) -> None:
    """A poller with the native client counts its sockets' drops by reason in /metrics."""
    from netalert.metrics import MetricSample
    from netalert.mib import MibTree
    from netalert.poll.poller import Poller
    from netalert.web.sources import poller_source

    client = NativeClient()
    poller = Poller([], MibTree([]), clients={"native": client})
    client.exchanges.stats.stray = 3
    client.exchanges.stats.spoofed = 1
    samples = [s for s in poller_source(poller.stats)() if isinstance(s, MetricSample)]
    dropped = {
        s.labels["reason"]: s.value
        for s in samples
        if s.name == "netalert_poll_datagrams_dropped_total"
    }
    assert dropped == {"malformed": 0, "spoofed": 1, "stray": 3}
    await client.close()


async def test_the_drops_and_faults_are_scraped_by_reason() -> None:
    """/metrics exports both families by reason, 0 included, as docs/metrics.md lists them.

    The registry dropped every sample of these two families (declared without their
    ``reason`` label) and logged ``metrics_problem`` at the agent's first scrape.
    """
    from netalert.metrics import FAMILIES, Metrics
    from netalert.mib import MibTree
    from netalert.poll.client_native import FAULTS as NATIVE_FAULTS
    from netalert.poll.poller import Poller
    from netalert.web.sources import poller_source

    client = NativeClient()
    poller = Poller([], MibTree([]), clients={"native": client})
    client.exchanges.stats.stray = 3
    client.faults["too_big"] = 2
    metrics = Metrics()
    metrics.register_source("poller", poller_source(poller.stats))
    body, _ = metrics.render()
    lines = set(body.decode().splitlines())
    await client.close()
    for reason, n in (("malformed", 0), ("spoofed", 0), ("stray", 3)):
        assert f'netalert_poll_datagrams_dropped_total{{reason="{reason}"}} {n}.0' in lines
    assert 'netalert_poll_answer_faults_total{reason="too_big"} 2.0' in lines
    assert 'netalert_poll_answer_faults_total{reason="error_status"} 0.0' in lines
    preset = FAMILIES["netalert_poll_answer_faults_total"].preset
    assert set(NATIVE_FAULTS) | {"decoder_panic"} == set(preset)


async def test_an_answer_from_another_address_is_dropped(serve: Serve) -> None:
    """The right request-id and community, sent from another port first: spoofed."""
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.1", 0))

    table = if_table(2)
    agent, target = await serve(table)
    original = agent.datagram_received

    def both(data: bytes, addr: tuple[str, int]) -> None:
        msg = decode_message(data)
        assert isinstance(msg, Message)
        spoofer.sendto(_rewritten(msg, msg.request_id, msg.community, FAKE), addr)
        original(data, addr)

    agent.datagram_received = both  # type: ignore[method-assign]
    client = NativeClient()
    try:
        got = await client.get(target, [f"{ROOT}.1"])
    finally:
        await client.close()
        spoofer.close()
    assert triples(got) == [(f"{ROOT}.1", SnmpType.OCTET_STRING, b"eth1")]
    assert client.exchanges.stats.spoofed == 1


async def test_too_big_splits_gets_and_halves_repetitions(serve: Serve) -> None:
    table = if_table(9)
    agent, target = await serve(table, too_big_above=3)
    client = NativeClient()
    oids = [f"{ROOT}.{i}" for i in range(1, 9)]
    try:
        got = await client.get(target, oids)
        walked = await client.walk(replace(target, max_repetitions=8), ROOT)
    finally:
        await client.close()
    assert triples(got) == [
        (f"{ROOT}.{i}", SnmpType.OCTET_STRING, b"eth%d" % i) for i in range(1, 9)
    ]
    assert triples(walked) == subtree(table)
    # tooBig for 8, then 4 and 4, then 2 + 2 + 2 + 2; the walk asks 8, 4, then 2 per page
    gets = [len(m.varbinds) for m in agent.requests if m.pdu_type == PduType.GET]
    bulks = [m.error_index for m in agent.requests if m.pdu_type == PduType.GET_BULK]
    assert gets == [8, 4, 2, 2, 4, 2, 2]
    assert bulks[:3] == [8, 4, 2]


async def test_an_agent_error_names_the_oid(serve: Serve) -> None:
    def gen_err(msg: Message, ok: bytes) -> list[bytes]:
        return [failed(msg, 5, 2)]

    _, target = await serve(if_table(2), before=gen_err)
    client = NativeClient()
    try:
        with pytest.raises(SnmpProtocolError, match=rf"agent returned genErr at {ROOT}\.2"):
            await client.get(target, [f"{ROOT}.1", f"{ROOT}.2"])
    finally:
        await client.close()


COLUMNS = ("1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.31.1.1.1.6")


def columns_table(lengths: tuple[int, ...]) -> list[Entry]:
    table: list[Entry] = []
    for column, length in zip(COLUMNS, lengths, strict=True):
        table += [(f"{column}.{i}", SnmpType.COUNTER64, i * 1000) for i in range(1, length + 1)]
    return [*table, ("1.3.6.1.2.1.2.2.1.3.1", SnmpType.INTEGER, 6)]


@pytest.mark.parametrize(
    ("lengths", "reps", "requests"),
    [
        ((4, 4, 4), 25, 1),  # 9 rows asked: all three end in the first answer
        ((3, 5, 2), 4, 3),  # 2 rows of 3, 2 rows of 3, then 4 of the last column
        ((0, 2, 9), 4, 4),
        ((4, 4, 4), 4, 3),
        ((1, 1, 1), 1, 2),
    ],
)
async def test_walk_many_walks_the_columns_together(
    serve: Serve, lengths: tuple[int, ...], reps: int, requests: int
) -> None:
    table = columns_table(lengths)
    agent, target = await serve(table)
    target = replace(target, max_repetitions=reps)
    client = NativeClient()
    try:
        together = await client.walk_many(target, COLUMNS)
        asked = len(agent.requests)
        apart = [await client.walk(target, column) for column in COLUMNS]
    finally:
        await client.close()
    assert [triples(walk) for walk in together] == [subtree(table, c) for c in COLUMNS]
    assert [triples(walk) for walk in together] == [triples(walk) for walk in apart]
    # max-repetitions shared by the columns still walked (and a GET for an empty one)
    assert asked == requests + lengths.count(0)


async def test_walk_many_refuses_a_column_going_back(serve: Serve) -> None:
    table = columns_table((4, 4, 4))
    agent, target = await serve(table)
    rows = agent.rows  # type: ignore[attr-defined]

    def swapped(msg: Message) -> list[Entry]:
        got = rows(msg)
        got[3], got[0] = got[0], got[3]  # the first column's second row before its first
        return got

    agent.rows = swapped  # type: ignore[attr-defined]
    client = NativeClient()
    try:
        with pytest.raises(SnmpProtocolError, match="OIDs not increasing"):
            await client.walk_many(target, COLUMNS)
    finally:
        await client.close()


SCALARS = ("1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0")


@pytest.mark.parametrize(
    ("gets", "requests"),
    [
        (SCALARS, 1),  # both ride along: one GETBULK
        ((*SCALARS, "1.3.6.1.2.1.1.7.0"), 2),  # sysServices.0 missing: a GET after
        (("1.3.6.1.2.1.1.5.0", f"{COLUMNS[0]}.2"), 2),  # not a scalar: a GET after
    ],
)
async def test_get_and_walk_reads_a_poll_in_one_round_trip(
    serve: Serve, gets: tuple[str, ...], requests: int
) -> None:
    table = [
        *columns_table((4, 4, 4)),
        ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4200),
        ("1.3.6.1.2.1.1.5.0", SnmpType.OCTET_STRING, b"sw1"),
        ("1.3.6.1.2.1.1.8.0", SnmpType.TIMETICKS, 0),  # the successor of sysServices
    ]
    agent, target = await serve(table)
    target = replace(target, max_repetitions=25)
    client = NativeClient()
    try:
        got, walks = await client.get_and_walk(target, gets, COLUMNS)
        asked = list(agent.requests)
        alone = await client.get(target, gets)
    finally:
        await client.close()
    assert triples(got) == triples(alone)
    assert [triples(walk) for walk in walks] == [subtree(table, c) for c in COLUMNS]
    assert len(asked) == requests
    assert asked[0].pdu_type == PduType.GET_BULK and asked[0].error_status == len(
        [g for g in gets if g.endswith(".0")]
    )


def test_columns_end_each_walk_at_its_subtree_and_refuse_going_back() -> None:
    """The walk bookkeeping alone (netalert.poll.columns): rows taken column by column."""
    from netalert.poll.columns import ColumnError, Columns

    i = SnmpType.INTEGER
    columns = Columns(["1.3.6.1.1", "1.3.6.1.2", "1.3.6.1.3"], max_varbinds=3)
    assert columns.asked() == ["1.3.6.1.1", "1.3.6.1.2", "1.3.6.1.3"]
    # row 1: all three inside; row 2: the second column's walk has ended
    columns.take(
        [
            ("1.3.6.1.1.1", i, 1),
            ("1.3.6.1.2.1", i, 2),
            ("1.3.6.1.3.1", i, 3),
            ("1.3.6.1.1.2", i, 4),
            ("1.3.6.1.3.9", i, 5),
            ("1.3.6.1.3.2", i, 6),
        ]
    )
    assert columns.active == [0, 2]
    assert columns.asked() == ["1.3.6.1.1.2", "1.3.6.1.3.2"]
    # the first column reaches max_varbinds; the third ends at endOfMibView
    columns.take([("1.3.6.1.1.3", i, 7), ("1.3.6.1.9", SnmpType.END_OF_MIB_VIEW, None)])
    assert columns.active == []
    assert [[vb.value for vb in out] for out in columns.outs] == [[1, 4, 7], [2], [3, 6]]
    going_back = Columns(["1.3.6.1.1"], max_varbinds=10)
    with pytest.raises(ColumnError, match="OIDs not increasing"):
        going_back.take([("1.3.6.1.1.5", i, 1), ("1.3.6.1.1.4", i, 2)])
    stuck = Columns(["1.3.6.1.1", "1.3.6.1.2"], max_varbinds=10)
    with pytest.raises(ColumnError, match="advanced no column"):
        stuck.take([])
