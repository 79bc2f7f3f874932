"""The fuzz harnesses' helpers (fuzz/), in seconds and without atheris."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fuzz.slow import SlowWatch

# --- timing --------------------------------------------------------------------------


def test_slow_watch_saves_only_inputs_over_the_threshold(tmp_path: Path) -> None:
    def check(data: bytes) -> None:
        if data == b"slow":
            time.sleep(0.03)

    watch = SlowWatch("t", check, threshold_ms=10, directory=tmp_path)
    watch(b"fast")
    assert list(tmp_path.glob("slow-*")) == []
    watch(b"slow")
    (saved,) = tmp_path.glob("slow-*")
    assert saved.read_bytes() == b"slow"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["over"] == 1 and summary["slowest_ms"] >= 30
    assert summary["slowest_hex_head"] == b"slow".hex()
