"""Trap ingest for `python -m bench`: netalert vs snmptrapd vs pysnmp ntfrcv, loss, v3.

Reuses bench_traps (its blaster, ``measure``, its netalert and snmptrapd
receivers, the v3 trap capture) and adds pysnmp's NotificationReceiver
(bench/ref_ntfrcv.py) to each round. Rounds are interleaved: snmptrapd,
netalert, pysnmp, each a fresh process on a free port; ratios are taken per
round, then the median.

* CPU per trap: ``--count`` v2c traps at ``--rate``/s for netalert and snmptrapd;
  pysnmp gets ``--py-count`` at ``--py-rate``/s (it cannot keep up with more:
  its CPU is divided by what it received, after its backlog drained);
* loss: ``--loss-count`` v2c traps at 5,000/s into netalert with default settings;
* v3 authPriv (SHA/AES-128): 10,000 at 2,000/s; the rate one core sustains is
  1000 / (CPU ms per trap);
* v3 authPriv informs (SHA/AES-128), ``--inform-count`` at 2,000/s, each answered:
  netalert's fast path, netalert through pysnmp's engine, and snmptrapd; the
  sender discovers each receiver's engine ID, boots and time first.

Run: .venv/bin/python -m bench.trap_ingest [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_traps import (
    Netalert,
    Snmptrapd,
    capture_v3,
    free_port,
    measure,
    v2c_trap,
    v3_inform,
)
from bench.ref_ntfrcv import PysnmpReceiver

__all__ = ["run"]


def _one(kind: str, workdir: Path, data: bytes, count: int, rate: float) -> dict[str, float]:
    port = free_port()
    receiver: Any
    if kind == "snmptrapd":
        receiver = Snmptrapd(port, workdir)
    elif kind == "pysnmp":
        receiver = PysnmpReceiver(port)
    else:
        receiver = Netalert(port)
    try:
        return measure(receiver, data, count, rate)
    finally:
        receiver.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = v2c_trap()
    out: dict[str, Any] = {"trap_bytes": len(data), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="bench-traps-") as tmp:
        workdir = Path(tmp)
        for rnd in range(args.rounds):
            row = {
                "snmptrapd": _one("snmptrapd", workdir, data, args.count, args.rate),
                "netalert": _one("netalert", workdir, data, args.count, args.rate),
                "pysnmp": _one("pysnmp", workdir, data, args.py_count, args.py_rate),
            }
            out["rounds"].append(row)
            print(
                f"round {rnd + 1}: CPU ms per 1000 v2c traps: "
                + ", ".join(
                    f"{k} {v['cpu_ms_per_1000']:.1f} (loss {v['loss_pct']:.2f}%)"
                    for k, v in row.items()
                ),
                flush=True,
            )

        def med(kind: str) -> float:
            return float(statistics.median(r[kind]["cpu_ms_per_1000"] for r in out["rounds"]))

        def ratio(a: str, b: str) -> float:
            return float(
                statistics.median(
                    r[a]["cpu_ms_per_1000"] / r[b]["cpu_ms_per_1000"] for r in out["rounds"]
                )
            )

        out["cpu_ms_per_1000"] = {k: med(k) for k in ("netalert", "snmptrapd", "pysnmp")}
        out["cpu_ratio_vs_snmptrapd"] = ratio("netalert", "snmptrapd")
        out["pysnmp_cpu_over_netalert"] = ratio("pysnmp", "netalert")
        out["settings"] = {
            "count": args.count,
            "rate": args.rate,
            "py_count": args.py_count,
            "py_rate": args.py_rate,
        }
        loss = _one("netalert", workdir, data, args.loss_count, 5_000)
        out["loss"] = {"count": args.loss_count, "rate": 5_000} | loss
        print(
            f"netalert, {args.loss_count:,} v2c traps at 5,000/s: received "
            f"{loss['received']:.0f}, loss {loss['loss_pct']:.3f}%, kernel drops "
            f"{loss['drops']:.0f}",
            flush=True,
        )
        v3 = capture_v3(workdir)
        # bench_traps' receiver can also decode v3 through pysnmp's engine
        # (v3_fast=False): the in-process reference, when this version has it
        paths = {"v3": {"users": True}}
        if "v3_fast" in inspect.signature(Netalert).parameters:
            paths["v3_pysnmp"] = {"users": True, "v3_fast": False}
        for key, options in paths.items():
            receiver = Netalert(free_port(), **options)
            try:
                res = measure(receiver, v3, args.v3_count, 2_000)
            finally:
                receiver.close()
            per_core = 1e6 / max(res["cpu_ms_per_1000"], 1e-9)
            out[key] = {"count": args.v3_count, "rate": 2_000, "per_core": per_core} | res
            print(
                f"netalert {key} authPriv SHA/AES-128, {args.v3_count:,} at 2,000/s: received "
                f"{res['received']:.0f}, CPU {res['cpu_ms_per_1000']:.0f} ms/1000 => "
                f"{per_core:,.0f} traps/s per core",
                flush=True,
            )
        # v3 authPriv informs, answered: the fast path, pysnmp's engine, snmptrapd
        informs: dict[str, Any] = {}
        for key in ("netalert", "pysnmp", "snmptrapd"):
            port = free_port()
            receiver: Any = (
                Snmptrapd(port, workdir)
                if key == "snmptrapd"
                else Netalert(port, users=True, v3_fast=key == "netalert")
            )
            try:
                res = measure(receiver, v3_inform(port), args.inform_count, 2_000)
            finally:
                receiver.close()
            per_core = 1e6 / max(res["cpu_ms_per_1000"], 1e-9)
            informs[key] = {"per_core": per_core} | res
            print(
                f"{key}: v3 authPriv SHA/AES-128 informs, {args.inform_count:,} at 2,000/s: "
                f"answered {res['received']:.0f}, CPU {res['cpu_ms_per_1000']:.0f} ms/1000 => "
                f"{per_core:,.0f} informs/s per core",
                flush=True,
            )
        out["informs"] = {"count": args.inform_count, "rate": 2_000} | informs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--py-count", type=int, default=5_000)
    parser.add_argument("--py-rate", type=float, default=5_000)
    parser.add_argument("--loss-count", type=int, default=100_000)
    parser.add_argument("--v3-count", type=int, default=10_000)
    parser.add_argument("--inform-count", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
