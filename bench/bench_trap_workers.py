"""Trap intake on every core: sustained rate at 0 loss, 1 worker vs N, vs snmptrapd, same run.

Each receiver is a fresh process on a free port, fed v2c traps (6 varbinds) by
one sender spread over ``--sources`` loopback addresses (127.0.0.1, .2, ...)
each with its own socket, hence its own source port: the kernel steers a
datagram to a worker by its source, so one address would load one worker.
Storm control is out of the way (every trap is decoded, checked, named and
matched against the bench's 50 trap rules, :func:`bench.bench_rules.trap_rules_text`):
with one worker the agent does all of it; with N the workers also match the rules
and the agent takes their observations (``RuleEngine.on_trap`` with the workers'
matches), as ``netalert run`` does.
Receivers: snmptrapd logging each trap to a file, netalert with ``workers = 1``
(the agent receives itself) and with ``workers = N``, each socket with the
same receive buffer (``--rcvbuf``, snmptrapd's via ``serverRecvBuf``).

The offered rate climbs through ``--levels`` (``--seconds`` each); a level
counts when every trap sent arrived; the sustained rate is the highest such
level before the first loss. Then ``--loss-count`` traps at ``--loss-rate``/s
into N workers, which must lose none. CPU per 1000 traps (all processes of a
receiver, and the agent's alone) at each level is printed too. First, the sender's
own ceiling: what it offers into a socket nobody reads, so that a level it cannot
offer is not taken for the receiver's limit.

Run: .venv/bin/python -m bench.bench_trap_workers [--workers 2] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_traps  # noqa: E402
from bench.bench_rules import trap_rules_text  # noqa: E402
from bench.bench_traps import TRAP_RULES, cpu_ns, free_port, v2c_trap  # noqa: E402

_STORMLESS = {
    "storm_rate": 1e9,
    "storm_burst": 10**9,
    "storm_trap_rate": 1e9,
    "storm_trap_burst": 10**9,
}


def serve(port: int, workers: int, rcvbuf: int, state: str) -> None:
    """The receiver process: netalert's trap intake with ``workers`` and the trap rules."""
    from netalert.heap import HeapKeeper
    from netalert.mib import MibTree
    from netalert.rules.engine import RuleEngine
    from netalert.service import freeze_heap
    from netalert.traps.receiver import TrapReceiver
    from netalert.traps.workers import TrapWorkers

    counts = {"events": 0, "matches": 0}
    tree = MibTree.builtin()
    config = _bench_config(workers, port, rcvbuf, state)
    engine = RuleEngine(config, tree)

    def sink(event: Any, matched: Any = None) -> None:
        counts["events"] += event.storm_count
        counts["matches"] += len(engine.on_trap(event, matched))

    async def main() -> None:
        receiver: TrapReceiver | TrapWorkers
        # the heap as `netalert run` keeps it: frozen once started, what came since frozen
        # again every [agent] gc_freeze_interval (a collector walking the MIB tree costs more
        # than the traps)
        heap = HeapKeeper(interval=config.agent.gc_freeze_interval.total_seconds())
        if workers == 1:
            receiver = TrapReceiver(config.traps, sink=sink, tree=tree)
            await receiver.start()
        else:
            receiver = TrapWorkers(config, sink=sink, tree=tree, count=workers, matched=sink)
            await receiver.open()
            receiver.begin()
            receiver.set_rules(engine.token, config)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        freeze_heap()

        def tick() -> None:
            heap.tick()
            loop.call_later(1.0, tick)

        tick()

        def report() -> None:
            print(f"{counts['events']} {receiver.kernel_drops()} {counts['matches']}", flush=True)

        loop.add_signal_handler(signal.SIGUSR1, report)
        print("ready", flush=True)
        await stop.wait()
        await receiver.stop()

    asyncio.run(main())


