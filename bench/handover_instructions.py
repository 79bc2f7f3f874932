"""Instructions per trap of the agent's share with trap workers (unframe, check, observe).

The ``take(frame)`` workload of ``python -m bench.bench_trap_workers --stages`` (a
worker's frame of 256 v2c traps, the bench's 50 trap rules, matched by the worker)
counted under callgrind (or perf, when it counts here: :func:`bench.instructions.detect`):
the MIB tree, the rule engine and the frame are made uncounted, one ``take`` warms
the caches, then ``--frames`` takes run in the counted window (:mod:`bench.window`).
Instructions / (frames x 256) is the agent's cost per trap, without the noise of a
shared machine's time.

Run: .venv/bin/python -m bench.handover_instructions [--frames 20] [--tool callgrind]
     [--keep DIR] (DIR: the counter's output, for ``callgrind_annotate``)
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.instructions import Counter, detect  # noqa: E402


def child(frames: int) -> None:
    """The counted process: the workloads made, then ``frames`` takes windowed."""
    from bench.bench_trap_workers import workloads
    from bench.window import Window

    warnings.simplefilter("ignore", DeprecationWarning)
    loads = workloads()
    frame = loads.work()
    loads.take(frame)  # the caches filled, as in a running agent
    gc.collect()
    gc.freeze()  # as netalert run does once started
    window = Window()
    window.start()
    for _ in range(frames):
        loads.take(frame)
    window.stop()
    print(frames * loads.traps, flush=True)


def count(tool: str, frames: int, workdir: Path) -> float:
    """Instructions per trap of the agent's share."""
    counter = Counter(tool, workdir)
    prefix, env, out = counter.windowed()
    cmd = [*prefix, sys.executable, "-m", "bench.handover_instructions", "--child", str(frames)]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=1800
    )
    traps = int(done.stdout.strip().splitlines()[-1])
    return counter.read(out) / traps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames of 256 traps counted")
    parser.add_argument("--tool", choices=("perf", "callgrind"), help="default: detected")
    parser.add_argument("--keep", type=Path, help="keep the counter's output here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    tool = args.tool or detect()
    if tool is None:
        raise SystemExit("neither `perf stat -e instructions:u` nor valgrind works here")
    with tempfile.TemporaryDirectory(prefix="bench-handover-") as tmp:
        workdir = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        per_trap = count(tool, args.frames, workdir)
    print(f"the agent's share ({tool}): {per_trap:,.0f} instructions per trap", flush=True)


if __name__ == "__main__":
    main()
