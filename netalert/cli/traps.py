"""``netalert traps``: print decoded traps as they arrive, like ``snmptrapd -f -Lo``.

Same receiver, access control and storm control as the agent; no rules, no mail.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from netalert.cli.app import run_loop
from netalert.config.models import Config, TrapsConfig
from netalert.config.types import parse_hostport
from netalert.errors import NetalertError
from netalert.logtext import escape
from netalert.present import hex_text, value_text, varbind_json
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.traps.names import TrapTree
from netalert.traps.receiver import TrapReceiver

__all__ = ["format_event", "format_json", "run_traps"]

_WIRE = {
    SnmpType.INTEGER: "INTEGER",
    SnmpType.OCTET_STRING: "STRING",
    SnmpType.OID: "OID",
    SnmpType.IP_ADDRESS: "IpAddress",
    SnmpType.COUNTER32: "Counter32",
    SnmpType.GAUGE32: "Gauge32",
    SnmpType.TIMETICKS: "Timeticks",
    SnmpType.OPAQUE: "Opaque",
    SnmpType.COUNTER64: "Counter64",
}


def _value(vb: VarBind, name_of: Callable[[str], str]) -> str:
    """``INTEGER: down(2)``: the wire type as snmptrapd names it, then the value as
    :func:`netalert.present.value_text` writes it (strings quoted, binary as hex)."""
    kind, value = vb.type, vb.value
    if value is None:
        return value_text(kind, value)
    label = vb.label
    if not label and kind is SnmpType.OID and isinstance(value, str):
        label = name_of(value)
    text = value_text(kind, value, label)
    if isinstance(value, bytes):
        if value and text == hex_text(value):
            return "Hex-STRING: " + text
        return f'{_WIRE.get(kind, kind.value)}: "{escape(text, quoted=True)}"'
    return f"{_WIRE.get(kind, kind.value)}: {escape(text)}"


def format_event(event: TrapEvent, name_of: Callable[[str], str]) -> str:
    """Two lines, as snmptrapd prints a trap: who sent it, then its varbinds tab-separated."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.received))
    host = f"[{event.source}]" if ":" in event.source else event.source
    who = event.device or event.source
    kind = "INFORM" if event.inform else "TRAP"
    # What the sender chose reaches a terminal: escaped like a log value.
    security = f"user={escape(event.user)}" if event.user else f"v{event.version}"
    storm = f" STORM x{event.storm_count}" if event.storm_count > 1 else ""
    head = f"{stamp} {who} [UDP: {host}:{event.source_port}] {kind} {security}{storm}:"
    body = "\t".join(
        f"{(vb.name + '.' + vb.index) if vb.name and vb.index else (vb.name or vb.oid)}"
        f" = {_value(vb, name_of)}"
        for vb in event.varbinds
    )
    return f"{head}\n{body}"


def format_json(event: TrapEvent) -> str:
    """One JSON object per trap (bytes as hex, see :func:`netalert.present.json_value`;
    their text in ``label``)."""
    return json.dumps(
        {
            "received": event.received,
            "source": event.source,
            "source_port": event.source_port,
            "device": event.device,
            "version": event.version,
            "user": event.user,
            "inform": event.inform,
            "trap_oid": event.trap_oid,
            "trap": event.trap_name,
            "uptime": event.uptime,
            "storm_count": event.storm_count,
            "varbinds": [varbind_json(vb) for vb in event.varbinds],
        },
        ensure_ascii=False,
    )


async def _serve(
    traps: TrapsConfig, tree: TrapTree, cfg: Config | None, as_json: bool, out: TextIO
) -> None:
    def name_of(oid: str) -> str:
        return receiver.name(oid)

    def show(event: TrapEvent) -> None:
        out.write((format_json(event) if as_json else format_event(event, name_of)) + "\n")
        out.flush()

    receiver = TrapReceiver(
        traps,
        sink=show,
        tree=tree,
        devices=cfg.devices if cfg else (),
        state_dir=cfg.agent.state_dir if cfg else None,  # the engine ID `run` uses
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await receiver.start()
    listening = ", ".join(f"{h}:{p}" for h, p in receiver.addresses)
    print(f"netalert traps: listening on {listening} (Ctrl-C to stop)", file=sys.stderr)
    if traps.record is not None:
        print(
            f"netalert traps: recording every datagram to {traps.record}"
            " (sensitive: v1/v2c communities are in it)",
            file=sys.stderr,
        )
    try:
        await stop.wait()
    finally:
        await receiver.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stats = receiver.stats
        print(
            f"netalert traps: received {sum(stats.received.values())}, "
            f"rejected {sum(stats.rejected.values())} {dict(stats.rejected) or ''}".rstrip(),
            file=sys.stderr,
        )


def run_traps(
    cfg: Config | None,
    *,
    listen: str | None,
    as_json: bool,
    out: TextIO = sys.stdout,
    record: Path | None = None,
) -> int:
    """Runs the receiver until SIGINT/SIGTERM; returns the exit code (0, or 1 on error).

    ``record`` writes every datagram received to that pcap file (with the
    ``[traps] record_max_bytes`` / ``record_files`` bounds), instead of ``[traps] record``.
    """
    traps = cfg.traps if cfg is not None else TrapsConfig()
    if record is not None:
        traps = traps.model_copy(update={"record": record})
    if listen is not None:
        try:
            address = parse_hostport(listen).with_default(162)
        except ValueError as exc:
            print(f"--listen: {exc}", file=sys.stderr)
            return 2
        traps = traps.model_copy(update={"listen": [address]})
    from netalert.logs import setup_logging

    if cfg is not None:
        setup_logging(cfg.agent.log_level, cfg.agent.log_format, line_max=cfg.agent.log_line_max)
    else:
        setup_logging("info")
    try:
        from netalert.mib import MibTree, load_mibs

        tree = load_mibs(cfg.mibs, cfg.agent.state_dir) if cfg is not None else MibTree.builtin()
        run_loop(_serve(traps, tree, cfg, as_json, out))
    except NetalertError as exc:
        print(f"netalert traps: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