def _tree_cpu_ns(pid: int) -> int:
    """CPU of ``pid`` and every process below it (the zygote, and the workers it forked):
    the children of each of its threads (the zygote is started from a thread of the
    agent's, so the main thread's list alone misses it and its workers)."""
    total = cpu_ns(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children: list[str] = []
            with contextlib.suppress(OSError):
                children = (task / "children").read_text().split()
            for child in children:
                with contextlib.suppress(OSError):  # it may exit meanwhile
                    total += _tree_cpu_ns(int(child))
    return total


class Netalert:
    def __init__(self, port: int, workers: int, rcvbuf: int, state: Path) -> None:
        self.port, self.name = port, f"netalert workers={workers}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--workers", str(workers),
             "--rcvbuf", str(rcvbuf), "--state", str(state)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line
        self.pid = self.proc.pid
        if workers > 1:
            time.sleep(3.0)  # the workers start (imports, the MIB tree) before traffic

    def received(self) -> tuple[int, int]:
        assert self.proc.stdout is not None
        os.kill(self.pid, signal.SIGUSR1)
        events, drops, _matches = self.proc.stdout.readline().split()
        return int(events), int(drops)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        self.proc.wait(60)


class Snmptrapd(bench_traps.Snmptrapd):
    """bench_traps' snmptrapd, logging each trap, with the workers' receive buffer."""

    def __init__(self, port: int, workdir: Path, rcvbuf: int) -> None:
        self.port, self.name = port, "snmptrapd"
        conf = workdir / "snmptrapd.conf"
        # serverRecvBuf: the receive buffer of snmptrapd's socket (snmp.conf token)
        conf.write_text(f"authCommunity log public\n[snmp] serverRecvBuf {rcvbuf // 2}\n")
        self.log = workdir / f"traps-{port}.log"
        self.proc = subprocess.Popen(
            ["snmptrapd", "-f", "-C", "-c", str(conf), "-n", "-Lf", str(self.log),
             "-F", "%V %a %N %W %v\n", f"udp:127.0.0.1:{port}"],
            env=dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir), MIBS=""),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.pid = self.proc.pid
        time.sleep(1.0)


def blast(port: int, data: bytes, count: int, rate: float, sources: int) -> float:
    """Sends ``count`` datagrams at ``rate``/s round-robin from ``sources`` loopback addresses."""
    socks = []
    for n in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1024 * 1024)
        sock.bind((f"127.0.0.{1 + n % 250}", 0))
        socks.append(sock)
    target = ("127.0.0.1", port)
    start = time.perf_counter()
    sent = 0
    chunk = max(1, int(rate / 1000))
    try:
        while sent < count:
            n = min(chunk, count - sent)
            for i in range(sent, sent + n):
                try:
                    socks[i % sources].sendto(data, target)
                except BlockingIOError:
                    time.sleep(0.0005)
            sent += n
            delay = start + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    finally:
        for sock in socks:
            sock.close()
    return time.perf_counter() - start


def offer(receiver: Any, data: bytes, count: int, rate: float, sources: int) -> dict[str, float]:
    """``count`` traps at ``rate``/s; what arrived once the receiver drained, and its CPU."""
    base, _ = receiver.received()
    cpu0, own0 = _tree_cpu_ns(receiver.pid), cpu_ns(receiver.pid)
    seconds = blast(receiver.port, data, count, rate, sources)
    last, stable, got = -1, 0, 0
    while stable < 5:
        time.sleep(0.2)
        got, _ = receiver.received()
        stable = stable + 1 if got == last else 0
        last = got
    got -= base
    cpu_ms = (_tree_cpu_ns(receiver.pid) - cpu0) / 1e6
    own_ms = (cpu_ns(receiver.pid) - own0) / 1e6  # the agent (snmptrapd: all of it)
    return {
        "rate": rate,
        "sent": count,
        "received": got,
        "lost": count - got,
        "send_rate": count / seconds,
        "cpu_ms_per_1000": 1000.0 * cpu_ms / max(got, 1),
        "agent_cpu_ms_per_1000": 1000.0 * own_ms / max(got, 1),
    }


