"""What every harness imports its targets under: atheris's coverage instrumentation
when it runs as a fuzzer, nothing when tests/test_fuzz_harnesses.py imports it
(without atheris installed)."""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["instrumented"]


def instrumented(module: str) -> Any:
    """A context manager for the harness's imports; ``module`` is its ``__name__``."""
    if module != "__main__":
        return contextlib.nullcontext()
    import atheris  # type: ignore[import-untyped]

    return atheris.instrument_imports(include=["netalert"])
