"""Time per input for the harnesses: the slowest input and every input over a threshold.

libFuzzer's ``-timeout`` catches hangs (seconds); this catches the merely slow,
which a flood of such datagrams turns into a denial of service. An input over
``FUZZ_SLOW_MS`` (default 50 ms, instrumented code included), or slower than
the slowest so far, is timed twice more and the fastest of the three runs
counts, so a scheduler pause on a busy machine is not a finding. Inputs over
the threshold are saved (at most :data:`MAX_SAVED`) in ``FUZZ_SLOW_DIR``
(default build/fuzz/slow/NAME) with a ``summary.json`` that fuzz/run.py
reports: rewritten on every new slowest input, because libFuzzer exits
without running Python's exit handlers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_SAVED", "SlowWatch"]

MAX_SAVED = 50  # slow inputs kept per harness run; more are only counted
_ROOT = Path(__file__).resolve().parent.parent


class SlowWatch:
    """Wraps a harness's check: ``SlowWatch("fuzz_x", check)(data)`` runs and times it."""

    def __init__(
        self,
        name: str,
        check: Callable[[bytes], object],
        *,
        threshold_ms: float | None = None,
        directory: Path | None = None,
    ) -> None:
        """``threshold_ms`` and ``directory`` default to ``FUZZ_SLOW_MS`` and ``FUZZ_SLOW_DIR``."""
        self.check = check
        default_ms = float(os.environ.get("FUZZ_SLOW_MS", "50"))
        self.threshold = (default_ms if threshold_ms is None else threshold_ms) / 1000
        env_dir = os.environ.get("FUZZ_SLOW_DIR")
        self.directory = directory or (
            Path(env_dir) if env_dir else _ROOT / "build" / "fuzz" / "slow" / name
        )
        self.slowest = 0.0
        self.over = 0

    def __call__(self, data: bytes) -> None:
        """Runs the check on ``data``; re-raises whatever it raises."""
        start = time.perf_counter()
        self.check(data)
        took = time.perf_counter() - start
        if took > self.threshold or took > self.slowest:  # rare after the first inputs
            for _ in range(2):
                start = time.perf_counter()
                self.check(data)
                took = min(took, time.perf_counter() - start)
        if took > self.threshold:
            self.over += 1
            if self.over <= MAX_SAVED:
                self._save(data, took)
        if took > self.slowest:
            self.slowest = took
            self._summary(data, took)
        elif took > self.threshold:
            self._summary(None, None)

    def _save(self, data: bytes, took: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        (self.directory / f"slow-{took * 1000:.0f}ms-{digest}").write_bytes(data)

    def _summary(self, data: bytes | None, took: float | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "summary.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
        summary |= {"threshold_ms": self.threshold * 1000, "over": self.over}
        if data is not None and took is not None:
            summary |= {
                "slowest_ms": round(took * 1000, 3),
                "slowest_size": len(data),
                "slowest_sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                "slowest_hex_head": data[:64].hex(),
            }
        path.write_text(json.dumps(summary, indent=1) + "\n")
