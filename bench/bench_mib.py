"""MIB layer speed: start-up from the cache, OID → name lookups, name → OID.

Usage: ``.venv/bin/python bench/bench_mib.py [--reps 5] [--oids 20000]``

Everything runs in this process against a state folder in a temporary directory:

* ``first start`` - ``load_mibs`` with an empty cache (extracts the built-in
  modules from pysnmp, compiles the sources with pysmi);
* ``start`` - ``load_mibs`` again: every module from the cache (the agent's
  normal start);
* ``lookup warm`` - ``MibTree.lookup`` over a working set of 2,000 instance
  OIDs, the shape of polling (same OIDs every interval);
* ``lookup cold`` - ``MibTree.lookup`` over distinct OIDs, memo cleared;
* ``name`` / ``oid`` - ``MibTree.name(oid)`` and ``MibTree.oid("MODULE::name.index")``;
* ``pysnmp`` - the reference: pysnmp 7's ``MibViewController.getNodeNameByOid``
  over the same cold OIDs, with the same modules' pysnmp-compiled forms loaded.

Prints operations/s (median of reps, min-max) and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netalert.config.models import MibsConfig
from netalert.mib import MibTree, load_mibs

REPO = Path(__file__).resolve().parent.parent
REFERENCE_MODULES = ("SNMPv2-MIB", "IF-MIB", "HOST-RESOURCES-MIB", "IP-MIB", "ENTITY-MIB")


def instance_oids(tree: MibTree, count: int, seed: int) -> list[tuple[int, ...]]:
    """Instance OIDs of scalars and columns of the reference modules, with indexes."""
    rng = random.Random(seed)
    leaves = [
        n
        for n in tree.nodes().values()
        if n.kind in ("scalar", "column") and n.module in REFERENCE_MODULES
    ]
    out = []
    for _ in range(count):
        node = rng.choice(leaves)
        if node.kind == "scalar":
            out.append((*node.oid, 0))
        else:
            out.append((*node.oid, *(rng.randrange(1, 5000) for _ in range(rng.randrange(1, 5)))))
    return out


def rate(fn: Callable[[], int], reps: int) -> list[float]:
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        done = fn()
        rates.append(done / (time.perf_counter() - start))
    return rates


def show(label: str, rates: Sequence[float], reference: float | None, unit: str = "/s") -> None:
    median = statistics.median(rates)
    ratio = f"  x{median / reference:.1f} vs pysnmp" if reference else ""
    print(
        f"{label:<22} {median:>12,.0f} {unit}  "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}){ratio}"
    )


def pysnmp_reference(oids: list[tuple[int, ...]], reps: int) -> list[float]:
    from pysnmp.smi import builder, view

    from netalert.mib.builtin import builtin_dirs

    mib_builder = builder.MibBuilder()
    mib_builder.add_mib_sources(*(builder.DirMibSource(str(d)) for d in builtin_dirs()[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mib_builder.load_modules(*REFERENCE_MODULES)
    controller = view.MibViewController(mib_builder)

    def run() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for oid in oids:
                controller.getNodeNameByOid(oid)
        return len(oids)

    return rate(run, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--oids", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-mib-") as tmp:
        state = Path(tmp) / "state"
        config = MibsConfig(paths=[REPO / "mibs"])
        start = time.perf_counter()
        tree = load_mibs(config, state)
        first = time.perf_counter() - start
        starts = []
        for _ in range(args.reps):
            # A new process starts without the in-memory memo: drop it too.
            from netalert.mib import loader

            loader._BUILTIN_MEMO.clear()
            start = time.perf_counter()
            tree = load_mibs(config, state)
            starts.append(time.perf_counter() - start)
    print(f"modules: {len(tree.modules)}, names: {len(tree):,}")
    print(f"{'first start':<22} {first:>12.2f} s   (empty cache: extract built-ins, pysmi compile)")
    print(
        f"{'start':<22} {statistics.median(starts):>12.3f} s   "
        f"(min {min(starts):.3f}, max {max(starts):.3f}; every module from the cache)"
    )

    cold = instance_oids(tree, args.oids, seed=1)
    working = instance_oids(tree, 2_000, seed=2)
    cold_str = [".".join(map(str, o)) for o in cold]
    names = [tree.name(o) for o in cold]
    reference = pysnmp_reference(cold[: min(len(cold), 5_000)], args.reps)
    ref = statistics.median(reference)

    def warm_run() -> int:
        for _ in range(25):
            for oid in working:
                tree.lookup(oid)
        return 25 * len(working)

    def cold_run() -> int:
        tree._memo.clear()
        for oid in cold_str:
            tree.lookup(oid)
        return len(cold_str)

    def name_run() -> int:
        tree._memo.clear()
        for oid in cold:
            tree.name(oid)
        return len(cold)

    def oid_run() -> int:
        for name in names:
            tree.oid(name)
        return len(names)

    tree.lookup(working[0])
    runs = {
        "lookup_warm": rate(warm_run, args.reps),
        "lookup_cold": rate(cold_run, args.reps),
        "name_cold": rate(name_run, args.reps),
        "oid": rate(oid_run, args.reps),
    }
    show("lookup warm (memo)", runs["lookup_warm"], ref)
    show("lookup cold (str)", runs["lookup_cold"], ref)
    show("name cold (tuple)", runs["name_cold"], ref)
    show("oid (MODULE::name.i)", runs["oid"], None)
    show("pysnmp getNodeNameByOid", reference, None)
    if args.json:
        figures: dict[str, object] = {
            "modules": len(tree.modules),
            "names": len(tree),
            "first_start_s": first,
            "start_s": statistics.median(starts),
            "starts_s": starts,
            "pysnmp_per_s": ref,
        }
        figures |= {name: statistics.median(rates) for name, rates in runs.items()}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
