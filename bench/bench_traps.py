"""Trap receive bench: netalert's receiver against net-snmp's snmptrapd, same blaster, same run.

Run: .venv/bin/python bench/bench_traps.py [--rounds 3] [--count 20000] [--quick]

Prints, per round and as medians:
- CPU ms per 1000 v2c traps (6 varbinds) for netalert and for snmptrapd (logging
  one line per trap to a file), and the ratio. netalert decodes and names each trap,
  then runs the agent's rule engine on it (``RuleEngine.on_trap``, built from a
  config of 50 trap rules: the trap index by OID and glob prefix, then the matching
  rules' ``where`` and the observations they produce; two rules match the linkDown,
  48 name other traps). The alert state, SQLite and mail after that are not in this
  figure (bench_pipeline measures them);
- loss for 100,000 v2c traps offered at 5,000/s with default settings;
- the v3 authPriv (SHA/AES-128) rate one core sustains (1000 / CPU ms per trap),
  through the v3 trap fast path and through pysnmp's engine (``v3_fast=False``),
  in the same run, and their ratio.
CPU is read from /proc/<pid>/task/*/schedstat of each receiver process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_rules import trap_engine  # noqa: E402
from bench.window import Window  # noqa: E402
from netalert.snmp.types import SnmpType  # noqa: E402
from netalert.snmp.wire.ber import PduType, decode_message  # noqa: E402
from netalert.snmp.wire.berenc import encode_message, encode_value  # noqa: E402
from netalert.snmp.wire.berv3 import V3Header, decode_v3_header  # noqa: E402
from tests.support.v3build import build_v3, scoped_pdu, varbind  # noqa: E402

V3_ENGINE = "8000000001020304"
V3_ARGS = [
    "-u", "benchuser", "-l", "authPriv",
    "-a", "SHA", "-A", "bench-auth-pw", "-x", "AES", "-X", "bench-priv-pw",
]  # fmt: skip


def v2c_trap() -> bytes:
    """The baseline's trap: a v2c linkDown with 6 varbinds."""
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=12345,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 123456),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
            ("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3),
            ("1.3.6.1.2.1.2.2.1.7.3", SnmpType.INTEGER, 1),
            ("1.3.6.1.2.1.2.2.1.8.3", SnmpType.INTEGER, 2),
            ("1.3.6.1.2.1.2.2.1.2.3", SnmpType.OCTET_STRING, b"GigabitEthernet0/3"),
        ],
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def target_pid(proc: subprocess.Popen[Any], wrap: Sequence[str]) -> int:
    """The process measured: ``proc`` itself, or under ``perf stat`` the child it started
    (valgrind runs its program in its own process)."""
    if not wrap or Path(wrap[0]).name != "perf":
        return proc.pid
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    for _ in range(200):
        with contextlib.suppress(OSError):
            if text := children.read_text().split():
                return int(text[0])
        time.sleep(0.05)
    raise RuntimeError("perf started no child")


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread may exit meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total


# --- the netalert side (a child process) ------------------------------------------


TRAP_RULES = 50  # rules in the receiver's rule engine: 2 match the linkDown


def rule_sink(tree: Any, counts: dict[str, int]) -> Callable[[Any], None]:
    """The bench's trap consumer: the agent's rule engine with TRAP_RULES trap rules
    (bench_rules' set); ``counts["events"]`` counts the traps taken."""
    engine = trap_engine(tree, TRAP_RULES)

    def sink(event: Any) -> None:
        counts["events"] += event.storm_count
        counts["matches"] += len(engine.on_trap(event))

    return sink


