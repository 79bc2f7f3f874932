"""``make fuzz``: runs every atheris harness in fuzz/ for a bounded time and reports.

Each harness runs ``FUZZ_SECONDS`` (default 60) as its own process, all at
once, with libFuzzer's ``-max_total_time``. Seeds are made afresh each run by
fuzz/seeds.py (datagrams; fuzz_access gets them framed with source
addresses); each harness keeps its growing corpus and any crash input under
build/fuzz/ (ignored by git). Prints one line per harness (executions, rate,
coverage, corpus, slowest input and how many took over ``FUZZ_SLOW_MS``,
see fuzz/slow.py, findings) and exits 1 if any harness found a failing
input. Slow inputs alone do not fail the run.

``FUZZ_KNOWN`` (fuzz/oracles.py) names findings already reported that the v3
and access harnesses should count and pass, to look for others.

Usage: ``python fuzz/run.py [SECONDS]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = ROOT / "build" / "fuzz"
HARNESSES = (
    "fuzz_ber",
    "fuzz_berv3",
    "fuzz_receiver",
    "fuzz_pysnmp",
    "fuzz_access",
    "fuzz_codec",
    "fuzz_answers",
)
# seed folder per harness; the others get "datagrams"
SEEDS = {"fuzz_access": "access", "fuzz_codec": "codec"}


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else int(os.environ.get("FUZZ_SECONDS", "60"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seeds = BUILD / "seeds"
    made = subprocess.run(
        [sys.executable, str(HERE / "seeds.py"), str(seeds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"fuzz: {made.stdout.strip()} seeds in {seeds}; {seconds}s per harness")
    runs: dict[str, tuple[subprocess.Popen[str], Path, Path]] = {}
    for name in HARNESSES:
        corpus = BUILD / "corpus" / name
        artifacts = BUILD / "artifacts" / name
        slow = BUILD / "slow" / name
        shutil.rmtree(slow, ignore_errors=True)
        corpus.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        log = BUILD / f"{name}.log"
        command = [
            sys.executable,
            str(HERE / f"{name}.py"),
            f"-max_total_time={seconds}",
            "-print_final_stats=1",
            "-rss_limit_mb=2048",
            "-timeout=10",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
            str(seeds / SEEDS.get(name, "datagrams")),
        ]
        with log.open("w") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, "FUZZ_SLOW_DIR": str(slow)},
                text=True,
            )
        runs[name] = (proc, log, artifacts)
    failed = False
    started = time.monotonic()
    for name, (proc, log, artifacts) in runs.items():
        code = proc.wait(timeout=seconds + 600)
        text = log.read_text(errors="replace")
        execs = _stat(text, "number_of_executed_units")
        rate = _stat(text, "average_exec_per_sec")
        done = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
        cov, ft, corp = done[-1] if done else ("?", "?", "?")
        crashes = sorted(p.name for p in artifacts.iterdir())
        verdict = "no findings" if code == 0 and not crashes else f"FAILED (exit {code})"
        failed |= verdict != "no findings"
        print(
            f"{name:14} {execs:>10} execs  {rate:>6}/s  cov {cov} ft {ft}  corpus {corp}  "
            f"{_slowest(BUILD / 'slow' / name)}  {verdict}"
        )
        for crash in crashes:
            print(
                f"  input: {artifacts / crash}  (replay: python fuzz/{name}.py {artifacts / crash})"
            )
        if code != 0:
            print("  " + "\n  ".join(text.splitlines()[-25:]))
    print(f"fuzz: done in {time.monotonic() - started:.0f}s; logs in {BUILD}")
    return 1 if failed else 0


def _slowest(slow: Path) -> str:
    """``slowest 3.2 ms`` and how many inputs were over the threshold (fuzz/slow.py)."""
    path = slow / "summary.json"
    if not path.exists():
        return "slowest ?"
    summary = json.loads(path.read_text())
    text = f"slowest {summary.get('slowest_ms', 0):.1f} ms"
    if summary.get("over"):
        text += f" ({summary['over']} over {summary['threshold_ms']:.0f} ms, in {slow})"
    return text


def _stat(text: str, name: str) -> str:
    match = re.search(rf"stat::{name}:\s+(\d+)", text)
    return match.group(1) if match else "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
