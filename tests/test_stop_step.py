"""A stop that hangs says where: each stage's drain or stop is named in the log while it
has not finished (``event=drain_step_slow``), and a failing one does not stop the rest."""

from __future__ import annotations

import asyncio
import logging

import pytest

from netalert import service
from netalert.service import stop_step

pytestmark = pytest.mark.unit


async def test_a_slow_step_is_named_while_it_runs_and_a_failing_one_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "STEP_SLOW", 0.05)
    caplog.set_level(logging.INFO, logger="netalert")
    await stop_step("cluster", asyncio.sleep(0.18))
    slow = [r.getMessage() for r in caplog.records if "drain_step_slow" in r.getMessage()]
    assert len(slow) >= 2 and all("step=cluster" in line for line in slow), slow

    async def failing() -> None:
        raise RuntimeError("no database")

    await stop_step("state", failing())  # logged, not raised
    assert any(
        "drain_step_failed" in r.getMessage() and "no database" in r.getMessage()
        for r in caplog.records
    )
    caplog.clear()
    await stop_step("web", asyncio.sleep(0))
    assert not caplog.records  # a quick step says nothing


async def test_a_cancelled_stop_cancels_its_step() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def step() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    outer = asyncio.ensure_future(stop_step("mail", step()))
    await asyncio.wait_for(started.wait(), 5)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait_for(cancelled.wait(), 5)