def serve(port: int, users: bool, v3_fast: bool = True) -> None:
    from netalert.config.models import TrapsConfig
    from netalert.mib import MibTree
    from netalert.traps.receiver import TrapReceiver

    tree = MibTree.builtin()
    counts = {"events": 0, "matches": 0}
    sink = rule_sink(tree, counts)

    cfg: dict[str, object] = {
        "listen": [f"127.0.0.1:{port}"],
        # The bench measures decode cost, not storm control: one source sends everything.
        "storm_rate": 1e9,
        "storm_burst": 10**9,
        "storm_trap_rate": 1e9,
        "storm_trap_burst": 10**9,
    }
    if users:
        cfg["users"] = [
            {
                "user": "benchuser",
                "auth_protocol": "SHA",
                "auth_password": "bench-auth-pw",
                "priv_protocol": "AES-128",
                "priv_password": "bench-priv-pw",
                "engine_ids": [V3_ENGINE],
            }
        ]

    async def main() -> None:
        receiver = TrapReceiver(
            TrapsConfig.model_validate(cfg), sink=sink, tree=tree, v3_fast=v3_fast
        )
        await receiver.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def report() -> None:
            stats = receiver.stats
            print(
                f"{counts['events']} {stats.datagrams} {receiver.kernel_drops()} "
                f"{sum(stats.rejected.values())} {stats.v3_fast} {counts['matches']}",
                flush=True,
            )

        loop.add_signal_handler(signal.SIGUSR1, report)
        # python -m bench.instructions: SIGUSR2 opens, then closes, the counted window
        window, counting = Window(), [False]

        def toggle() -> None:
            (window.stop if counting[0] else window.start)()
            counting[0] = not counting[0]
            print("window", flush=True)

        loop.add_signal_handler(signal.SIGUSR2, toggle)
        print("ready", flush=True)
        await stop.wait()
        await receiver.stop()

    if os.environ.get("BENCH_UVLOOP"):
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(main())
    else:
        asyncio.run(main())


class Netalert:
    name = "netalert"

    def __init__(
        self,
        port: int,
        users: bool = False,
        v3_fast: bool = True,
        wrap: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """``wrap``: a command the receiver runs under (perf stat, valgrind), with ``env``."""
        self.port = port
        self.proc = subprocess.Popen(
            [*wrap, sys.executable, __file__, "--serve", str(port)]
            + (["--users"] if users else [])
            + ([] if v3_fast else ["--v3-pysnmp"]),
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line
        self.pid = target_pid(self.proc, wrap)
        self.v3_fast = 0  # v3 traps the fast path accepted, as of the last received()
        self.matches = 0  # observations of the rule engine, as of the last received()

    def window(self) -> None:
        """Opens, then closes, the counted window (:mod:`bench.window`)."""
        assert self.proc.stdout is not None
        os.kill(self.pid, signal.SIGUSR2)
        assert self.proc.stdout.readline().strip() == "window"

    def received(self) -> tuple[int, int]:
        """(events, kernel drops)."""
        assert self.proc.stdout is not None
        os.kill(self.pid, signal.SIGUSR1)
        events, _, drops, _, fast, matches = self.proc.stdout.readline().split()
        self.v3_fast = int(fast)
        self.matches = int(matches)  # observations the rule engine made, as of now
        return int(events), int(drops)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)  # the measured one: perf then writes its count
        self.proc.wait(30)


class Snmptrapd:
    name = "snmptrapd"

    def __init__(
        self, port: int, workdir: Path, wrap: Sequence[str] = (), settle: float = 1.0
    ) -> None:
        """``wrap``: a command snmptrapd runs under; ``settle``: seconds it gets to start."""
        self.port = port
        conf = workdir / "snmptrapd.conf"
        conf.write_text(
            f"authCommunity log public\ncreateUser -e 0x{V3_ENGINE} benchuser SHA bench-auth-pw "
            "AES bench-priv-pw\n"
            # informs: the same user for snmptrapd's own engine ID
            "createUser benchuser SHA bench-auth-pw AES bench-priv-pw\n"
            "authUser log benchuser\n"
        )
        self.log = workdir / f"traps-{port}.log"
        self.proc = subprocess.Popen(
            [*wrap, "snmptrapd", "-f", "-C", "-c", str(conf), "-n", "-Lf", str(self.log),
             "-F", "%V %a %N %W %v\n", f"udp:127.0.0.1:{port}"],
            env=dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir), MIBS=""),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.pid = target_pid(self.proc, wrap)
        time.sleep(settle)

    def received(self) -> tuple[int, int]:
        try:
            text = self.log.read_bytes()
        except OSError:
            return 0, 0
        return text.count(b"\n") - text.count(b"NET-SNMP version"), 0

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)  # the measured one: perf then writes its count
        self.proc.wait(30)


