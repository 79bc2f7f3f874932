"""Instructions per trap and per poll, netalert beside net-snmp, counted by perf or callgrind.

Time ratios move with a shared machine's load; instruction counts barely do.
This runs the trap and poll workloads of ``bench.bench_traps`` and
``bench.bench_poll`` with each process under a counter:

* ``perf stat -e instructions:u`` when it works here (a PMU the kernel exposes),
* else ``valgrind --tool=callgrind`` (instructions executed, counted by
  emulation: exact and repeatable, 20-100x slower, so the workloads are small).

netalert's receiver and poller count only their workload (:mod:`bench.window`:
the MIB tree and the imports load uncounted): instructions / traps received, or
/ polls. The references (snmptrapd logging each trap, bench/nsbench.c polling
through the net-snmp C library) run twice, with a small and a large workload,
and per trap or poll = (instructions of the large run - of the small one) /
(what the large run received or polled - the small one), so their start-up
falls out.

Run: .venv/bin/python -m bench.instructions [--tool perf|callgrind] [--traps 2000]
     [--polls 300] [--only traps,v3_traps,informs,poll_v2c,poll_v3] [--json FILE]
     [--tree DIR] [--keep DIR]
(v3_traps: authPriv SHA/AES-128 traps from ``snmptrap``, the bench's user; informs: the
same level, each answered; ``--traps`` of each.)

``--tree DIR`` counts the trap receiver of another checkout (an older commit, to find
where a change added instructions): that tree's own ``bench/bench_traps.py`` serves,
run with this venv's Python, and the counted window is added from outside
(:data:`TREE_SERVE`). ``--keep DIR`` leaves the counters' output files in DIR (for
``callgrind_annotate``) instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_traps import (  # noqa: E402
    Netalert,
    Snmptrapd,
    capture_v3,
    free_port,
    measure,
    v2c_trap,
    v3_inform,
)
from bench.window import ENV, LIB_SOURCE  # noqa: E402

__all__ = ["TREE_SERVE", "Counter", "detect", "main", "read_callgrind", "read_perf"]

PERF_EVENT = "instructions:u"

# python -c TREE_SERVE TREE WINDOW_PY <bench_traps' command line: python FILE --serve PORT ...>
# The receiver of the checkout TREE, which may predate the counted window: its own
# bench_traps.serve, with the window's SIGUSR2 toggle (bench/window.py of this tree, loaded
# by path) installed before it. Only TREE is on the path, so TREE's netalert is the one run.
TREE_SERVE = """\
import importlib.util, os, signal, sys
tree, window_py, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:] = [tree] + [p for p in sys.path if p not in ("", os.getcwd())]
spec = importlib.util.spec_from_file_location("counted_window", window_py)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
window, counting = module.Window(), [False]
def toggle(*_):
    (window.stop if counting[0] else window.start)()
    counting[0] = not counting[0]
    print("window", flush=True)