def ceiling(data: bytes, sources: int, seconds: float = 1.0) -> float:
    """The most datagrams/s the sender offers on this machine now (into a socket nobody
    reads: the kernel drops what overflows it, cheaply)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < seconds:  # bounded by time: 50,000 at a time
            blast(sink.getsockname()[1], data, 50_000, 1e9, sources)
            sent += 50_000
        return sent / (time.perf_counter() - start)


def sustained(receiver: Any, data: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """The highest level of ``--levels`` at which nothing was lost."""
    steps: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    for rate in args.levels:
        res = offer(receiver, data, int(rate * args.seconds), rate, args.sources)
        steps.append(res)
        print(
            f"  {receiver.name}: {rate:,.0f}/s offered (sent at {res['send_rate']:,.0f}/s): "
            f"{res['lost']:,.0f} lost, {res['cpu_ms_per_1000']:.1f} CPU ms/1000 "
            f"({res['agent_cpu_ms_per_1000']:.1f} in the agent)",
            flush=True,
        )
        if res["lost"] > 0 or res["send_rate"] < 0.95 * rate:
            break  # the sender could not offer it, or the receiver lost traps
        best = res
    return {"sustained": best["rate"] if best else 0.0, "best": best, "steps": steps}


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = v2c_trap()
    out: dict[str, Any] = {
        "settings": {
            "workers": args.workers,
            "levels": args.levels,
            "seconds": args.seconds,
            "sources": args.sources,
            "rcvbuf": args.rcvbuf,
        }
    }
    out["sender_ceiling"] = ceiling(data, args.sources)
    print(f"sender alone: {out['sender_ceiling']:,.0f} traps/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-trap-workers-") as tmp:
        workdir = Path(tmp)
        kinds = {"snmptrapd": 0, "workers_1": 1, f"workers_{args.workers}": args.workers}
        for key, workers in kinds.items():
            port = free_port()
            receiver: Any = (
                Snmptrapd(port, workdir, args.rcvbuf)
                if not workers
                else Netalert(port, workers, args.rcvbuf, workdir)
            )
            try:
                out[key] = sustained(receiver, data, args)
            finally:
                receiver.close()
            print(
                f"{receiver.name}: sustained {out[key]['sustained']:,.0f}/s at 0 loss", flush=True
            )
        receiver = Netalert(free_port(), args.workers, args.rcvbuf, workdir)
        try:
            loss = offer(receiver, data, args.loss_count, args.loss_rate, args.sources)
        finally:
            receiver.close()
        out["loss"] = loss
        print(
            f"{receiver.name}: {args.loss_count:,} at {args.loss_rate:,.0f}/s: "
            f"{loss['lost']:,.0f} lost",
            flush=True,
        )
    many = out[f"workers_{args.workers}"]["sustained"]
    out["ratio_vs_1"] = many / max(out["workers_1"]["sustained"], 1.0)
    out["ratio_vs_snmptrapd"] = many / max(out["snmptrapd"]["sustained"], 1.0)
    print(
        f"sustained at 0 loss: {args.workers} workers {many:,.0f}/s = "
        f"{out['ratio_vs_1']:.2f}x 1 worker, {out['ratio_vs_snmptrapd']:.2f}x snmptrapd",
        flush=True,
    )
    return out


def _bench_config(workers: int, port: int, rcvbuf: int, state: str) -> Any:
    """The receivers' config: the bench's trap rules, storm control out of the way."""
    from netalert.config import load_config_text

    rules = load_config_text(trap_rules_text(TRAP_RULES))
    traps = {"listen": [f"127.0.0.1:{port}"], "rcvbuf": rcvbuf, "workers": workers, **_STORMLESS}
    update = {"traps": rules.traps.model_validate(traps)}
    if state:
        update["agent"] = rules.agent.model_copy(update={"state_dir": state})
    return rules.model_copy(update=update)


def workloads() -> SimpleNamespace:
    """The one-process workloads of :func:`stages` (and of ``bench.handover_instructions``):
    ``work()`` a worker's frame of 256 traps (decode, check, name, match, encode, frame),
    ``take(frame)`` the agent's share of it (unframe, check, observe), ``alone()`` the
    agent's own receiver doing all of it (``workers = 1``) for the same 256 traps."""
    from netalert.mib import MibTree
    from netalert.rules.engine import RuleEngine
    from netalert.traps import workwire
    from netalert.traps.receiver import TrapReceiver
    from netalert.traps.stats import TrapStats
    from netalert.traps.worker import Matcher, WorkerReceiver

    tree = MibTree.builtin()
    config = _bench_config(2, 162, 1 << 20, "")
    engine = RuleEngine(config, tree)
    items: list[Any] = []
    worker = WorkerReceiver(
        config.traps, sink=lambda trap: None, tree=tree, state_dir=None, defer_window=True
    )
    worker.channel = SimpleNamespace(add=items.append)  # type: ignore[assignment]
    worker.matcher = Matcher(engine.token, config, tree)
    worker.encoder = workwire.VarbindEncoder(config.traps.varbind_cache_entries, worker.stats)
    varbinds = workwire.VarbindCache(config.traps.varbind_cache_entries, TrapStats())
    agent = TrapReceiver(config.traps, sink=engine.on_trap, tree=tree)
    data = v2c_trap()
    batch = [(f"127.0.0.{1 + n % 64}", 40000 + n) for n in range(256)]  # a worker's frame

    def work() -> bytes:
        items.clear()
        for addr in batch:
            worker.handle(data, addr)
        return workwire.frame(workwire.EVENTS, items)

    def take(frame: bytes) -> None:
        for _, body in workwire.FrameReader().feed(frame):
            for trap, _, matched in workwire.check_events(body, varbinds):
                engine.on_trap(trap, matched)

    def alone() -> None:
        for addr in batch:
            agent.handle(data, addr)

    return SimpleNamespace(work=work, take=take, alone=alone, traps=len(batch), tree=tree)


