"""``netalert replay FILE.pcap``: recorded datagrams through decode → access → rules → notify.

Each UDP datagram sent to one of the config's ``[traps] listen`` ports (or
``--port``) is handed to a socketless :class:`~netalert.traps.receiver.TrapReceiver`
at the time it was captured; the accepted traps go through the
:class:`~netalert.ruletest.pipeline.Pipeline` (the agent's rule engine, alert
store, dispatcher and renderer) on a virtual clock that follows the capture,
ticking once a virtual second like the agent. Transitions and the
notifications that would be sent are printed; with ``mail`` they are also
put in the config's outbox and delivered.

SNMPv3 traps are checked against the configured users as live, except the
time window (RFC 3414): a recording is old by nature, so it is relaxed and
the summary says how many traps only passed because of that.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from netalert.alerts.model import Transition
from netalert.logtext import escape
from netalert.mail.mailer import Mailer
from netalert.mail.render import MailTemplates
from netalert.notify.routes import compile_routes
from netalert.prepare import Prepared
from netalert.ruletest.pipeline import Pipeline, Sent
from netalert.snmp.types import TrapEvent
from netalert.traps.pcap import read_datagrams
from netalert.traps.receiver import TrapReceiver

__all__ = ["ReplayOptions", "notification_line", "replay", "run_replay", "transition_line"]


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay: ``speed`` (1.0 real time; None as fast as possible), ports, mail."""

    capture: Path
    speed: float | None = 1.0
    ports: frozenset[int] = frozenset()
    mail: bool = False
    tail: float | None = None  # virtual seconds after the last datagram; None: routes' group_wait


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _labels(t: Transition) -> str:
    return " ".join(
        f"{k}={escape(v)}" for k, v in sorted(t.labels.items()) if k not in ("rule", "severity")
    )


_PORTS_SHOWN = 5  # the ports named in the summary when a capture's traps went elsewhere


def transition_line(at: float, t: Transition) -> str:
    """``TIME transition KIND RULE labels... fingerprint=FP value=...`` (values escaped)."""
    return (
        f"{_when(at)} transition {t.kind} {escape(t.rule)} {_labels(t)}"
        f" fingerprint={t.fingerprint} value={escape(t.value)}"
    )


def notification_line(sent: Sent) -> str:
    """``TIME notification ROUTE REASON to=... alerts=N subject="..."`` (values escaped)."""
    n = sent.notification
    return (
        f"{_when(sent.time)} notification {escape(n.route)} {n.reason}"
        f" to={escape(','.join(n.recipients))} alerts={len(n.alerts)}"
        f' subject="{escape(sent.subject, quoted=True)}"'
    )


