"""``netalert demo``: simulated devices, the real agent and a mail sink on one event loop.

Order: devices and the sink first (the agent's first poll must find them),
then the config for the ports they got, then the agent; the scenario's clock
starts when the agent is up. At the end the agent drains like under SIGTERM,
so mails still grouped go out before the sink stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netalert.config import load_config
from netalert.demo.config import (
    MAX_SPEED,
    DemoEndpoints,
    DemoSetupError,
    demo_config_text,
    demo_mib_dir,
)
from netalert.demo.devices import DemoEnvMonitor, DemoSwitch
from netalert.demo.responder import SimulatedAgent
from netalert.demo.scenario import Step, run_steps, timeline
from netalert.demo.sink import MailSink, ReceivedMail, format_mail
from netalert.demo.trapsend import TrapSender

if TYPE_CHECKING:
    from netalert.service import Agent

__all__ = ["DemoResult", "run_demo"]

Say = Callable[[str], None]
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What a demo run produced."""

    mails: int
    firing: int
    resolved: int
    traps_sent: int
    steps: int


def _print(line: str) -> None:
    print(line, flush=True)


def _free_port(kind: int, host: str) -> int:
    # Bind, read, close: another program could take the port before the agent
    # binds it, which on loopback and for a few seconds is unlikely enough.
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _second_loopback() -> str:
    """127.0.0.2 where the system routes all of 127/8 to lo (Linux), else 127.0.0.1.

    The agent names a trap's device by its source address; two devices on the
    same address would make that ambiguous.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return LOOPBACK
    return "127.0.0.2"


def _scaled_clock(speed: float) -> Callable[[], float]:
    """A monotonic clock running ``speed`` times faster (the simulated devices' time)."""
    base = time.monotonic()
    return lambda: base + (time.monotonic() - base) * speed


async def run_demo(
    duration: float = 60.0, *, say: Say = _print, verbose: bool = False, speed: float = 1.0
) -> DemoResult:
    """Runs the demo for ``duration`` seconds of scenario time (Ctrl-C ends it early).

    At ``speed`` N (1 to :data:`MAX_SPEED`) the scenario, the devices' clocks and
    the agent's intervals run N times faster: the same mails in 1/N of the time.

    Raises:
        DemoSetupError: ``speed`` is out of range, the demo MIB cannot be found or a
            part cannot start.
        NetalertError: The agent cannot start (as ``netalert run`` would report).
    """
    from netalert.logs import setup_logging

    if not 1.0 <= speed <= MAX_SPEED:
        raise DemoSetupError(f"speed must be between 1 and {MAX_SPEED:g}, got {speed:g}")

    setup_logging("info" if verbose else "warning")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with tempfile.TemporaryDirectory(prefix="netalert-demo-") as tmp:
            return await _run(Path(tmp), duration, stop, say, speed)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(
    tmp: Path, duration: float, stop: asyncio.Event, say: Say, speed: float
) -> DemoResult:
    loop = asyncio.get_running_loop()
    start = loop.time()  # reset when the agent is up
    counts = {"FIRING": 0, "RESOLVED": 0}

    def stamp(at: float, text: str) -> None:
        say(f"[t+{at:4.0f}s] {text}")

    def scenario_time() -> float:
        return (loop.time() - start) * speed

    def on_mail(mail: ReceivedMail) -> None:
        if mail.state:
            counts[mail.state] += 1
        stamp(scenario_time(), f"e-mail arrived: {mail.subject}")
        for line in format_mail(mail, len(sink.received)):
            say(line)

    say("netalert demo: simulated devices, the real agent, a local mail sink (all on loopback)")
    mib_dir = demo_mib_dir()
    clock = _scaled_clock(speed)
    switch, env = DemoSwitch(clock=clock), DemoEnvMonitor(clock=clock)
    devices = [SimulatedAgent(switch.table), SimulatedAgent(env.table)]
    sink = MailSink(on_mail)
    traps: TrapSender | None = None
    sent = 0
    running: _Running | None = None
    agent: Agent | None = None
    try:
        await devices[0].start(LOOPBACK)
        await devices[1].start(_second_loopback())
        await sink.start(LOOPBACK)
        endpoints = DemoEndpoints(
            switch=(devices[0].host, devices[0].port),
            env=(devices[1].host, devices[1].port),
            traps=(LOOPBACK, _free_port(socket.SOCK_DGRAM, LOOPBACK)),
            smtp=(sink.host, sink.port),
            web=(LOOPBACK, _free_port(socket.SOCK_STREAM, LOOPBACK)),
        )
        path = tmp / "config.toml"
        text = demo_config_text(endpoints, tmp / "state", mib_dir, speed=speed)
        path.write_text(text, encoding="utf-8")
        traps = TrapSender(endpoints.traps, source=devices[0].host)
        say(
            f"  {switch.name:10} SNMPv2c device on {devices[0].host}:{devices[0].port} "
            f"(community public; try: netalert poll {devices[0].host}:{devices[0].port} "
            "--walk IF-MIB::ifOperStatus)"
        )
        say(
            f"  {env.name:10} SNMPv2c device on {devices[1].host}:{devices[1].port} "
            "(NETALERT-DEMO-MIB)"
        )
        say(f"  mail sink  SMTP on {sink.host}:{sink.port}, prints every e-mail it receives")
        say(f"  config     {path} (removed when the demo ends)")
        say("starting the agent (compiling the MIBs takes a few seconds) ...")
        running = await _start_agent(path, stop)
        if running is None:
            return DemoResult(0, 0, 0, 0, 0)
        say(f"status page: http://{endpoints.web[0]}:{endpoints.web[1]}/")
        say(f"trap receiver: {endpoints.traps[0]}:{endpoints.traps[1]}/udp")
        pace = f" at {speed:g}x speed ({duration / speed:.0f} s)" if speed != 1 else ""
        say(f"the scenario runs for {duration:.0f} s{pace}; press Ctrl-C to stop earlier")
        start = loop.time()
        steps: list[Step] = timeline(switch, env, traps, speed=speed)
        ran = await run_steps(
            steps,
            start=start,
            duration=duration,
            stop=stop,
            say=stamp,
            speed=speed,
        )
        end = start + duration / speed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(end - loop.time(), 0))
        why = "Ctrl-C" if stop.is_set() else "time is up"
        stamp(scenario_time(), f"{why}: stopping the agent (it sends what is still queued)")
        agent = await _stop_agent(running)
        running = None
    finally:
        if running is not None:
            await _stop_agent(running)
        await sink.stop()
        for device in devices:
            await device.stop()
        if traps is not None:
            sent = traps.sent
            traps.close()
    mails = len(sink.received)
    say("")
    say(
        f"summary: {mails} e-mails received: firing {counts['FIRING']}, "
        f"resolved {counts['RESOLVED']}"
    )
    if agent is not None:
        c = agent.counters
        say(
            f"  agent: {c['polls']} polls, {c['traps']} trap events from {sent} traps sent "
            f"(storm control folds floods), {c['transitions']} alert transitions, "
            f"{c['notifications']} notifications"
        )
    return DemoResult(mails, counts["FIRING"], counts["RESOLVED"], sent, ran)


