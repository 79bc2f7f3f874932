"""The native client against a hostile or broken agent: a tiny UDP responder on loopback.

:class:`Responder` is an agent of its own (v1, v2c and a v3 USM corner): it reads each
request and answers what the test's ``script`` makes of the right answer, at once or
later. Each case breaks one thing a stranger's datagram or a real device's quirk can
break (another source, another request-id, duplicates, cut or garbage BER, huge
datagrams, too many or too few values, walks that loop, exception values in every
position, error statuses with nonsense indexes, tooBig, v3 Reports, GETBULK refused,
late answers) and checks what must hold whatever the agent sends: the client neither
crashes nor hangs, keeps no request pending afterwards, never hands a value to an OID
it does not belong to, fails truthfully, and says why in a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import pytest

from netalert.poll.client import SnmpAuthError, SnmpProtocolError, SnmpTimeoutError, Target
from netalert.poll.client_native import NativeClient
from netalert.snmp.types import SnmpType, Value, VarBind
from netalert.snmp.wire.ber import Message, PduType, decode_message
from netalert.snmp.wire.berenc import encode_message, encode_tlv
from netalert.snmp.wire.berv3 import decode_scoped_pdu, decode_v3_header
from tests.support.v3build import build_v3, scoped_pdu, varbind

pytestmark = pytest.mark.unit

_T = TypeVar("_T")

Entry = tuple[str, SnmpType, Value]
END: Entry = ("1.3.6.1.9.9.9", SnmpType.END_OF_MIB_VIEW, None)
EXCEPTIONS = [SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW]
DESCR = "1.3.6.1.2.1.2.2.1.2"
OPER = "1.3.6.1.2.1.2.2.1.8"
NAME = "1.3.6.1.2.1.1.5.0"
ENGINE = b"\x80\x00\x1f\x88\x04hostile"


def arcs(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split("."))


def table(rows: int = 5) -> list[Entry]:
    """A device: sysName.0, and ifDescr and ifOperStatus of ``rows`` interfaces."""
    out: list[Entry] = [(NAME, SnmpType.OCTET_STRING, b"sw1")]
    out += [(f"{DESCR}.{i}", SnmpType.OCTET_STRING, b"eth%d" % i) for i in range(1, rows + 1)]
    out += [(f"{OPER}.{i}", SnmpType.INTEGER, 1 + i % 2) for i in range(1, rows + 1)]
    return sorted(out, key=lambda e: arcs(e[0]))


def triples(varbinds: Sequence[VarBind]) -> list[Entry]:
    return [(vb.oid, vb.type, vb.value) for vb in varbinds]


def under(entries: list[Entry], root: str) -> list[Entry]:
    return [e for e in entries if e[0].startswith(root + ".")]


# What a script returns for one request: datagrams, each with the delay before it is sent.
Out = list[tuple[bytes, float]]


@dataclass
class Request:
    """One request as the responder read it, with the answer a correct agent gives."""

    msg: Message
    right: list[Entry]  # the correct answer's variable bindings

    def answer(
        self,
        varbinds: Sequence[Entry] | None = None,
        *,
        request_id: int | None = None,
        status: int = 0,
        index: int = 0,
        community: bytes | None = None,
    ) -> bytes:
        """A Response to this request: by default the right one (in SNMPv1, noSuchName
        for the first OID without a value)."""
        if varbinds is None and self.msg.version == 0 and not status:
            kinds = [kind for _, kind, _ in self.right]
            missing = [i for i, kind in enumerate(kinds) if kind in EXCEPTIONS]
            if missing:
                varbinds, status, index = self.msg.varbinds, 2, missing[0] + 1
        return encode_message(
            version=self.msg.version,
            community=self.msg.community if community is None else community,
            pdu_type=PduType.RESPONSE,
            varbinds=self.right if varbinds is None else varbinds,
            request_id=self.msg.request_id if request_id is None else request_id,
            error_status=status,
            error_index=index,
        )


Script = Callable[[Request], Out]


def honest(request: Request) -> Out:
    return [(request.answer(), 0.0)]


@dataclass
class Responder(asyncio.DatagramProtocol):
    """A v1/v2c agent serving ``entries``: GET, GETNEXT, GETBULK; ``script`` says what
    is sent for each request (its right answer, by default)."""

    entries: list[Entry]
    script: Script = honest
    requests: list[Message] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def right(self, msg: Message) -> list[Entry]:
        found = {e[0]: e for e in self.entries}
        asked = [oid for oid, _, _ in msg.varbinds]
        if msg.pdu_type == PduType.GET:
            return [found.get(o, (o, SnmpType.NO_SUCH_INSTANCE, None)) for o in asked]
        nexts = [self.after(o) for o in asked]
        if msg.pdu_type == PduType.GET_NEXT:
            return [column[0] if column else END for column in nexts]
        assert msg.pdu_type == PduType.GET_BULK, msg.pdu_type
        skip, reps = msg.error_status, msg.error_index
        heads = [column[0] if column else END for column in nexts[:skip]]
        return heads + [
            column[row] if row < len(column) else END
            for row in range(reps)
            for column in nexts[skip:]
        ]

    def after(self, oid: str) -> list[Entry]:
        return [e for e in self.entries if arcs(e[0]) > arcs(oid)]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = decode_message(data)
        assert isinstance(msg, Message), msg
        self.requests.append(msg)
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        for datagram, delay in self.script(Request(msg, self.right(msg))):
            if delay:
                loop.call_later(delay, self.transport.sendto, datagram, addr)
            else:
                self.transport.sendto(datagram, addr)

    @property
    def kinds(self) -> list[int]:
        return [m.pdu_type for m in self.requests]


Serve = Callable[..., "asyncio.Future[tuple[Responder, Target]]"]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(
        script: Script = honest,
        entries: list[Entry] | None = None,
        bind: str = "127.0.0.1",
        **target: object,
    ) -> tuple[Responder, Target]:
        loop = asyncio.get_running_loop()
        transport, responder = await loop.create_datagram_endpoint(
            lambda: Responder(table() if entries is None else entries, script),
            local_addr=(bind, 0),
        )
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        options: dict[str, object] = {
            "version": "2c",
            "timeout": 0.3,
            "retries": 1,
            "max_repetitions": 4,
        }
        options.update(target)
        return responder, Target(bind, port, **options)  # type: ignore[arg-type]

    yield start  # type: ignore[misc]
    for transport in transports:
        transport.close()


@pytest.fixture
async def client() -> AsyncIterator[NativeClient]:
    made = NativeClient()
    yield made
    await made.close()


def settled(client: NativeClient) -> None:
    """Nothing of the client's requests is left waiting."""
    assert client.exchanges.waiting == 0


