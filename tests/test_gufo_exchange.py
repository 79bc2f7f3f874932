"""The gufo adapter's requests and walk decode, against a scripted agent.

The agent runs in this process (an asyncio UDP endpoint on 127.0.0.1, answers
built with netalert's BER encoder), so each test chooses what goes wrong: dropped
requests, a stale answer before the right one, OIDs that do not increase, a late
answer between two requests. Tables of values and a property test check that a
walk returns exactly the subtree, in order, with gufo's wire types, whatever the
page size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netalert.poll.client import SnmpProtocolError, SnmpTimeoutError, Target
from netalert.poll.client_gufo import GufoClient
from netalert.snmp.types import SnmpType, Value, VarBind
from netalert.snmp.wire.ber import Message, PduType, decode_message
from netalert.snmp.wire.berenc import encode_message

pytestmark = pytest.mark.unit

ROOT = "1.3.6.1.2.1.2.2.1.2"
Entry = tuple[str, SnmpType, Value]


def arcs(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


@dataclass
class Agent(asyncio.DatagramProtocol):
    """A v2c agent answering GET and GETBULK from ``table``; faults on demand."""

    table: list[Entry]
    drop: int = 0  # requests to leave unanswered
    stale_first: bool = False  # precede each answer by one with another request ID
    rewrite: Callable[[list[Entry]], list[Entry]] | None = None  # bends GETBULK answers
    requests: list[Message] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = decode_message(data)
        assert isinstance(msg, Message), msg
        self.requests.append(msg)
        if self.drop:
            self.drop -= 1
            return
        ordered = sorted(self.table, key=lambda e: arcs(e[0]))
        answer: list[Entry] = []
        if msg.pdu_type == PduType.GET:
            found = {oid: (oid, kind, value) for oid, kind, value in ordered}
            for oid, _, _ in msg.varbinds:
                answer.append(found.get(oid, (oid, SnmpType.NO_SUCH_INSTANCE, None)))
        elif msg.pdu_type == PduType.GET_BULK:
            start = arcs(msg.varbinds[0][0])
            after = [e for e in ordered if arcs(e[0]) > start][: msg.error_index]
            answer = after + [("1.3.6.1.9.9.9", SnmpType.END_OF_MIB_VIEW, None)] * (
                msg.error_index - len(after)
            )
            if self.rewrite is not None:
                answer = self.rewrite(answer)
        else:
            raise AssertionError(f"unexpected PDU {msg.pdu_type:#x}")
        assert self.transport is not None
        if self.stale_first:
            self.transport.sendto(self._encode(msg, msg.request_id ^ 0x5A5A, answer), addr)
        self.transport.sendto(self._encode(msg, msg.request_id, answer), addr)

    @staticmethod
    def _encode(msg: Message, request_id: int, varbinds: list[Entry]) -> bytes:
        return encode_message(
            version=1,
            community=msg.community,
            pdu_type=PduType.RESPONSE,
            varbinds=varbinds,
            request_id=request_id,
        )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Entry]], asyncio.Future[tuple[Agent, Target]]]]:
    endpoints: list[asyncio.DatagramTransport] = []

    async def start(table: list[Entry], **kw: object) -> tuple[Agent, Target]:
        loop = asyncio.get_running_loop()
        transport, agent = await loop.create_datagram_endpoint(
            lambda: Agent(list(table), **kw),  # type: ignore[arg-type]
            local_addr=("127.0.0.1", 0),
        )
        endpoints.append(transport)
        port = transport.get_extra_info("sockname")[1]
        return agent, Target("127.0.0.1", port, "2c", timeout=0.3, retries=1, max_repetitions=4)

    yield start  # type: ignore[misc]
    for transport in endpoints:
        transport.close()


def if_table(rows: int) -> list[Entry]:
    """ifDescr rows, then the next column (outside the walked subtree)."""
    table: list[Entry] = [
        (f"{ROOT}.{i}", SnmpType.OCTET_STRING, b"eth%d" % i) for i in range(1, rows + 1)
    ]
    table.append(("1.3.6.1.2.1.2.2.1.3.1", SnmpType.INTEGER, 6))
    return table


def expected(table: list[Entry], root: str = ROOT) -> list[tuple[str, SnmpType, Value]]:
    """What the adapter returns for a walk of ``root``: the subtree in OID order,
    typed as gufo hands values over (integers INTEGER, strings OCTET STRING)."""
    wire = {
        SnmpType.INTEGER: SnmpType.INTEGER,
        SnmpType.COUNTER32: SnmpType.INTEGER,
        SnmpType.COUNTER64: SnmpType.INTEGER,
        SnmpType.GAUGE32: SnmpType.INTEGER,
        SnmpType.TIMETICKS: SnmpType.INTEGER,
        SnmpType.OCTET_STRING: SnmpType.OCTET_STRING,
        SnmpType.IP_ADDRESS: SnmpType.IP_ADDRESS,
        SnmpType.OID: SnmpType.OID,
    }
    inside = [e for e in table if e[0].startswith(root + ".")]
    return [
        (oid, wire[kind], value) for oid, kind, value in sorted(inside, key=lambda e: arcs(e[0]))
    ]


def triples(varbinds: list[VarBind]) -> list[tuple[str, SnmpType, Value]]:
    return [(vb.oid, vb.type, vb.value) for vb in varbinds]


@pytest.mark.parametrize(
    ("rows", "reps", "requests"),
    [(1, 4, 1), (3, 4, 1), (4, 4, 2), (5, 4, 2), (9, 4, 3), (9, 1, 10), (12, 25, 1)],
)
async def test_walk_pages_through_the_table(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
    rows: int,
    reps: int,
    requests: int,
) -> None:
    table = if_table(rows)
    agent, target = await serve(table)
    client = GufoClient()
    try:
        got = await client.walk(Target(**{**_fields(target), "max_repetitions": reps}), ROOT)
    finally:
        await client.close()
    assert triples(got) == expected(table)
    assert len(agent.requests) == requests  # one GETBULK per page, none after the end
    assert {m.error_index for m in agent.requests} == {reps}


def _fields(target: Target) -> dict[str, object]:
    return {f: getattr(target, f) for f in Target.__dataclass_fields__}


async def test_walk_types_and_values(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    table: list[Entry] = [
        (f"{ROOT}.1", SnmpType.INTEGER, -7),
        (f"{ROOT}.2", SnmpType.COUNTER64, 2**64 - 1),
        (f"{ROOT}.3", SnmpType.COUNTER32, 2**32 - 1),
        (f"{ROOT}.4", SnmpType.TIMETICKS, 12345),
        (f"{ROOT}.5", SnmpType.OCTET_STRING, b"\x00\xffbin"),
        (f"{ROOT}.6", SnmpType.OCTET_STRING, b""),
        (f"{ROOT}.7", SnmpType.IP_ADDRESS, "10.0.0.254"),
        (f"{ROOT}.8", SnmpType.OID, "1.3.6.1.4.1.8072.3.2.10"),
        (f"{ROOT}.9.1.2", SnmpType.GAUGE32, 0),
        (f"{ROOT}.10", SnmpType.INTEGER, 0),
        ("1.3.6.1.2.1.2.2.1.20.1", SnmpType.INTEGER, 1),
    ]
    _, target = await serve(table)
    client = GufoClient()
    try:
        assert triples(await client.walk(target, ROOT)) == expected(table)
        got = await client.get(target, [f"{ROOT}.2", f"{ROOT}.99", f"{ROOT}.7"])
    finally:
        await client.close()
    assert triples(got) == [
        (f"{ROOT}.2", SnmpType.INTEGER, 2**64 - 1),
        (f"{ROOT}.99", SnmpType.NO_SUCH_INSTANCE, None),
        (f"{ROOT}.7", SnmpType.IP_ADDRESS, "10.0.0.254"),
    ]


async def test_a_dropped_request_is_sent_again(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    table = if_table(6)
    agent, target = await serve(table, drop=1)
    client = GufoClient()
    try:
        assert triples(await client.walk(target, ROOT)) == expected(table)
    finally:
        await client.close()
    assert [m.varbinds[0][0] for m in agent.requests] == [ROOT, ROOT, f"{ROOT}.4"]


async def test_mid_walk_drop_repeats_the_same_page(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    table = if_table(6)
    agent, target = await serve(table)
    original = agent.datagram_received
    seen = [0]

    def drop_second(data: bytes, addr: tuple[str, int]) -> None:
        seen[0] += 1
        if seen[0] == 2:
            agent.requests.append(decode_message(data))  # type: ignore[arg-type]
            return
        original(data, addr)

    agent.datagram_received = drop_second  # type: ignore[method-assign]
    client = GufoClient()
    try:
        assert triples(await client.walk(target, ROOT)) == expected(table)
    finally:
        await client.close()
    assert [m.varbinds[0][0] for m in agent.requests] == [ROOT, f"{ROOT}.4", f"{ROOT}.4"]


async def test_no_answer_is_a_timeout_after_the_retries(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    agent, target = await serve(if_table(3), drop=100)
    client = GufoClient()
    try:
        with pytest.raises(SnmpTimeoutError):
            await client.walk(target, ROOT)
        assert len(agent.requests) == target.retries + 1
        with pytest.raises(SnmpTimeoutError):
            await client.get(target, [f"{ROOT}.1"])
        # the agent answers again: the same session works
        agent.drop = 0
        assert triples(await client.walk(target, ROOT)) == expected(if_table(3))
    finally:
        await client.close()


async def test_a_stale_answer_is_dropped(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    table = if_table(9)
    agent, target = await serve(table, stale_first=True)
    client = GufoClient()
    try:
        assert triples(await client.walk(target, ROOT)) == expected(table)
        got = await client.get(target, [f"{ROOT}.3"])
    finally:
        await client.close()
    assert triples(got) == [(f"{ROOT}.3", SnmpType.OCTET_STRING, b"eth3")]
    assert len(agent.requests) == 4  # 3 pages and the GET, each answered twice


async def test_a_late_answer_between_requests_is_dropped(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    """The first request times out; its answer arrives while nothing waits, then the
    next requests must still get their own answers, not that one."""
    table = if_table(2)
    agent, target = await serve(table)
    original = agent.datagram_received
    held: list[tuple[bytes, tuple[str, int]]] = []

    def hold_first(data: bytes, addr: tuple[str, int]) -> None:
        if not held and len(agent.requests) == 0:
            held.append((data, addr))
            agent.requests.append(decode_message(data))  # type: ignore[arg-type]
            return
        original(data, addr)

    agent.datagram_received = hold_first  # type: ignore[method-assign]
    client = GufoClient()
    late = Target(**{**_fields(target), "retries": 0})  # type: ignore[arg-type]
    try:
        with pytest.raises(SnmpTimeoutError):
            await client.get(late, [f"{ROOT}.1"])
        original(*held[0])  # the answer to the timed-out GET, now
        await asyncio.sleep(0.05)
        for _ in range(3):
            got = await client.get(late, [f"{ROOT}.2"])
            assert triples(got) == [(f"{ROOT}.2", SnmpType.OCTET_STRING, b"eth2")]
            assert triples(await client.walk(late, ROOT)) == expected(table)
    finally:
        await client.close()


@pytest.mark.parametrize(
    "bend",
    [
        pytest.param(lambda a: [a[1], a[0], *a[2:]], id="swapped"),
        pytest.param(lambda a: [a[0], a[0], *a[2:]], id="repeated"),
    ],
)
async def test_oids_that_do_not_increase_fail_the_walk(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
    bend: Callable[[list[Entry]], list[Entry]],
) -> None:
    agent, target = await serve(if_table(6), rewrite=bend)
    client = GufoClient()
    try:
        with pytest.raises(SnmpProtocolError, match="OIDs not increasing"):
            await client.walk(target, ROOT)
    finally:
        await client.close()
    assert len(agent.requests) == 1


async def test_the_first_oid_past_the_subtree_ends_the_walk(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    """Also when it is lower than the last one (gufo ends its page there): what came
    before it is the walk."""
    table = if_table(3)
    back = [
        (f"{ROOT}.1", SnmpType.INTEGER, 1),
        ("1.3.6.1.2.1.1.1.0", SnmpType.INTEGER, 2),
        (f"{ROOT}.3", SnmpType.INTEGER, 3),
    ]
    agent, target = await serve(table, rewrite=lambda a: back)
    client = GufoClient()
    try:
        assert triples(await client.walk(target, ROOT)) == [(f"{ROOT}.1", SnmpType.INTEGER, 1)]
        agent.rewrite = None
        assert triples(await client.walk(target, ROOT)) == expected(table)
    finally:
        await client.close()
    assert len(agent.requests) == 2


async def test_walk_stops_at_max_varbinds(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    table = if_table(10)
    agent, target = await serve(table)
    client = GufoClient()
    try:
        got = await client.walk(target, ROOT, max_varbinds=6)
    finally:
        await client.close()
    assert triples(got) == expected(table)[:6]
    assert len(agent.requests) == 2


async def test_evicted_and_closed_sessions_leave_no_reader(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
) -> None:
    """Sessions dropped from the cache (and at close) leave nothing on the event loop."""
    loop = asyncio.get_running_loop()
    selector = loop._selector  # type: ignore[attr-defined]
    before = len(selector.get_map())
    table = if_table(2)
    _, target = await serve(table)
    after_agent = len(selector.get_map())
    client = GufoClient(max_sessions=8)
    communities = [f"c{i}" for i in range(12)]  # a target each: a session each
    try:
        for community in communities:
            t = Target(**{**_fields(target), "community": community})  # type: ignore[arg-type]
            assert triples(await client.walk(t, ROOT)) == expected(table)
        assert client.stats.evicted == len(communities) - 8
        assert len(selector.get_map()) <= after_agent + 8
    finally:
        await client.close()
    assert len(selector.get_map()) == after_agent
    assert after_agent == before + 1


_VALUES = st.one_of(
    st.tuples(st.just(SnmpType.INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(SnmpType.COUNTER64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(SnmpType.OCTET_STRING), st.binary(max_size=40)),
    st.tuples(st.just(SnmpType.IP_ADDRESS), st.ip_addresses(v=4).map(str)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    indexes=st.sets(st.tuples(st.integers(0, 300), st.integers(0, 3)), max_size=40),
    values=st.lists(_VALUES, min_size=40, max_size=40),
    reps=st.integers(1, 30),
)
async def test_walk_returns_exactly_the_subtree(
    serve: Callable[..., asyncio.Future[tuple[Agent, Target]]],
    indexes: set[tuple[int, int]],
    values: list[tuple[SnmpType, Value]],
    reps: int,
) -> None:
    table: list[Entry] = [
        (f"{ROOT}.{a}" + (f".{b}" if b else ""), kind, value)
        for (a, b), (kind, value) in zip(sorted(indexes), values, strict=False)
    ]
    table += [
        ("1.3.6.1.2.1.2.2.1.1.5", SnmpType.INTEGER, 5),
        ("1.3.6.1.2.1.2.2.1.3.1", SnmpType.INTEGER, 6),
    ]
    _, target = await serve(table)
    client = GufoClient()
    try:
        got = await client.walk(Target(**{**_fields(target), "max_repetitions": reps}), ROOT)  # type: ignore[arg-type]
    finally:
        await client.close()
    assert triples(got) == expected(table)
