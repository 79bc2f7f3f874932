"""The supervisor: a failing task is counted, logged once, restarted; a damaged
database stops the agent. Real asyncio tasks; the failing coroutines are the unit's
own input, not fakes of a component."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from netalert.errors import StateCorruptError
from netalert.supervise import Supervisor, backoff


@pytest.mark.parametrize(
    ("attempt", "cap", "wait"),
    [(1, 60.0, 1.0), (2, 60.0, 2.0), (3, 60.0, 4.0), (7, 60.0, 60.0), (500, 5.0, 5.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, cap: float, wait: float) -> None:
    assert backoff(attempt, cap) == wait


def test_a_failing_task_is_restarted_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fatal: list[BaseException] = []
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ValueError("bad value from a stage")

    async def main() -> Supervisor:
        supervisor = Supervisor(on_fatal=fatal.append, retry_max=0.1)
        await asyncio.wait_for(supervisor.spawn("ticker", flaky), timeout=5)
        return supervisor

    with caplog.at_level(logging.ERROR, logger="netalert.service"):
        supervisor = asyncio.run(main())
    assert len(runs) == 3
    assert supervisor.failures["ticker"] == 2
    lines = [r.getMessage() for r in caplog.records if "task_failed" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "task=ticker" in lines[0] and "bad value from a stage" in lines[0]
    assert fatal == []


@pytest.mark.parametrize(
    "exc",
    [
        StateCorruptError("state database x is damaged"),
        sqlite3.DatabaseError("database disk image is malformed"),
    ],
)
def test_a_damaged_database_is_fatal_and_not_restarted(exc: Exception) -> None:
    if not isinstance(exc, StateCorruptError):
        exc.sqlite_errorcode = 11  # type: ignore[attr-defined]
    fatal: list[BaseException] = []
    runs: list[int] = []

    async def broken() -> None:
        runs.append(1)
        raise exc

    async def main() -> None:
        supervisor = Supervisor(on_fatal=fatal.append, retry_max=0.1)
        await asyncio.wait_for(supervisor.spawn("mail-sender", broken), timeout=5)

    asyncio.run(main())
    assert runs == [1]
    assert fatal == [exc]


def test_waiting_tasks_are_health_problems() -> None:
    async def main() -> list[str]:
        supervisor = Supervisor(on_fatal=lambda exc: None, retry_max=30.0)

        async def broken() -> None:
            raise OSError("no route")

        task = supervisor.spawn("watchdog", broken)
        await asyncio.sleep(0.05)
        problems = supervisor.problems()
        task.cancel()
        return problems

    assert asyncio.run(main()) == ["task watchdog failed (OSError: no route); restarting"]
