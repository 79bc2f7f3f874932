"""`python -m bench` (`make bench`): every measurement, one table, figures as JSON.

Each measurement runs as its own child process (the existing bench scripts
with ``--json``), one after the other, so none shares a heap, an event loop or
a max-RSS with another; each starts what it measures against by itself on
free loopback ports (snmpd for polling, snmptrapd and pysnmp's receiver for
traps, an aiosmtpd sink for mail, `netalert run` for trap → mail latency, and
PostgreSQL and nats-server for three cluster nodes).

Their own output goes to bench/results/latest.log; this prints one line per
step while it runs, then the table. Figures, the machine description and how
busy the machine was are written to bench/results/latest.json and a
timestamped copy (run-YYYYmmddTHHMMSSZ.json, git-ignored).

Usage: .venv/bin/python -m bench [--quick] [--only STEP,...] [--out DIR] [--instructions]
Steps: poll, traps, trap_workers, latency, pipeline, commit, cluster, mail, rules, mib, scale_1k,
scale_10k, scale_100k;
``--instructions`` runs only the step ``instructions``: the trap and poll workloads under
``perf stat -e instructions:u`` (or callgrind where perf cannot count), instructions per
trap and per poll for netalert and net-snmp side by side (bench/instructions.py), written
to bench/results/instructions.{json,md,log} instead of latest.*.
Exit status 1 when a row misses its target (FAIL) or a step produced no figures (ERROR);
the last line names those rows.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import CpuWatch, describe  # noqa: E402
from bench.report import NOTES, Row, exit_status, format_markdown, format_table, rows_for  # noqa: E402

# step -> (module, full-run arguments, --quick arguments, timeout in seconds)
STEPS: dict[str, tuple[str, str, str, int]] = {
    "poll": (
        "bench.bench_poll",
        "--rounds 5 --polls 3000 --pysnmp-polls 300",
        "--rounds 1 --polls 1000 --pysnmp-polls 150",
        400,
    ),
    # the native backend (issue 20 item 4): the same polls, netalert's own SNMP on one socket
    "poll_native": (
        "bench.bench_poll",
        "--backend native --rounds 5 --polls 3000 --pysnmp-polls 150",
        "--backend native --rounds 1 --polls 1000 --pysnmp-polls 100",
        400,
    ),
    "traps": (
        "bench.trap_ingest",
        "--rounds 3",
        "--rounds 1 --count 10000 --py-count 2000 --loss-count 20000 --v3-count 4000 "
        "--inform-count 4000",
        400,
    ),
    # issue 20 item 1: [traps] workers = 2 vs 1 vs snmptrapd, sustained rate at 0 loss
    "trap_workers": (
        "bench.bench_trap_workers",
        "--workers 2",
        "--workers 2 --quick",
        400,
    ),
    "latency": ("bench.latency", "--run 100:10 --run 1000:3", "--run 100:3 --run 1000:1", 300),
    # perf: CPU per trap -> committed outbox row (in process), then through `netalert run`:
    # p99 trap -> committed outbox at 1,000 traps/s, and new alerts/s committed with grouping
    "pipeline": ("bench.bench_pipeline", "--traps 3000 --reps 3", "--traps 1000 --reps 2", 300),
    "commit": ("bench.commit_path", "--seconds 3", "--seconds 1", 300),
    # cluster mode (issue 16): 3 nodes on a private PostgreSQL and nats-server; trap -> mail
    # p99 beside a single node, failover after kill -9 (lease 3 s), lost/twice over the kills
    "cluster": (
        "bench.bench_cluster",
        "--seconds 10 --kills 20",
        "--seconds 3 --kills 3",
        360,
    ),
    "mail": ("bench.bench_mail", "--reps 3", "--messages 500 --reps 1", 200),
    "rules": ("bench.bench_rules", "--reps 5", "--reps 2 --seconds 0.3", 120),
    "mib": ("bench.bench_mib", "--reps 5", "--reps 2 --oids 5000", 120),
    # the sizing runs alone in their process: its max RSS is the poller's
    "scale_1k": (
        "bench.bench_poll",
        "--rounds 0 --scale 1000 --interval 60 --duration 65",
        "--rounds 0 --scale 1000 --interval 10 --duration 12",
        200,
    ),
    "scale_10k": (
        "bench.bench_poll",
        "--rounds 0 --scale 10000 --interval 60 --duration 75",
        "--rounds 0 --scale 10000 --interval 15 --duration 18",
        300,
    ),
    # 100,000 devices at 60 s (issue 20): every device on its own loopback address, one
    # snmpd answering all; start-up = a fresh process to poll plans for the same config
    "scale_100k": (
        "bench.bench_poll",
        "--rounds 0 --scale 100000 --interval 60 --duration 70 --startup",
        "--rounds 0 --scale 100000 --interval 60 --duration 62 --startup",
        400,
    ),
    "scale_100k_native": (
        "bench.bench_poll",
        "--backend native --rounds 0 --scale 100000 --interval 60 --duration 70",
        "--backend native --rounds 0 --scale 100000 --interval 60 --duration 62",
        400,
    ),
    # --instructions only (not in the default run): instructions per trap / poll, netalert
    # beside net-snmp, under perf stat or callgrind (bench/instructions.py)
    "instructions": (
        "bench.instructions",
        "--traps 2000 --polls 300",
        "--traps 1000 --polls 150",
        1800,
    ),
}
# the steps of a plain `python -m bench`
DEFAULT_STEPS = [s for s in STEPS if s != "instructions"]


def run_step(name: str, quick: bool, work: Path, log: Any) -> tuple[Any, float]:
    """Runs one step as a child process; returns (its figures or {"error": ...}, seconds)."""
    module, full, short, timeout = STEPS[name]
    out = work / f"{name}.json"
    cmd = [sys.executable, "-m", module, *shlex.split(short if quick else full)]
    cmd += ["--json", str(out)]
    log.write(f"\n===== {name}: {' '.join(cmd[1:])}\n")
    log.flush()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}, time.monotonic() - started
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not out.is_file():
        return {"error": f"exit {proc.returncode}, see the log"}, seconds
    return json.loads(out.read_text()), seconds


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (~2 min), rougher figures")
    parser.add_argument("--only", help="comma-separated steps: " + ", ".join(STEPS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instructions per trap and per poll beside net-snmp (perf stat, else callgrind)",
    )
    args = parser.parse_args()
    steps = DEFAULT_STEPS if not args.only else [s.strip() for s in args.only.split(",")]
    if args.instructions:
        steps = ["instructions"]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step(s): {', '.join(unknown)}; known: {', '.join(STEPS)}")

    args.out.mkdir(parents=True, exist_ok=True)
    machine = describe()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    watch = CpuWatch().start()
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    rows: list[Row] = []
    # --instructions keeps its own files, so the time table of the last full run stays
    stem = "instructions" if args.instructions else "latest"
    log_path = args.out / f"{stem}.log"
    print(
        f"netalert bench{' (quick)' if args.quick else ''}: {machine['cpu_model']}, "
        f"{machine['cores']} cores, load {watch.load_before}; step output in {log_path}",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, log_path.open("w") as log:
        for name in steps:
            print(f"  {name} ...", end="", file=sys.stderr, flush=True)
            figures[name], timings[name] = run_step(name, args.quick, Path(tmp), log)
            rows += rows_for(name, figures[name])
            state = "error" if "error" in figures[name] else "done"
            print(f" {state} in {timings[name]:.0f} s", file=sys.stderr, flush=True)
    noise = watch.stop()
    table = format_table(rows)
    print()
    print(table)
    print()
    for note in NOTES:
        print(textwrap.fill(note, width=100, initial_indent="* ", subsequent_indent="  "))
    print(
        f"\n{machine['date']}; {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['os']}, kernel {machine['kernel']}, Python {machine['python']}, "
        f"net-snmp {machine['net_snmp']}.\nOver {noise['seconds']:.0f} s the machine was "
        f"{noise['busy_pct']}% busy: bench {noise['bench_pct']}%, other processes "
        f"{noise['others_pct']}%, steal {noise['steal_pct']}%; load "
        f"{noise['loadavg_1m_before']} -> {noise['loadavg_1m_after']}"
        f"{'; QUICK run: short samples' if args.quick else ''}."
    )
    result = {
        "started": stamp,
        "quick": args.quick,
        "machine": machine,
        "noise": noise,
        "step_seconds": timings,
        "table": [r.as_dict() for r in rows],
        "figures": figures,
    }
    text = json.dumps(result, indent=1)
    (args.out / f"{stem}.json").write_text(text)
    (args.out / f"{stem}.md").write_text(format_markdown(rows) + "\n")
    (args.out / f"run-{stamp}.json").write_text(text)
    shutil.copyfile(log_path, args.out / f"run-{stamp}.log")
    print(f"figures: {args.out / f'{stem}.json'} (and run-{stamp}.json)")
    status, summary = exit_status(rows)
    print(summary)
    return status


if __name__ == "__main__":
    sys.exit(main())
