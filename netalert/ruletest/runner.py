"""Runs rule tests: inputs and the second-by-second tick in virtual time, then the checks.

At one instant the order is: polls, then traps, then the tick (the
service's once-a-second chores), then the expectations. Virtual time starts
at the test's ``start`` and ends at its last expectation.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netalert.config import load_config
from netalert.errors import ConfigError, NetalertError
from netalert.mail.errors import MailTemplateError
from netalert.mail.render import MailTemplates
from netalert.matchers import parse_matcher
from netalert.notify.silences import Silence
from netalert.prepare import Prepared, prepare
from netalert.ruletest.compare import alert_diff, format_duration_s, notification_diff
from netalert.ruletest.inputs import poll_steps, trap_datagram, trap_v3
from netalert.ruletest.pipeline import Pipeline
from netalert.ruletest.spec import Expectation, RuleTest, TestFile
from netalert.snmp.types import TrapEvent
from netalert.traps.receiver import TrapReceiver

__all__ = ["Check", "Outcome", "PreparedCache", "run_test"]

# Event order within one instant.
_POLL, _TRAP, _TICK, _EXPECT = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Check:
    """A failed expectation: when, what (``alerts`` or ``notifications``), the diff lines."""

    at: str
    section: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one test: failed checks, or the input problems that stopped it."""

    name: str
    checks: tuple[Check, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.checks and not self.problems


class PreparedCache:
    """Configs loaded and prepared once per path (MIB loading takes a while)."""

    def __init__(self) -> None:
        self._done: dict[Path, tuple[Prepared, MailTemplates]] = {}

    def get(self, path: Path) -> tuple[Prepared, MailTemplates]:
        """The prepared config and mail templates of ``path``.

        Raises:
            ConfigError: The config (or its templates) is invalid.
            NetalertError: Its state directory is unusable.
        """
        path = path.resolve()
        found = self._done.get(path)
        if found is None:
            config = load_config(path)
            try:
                templates = MailTemplates(config.smtp.templates_dir)
            except MailTemplateError as exc:
                raise ConfigError([f"{path}: smtp.templates_dir: {exc}"]) from None
            found = self._done[path] = (prepare(config, agent=False), templates)
        return found


async def run_test(
    test: RuleTest, spec: TestFile, folder: Path, number: int, configs: PreparedCache
) -> Outcome:
    """Runs one test of a file in virtual time.

    Args:
        test: The test.
        spec: The file it belongs to (defaults for config, interval, bounds).
        folder: The test file's folder: relative config paths start there.
        number: The test's index in the file, for ``tests[N]`` in problems.
        configs: Prepared configs shared between the tests of a run.

    Returns:
        The outcome; input problems (unknown names, bad values) are in ``problems``.
    """
    where = f"tests[{number}]"
    config_path = folder / (test.config or spec.config)
    try:
        prepared, templates = configs.get(config_path)
    except ConfigError as exc:
        return Outcome(test.name, problems=tuple(f"{where}.config: {p}" for p in exc.problems))
    except NetalertError as exc:
        return Outcome(test.name, problems=(f"{where}.config: {config_path}: {exc}",))
    try:
        return await _run(test, spec, where, prepared, templates)
    except _Problem as exc:
        return Outcome(test.name, problems=(str(exc),))


class _Problem(Exception):
    """An input of the test the config cannot take (``tests[N].field: message``)."""


async def _run(
    test: RuleTest, spec: TestFile, where: str, prepared: Prepared, templates: MailTemplates
) -> Outcome:
    start = test.start.timestamp()
    end = max(e.at.total_seconds() for e in test.expect)
    interval = (test.interval or spec.interval).total_seconds()
    tree = prepared.tree
    devices = {d.name for d in prepared.config.devices}
    silences = [_silence(s, i, start) for i, s in enumerate(test.silences)]
    pipeline = Pipeline(
        prepared, templates=templates, silences=silences, maintenance=test.maintenance
    )
    now = [start]
    received: list[TrapEvent] = []
    receiver = TrapReceiver(
        prepared.config.traps,
        sink=received.append,
        tree=tree,
        devices=prepared.config.devices,
        clock=lambda: now[0],
        monotonic=lambda: now[0],
    )
    await receiver.start(listen=False)
    queue: list[tuple[float, int, int, Any]] = []
    order = 0

    def push(at: float, kind: int, payload: Any) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (at, kind, order, payload))

    for device, series in test.polls.items():
        if device not in devices:
            known = ", ".join(sorted(devices)) or "none"
            raise _Problem(f"{where}.polls.{device}: unknown device (the config has: {known})")
        try:
            steps = poll_steps(
                tree,
                device,
                series,
                interval=interval,
                until=end,
                start=start,
                limit=spec.max_values,
            )
        except ValueError as exc:
            raise _Problem(f"{where}.polls.{device}.{exc}") from None
        for step in steps:
            push(step.time, _POLL, (device, step))
    users = {u.user for u in prepared.config.traps.users}
    for i, trap in enumerate(test.traps):
        if trap.version == "3" and trap.user not in users:
            known = ", ".join(sorted(users)) or "none"
            raise _Problem(
                f"{where}.traps[{i}].user: {trap.user!r} is not a [[traps.users]] user"
                f" (the config has: {known})"
            )
        try:
            payload: Any = (
                trap_v3(tree, trap) if trap.version == "3" else trap_datagram(tree, trap, i + 1)
            )
        except ValueError as exc:
            raise _Problem(f"{where}.traps[{i}].{exc}") from None
        push(start + trap.at.total_seconds(), _TRAP, (trap, payload))
    for second in range(int(end) + 1):
        push(start + second, _TICK, None)
    for expect in test.expect:
        push(start + expect.at.total_seconds(), _EXPECT, expect)

    checks: list[Check] = []
    misses: dict[str, int] = {}
    told = 0
    try:
        while queue:
            at, kind, _, payload = heapq.heappop(queue)
            now[0] = at
            if kind == _POLL:
                device, step = payload
                if step.timeout:
                    # as the poller: every unanswered poll, with how many in a row
                    misses[device] = misses.get(device, 0) + 1
                    pipeline.unreachable(device, at, failures=misses[device])
                else:
                    if misses.pop(device, 0):
                        pipeline.reachable(device, at)
                    pipeline.poll(step.result, at)
            elif kind == _TRAP:
                trap, data = payload
                if isinstance(data, bytes):
                    receiver.handle(data, (trap.source, trap.port))
                else:
                    receiver.deliver_v3(data)
                _drain(received, pipeline.trap, at)
            elif kind == _TICK:
                receiver.tick(at)
                _drain(received, pipeline.trap, at)
                pipeline.tick(at)
            else:
                checks += _check(payload, pipeline, told, start)
                told = len(pipeline.sent)
    finally:
        await receiver.stop()
        pipeline.close()
    return Outcome(test.name, checks=tuple(checks))


def _drain(received: list[TrapEvent], into: Callable[[TrapEvent, float], Any], at: float) -> None:
    while received:
        into(received.pop(0), at)


def _silence(spec: Any, index: int, start: float) -> Silence:
    begins = start + spec.at.total_seconds()
    return Silence(
        id=f"test-{index}",
        matchers=tuple(parse_matcher(m) for m in spec.match),
        starts_at=begins,
        ends_at=begins + spec.for_.total_seconds(),
        comment=spec.comment,
        author="netalert test rules",
        created_at=begins,
    )


def _check(expect: Expectation, pipeline: Pipeline, told: int, start: float) -> list[Check]:
    at = format_duration_s(expect.at.total_seconds())
    out = []
    if expect.alerts is not None:
        lines = alert_diff(expect.alerts, pipeline.active())
        if lines is not None:
            out.append(Check(at, "alerts", tuple(lines)))
    if expect.notifications is not None:
        lines = notification_diff(expect.notifications, pipeline.sent[told:], start)
        if lines is not None:
            out.append(Check(at, "notifications", tuple(lines)))
    return out