signal.signal(signal.SIGUSR2, toggle)
from bench.bench_traps import serve
import netalert
assert netalert.__file__.startswith(tree), netalert.__file__
serve(int(args[args.index("--serve") + 1]), "--users" in args, "--v3-pysnmp" not in args)
"""


def read_perf(text: str, event: str = PERF_EVENT) -> int:
    """The count of ``event`` in ``perf stat -x,`` output.

    Raises:
        ValueError: ``event`` is missing or perf could not count it.
    """
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] == event:
            return int(float(fields[0]))  # "<not supported>" / "<not counted>" raise here
    raise ValueError(f"no {event} count in perf's output")


def read_callgrind(text: str) -> int:
    """The instructions (Ir) a callgrind output file totals.

    Raises:
        ValueError: The file has no ``totals:`` or ``summary:`` line.
    """
    found = {}
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            key, value = line.split()[:2]
            found[key] = int(value)
    # with instrumentation switched on late, "summary:" stays 0 and "totals:" holds the count
    if "totals:" in found:
        return found["totals:"]
    if "summary:" in found:
        return found["summary:"]
    raise ValueError("no totals in callgrind's output")


def detect(perf_event: str = PERF_EVENT) -> str | None:
    """``perf`` when ``perf stat -e instructions:u true`` counts, else ``callgrind``, else None."""
    if shutil.which("perf"):
        out = subprocess.run(
            ["perf", "stat", "-x,", "-e", perf_event, "true"],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            read_perf(out.stderr, perf_event)
            return "perf"
        except ValueError:
            pass
    return "callgrind" if shutil.which("valgrind") else None


class Counter:
    """Wraps commands in the tool and reads back what it counted."""

    def __init__(self, tool: str, workdir: Path, perf_event: str = PERF_EVENT) -> None:
        self.tool, self.workdir, self.event = tool, workdir, perf_event
        self._n = 0
        self._lib: Path | None = None

    def _out(self) -> Path:
        self._n += 1
        return self.workdir / f"count-{self._n}.out"

    def whole(self) -> tuple[list[str], Path]:
        """A prefix that counts a whole process, and the file its count goes to."""
        out = self._out()
        if self.tool == "perf":
            return ["perf", "stat", "-x,", "-e", self.event, "-o", str(out), "--"], out
        return ["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={out}"], out

    def windowed(self) -> tuple[list[str], dict[str, str], Path]:
        """A prefix, an environment and the output file for a process with a Window."""
        import os

        out = self._out()
        if self.tool == "perf":
            ctl, ack = self.workdir / f"ctl-{self._n}", self.workdir / f"ack-{self._n}"
            os.mkfifo(ctl)
            os.mkfifo(ack)
            prefix = ["perf", "stat", "-x,", "-e", self.event, "-o", str(out), "--delay=-1"]
            prefix += [f"--control=fifo:{ctl},{ack}", "--"]
            return prefix, dict(os.environ, **{ENV: f"perf:{ctl},{ack}"}), out
        if self._lib is None:
            source = self.workdir / "window.c"
            source.write_text(LIB_SOURCE)
            self._lib = self.workdir / "libwindow.so"
            cc = shutil.which("cc") or shutil.which("gcc") or "cc"
            subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(self._lib), str(source)],
                           check=True)  # fmt: skip
        prefix = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no"]
        prefix.append(f"--callgrind-out-file={out}")
        return prefix, dict(os.environ, **{ENV: f"callgrind:{self._lib}"}), out

    def read(self, out: Path) -> int:
        text = out.read_text()
        return read_perf(text, self.event) if self.tool == "perf" else read_callgrind(text)


def _difference(runs: list[tuple[int, float]]) -> float:
    """Per unit from (instructions, units) of a small and a large run."""
    (i1, n1), (i2, n2) = runs
    if n2 <= n1:
        raise ValueError(f"the large run did no more than the small one ({n1} vs {n2})")
    return (i2 - i1) / (n2 - n1)


def traps(
    counter: Counter, count: int, rate: float, kind: str = "traps", tree: Path | None = None
) -> dict[str, Any]:
    """Instructions per v2c trap (``traps``), v3 authPriv trap (``v3_traps``) or v3 authPriv
    inform, answered (``informs``): netalert's receiver (windowed; ``tree``: another
    checkout's), snmptrapd (differenced)."""
    slow = counter.tool == "callgrind"
    prefix, env, out = counter.windowed()
    if tree is not None:  # that tree's serve runs in place of this one's (TREE_SERVE)
        window_py = str(Path(__file__).with_name("window.py"))
        prefix = [*prefix, sys.executable, "-c", TREE_SERVE, str(tree.resolve()), window_py]
    port = free_port()
    v3_trap = capture_v3(counter.workdir) if kind == "v3_traps" else b""

    def data(port: int) -> bytes:
        if kind == "informs":
            return v3_inform(port)  # the receiver's engine ID, boots and time discovered
        return v3_trap or v2c_trap()

    rec = Netalert(port, users=kind != "traps", wrap=prefix, env=env)
    try:
        measure(rec, data(port), max(count // 10, 10), rate)  # first-trap costs uncounted
        rec.window()
        res = measure(rec, data(port), count, rate)
        rec.window()
    finally:
        rec.close()
    ours = counter.read(out) / max(res["received"], 1)
    runs = []
    for n in (count // 4, count):
        prefix, out = counter.whole()
        port = free_port()
        ref = Snmptrapd(port, counter.workdir, wrap=prefix, settle=8.0 if slow else 1.0)
        try:
            got = measure(ref, data(port), n, rate)
        finally:
            ref.close()
        runs.append((counter.read(out), got["received"]))
    theirs = _difference(runs)
    return {
        "count": count,
        "rate": rate,
        "netalert": ours,
        "netalert_received": res["received"],
        "snmptrapd": theirs,
        "snmptrapd_runs": runs,
        "ratio": ours / theirs,
    }


def _poll_child(args: argparse.Namespace) -> None:
    """The netalert side of a poll count: the MIB tree uncounted, then the polls, windowed."""
    from bench.bench_poll import run_netalert
    from bench.window import Window
    from netalert.mib import MibTree

    warnings.simplefilter("ignore", DeprecationWarning)
    tree = MibTree.builtin()
    gc.collect()
    gc.freeze()
    result = asyncio.run(run_netalert(tree, args.poll_child, args.polls, args.v3, Window()))
    print(json.dumps(result), flush=True)


def polls(counter: Counter, count: int, v3: bool) -> dict[str, Any]:
    """Instructions per poll: netalert's poller (windowed), nsbench.c (differenced)."""
    from bench.bench_poll import build_c, run_c
    from tests.support.snmpd import DEFAULT_USER, Snmpd

    agent = Snmpd(directory=counter.workdir / f"snmpd-{int(v3)}", users=[DEFAULT_USER])
    agent.start(listen_host="0.0.0.0")
    try:
        prefix, env, out = counter.windowed()
        cmd = [*prefix, sys.executable, "-m", "bench.instructions", "--poll-child"]
        cmd += [str(agent.port), "--polls", str(count)] + (["--v3"] if v3 else [])
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=1800
        )
        res = json.loads(done.stdout.strip().splitlines()[-1])
        ours = counter.read(out) / max(res["polls"], 1)
        figures: dict[str, Any] = {
            "count": count,
            "netalert": ours,
            "netalert_failed": res["failed"],
            "netalert_varbinds_per_poll": res["samples"] / max(res["polls"], 1),
        }
        exe = build_c(counter.workdir)
        if exe is not None:
            runs = []
            for n in (count // 4, count):
                prefix, out = counter.whole()
                got = run_c(exe, agent, n, v3, wrap=prefix)
                runs.append((counter.read(out), got["polls"]))
            figures |= {"net-snmp": _difference(runs), "net_snmp_runs": runs}
            figures["ratio"] = ours / figures["net-snmp"]
        return figures
    finally:
        agent.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    tool = args.tool or detect(args.perf_event)
    if tool is None:
        raise SystemExit("neither `perf stat -e instructions:u` nor valgrind works here")
    slow = tool == "callgrind"
    tree = args.tree
    steps: dict[str, Callable[[Counter], dict[str, Any]]] = {
        "traps": lambda c: traps(c, args.traps, 300.0 if slow else 5_000.0, tree=tree),
        "v3_traps": lambda c: traps(c, args.traps, 200.0 if slow else 2_000.0, "v3_traps", tree),
        "informs": lambda c: traps(c, args.traps, 200.0 if slow else 2_000.0, "informs", tree),
        "poll_v2c": lambda c: polls(c, args.polls, v3=False),
        "poll_v3": lambda c: polls(c, args.polls, v3=True),
    }
    only = args.only.split(",") if args.only else list(steps)
    out: dict[str, Any] = {"tool": tool, "event": args.perf_event if tool == "perf" else "Ir"}
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        workdir = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        counter = Counter(tool, workdir, args.perf_event)
        for name in only:
            out[name] = steps[name](counter)
            fig = out[name]
            ref = fig.get("snmptrapd", fig.get("net-snmp"))
            print(
                f"{name} ({tool}): netalert {fig['netalert']:,.0f} instructions per "
                f"{ {'traps': 'trap', 'v3_traps': 'trap', 'informs': 'inform'}.get(name, 'poll') }"
                + (f", net-snmp {ref:,.0f}, ratio {fig['ratio']:.2f}x" if ref else ""),
                flush=True,
            )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=("perf", "callgrind"), help="default: detected")
    parser.add_argument("--traps", type=int, default=2_000, help="v2c traps to netalert")
    parser.add_argument("--polls", type=int, default=300, help="polls per side")
    parser.add_argument(
        "--only", help="comma-separated: traps, v3_traps, informs, poll_v2c, poll_v3"
    )
    parser.add_argument("--tree", type=Path, help="count the trap receiver of this checkout")
    parser.add_argument("--keep", type=Path, help="keep the counters' output files here")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--perf-event", default=PERF_EVENT, help="perf's event (e.g. task-clock where no PMU)"
    )
    parser.add_argument("--poll-child", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--v3", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.poll_child:
        _poll_child(args)
        return
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