def stages(rounds: int = 3) -> dict[str, float]:
    """CPU µs per trap of each stage, in this one process (no sockets, no other process:
    what the code costs, apart from the machine's scheduling): a worker's share (decode,
    check, name, match, encode, frame), the agent's (unframe, check, observe), and the
    agent's own receiver doing all of it (``workers = 1``). Best of 5 per round."""
    import gc

    loads = workloads()
    work, take, alone, traps = loads.work, loads.take, loads.alone, loads.traps

    def cost(fn: Any, *args: Any) -> float:
        best = math.inf
        for _ in range(5):
            start = time.process_time()
            for _ in range(20):
                fn(*args)
            best = min(best, (time.process_time() - start) / 20 / traps * 1e6)
        return best

    gc.collect()
    gc.freeze()  # as netalert run does once started
    frame = work()
    out: dict[str, float] = {}
    for _ in range(rounds):
        got = {"worker": cost(work), "agent": cost(take, frame), "workers_1": cost(alone)}
        for key, value in got.items():
            out[key] = min(out.get(key, math.inf), value)
    out["frame_bytes"] = len(frame) / traps
    out["handover"] = out["worker"] + out["agent"] - out["workers_1"]
    print(
        f"CPU µs per trap, one process: a worker {out['worker']:.1f}, the agent "
        f"{out['agent']:.1f} (together {out['worker'] + out['agent']:.1f}); the agent alone "
        f"(workers = 1) {out['workers_1']:.1f}, so the hand-over adds {out['handover']:.1f}; "
        f"{out['frame_bytes']:.0f} bytes per trap in a frame",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", default="", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rcvbuf", type=int, default=8 * 1024 * 1024)
    parser.add_argument(
        "--levels",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[
            5_000,
            10_000,
            15_000,
            20_000,
            25_000,
            30_000,
            40_000,
            50_000,
            60_000,
            70_000,
            80_000,
            90_000,
            100_000,
            120_000,
        ],
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sources", type=int, default=64)
    parser.add_argument("--loss-count", type=int, default=200_000)
    parser.add_argument("--loss-rate", type=float, default=10_000)
    parser.add_argument("--quick", action="store_true", help="3 levels of 2 s, 50,000 at 10,000/s")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--stages", action="store_true", help="CPU per trap of each stage only")
    args = parser.parse_args()
    if args.stages:
        figures = stages()
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return
    if args.serve:
        serve(args.serve, args.workers, args.rcvbuf, args.state)
        return
    if args.quick:
        args.levels, args.seconds, args.loss_count = [5_000, 10_000, 20_000], 2.0, 50_000
    figures = run(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
