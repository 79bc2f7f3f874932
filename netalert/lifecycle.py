"""The one lifecycle of every stage of the agent: open, start, drain, stop.

``service.py`` keeps its stages in a list, in start order, and calls the same
four methods on each:

- :meth:`Stage.open` takes what can fail (binds sockets, builds objects from
  the prepared config) and starts nothing; a reload opens every changed stage
  before it touches a running one, and stops what it opened when one fails;
- :meth:`Stage.start` begins the work; it does not fail for a reason the
  config or the host could cause;
- :meth:`Stage.drain` finishes the work in hand by ``deadline`` (a
  :func:`time.monotonic` value) and takes no more; called in reverse start
  order, so intake ends before the notifications are flushed and the outbox
  emptied;
- :meth:`Stage.stop` releases everything; called in reverse start order after
  every stage drained, and safe on a stage only opened (a reload rolled back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

__all__ = ["BaseStage", "Hooks", "Spawn", "Stage", "TaskStage", "open_all"]


class Stage(Protocol):
    """What ``service.py`` knows of a stage."""

    name: str

    async def open(self) -> None:
        """Takes what can fail (sockets, files); nothing runs yet.

        Raises:
            NetalertError: The stage cannot be built (the message says what to do).
        """

    async def start(self) -> None:
        """Begins the work."""

    async def drain(self, deadline: float) -> None:
        """Finishes the work in hand by ``deadline`` (monotonic seconds); takes no more."""

    async def stop(self) -> None:
        """Releases everything the stage holds (also after only :meth:`open`)."""


class BaseStage:
    """A stage whose four steps do nothing; subclasses override what they need."""

    name = "stage"

    async def open(self) -> None:
        """Nothing to take."""

    async def start(self) -> None:
        """Nothing to begin."""

    async def drain(self, deadline: float) -> None:
        """Nothing in hand."""

    async def stop(self) -> None:
        """Nothing to release."""


# Runs a supervised task: (factory, name, restart) -> the task.
Spawn = Callable[[Callable[[], Awaitable[Any]], str, bool], "asyncio.Task[Any]"]


class TaskStage(BaseStage):
    """One supervised background task (the ticker, the pruner, the watchdog ...).

    Started by :meth:`start`; cancelled by :meth:`stop`. Its loop watches the
    agent's stop event itself, so draining asks nothing of it.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        spawn: Spawn,
        *,
        restart: bool = True,
    ) -> None:
        self.name = name
        self._factory = factory
        self._spawn = spawn
        self._restart = restart
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Starts the task."""
        self._task = self._spawn(self._factory, self.name, self._restart)

    async def stop(self) -> None:
        """Cancels the task and waits for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


class Hooks(BaseStage):
    """A stage whose steps are given as functions (parts that live in ``service.py``)."""

    def __init__(
        self,
        name: str,
        *,
        open: Callable[[], Awaitable[None]] | None = None,
        start: Callable[[], Awaitable[None]] | None = None,
        drain: Callable[[float], Awaitable[None]] | None = None,
        stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._open = open
        self._start = start
        self._drain = drain
        self._stop = stop

    async def open(self) -> None:
        """Runs the ``open`` hook."""
        if self._open is not None:
            await self._open()

    async def start(self) -> None:
        """Runs the ``start`` hook."""
        if self._start is not None:
            await self._start()

    async def drain(self, deadline: float) -> None:
        """Runs the ``drain`` hook."""
        if self._drain is not None:
            await self._drain(deadline)

    async def stop(self) -> None:
        """Runs the ``stop`` hook."""
        if self._stop is not None:
            await self._stop()


async def open_all(stages: Iterable[Stage]) -> None:
    """Opens every stage in turn; when one fails, stops those opened (the failing one too).

    Raises:
        Exception: The first failure, after the rollback.
    """
    opened: list[Stage] = []
    try:
        for stage in stages:
            opened.append(stage)
            await stage.open()
    except BaseException:
        for stage in reversed(opened):
            with contextlib.suppress(Exception):
                await stage.stop()
        raise
