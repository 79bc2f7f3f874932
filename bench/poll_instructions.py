"""Instructions per poll: bench_poll's workload counted by callgrind, not timed.

Wall and CPU time swing with whatever else the machine runs; the number of
instructions a poll executes barely moves, so it shows what a change to the
poll path costs or saves even on a busy machine.

The workload is bench/bench_poll.py's: per poll, GET sysUpTime.0 + sysName.0,
then GETBULK walks of ifDescr, ifOperStatus and ifHCInOctets, against one local
snmpd (0.0.0.0, distinct 127.0.x.y per device), ``--concurrency`` polls in flight.
Each case runs in a child process under ``valgrind --tool=callgrind
--instr-atstart=no``: the MIB load, the sessions, v3 discovery and a first
(warm-up) poll of every device run uninstrumented; instrumentation is switched
on (a 10-line C helper built here with valgrind's client requests, loaded with
ctypes) for exactly the measured round, a second poll of every device, so
counters have rates as in the steady state. Only the poller's process is counted,
never snmpd.

Needs valgrind, its headers (valgrind/callgrind.h) and a C compiler.

Run: .venv/bin/python -m bench.poll_instructions [--devices 200] [--case gufo:2c ...]
     [--repeat 1] [--json FILE] [--keep DIR]
Prints, per case, instructions per poll and per value (Ir: callgrind's
instruction count of the measured round, divided by polls and by values).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_poll import GETS, WALKS, target  # noqa: E402

CASES = ("gufo:2c", "gufo:3")
V3_IDLE_REFRESH_S = 140.0  # netalert.poll.client_gufo: a v3 session idle this long is refreshed
_TOGGLE_C = r"""
#include <valgrind/callgrind.h>
void netalert_cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void netalert_cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def build_toggle(workdir: Path) -> Path:
    """The shared library whose two functions switch callgrind's instrumentation."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/valgrind/callgrind.h").is_file():
        raise SystemExit("needs a C compiler and valgrind's headers (valgrind/callgrind.h)")
    source, lib = workdir / "cgtoggle.c", workdir / "cgtoggle.so"
    source.write_text(_TOGGLE_C)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    return lib


async def child_workload(args: argparse.Namespace) -> dict[str, float]:
    """Runs in the child: warm-up round, then the measured round between the toggles."""
    from netalert.mib import MibTree
    from netalert.poll.plan import DevicePlan
    from netalert.poll.poller import Poller

    toggle = ctypes.CDLL(args.toggle)
    tree = MibTree.builtin()
    gc.collect()
    gc.freeze()  # as netalert run does: the MIB tree stays out of GC passes
    backend, version = args.case[0].split(":")
    plans = [
        DevicePlan(f"d{i}", target(args.port, i, version == "3"), backend, 3600.0, 0.0, GETS, WALKS)  # type: ignore[arg-type]
        for i in range(args.devices)
    ]
    poller = Poller(plans, tree, max_in_flight=args.concurrency)
    names = [p.name for p in plans]
    began = time.monotonic()
    await asyncio.gather(*(poller.poll(n) for n in names))  # sessions, discovery, caches
    warmup = time.monotonic() - began
    toggle.netalert_cg_start()
    results = await asyncio.gather(*(poller.poll(n) for n in names))
    toggle.netalert_cg_stop()
    await poller.stop()
    failed = sum(1 for r in results if r.status != "ok")
    values = sum(len(r.samples) for r in results)
    return {"polls": len(results), "values": values, "failed": failed, "warmup_s": warmup}


def callgrind_total(path: Path) -> int:
    """The instruction count of a callgrind output file (its totals line)."""
    # "totals:" is what was collected since the last zero; "summary:" ignores the zeroing
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals line in {path}")


def run_case(case: str, port: int, lib: Path, work: Path, args: argparse.Namespace) -> dict:
    out = work / f"callgrind.{case.replace(':', '-')}.out"
    figures = work / f"figures.{case.replace(':', '-')}.json"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.poll_instructions",
        "--child",
        "--case",
        case,
        "--port",
        str(port),
        "--toggle",
        str(lib),
        "--devices",
        str(args.devices),
        "--concurrency",
        str(args.concurrency),
        "--figures",
        str(figures),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout
    )
    if proc.returncode != 0:
        raise SystemExit(f"{case}: child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    got = json.loads(figures.read_text())
    instructions = callgrind_total(out)
    return {
        **got,
        "instructions": instructions,
        "per_poll": instructions / got["polls"],
        "per_value": instructions / max(got["values"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help=f"backend:version (default {CASES})")
    parser.add_argument("--devices", type=int, default=200, help="polls in the measured round")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median shown)")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--keep", type=Path, help="copy callgrind's output files here (for callgrind_annotate)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--toggle", help=argparse.SUPPRESS)
    parser.add_argument("--figures", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # pysnmp_mibs, read by the MIB layer
    if args.child:
        args.figures.write_text(json.dumps(asyncio.run(child_workload(args))))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    from tests.support.snmpd import DEFAULT_USER, Snmpd

    work = Path(tempfile.mkdtemp(prefix="bench-pollinstr-"))
    agent = Snmpd(directory=work / "snmpd", users=[DEFAULT_USER])
    agent.start(listen_host="0.0.0.0")
    figures: dict[str, object] = {}
    try:
        lib = build_toggle(work)
        for case in args.case or CASES:
            runs = [run_case(case, agent.port, lib, work, args) for _ in range(args.repeat)]
            per_poll = statistics.median(r["per_poll"] for r in runs)
            per_value = statistics.median(r["per_value"] for r in runs)
            spread = (
                max(r["per_poll"] for r in runs) - min(r["per_poll"] for r in runs)
            ) / per_poll
            failed = sum(r["failed"] for r in runs)
            slow = max(r["warmup_s"] for r in runs)
            if case.endswith(":3") and slow > V3_IDLE_REFRESH_S:
                # the gufo adapter refreshes a v3 session idle that long: the counted
                # round then includes a discovery exchange per device (not the steady state)
                print(f"{case}: the warm-up took {slow:.0f} s: counts include v3 refreshes")
            print(
                f"{case:<10} {per_poll:12,.0f} Ir/poll  {per_value:9,.0f} Ir/value"
                f"  ({runs[0]['values'] / runs[0]['polls']:.0f} values/poll, {args.devices} polls"
                f" x {args.repeat}, spread {spread:.1%}, failed {failed})",
                flush=True,
            )
            figures[case] = {"per_poll": per_poll, "per_value": per_value, "runs": runs}
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                name = f"callgrind.{case.replace(':', '-')}.out"
                shutil.copy(work / name, args.keep / name)
    finally:
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