async def replay(
    prepared: Prepared,
    templates: MailTemplates,
    options: ReplayOptions,
    *,
    out: TextIO | None = None,
    submit: Callable[[Sent], None] | None = None,
) -> int:
    """Replays ``options.capture``, printing to ``out`` (default: ``sys.stdout`` as it is
    when it runs); returns the exit code (0).

    Raises:
        ValueError: The capture is not pcap/pcapng or has an unknown link type.
        OSError: The capture cannot be read.
    """
    out = sys.stdout if out is None else out
    config = prepared.config
    ports = options.ports or frozenset(a.with_default(162).port or 162 for a in config.traps.listen)
    now = [0.0]
    received: list[TrapEvent] = []
    receiver = TrapReceiver(
        config.traps,
        sink=received.append,
        tree=prepared.tree,
        devices=config.devices,
        clock=lambda: now[0],
        monotonic=lambda: now[0],
        relaxed_window=True,
        state_dir=config.agent.state_dir,  # the engine ID informs were sent to
    )

    def told(sent: Sent) -> None:
        print(notification_line(sent), file=out, flush=True)
        if submit is not None:
            submit(sent)

    pipeline = Pipeline(
        prepared,
        templates=templates,
        on_notification=told,
        on_transition=lambda step: print(
            transition_line(step.time, step.transition), file=out, flush=True
        ),
        keep=False,
    )
    await receiver.start(listen=False)
    counts = {"datagrams": 0}
    skipped: Counter[int] = Counter()  # datagrams to other ports, by port
    next_tick: float | None = None
    started = time.monotonic()
    first: float | None = None

    def run_to(at: float) -> None:
        nonlocal next_tick
        while next_tick is not None and next_tick <= at:
            now[0] = next_tick
            receiver.tick(next_tick)
            _traps(received, pipeline, next_tick)
            pipeline.tick(next_tick)
            next_tick += 1.0

    try:
        for datagram in read_datagrams(options.capture):
            if datagram.destination[1] not in ports:
                skipped[datagram.destination[1]] += 1
                continue
            if first is None:
                first = datagram.time
                next_tick = float(int(datagram.time))
            if options.speed is not None:
                ahead = (datagram.time - first) / options.speed - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            run_to(datagram.time)
            now[0] = datagram.time
            counts["datagrams"] += 1
            receiver.handle(datagram.data, datagram.source)
            _traps(received, pipeline, datagram.time)
        if first is not None:
            tail = options.tail
            if tail is None:
                routes = compile_routes(config.routes).nodes()  # child routes wait too
                tail = max((r.group_wait.total_seconds() for r in routes), default=0.0)
            run_to(now[0] + tail + 1.0)
    finally:
        await receiver.stop()
        pipeline.close()
    stats = receiver.stats
    accepted = sum(stats.received.values())
    refused = sum(stats.rejected.values())
    reasons = " ".join(f"{k} {v}" for k, v in sorted(stats.rejected.items()))
    elsewhere = ""
    if skipped:  # a capture made on another port: say which, and how to replay it
        shown = skipped.most_common(_PORTS_SHOWN)  # a capture of all UDP has many ports
        by_port = ", ".join(f"{port}: {n}" for port, n in shown)
        if len(skipped) > len(shown):
            by_port += f", {len(skipped) - len(shown)} more ports"
        elsewhere = f", {skipped.total()} to other ports skipped ({by_port}; --port replays them)"
    print(
        f"replay: {counts['datagrams']} datagrams, {accepted} traps accepted,"
        f" {refused} refused{f' ({reasons})' if reasons else ''},"
        f" {pipeline.transitions} transitions, {pipeline.notifications} notifications"
        f"{elsewhere}",
        file=out,
    )
    if config.traps.users:
        print(
            "replay: the SNMPv3 time window is relaxed for a recording:"
            f" {receiver.window_relaxed} traps accepted only because of that",
            file=out,
        )
    return 0


def _traps(received: list[TrapEvent], pipeline: Pipeline, at: float) -> None:
    while received:
        pipeline.trap(received.pop(0), at)


async def run_replay(
    config_path: Path, options: ReplayOptions, *, out: TextIO | None = None
) -> int:
    """Loads and prepares the config, replays to ``out`` (default: ``sys.stdout`` as it is
    when it runs); with ``options.mail`` delivers for real.

    Mail goes through the config's outbox (``state_dir``) and SMTP server; the
    sender gets ``[agent] drain_timeout`` after the replay to deliver, and what
    is left stays in the outbox for the agent.

    Raises:
        ConfigError: The config is invalid.
        NetalertError: The state directory or the mail stage cannot be set up.
        ValueError, OSError: The capture cannot be read.
    """
    from netalert.config import load_config
    from netalert.mail.wiring import build_mail_stage
    from netalert.prepare import prepare
    from netalert.state import open_database

    out = sys.stdout if out is None else out
    base_dir = config_path.resolve().parent  # noqa: ASYNC240 - once, before anything runs
    config = load_config(config_path)
    prepared = prepare(config, agent=False)
    templates = MailTemplates(config.smtp.templates_dir)
    if not options.mail:
        return await replay(prepared, templates, options, out=out)
    db = open_database(config.agent.state_dir)
    try:
        stage = build_mail_stage(config, db, base_dir=base_dir)
        sender = asyncio.get_running_loop().create_task(stage.sender.run())
        try:
            code = await replay(
                prepared,
                templates,
                options,
                out=out,
                submit=lambda sent: _submit(stage.mailer, sent),
            )
            deadline = time.monotonic() + config.agent.drain_timeout.total_seconds()
            while stage.outbox.pending() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            print(
                f"replay: {stage.stats.sent_total} mails sent,"
                f" {stage.outbox.pending()} left in the outbox",
                file=out,
            )
        finally:
            await stage.sender.stop()
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return code
    finally:
        db.close()


def _submit(mailer: Mailer, sent: Sent) -> None:
    mailer.submit(sent.notification)
