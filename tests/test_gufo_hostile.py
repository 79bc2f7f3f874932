"""The gufo-snmp backend (``backend = "gufo"``) against a malformed answer it panics on.

gufo-snmp 0.13's Rust decoder panics (index out of bounds) on a 4-byte datagram that
claims a 4-byte length (``30 84 ff ff``) from the device's address; pyo3 raises the panic
as ``PanicException``, a BaseException, which ``except Exception`` does not catch. The
responder of ``tests/test_native_hostile.py`` sends it on loopback: the request fails as
a counted, logged poll failure of that device, and the device's next poll is read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from netalert.metrics import MetricSample
from netalert.mib import MibTree
from netalert.poll.client import SnmpProtocolError
from netalert.poll.client_gufo import GufoClient
from netalert.poll.plan import DevicePlan
from netalert.poll.poller import Poller
from netalert.web.sources import poller_source
from tests.test_native_hostile import DESCR, NAME, Out, Request, Serve, serve, triples, under

__all__ = ["serve"]  # the responder's fixture, used here

pytestmark = pytest.mark.unit

PANIC = b"\x30\x84\xff\xff"  # a SEQUENCE whose 4-byte length is cut short


def panics_first(count: int) -> tuple[list[int], object]:
    """A script: the first ``count`` requests get ``PANIC``, the rest their right answer."""
    seen = [0]

    def script(request: Request) -> Out:
        seen[0] += 1
        return [(PANIC if seen[0] <= count else request.answer(), 0.0)]

    return seen, script


@pytest.fixture
async def gufo() -> AsyncIterator[GufoClient]:
    made = GufoClient()
    yield made
    await made.close()


async def test_a_panicking_decoder_fails_the_request_and_the_next_one_is_read(
    serve: Serve, gufo: GufoClient
) -> None:
    _, script = panics_first(2)
    responder, target = await serve(script)
    with pytest.raises(SnmpProtocolError, match="could not decode"):
        await gufo.get(target, [NAME])
    with pytest.raises(SnmpProtocolError, match="could not decode"):
        await gufo.walk(target, DESCR)
    assert gufo.faults == {"decoder_panic": 2}
    got = await gufo.get(target, [NAME])
    assert triples(got) == [e for e in responder.entries if e[0] == NAME]
    walked = await gufo.walk(target, DESCR)
    assert triples(walked) == under(responder.entries, DESCR)


async def test_a_panic_is_a_counted_logged_poll_failure_and_polling_goes_on(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    seen, script = panics_first(1)
    _, target = await serve(script)
    plan = DevicePlan("sw1", target, backend="gufo", interval=0.2, jitter=0.0, walk=(DESCR,))
    poller = Poller([plan], MibTree([]))
    caplog.set_level(logging.WARNING, logger="netalert.poll.poller")
    poller.start(spread=False)
    try:
        deadline = time.monotonic() + 20
        while poller.stats.polls["ok"] < 1:
            assert time.monotonic() < deadline, f"no poll read ({seen[0]} requests)"
            await asyncio.sleep(0.05)
    finally:
        await poller.stop()
    assert poller.stats.polls["error"] == 1
    failed = [r.getMessage() for r in caplog.records if "poll_failed" in r.getMessage()]
    assert len(failed) == 1 and "device=sw1" in failed[0], failed
    samples = [s for s in poller_source(poller.stats)() if isinstance(s, MetricSample)]
    faults = {
        s.labels["reason"]: s.value
        for s in samples
        if s.name == "netalert_poll_answer_faults_total"
    }
    assert faults == {"decoder_panic": 1}
