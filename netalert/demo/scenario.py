"""The demo's timeline: what happens when, and what the user should expect from it.

Times are seconds after the agent has started. Polls run every 5 s, so a
change shows up within 5 s of its step; mails wait ``group_wait`` (2 s) for
company and follow-ups in the same group wait ``group_interval`` (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netalert.demo.devices import DemoEnvMonitor, DemoSwitch
from netalert.demo.trapsend import TrapSender, link_trap, poe_fault_trap

__all__ = ["STORM_COUNT", "STORM_SECONDS", "Step", "run_steps", "timeline"]

STORM_COUNT = 300
STORM_SECONDS = 2.0
HOT, COOL = 66.0, 45.0  # targets either side of the rule's 60 / 55 hysteresis

Action = Callable[[], Awaitable[object] | object]


@dataclass(frozen=True, slots=True)
class Step:
    """One scenario step: at ``at`` seconds, print ``text`` and run ``action``."""

    at: float
    text: str
    action: Action


def timeline(
    switch: DemoSwitch, env: DemoEnvMonitor, traps: TrapSender, *, speed: float = 1.0
) -> list[Step]:
    """The scenario, about 40 s of events; the rest of the run lets the mails arrive.

    Times stay in scenario seconds; the storm is sent ``speed`` times faster.
    """

    def send(index: int, up: bool) -> Action:
        return lambda: traps.send(link_trap(switch, index, up=up))

    async def storm() -> None:
        await traps.storm(
            lambda: poe_fault_trap(switch, 3), count=STORM_COUNT, seconds=STORM_SECONDS / speed
        )

    port2, port3 = switch.ports[2].descr, switch.ports[3].descr
    return [
        Step(
            5,
            f"{switch.name}: {port3} (ifIndex 3) loses its link; InterfaceDown "
            "fires once polls have seen it down for 5 s",
            lambda: switch.set_oper(3, up=False),
        ),
        Step(
            10,
            f"{switch.name} sends a linkDown trap for {port2} (ifIndex 2); "
            "the LinkDown rule fires at once",
            send(2, False),
        ),
        Step(
            11,
            f"{env.name}: the chassis heats up from ~{env.temperature} C toward {HOT:.0f} C; "
            "ChassisTooHot fires above 60 C",
            lambda: env.heat_to(HOT),
        ),
        Step(
            20,
            f"{switch.name} sends linkUp for ifIndex 2; it clears the LinkDown alert",
            send(2, True),
        ),
        Step(
            25,
            f"{switch.name}: {port3} is back up; InterfaceDown resolves at the next poll",
            lambda: switch.set_oper(3, up=True),
        ),
        Step(
            30,
            f"{switch.name}: trap storm, {STORM_COUNT} demoPoeFault traps in "
            f"{STORM_SECONDS:.0f} s (no rule matches them: they show on the status page, "
            "storm control keeps them from flooding anything)",
            storm,
        ),
        Step(
            31,
            f"{env.name}: the chassis cools down toward {COOL:.0f} C; the alert "
            "resolves only below 55 C (hysteresis)",
            lambda: env.heat_to(COOL),
        ),
    ]


async def run_steps(
    steps: list[Step],
    *,
    start: float,
    duration: float,
    stop: asyncio.Event,
    say: Callable[[float, str], None],
    speed: float = 1.0,
) -> int:
    """Runs the steps at their times (loop clock ``start`` + ``at`` / ``speed``).

    ``at`` and ``duration`` are scenario seconds; ``say`` gets the step's ``at``.
    Stops early when ``stop`` is set; steps later than ``duration`` do not run.
    Returns how many steps ran.
    """
    loop = asyncio.get_running_loop()
    done = 0
    for step in sorted(steps, key=lambda s: s.at):
        if step.at > duration:
            break
        delay = start + step.at / speed - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            break
        say(step.at, step.text)
        result = step.action()
        if inspect.isawaitable(result):
            await result
        done += 1
    return done
