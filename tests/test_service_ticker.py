"""The agent's ticker: time-based alert changes once a second, however often it wakes.

The ticker wakes after every batch of mails (groups that came due meanwhile are
flushed then). The alert stage's tick walks every alert; run on each of those
wake-ups, a storm of distinct alerts (one mail each) paid for a walk over all
alerts per batch. Here the real agent runs in this process (its mail sender
stopped: every mail stays in the outbox), traps go through its receiver, and the
ticks are counted.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.service import TICK, Agent, prepare
from tests.support.fault_checks import mail_config
from tests.support.faults import link_down
from tests.support.ports import free_tcp_port, free_udp_port

pytestmark = pytest.mark.e2e  # a whole agent (in this process)


async def _run(agent: Agent, traps: int, seconds: float) -> tuple[int, int, float]:
    """Sends ``traps`` traps spread over about ``seconds``, two a loop turn; returns
    (engine ticks, mails committed, seconds taken) once every mail is committed."""
    assert agent.engine is not None and agent.receiver is not None
    engine = agent.engine
    ticks = 0
    tick = engine.tick

    def counted(now: float) -> list:  # type: ignore[type-arg]
        nonlocal ticks
        ticks += 1
        return tick(now)

    engine.tick = counted  # type: ignore[method-assign]
    began = time.monotonic()
    for first in range(1, traps + 1, 2):
        for index in (first, first + 1):
            agent.receiver.handle(link_down(index), ("127.0.0.1", 50_000))
        await asyncio.sleep(seconds * 2 / traps)
    for _ in range(3000):  # 30 s at most
        if agent.counters["notifications"] >= traps:
            break
        await asyncio.sleep(0.01)
    return ticks, agent.counters["notifications"], time.monotonic() - began


@pytest.mark.parametrize("seconds", [0.5, 2.5])
def test_alerts_are_ticked_once_a_second_not_on_every_mail_batch(
    tmp_path: Path, mib_cache: Path, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the config's state_dir is "state"
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    # one mail per trap (each alert its own group), storm folding out of the way; the
    # sender is stopped below, so nothing listens on the SMTP port
    text = mail_config(traps=free_udp_port(), smtp=free_tcp_port(), http=free_tcp_port())
    # the receiver in this process (the test hands it the traps), not worker processes
    text = text.replace("[traps]\n", "[traps]\nworkers = 1\n", 1)
    prepared = prepare(load_config_text(text))

    async def main() -> tuple[int, int, float, int]:
        agent = Agent(prepared)
        await agent.start()
        try:
            assert agent.mail is not None
            await agent.mail.sender.stop()  # every mail stays in the outbox
            ticks, mails, took = await _run(agent, 200, seconds)
            batches = agent.mail.stats.rendered["loop"] + agent.mail.stats.rendered["thread"]
            return ticks, mails, took, batches
        finally:
            agent.request_stop()
            await agent.drain(0)

    ticks, mails, took, rendered = asyncio.run(main())
    assert mails == rendered == 200
    # the mails went out in many batches, each waking the ticker; the alerts were ticked
    # on the clock: at most once a second (and at the start), at least once a second
    assert ticks <= took / TICK + 2, (ticks, took)
    assert ticks >= int(took / TICK) - 1, (ticks, took)