def dropped(client: NativeClient) -> dict[str, int]:
    stats = client.exchanges.stats
    return {"malformed": stats.malformed, "spoofed": stats.spoofed, "stray": stats.stray}


async def poll(client: NativeClient, target: Target) -> tuple[list[Entry], list[list[Entry]]]:
    """What the poller reads: sysName.0 and two columns, in as few requests as it can."""
    got, walks = await client.get_and_walk(target, [NAME], [DESCR, OPER])
    return triples(got), [triples(walk) for walk in walks]


def right_poll(entries: list[Entry]) -> tuple[list[Entry], list[list[Entry]]]:
    return [e for e in entries if e[0] == NAME], [under(entries, DESCR), under(entries, OPER)]


# --- datagrams that are not the answer: dropped, counted, the request still answered ---


def _garbage(request: Request) -> list[bytes]:
    return [b"\x00", b"\x30", b"\x30\x84\xff\xff\xff\xff", bytes(range(256)) * 4]


def _huge(request: Request) -> list[bytes]:
    return [b"\x30\x83\x00\xfd\xe0" + b"\x04" * 64992]  # 65,000 bytes, claims more


def _cut(request: Request) -> list[bytes]:
    whole = request.answer([(e[0], SnmpType.OCTET_STRING, b"forged") for e in request.right])
    return [whole[:n] for n in (1, 10, len(whole) // 2, len(whole) - 1)]


def _other_id(request: Request) -> list[bytes]:
    return [request.answer(request_id=request.msg.request_id ^ 0x0F0F)]


def _other_version(request: Request) -> list[bytes]:
    return [
        encode_message(
            version=1 - request.msg.version,
            community=request.msg.community,
            pdu_type=PduType.RESPONSE,
            varbinds=request.right,
            request_id=request.msg.request_id,
        )
    ]


NOT_THE_ANSWER: dict[str, tuple[Callable[[Request], list[bytes]], str]] = {
    "garbage": (_garbage, "malformed"),
    "huge": (_huge, "malformed"),
    "cut-short": (_cut, "malformed"),
    "other-request-id": (_other_id, "stray"),
    "other-version": (_other_version, "malformed"),
}


@pytest.mark.parametrize("case", sorted(NOT_THE_ANSWER))
async def test_what_is_not_the_answer_is_dropped_and_counted(
    serve: Serve, client: NativeClient, case: str
) -> None:
    make, reason = NOT_THE_ANSWER[case]
    sent: list[int] = []

    def script(request: Request) -> Out:
        first = make(request)
        sent.append(len(first))
        return [(d, 0.0) for d in first] + [(request.answer(), 0.01)]

    responder, target = await serve(script)
    assert await poll(client, target) == right_poll(responder.entries)
    assert dropped(client)[reason] == sum(sent) > 0
    assert sum(dropped(client).values()) == sum(sent)
    settled(client)


async def test_duplicated_answers_are_strays(serve: Serve, client: NativeClient) -> None:
    """Each answer three times: the first one counts, the copies reach no request (the
    copies of one page must not be taken as the next page's answer)."""
    responder, target = await serve(lambda r: [(r.answer(), 0.0)] * 3, max_repetitions=2)
    assert await poll(client, target) == right_poll(responder.entries)
    assert len(responder.requests) > 2
    assert dropped(client) == {"malformed": 0, "spoofed": 0, "stray": 2 * len(responder.requests)}
    settled(client)


SPOOFERS = {  # the device's address, the spoofer's (port 0: any; None: the device's)
    "other-port": ("127.0.0.1", ("127.0.0.1", 0)),
    "other-address": ("127.0.0.1", ("127.0.0.2", None)),
    "ipv6-other-port": ("::1", ("::1", 0)),  # a device on ::1, over the IPv6 socket
}


@pytest.mark.parametrize("source", sorted(SPOOFERS))
async def test_an_answer_from_elsewhere_is_spoofed(
    serve: Serve, client: NativeClient, source: str
) -> None:
    """The right request-id, community and values, from another port of the agent's
    address or from the agent's port on another address: dropped as spoofed."""
    device, (host, port) = SPOOFERS[source]
    forged: list[bytes] = []
    responder, target = await serve(
        lambda r: forged.append(r.answer()) or [(r.answer(), 0.05)], bind=device
    )
    spoofer = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind((host, target.port if port is None else port))
    loop = asyncio.get_running_loop()
    original = responder.datagram_received

    def both(data: bytes, addr: tuple[str, int]) -> None:
        original(data, addr)
        loop.call_soon(spoofer.sendto, forged[-1], addr)

    responder.datagram_received = both  # type: ignore[method-assign]
    try:
        assert await poll(client, target) == right_poll(responder.entries)
    finally:
        spoofer.close()
    assert dropped(client) == {"malformed": 0, "spoofed": len(responder.requests), "stray": 0}
    settled(client)


async def test_a_device_answering_with_another_devices_request_id_is_spoofed(
    serve: Serve, client: NativeClient
) -> None:
    """Two devices polled at once; the second answers its own request and, besides, the
    first's (its request-id, community and OIDs, with forged values), which the first
    has not answered yet: dropped as spoofed, the first's values are its own."""
    first_requests: list[Request] = []

    def slow(request: Request) -> Out:
        first_requests.append(request)
        return [(request.answer(), 0.2)]

    def meddler(request: Request) -> Out:
        out = [(request.answer(), 0.0)]
        for theirs in first_requests:  # every request of the first device seen so far
            forged = [(oid, SnmpType.OCTET_STRING, b"forged") for oid, _, _ in theirs.right]
            out.append((theirs.answer(forged), 0.0))
        return out

    first, first_target = await serve(slow)
    second, second_target = await serve(meddler)
    got_first, got_second = await asyncio.gather(
        poll(client, first_target), _later(poll(client, second_target), 0.05)
    )
    assert got_first == right_poll(first.entries)
    assert got_second == right_poll(second.entries)
    assert dropped(client)["spoofed"] > 0
    assert dropped(client)["malformed"] == 0
    settled(client)


async def _later(call: Awaitable[_T], delay: float) -> _T:
    await asyncio.sleep(delay)
    return await call


async def test_a_flood_of_unsolicited_datagrams_is_counted_and_polls_go_on(
    serve: Serve, client: NativeClient
) -> None:
    """Thousands of datagrams to the poller's socket from a stranger (strays, garbage)
    while it polls: each is dropped and counted, and the polls get their answers."""
    responder, target = await serve()
    await client.get(target, [NAME])  # the socket exists now
    port = client.exchanges._sockets[socket.AF_INET].getsockname()[1]
    asked = responder.requests[0]
    stray = Request(asked, responder.right(asked))
    datagrams = [stray.answer(request_id=0x7000_0000 + n) for n in range(64)] + [b"\x30\x00"]
    stop = asyncio.Event()
    sent = 0

    async def flood() -> None:
        nonlocal sent
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            while not stop.is_set():
                for data in datagrams:
                    with contextlib.suppress(BlockingIOError):
                        sock.sendto(data, ("127.0.0.1", port))
                        sent += 1
                await asyncio.sleep(0)

    flooding = asyncio.ensure_future(flood())
    try:
        for _ in range(20):
            assert await poll(client, target) == right_poll(responder.entries)
    finally:
        stop.set()
        await flooding
    await asyncio.sleep(0.1)  # the last ones read
    counted = dropped(client)
    assert counted["spoofed"] == 0
    assert counted["stray"] + counted["malformed"] <= sent
    assert counted["stray"] > 1000 and counted["malformed"] > 10, (counted, sent)
    settled(client)


# --- late answers ---------------------------------------------------------------------


async def test_a_late_answer_is_never_taken_for_a_newer_request(
    serve: Serve, client: NativeClient
) -> None:
    """The first GET's answer comes after it gave up, while the next GET of the same OID
    waits: it is a stray, and the next GET gets its own (newer) value."""
    values = iter([b"old", b"new"])

    def script(request: Request) -> Out:
        value = next(values)
        late = 0.45 if value == b"old" else 0.3
        return [(request.answer([(NAME, SnmpType.OCTET_STRING, value)]), late)]

    _, target = await serve(script, timeout=0.35, retries=0)
    with pytest.raises(SnmpTimeoutError):
        await client.get(target, [NAME])
    assert triples(await client.get(target, [NAME])) == [(NAME, SnmpType.OCTET_STRING, b"new")]
    assert dropped(client) == {"malformed": 0, "spoofed": 0, "stray": 1}
    settled(client)


async def test_an_answer_to_the_first_attempt_completes_the_retry(
    serve: Serve, client: NativeClient
) -> None:
    """A slow agent answering the first attempt while the retransmission waits: that
    answer is the request's (same request-id, same question), the second one a stray."""
    responder, target = await serve(lambda r: [(r.answer(), 0.4)], timeout=0.3, retries=1)
    assert triples(await client.get(target, [NAME])) == [(NAME, SnmpType.OCTET_STRING, b"sw1")]
    assert len(responder.requests) == 2
    await asyncio.sleep(0.45)
    assert dropped(client)["stray"] == 1
    settled(client)


async def test_the_pending_table_stays_bounded(serve: Serve, client: NativeClient) -> None:
    """Many requests to a silent agent, some cancelled: none is left pending afterwards,
    nor any deadline once they have passed."""
    _, target = await serve(lambda r: [], timeout=0.1, retries=1)
    timed_out = [asyncio.ensure_future(client.get(target, [NAME])) for _ in range(200)]
    cancelled = [asyncio.ensure_future(client.get(target, [NAME])) for _ in range(100)]
    await asyncio.sleep(0.05)
    assert client.exchanges.waiting == 300
    for task in cancelled:
        task.cancel()
    results = await asyncio.gather(*timed_out, *cancelled, return_exceptions=True)
    assert all(isinstance(r, SnmpTimeoutError) for r in results[:200])
    assert all(isinstance(r, asyncio.CancelledError) for r in results[200:])
    settled(client)
    await asyncio.sleep(0.25)
    assert client.exchanges.deadlines == 0


# --- answers of the wrong shape -------------------------------------------------------


@pytest.mark.parametrize("oids", [[NAME, f"{DESCR}.1", f"{OPER}.2"], [NAME, f"{DESCR}.1", NAME]])
async def test_a_get_answer_in_another_order_is_taken_by_name(
    serve: Serve, client: NativeClient, oids: list[str]
) -> None:
    responder, target = await serve(lambda r: [(r.answer(r.right[::-1]), 0.0)])
    got = await client.get(target, oids)
    entries = {e[0]: e for e in responder.entries}
    assert triples(got) == [entries[o] for o in oids]


GET_FAULTS: dict[str, Callable[[list[Entry]], list[Entry]]] = {
    "fewer": lambda right: right[:-1],
    "none": lambda right: [],
    "more": lambda right: [*right, (f"{DESCR}.9", SnmpType.OCTET_STRING, b"extra")],
    "other-oid": lambda right: [*right[:-1], (f"{DESCR}.9", SnmpType.OCTET_STRING, b"x")],
    "twice-the-same": lambda right: [right[0], right[0], *right[2:]],
}


@pytest.mark.parametrize("case", sorted(GET_FAULTS))
async def test_a_get_answer_that_does_not_fit_fails_truthfully(
    serve: Serve, client: NativeClient, case: str
) -> None:
    """Values for other OIDs than asked, or more or fewer of them: never a value handed
    to an OID it is not for. The GET fails, and the fault is counted."""
    bend = GET_FAULTS[case]
    _, target = await serve(lambda r: [(r.answer(bend(r.right)), 0.0)])
    with pytest.raises(SnmpProtocolError, match=r"values for|other OIDs"):
        await client.get(target, [NAME, f"{DESCR}.1", f"{OPER}.2"])
    assert sum(client.faults.values()) == 1
    settled(client)


def _without_one_inside(right: list[Entry]) -> list[Entry]:
    return right[:3] + right[4:]  # sysName.0, ifDescr.1, ifOperStatus.1, (ifDescr.2 lost)


BULK_FAULTS: dict[str, tuple[Callable[[list[Entry]], list[Entry]], str]] = {
    "empty": (lambda right: [], "no_progress"),
    "one-lost-inside": (_without_one_inside, "not_increasing"),
}


@pytest.mark.parametrize("case", sorted(BULK_FAULTS))
async def test_a_getbulk_answer_out_of_shape_fails_the_poll(
    serve: Serve, client: NativeClient, case: str
) -> None:
    """An empty GETBULK answer is no end of a table (that is endOfMibView or the next
    column's OID), and an answer that lost a value inside shifts the rest onto the wrong
    columns (ifDescr.3 in ifOperStatus' place, before what that column already has): both
    fail, rather than return tables cut short or values under the wrong column."""
    bend, reason = BULK_FAULTS[case]
    _, target = await serve(
        lambda r: [(r.answer(bend(r.right) if r.msg.pdu_type == PduType.GET_BULK else None), 0.0)],
        max_repetitions=6,
    )
    with pytest.raises(SnmpProtocolError):
        await poll(client, target)
    assert client.faults[reason] == 1
    settled(client)


async def test_an_empty_getbulk_answer_fails_a_walk(serve: Serve, client: NativeClient) -> None:
    _, target = await serve(
        lambda r: [(r.answer([] if r.msg.pdu_type == PduType.GET_BULK else None), 0.0)]
    )
    with pytest.raises(SnmpProtocolError, match="advanced no column"):
        await client.walk(target, DESCR)
    assert client.faults["no_progress"] == 1


async def test_more_rows_than_asked_are_taken_by_their_names(
    serve: Serve, client: NativeClient
) -> None:
    """An agent that sends more rows than max-repetitions asked: every value is named by
    its OID, each column's still in order, so they are taken, as the other backends do."""

    def script(request: Request) -> Out:
        msg = request.msg
        if msg.pdu_type == PduType.GET_BULK:
            bigger = responder.right(replace(msg, error_index=msg.error_index + 2))
            return [(request.answer(bigger), 0.0)]
        return [(request.answer(), 0.0)]

    responder, target = await serve(script, max_repetitions=2)
    responder.entries = table(9)
    assert await poll(client, target) == right_poll(responder.entries)
    assert triples(await client.walk(target, DESCR)) == under(responder.entries, DESCR)
    settled(client)


async def test_a_short_getbulk_answer_is_paged_on(serve: Serve, client: NativeClient) -> None:
    """An agent may cut a GETBULK answer after any value (to fit its message size): the
    next request goes on from where each column stopped."""
    responder, target = await serve(
        lambda r: [(r.answer(r.right[: max(1, len(r.right) - 3)]), 0.0)], max_repetitions=6
    )
    entries = table(9)
    responder.entries = entries
    assert await poll(client, target) == right_poll(entries)
    assert triples(await client.walk(target, DESCR)) == under(entries, DESCR)
    settled(client)


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("loop", ["same-oid", "going-back"])
async def test_a_walk_that_loops_ends_in_an_error(
    serve: Serve, client: NativeClient, version: str, loop: str
) -> None:
    """An agent answering the same OID again, or an earlier one, would keep a walk going
    for ever: it fails at once, named."""

    def script(request: Request) -> Out:
        asked = request.msg.varbinds[-1][0]
        n = len(request.right)
        one = (f"{DESCR}.1", SnmpType.OCTET_STRING, b"eth1")
        two = (f"{DESCR}.2", SnmpType.OCTET_STRING, b"eth2")
        if loop == "going-back" and asked == DESCR:
            return [(request.answer([two, one, one, one][:n]), 0.0)]
        return [(request.answer([one] * n), 0.0)]

    _, target = await serve(script, version=version)
    with pytest.raises(SnmpProtocolError, match=r"OIDs not increasing at 1\.3\.6\.1\.2\.1\.2\.2"):
        await asyncio.wait_for(client.walk(target, DESCR), 5)
    assert client.faults["not_increasing"] == 1
    settled(client)


@pytest.mark.parametrize("kind", EXCEPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("at", range(7))
async def test_exception_values_in_every_position_of_a_poll(
    serve: Serve, client: NativeClient, kind: SnmpType, at: int
) -> None:
    """noSuchObject, noSuchInstance or endOfMibView in place of the value at position
    ``at`` of the first GETBULK answer (the non-repeater, then rows of ifDescr and
    ifOperStatus): never a table's value. sysName.0 is read by the GET after; in a
    column, endOfMibView ends the walk (as snmpwalk does), noSuchObject/noSuchInstance
    (not a GETBULK answer's, but some agents send them) leave that one instance out."""
    poisoned: list[str] = []

    def script(request: Request) -> Out:
        right = list(request.right)
        if not poisoned and request.msg.pdu_type == PduType.GET_BULK:
            poisoned.append(right[at][0])
            right[at] = (right[at][0], kind, None)
        return [(request.answer(right), 0.0)]

    responder, target = await serve(script, max_repetitions=6)
    got, walks = await poll(client, target)
    entries = responder.entries
    assert got == [e for e in entries if e[0] == NAME]  # read again by a GET if need be
    for walk, column in zip(walks, (DESCR, OPER), strict=True):
        whole = under(entries, column)
        if kind is SnmpType.END_OF_MIB_VIEW and poisoned[0].startswith(column + "."):
            # the agent says its MIB ends there: the column ends there
            assert walk == whole[: [e[0] for e in whole].index(poisoned[0])]
        else:  # that instance has no value; the walk goes on past it
            assert walk == [e for e in whole if e[0] != poisoned[0]]
    left_out = at > 0 and kind is not SnmpType.END_OF_MIB_VIEW
    assert client.faults["exception_in_walk"] == left_out
    settled(client)


@pytest.mark.parametrize("kind", EXCEPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("at", range(3))
async def test_exception_values_in_every_position_of_a_get(
    serve: Serve, client: NativeClient, kind: SnmpType, at: int
) -> None:
    """In a GET answer an exception value is that OID's, typed; the others keep theirs."""

    def script(request: Request) -> Out:
        right = list(request.right)
        right[at] = (right[at][0], kind, None)
        return [(request.answer(right), 0.0)]

    responder, target = await serve(script)
    oids = [NAME, f"{DESCR}.1", f"{OPER}.2"]
    got = triples(await client.get(target, oids))
    entries = {e[0]: e for e in responder.entries}
    want = [entries[o] for o in oids]
    want[at] = (oids[at], kind, None)
    assert got == want


@pytest.mark.parametrize("index", [0, 4, 2**31 - 1])
@pytest.mark.parametrize("status", [5, 2, 17, 255])
async def test_an_error_status_with_any_index_fails_the_request(
    serve: Serve, client: NativeClient, status: int, index: int
) -> None:
    _, target = await serve(lambda r: [(r.answer(status=status, index=index), 0.0)])
    with pytest.raises(SnmpProtocolError) as info:
        await client.get(target, [NAME, f"{DESCR}.1", f"{OPER}.2"])
    name = {5: "genErr", 2: "noSuchName", 17: "notWritable", 255: "error 255"}[status]
    assert f"agent returned {name}" in str(info.value)
    assert " at " not in str(info.value)  # an index outside the request names no OID
    assert client.faults["error_status"] == 1
    settled(client)


async def test_a_negative_error_index_is_no_snmp_answer(serve: Serve, client: NativeClient) -> None:
    """error-index is 0..max-bindings: an answer with -1 is not SNMP, dropped as
    malformed like any broken datagram, and the request ends as unanswered."""
    responder, target = await serve(lambda r: [(r.answer(status=5, index=-1), 0.0)])
    with pytest.raises(SnmpTimeoutError):
        await client.get(target, [NAME])
    assert dropped(client) == {"malformed": 2, "spoofed": 0, "stray": 0}
    assert len(responder.requests) == 2
    settled(client)


async def test_too_big_shrinks_the_poll_and_ends_when_nothing_fits(
    serve: Serve, client: NativeClient
) -> None:
    """tooBig: the shared GETBULK asks for fewer rows until the answer fits; an agent
    that finds even one row too big fails the walk instead of being asked for ever."""
    limit = [4]

    def script(request: Request) -> Out:
        if request.msg.pdu_type == PduType.GET_BULK and len(request.right) > limit[0]:
            return [(request.answer(status=1, index=0), 0.0)]
        return [(request.answer(), 0.0)]

    responder, target = await serve(script, max_repetitions=16)
    responder.entries = table(7)
    assert await poll(client, target) == right_poll(responder.entries)
    assert client.faults["too_big"] >= 2
    limit[0] = 0
    with pytest.raises(SnmpProtocolError, match="tooBig"):
        await asyncio.wait_for(client.walk(target, DESCR), 5)
    with pytest.raises(SnmpProtocolError, match="tooBig"):
        await asyncio.wait_for(poll(client, target), 5)
    assert len(responder.requests) < 30
    settled(client)


# --- old agents: GETBULK refused; v1 is walked with GETNEXT -----------------------------


async def test_getbulk_refused_with_gen_err_is_an_error_not_an_empty_table(
    serve: Serve, client: NativeClient
) -> None:
    """Some old agents answer GETBULK with genErr: the walk fails with it (the poll is
    partial, the device is not shown with an empty table), the GET still works."""
    _, target = await serve(
        lambda r: [
            (r.answer(status=5, index=1) if r.msg.pdu_type == PduType.GET_BULK else r.answer(), 0)
        ]
    )
    with pytest.raises(SnmpProtocolError, match="genErr"):
        await client.walk(target, DESCR)
    with pytest.raises(SnmpProtocolError, match="genErr"):
        await poll(client, target)
    assert triples(await client.get(target, [NAME])) == [(NAME, SnmpType.OCTET_STRING, b"sw1")]


async def test_a_v1_device_is_never_sent_getbulk(serve: Serve, client: NativeClient) -> None:
    """SNMPv1 has no GETBULK (an agent would drop it or answer genErr): a v1 poll is GETs
    and GETNEXTs, one column at a time, to the end of each column."""
    responder, target = await serve(
        lambda r: [
            (r.answer(status=5, index=1) if r.msg.pdu_type == PduType.GET_BULK else r.answer(), 0)
        ],
        version="1",
    )
    assert await poll(client, target) == right_poll(responder.entries)
    assert triples(await client.walk(target, OPER)) == under(responder.entries, OPER)
    assert set(responder.kinds) == {PduType.GET, PduType.GET_NEXT}
    assert {m.version for m in responder.requests} == {0}


async def test_v1_no_such_name_ends_a_walk_at_the_end_of_the_mib(
    serve: Serve, client: NativeClient
) -> None:
    def script(request: Request) -> Out:
        if request.msg.pdu_type == PduType.GET_NEXT and request.right[0][1] is END[1]:
            return [(request.answer(request.msg.varbinds, status=2, index=1), 0.0)]
        return [(request.answer(), 0.0)]

    responder, target = await serve(script, version="1")
    assert triples(await client.walk(target, OPER)) == under(responder.entries, OPER)


# --- SNMPv3 Reports -------------------------------------------------------------------


@dataclass
class V3Responder(asyncio.DatagramProtocol):
    """An SNMPv3 agent of one authNoPriv user (SHA): discovery Reports, then what
    ``report`` says for each request (a Report's OID and whether it is signed), or the
    Response with sysName.0."""

    report: Callable[[int], tuple[str, bool] | None]
    requests: int = 0
    discoveries: int = 0
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        header = decode_v3_header(data)
        assert not isinstance(header, Exception) and hasattr(header, "msg_id"), header
        assert self.transport is not None
        if not header.user:
            self.discoveries += 1
            self.transport.sendto(self._report(header.msg_id, "1.3.6.1.6.3.15.1.1.4.0", 0), addr)
            return
        self.requests += 1
        scoped = decode_scoped_pdu(data, header.data_at)
        assert not isinstance(scoped, Exception) and hasattr(scoped, "request_id"), scoped
        verdict = self.report(self.requests)
        if verdict is not None:
            oid, signed = verdict
            self.transport.sendto(
                self._report(header.msg_id, oid, scoped.request_id, signed=signed), addr
            )
            return
        answer = scoped_pdu(
            [varbind(NAME, encode_tlv(0x04, b"v3-sw"))],
            pdu=0xA2,
            context_engine=ENGINE,
            request_id=scoped.request_id,
        )
        self.transport.sendto(self._signed(header.msg_id, answer), addr)

    def _report(self, msg_id: int, oid: str, request_id: int, *, signed: bool = False) -> bytes:
        counter = encode_tlv(0x41, b"\x07")
        scoped = scoped_pdu(
            [varbind(oid, counter)], pdu=0xA8, context_engine=ENGINE, request_id=request_id
        )
        if signed:
            return self._signed(msg_id, scoped, time=99_999)
        return build_v3(b"", scoped, engine=ENGINE, level="noAuthNoPriv", msg_id=msg_id)

    @staticmethod
    def _signed(msg_id: int, scoped: bytes, time: int = 1234) -> bytes:
        return build_v3(
            "hostile",
            scoped,
            engine=ENGINE,
            level="authNoPriv",
            auth="SHA",
            auth_password="auth-pass-123",
            msg_id=msg_id,
            time=time,
        )


NOT_IN_TIME = "1.3.6.1.6.3.15.1.1.2.0"
UNKNOWN_ENGINE = "1.3.6.1.6.3.15.1.1.4.0"
WRONG_DIGEST = "1.3.6.1.6.3.15.1.1.5.0"


@pytest.mark.parametrize(
    ("case", "reports", "reason", "requests", "discoveries"),
    [
        # a rebooted agent: its signed notInTimeWindow carries its clock, asked once more
        ("time-once", {1: (NOT_IN_TIME, True)}, None, 2, 1),
        # an agent that never accepts the clock: two tries, then named
        ("time-always", "always-time", "notInTimeWindow", 3, 2),
        # unknownEngineID: discovered once more, then named; never a loop
        ("engine-always", "always-engine", "unknownEngineID", 2, 2),
        ("wrong-digest", "always-digest", "wrongDigest", 1, 1),
        # an unsigned notInTimeWindow is believed for its name only: discovery again
        ("unsigned-time", {1: (NOT_IN_TIME, False)}, None, 2, 2),
        ("unknown-report", "always-other", "report 1.3.6.1.6.3.11.2.1.3.0", 1, 1),
    ],
)
async def test_v3_reports_end_in_a_named_refusal_or_an_answer(
    client: NativeClient,
    case: str,
    reports: dict[int, tuple[str, bool]] | str,
    reason: str | None,
    requests: int,
    discoveries: int,
) -> None:
    def report(n: int) -> tuple[str, bool] | None:
        if isinstance(reports, dict):
            return reports.get(n)
        return {
            "always-time": (NOT_IN_TIME, True),
            "always-engine": (UNKNOWN_ENGINE, False),
            "always-digest": (WRONG_DIGEST, False),
            "always-other": ("1.3.6.1.6.3.11.2.1.3.0", False),
        }[reports]

    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(
        lambda: V3Responder(report), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    target = Target(
        "127.0.0.1",
        port,
        "3",
        user="hostile",
        auth_protocol="SHA",
        auth_password="auth-pass-123",
        timeout=0.3,
        retries=1,
    )
    try:
        if reason is None:
            got = await asyncio.wait_for(client.get(target, [NAME]), 5)
            assert triples(got) == [(NAME, SnmpType.OCTET_STRING, b"v3-sw")]
        else:
            with pytest.raises(SnmpAuthError) as info:
                await asyncio.wait_for(client.get(target, [NAME]), 5)
            assert info.value.reason == reason
    finally:
        transport.close()
    assert (agent.requests, agent.discoveries) == (requests, discoveries)
    settled(client)


async def test_the_faults_reach_the_metrics(serve: Serve, client: NativeClient) -> None:
    """A poller with the native client shows its answer faults by why in /metrics."""
    from netalert.metrics import MetricSample
    from netalert.mib import MibTree
    from netalert.poll.client_native import FAULTS
    from netalert.poll.poller import Poller
    from netalert.web.sources import poller_source

    poller = Poller([], MibTree([]), clients={"native": client})
    _, target = await serve(lambda r: [(r.answer(r.right[::-1] + r.right[:1]), 0.0)])
    with pytest.raises(SnmpProtocolError):
        await client.get(target, [NAME, f"{DESCR}.1"])
    samples = [s for s in poller_source(poller.stats)() if isinstance(s, MetricSample)]
    faults = {
        s.labels["reason"]: s.value
        for s in samples
        if s.name == "netalert_poll_answer_faults_total"
    }
    assert faults == {reason: int(reason == "wrong_count") for reason in FAULTS}