@dataclass(slots=True)
class _Running:
    """The agent's task and, once it has started, the agent."""

    task: asyncio.Task[Agent]
    agent: Agent | None = None


async def _start_agent(path: Path, stop: asyncio.Event) -> _Running | None:
    """Loads and prepares the config off the loop, starts the agent, waits until it runs.

    Returns None when Ctrl-C came first.

    Raises:
        ConfigError: The demo's config is invalid (a bug of the demo).
        NetalertError: A stage cannot start.
    """
    from netalert.service import prepare, run_agent

    loop = asyncio.get_running_loop()
    config = load_config(path)
    prepared = await loop.run_in_executor(None, prepare, config)
    if stop.is_set():
        return None
    started: asyncio.Future[Agent] = loop.create_future()

    def on_started(agent: Agent) -> None:
        if not started.done():
            started.set_result(agent)

    task = loop.create_task(
        run_agent(prepared, config_path=path, on_started=on_started, install_signals=False),
        name="demo-agent",
    )
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # raises why the agent could not start
        raise DemoSetupError("the agent stopped before it started")
    running = _Running(task, started.result())
    return running


async def _stop_agent(running: _Running) -> Agent:
    """Asks the running agent to drain and waits for it."""
    if running.agent is not None:
        running.agent.request_stop()
    return await running.task
