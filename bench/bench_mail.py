"""Mail throughput: the durable outbox vs bare aiosmtplib, same sink, same run.

Usage: ``.venv/bin/python bench/bench_mail.py [--messages 1000] [--reps 5]``

An aiosmtpd ``Sink`` runs in its own process on a free 127.0.0.1 port. Each rep
sends the same small pre-built messages:

* ``bare``   - aiosmtplib ``send_message`` over one connection (the reference);
* ``outbox`` - ``Outbox.enqueue`` (one committed SQLite transaction each, WAL,
  state file on disk) then ``Sender.run_once`` draining over one connection;
  timed from the first enqueue to the last recorded delivery;
* ``outbox-live`` - a producer enqueues while ``Sender.run`` drains as it
  is woken, timed until the outbox is empty (the agent's real shape).

Prints msgs/s per workload (median of reps, min-max) and the ratio to ``bare``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netalert.mail.outbox import Outbox
from netalert.mail.sender import Sender
from netalert.mail.transport import SmtpTarget
from netalert.state.db import open_database

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
         "-l", f"{HOST}:{port}"],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as conn:
                conn.recv(100)
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the aiosmtpd sink did not start")


def messages(count: int) -> list[EmailMessage]:
    out = []
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = "netalert <alerts@example.org>"
        msg["To"] = "noc@example.net"
        msg["Subject"] = f"[FIRING] warning LinkDown on core-sw{n % 50}"
        msg["Message-ID"] = f"<bench.{n}@example.org>"
        msg.set_content(f"core-sw{n % 50} Gi0/{n % 48} is down\nValue: down\n")
        out.append(msg)
    return out


async def bare(port: int, msgs: list[EmailMessage]) -> float:
    start = time.perf_counter()
    async with aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False) as smtp:
        for msg in msgs:
            await smtp.send_message(msg)
    return time.perf_counter() - start


async def outbox_batch(port: int, msgs: list[EmailMessage], state: Path) -> float:
    db = open_database(state)
    outbox = Outbox(db)
    sender = Sender(outbox, SmtpTarget(HOST, port), batch_size=500)
    start = time.perf_counter()
    for msg in msgs:
        outbox.enqueue(msg)
    while outbox.pending():
        await sender.run_once()
    elapsed = time.perf_counter() - start
    await sender.close()
    db.close()
    return elapsed


async def outbox_live(port: int, msgs: list[EmailMessage], state: Path) -> float:
    db = open_database(state)
    outbox = Outbox(db)
    sender = Sender(outbox, SmtpTarget(HOST, port), batch_size=500)
    task = asyncio.create_task(sender.run())
    start = time.perf_counter()
    for i, msg in enumerate(msgs):
        outbox.enqueue(msg)
        sender.wake()
        if i % 10 == 9:
            await asyncio.sleep(0)  # let the sender run, as other stages would
    while outbox.pending():  # noqa: ASYNC110 - the outbox table is the completion signal
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await sender.stop()
    await task
    db.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    port = free_port()
    sink = start_sink(port)
    results: dict[str, list[float]] = {"bare": [], "outbox": [], "outbox-live": []}
    try:
        msgs = messages(args.messages)
        await bare(port, msgs[:50])  # warm-up
        for rep in range(args.reps):
            with tempfile.TemporaryDirectory() as tmp:
                results["bare"].append(args.messages / await bare(port, msgs))
                results["outbox"].append(
                    args.messages / await outbox_batch(port, msgs, Path(tmp) / f"a{rep}")
                )
                results["outbox-live"].append(
                    args.messages / await outbox_live(port, msgs, Path(tmp) / f"b{rep}")
                )
    finally:
        sink.terminate()
        sink.wait(10)
    ref = statistics.median(results["bare"])
    print(f"{args.messages} messages x {args.reps} reps, aiosmtpd Sink in its own process")
    print(f"{'workload':<14}{'msgs/s':>9}{'min-max':>16}{'ratio':>8}")
    for name, rates in results.items():
        med = statistics.median(rates)
        print(f"{name:<14}{med:>9.0f}{f'{min(rates):.0f}-{max(rates):.0f}':>16}{med / ref:>8.2f}")
    if args.json:
        figures = {
            name: {"median": statistics.median(rates), "rates": rates}
            for name, rates in results.items()
        }
        args.json.write_text(json.dumps({"messages": args.messages} | figures, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
