"""The stage lifecycle: opening a set of stages is all or nothing; a task stage ends at stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from netalert.errors import NetalertError
from netalert.lifecycle import BaseStage, Hooks, Stage, TaskStage, open_all


class Recorded(BaseStage):
    def __init__(self, name: str, steps: list[str], *, fail: bool = False) -> None:
        self.name = name
        self._steps = steps
        self._fail = fail

    async def open(self) -> None:
        self._steps.append(f"open {self.name}")
        if self._fail:
            raise NetalertError(f"{self.name}: cannot listen")

    async def stop(self) -> None:
        self._steps.append(f"stop {self.name}")


async def test_open_all_opens_every_stage_in_turn() -> None:
    steps: list[str] = []
    await open_all([Recorded("a", steps), Recorded("b", steps)])
    assert steps == ["open a", "open b"]


async def test_a_failing_open_stops_what_was_opened_and_opens_nothing_more() -> None:
    steps: list[str] = []
    stages: list[Stage] = [
        Recorded("traps", steps),
        Recorded("web", steps, fail=True),
        Recorded("mail", steps),
    ]
    with pytest.raises(NetalertError, match="web: cannot listen"):
        await open_all(stages)
    assert steps == ["open traps", "open web", "stop web", "stop traps"]


async def test_a_task_stage_runs_from_start_to_stop() -> None:
    ran = asyncio.Event()
    ended: list[str] = []

    async def work() -> None:
        ran.set()
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("cancelled")

    def spawn(
        factory: Callable[[], Coroutine[Any, Any, None]], name: str, restart: bool
    ) -> asyncio.Task[None]:
        assert (name, restart) == ("ticker", True)
        return asyncio.get_running_loop().create_task(factory())

    stage = TaskStage("ticker", work, spawn)
    await stage.open()
    await stage.start()
    await asyncio.wait_for(ran.wait(), 5)
    await stage.drain(0.0)
    assert ended == []  # draining asks nothing of a task: its loop watches the stop event
    await stage.stop()
    assert ended == ["cancelled"]
    await stage.stop()  # twice is harmless


async def test_hooks_run_the_given_steps_only() -> None:
    steps: list[str] = []

    async def opened() -> None:
        steps.append("open")

    async def drained(deadline: float) -> None:
        steps.append(f"drain {deadline:g}")

    stage = Hooks("state", open=opened, drain=drained)
    await stage.open()
    await stage.start()
    await stage.drain(7.0)
    await stage.stop()
    assert steps == ["open", "drain 7"]