# --- the blaster ----------------------------------------------------------------------


def blast(port: int, data: bytes, count: int, rate: float) -> float:
    """Sends ``count`` copies of ``data``, paced at ``rate``/s (0: unpaced); returns seconds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    target = ("127.0.0.1", port)
    start = time.perf_counter()
    sent = 0
    chunk = max(1, int(rate / 1000)) if rate else 64
    while sent < count:
        n = min(chunk, count - sent)
        for _ in range(n):
            try:
                sock.sendto(data, target)
            except BlockingIOError:
                time.sleep(0.0005)
        sent += n
        if rate:
            delay = start + sent / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    sock.close()
    return time.perf_counter() - start


def measure(
    receiver: Netalert | Snmptrapd, data: bytes, count: int, rate: float
) -> dict[str, float]:
    base, _ = receiver.received()
    hits = getattr(receiver, "matches", 0)
    cpu0 = cpu_ns(receiver.pid)
    seconds = blast(receiver.port, data, count, rate)
    last, stable = -1, 0
    got = drops = 0
    while stable < 5:  # wait until the receiver has drained its buffer
        time.sleep(0.1)
        got, drops = receiver.received()
        stable = stable + 1 if got == last else 0
        last = got
    cpu = (cpu_ns(receiver.pid) - cpu0) / 1e6
    got -= base
    out = {
        "received": got,
        "loss_pct": 100.0 * (count - got) / count,
        "cpu_ms_per_1000": 1000.0 * cpu / max(got, 1),
        "send_s": seconds,
        "drops": drops,
    }
    if isinstance(receiver, Netalert):  # the rule engine's observations per trap received
        out["rule_hits_per_trap"] = (receiver.matches - hits) / max(got, 1)
    return out


def capture_v3(workdir: Path) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        subprocess.run(
            ["snmptrap", "-v", "3", "-e", f"0x{V3_ENGINE}", *V3_ARGS, f"127.0.0.1:{port}", "",
             "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3", "1.3.6.1.2.1.2.2.1.7.3",
             "i", "1", "1.3.6.1.2.1.2.2.1.8.3", "i", "2", "1.3.6.1.2.1.2.2.1.2.3", "s",
             "GigabitEthernet0/3"],
            check=True, env=dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir)),
        )  # fmt: skip
        return sock.recv(65535)


def discover(port: int, timeout: float = 30.0) -> tuple[bytes, int, int]:
    """The receiver's engine ID, boots and time, from the Report to a discovery probe
    (RFC 3414 section 4), as an inform sender learns them."""
    probe = build_v3(
        b"",
        scoped_pdu([], pdu=PduType.GET),
        engine=b"",
        level="noAuthNoPriv",
        reportable=True,
        boots=0,
        time=0,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(probe, ("127.0.0.1", port))
        header = decode_v3_header(sock.recv(65535))
    assert isinstance(header, V3Header), header
    return header.engine_id, header.boots, header.time


def v3_inform(port: int) -> bytes:
    """An authPriv (SHA/AES-128) v3 inform, 6 varbinds, for the receiver on ``port``: its
    engine ID, boots and time discovered first; sent again and again within 150 s of that,
    each copy is authentic and in time."""
    engine, boots, now = discover(port)
    varbinds = [
        varbind(oid, encode_value(kind, value))
        for oid, kind, value in decode_message(v2c_trap()).varbinds  # type: ignore[union-attr]
    ]
    return build_v3(
        "benchuser",
        scoped_pdu(varbinds, pdu=PduType.INFORM, context_engine=engine),
        engine=engine,
        level="authPriv",
        auth="SHA",
        auth_password="bench-auth-pw",
        priv="AES-128",
        priv_password="bench-priv-pw",
        boots=boots,
        time=now,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int)
    parser.add_argument("--users", action="store_true")
    parser.add_argument("--v3-pysnmp", action="store_true", help="serve: v3 through pysnmp only")
    parser.add_argument("--v3-count", type=int, default=10_000)
    parser.add_argument("--v3-rate", type=float, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--quick", action="store_true", help="skip the 100k loss run")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.users, not args.v3_pysnmp)
        return
    data = v2c_trap()
    print(
        f"v2c trap: {len(data)} bytes, 6 varbinds; "
        f"{args.count} traps at {args.rate:.0f}/s per round"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ratios, ours, theirs = [], [], []
        for rnd in range(args.rounds):
            row = {}
            for kind in ("snmptrapd", "netalert"):
                port = free_port()
                rec: Netalert | Snmptrapd = (
                    Snmptrapd(port, workdir) if kind == "snmptrapd" else Netalert(port)
                )
                try:
                    row[kind] = measure(rec, data, args.count, args.rate)
                finally:
                    rec.close()
            ratio = row["netalert"]["cpu_ms_per_1000"] / row["snmptrapd"]["cpu_ms_per_1000"]
            ratios.append(ratio)
            ours.append(row["netalert"]["cpu_ms_per_1000"])
            theirs.append(row["snmptrapd"]["cpu_ms_per_1000"])
            print(
                f"round {rnd + 1}: snmptrapd {row['snmptrapd']['cpu_ms_per_1000']:.1f} ms/1000 "
                f"(loss {row['snmptrapd']['loss_pct']:.2f}%), netalert "
                f"{row['netalert']['cpu_ms_per_1000']:.1f} ms/1000 (loss "
                f"{row['netalert']['loss_pct']:.2f}%), CPU ratio netalert/snmptrapd {ratio:.2f}"
            )
        print(
            f"median CPU per 1000 v2c traps: netalert {statistics.median(ours):.1f} ms, "
            f"snmptrapd {statistics.median(theirs):.1f} ms, ratio {statistics.median(ratios):.2f} "
            "(< 1 means netalert uses less CPU)"
        )
        if not args.quick:
            rec = Netalert(free_port())
            try:
                res = measure(rec, data, 100_000, 5_000)
            finally:
                rec.close()
            print(
                f"netalert, 100,000 v2c traps at 5,000/s, default settings: received "
                f"{res['received']:.0f}, loss {res['loss_pct']:.3f}%, "
                f"kernel drops {res['drops']:.0f}"
            )
        v3 = capture_v3(workdir)
        rates = {}
        for path, fast in (("pysnmp", False), ("fast path", True)):
            rec = Netalert(free_port(), users=True, v3_fast=fast)
            try:
                res = measure(rec, v3, args.v3_count, args.v3_rate)
            finally:
                rec.close()
            rates[path] = per_core = 1e6 / max(res["cpu_ms_per_1000"], 1e-9)
            print(
                f"netalert v3 authPriv (SHA/AES-128) via {path}, {args.v3_count:,} at "
                f"{args.v3_rate:,.0f}/s: received {res['received']:.0f} "
                f"({rec.v3_fast} by the fast path), loss {res['loss_pct']:.2f}%, "
                f"CPU {res['cpu_ms_per_1000']:.1f} ms/1000 => {per_core:,.0f} traps/s per core"
            )
        print(
            f"v3 authPriv traps/s per core: fast path {rates['fast path']:,.0f}, pysnmp "
            f"{rates['pysnmp']:,.0f}, ratio {rates['fast path'] / rates['pysnmp']:.1f}x"
        )


if __name__ == "__main__":
    main()
