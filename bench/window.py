"""The counted window of a process run under ``python -m bench.instructions``.

A netalert process measured for instructions starts and loads its MIB tree with
counting off, then counts only its workload: :meth:`Window.start` before the
first trap or poll, :meth:`Window.stop` after the last. How depends on the tool
the parent chose, named in the environment variable :data:`ENV`:

* ``perf:CTL,ACK``: ``perf stat --delay=-1 --control=fifo:CTL,ACK``; the window
  writes ``enable`` / ``disable`` to the control FIFO and waits for perf's ack;
* ``callgrind:LIB``: ``valgrind --tool=callgrind --instr-atstart=no``; LIB is a
  small shared library built by the parent whose two functions are callgrind's
  start/stop-instrumentation client requests;
* unset: no counting (the window does nothing).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["ENV", "LIB_SOURCE", "Window"]

ENV = "BENCH_INSTRUCTIONS_WINDOW"

LIB_SOURCE = """\
#include <valgrind/callgrind.h>
void bench_window_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void bench_window_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


class Window:
    def __init__(self, spec: str | None = None) -> None:
        spec = os.environ.get(ENV, "") if spec is None else spec
        self.kind, _, rest = spec.partition(":")
        self._lib: ctypes.CDLL | None = None
        self._fifos: tuple[str, str] | None = None
        self._ends: tuple[int, object] | None = None
        if self.kind == "callgrind":
            self._lib = ctypes.CDLL(rest)
        elif self.kind == "perf":
            ctl, _, ack = rest.partition(",")
            self._fifos = (ctl, ack)

    def _perf(self, command: str) -> None:
        assert self._fifos is not None
        if self._ends is None:  # perf holds both ends open for its whole run: so do we
            ctl, ack = self._fifos
            self._ends = (os.open(ctl, os.O_WRONLY), open(ack))  # noqa: SIM115
        out, back = self._ends
        os.write(out, command.encode() + b"\n")
        back.readline()  # type: ignore[attr-defined]

    def start(self) -> None:
        if self._lib is not None:
            self._lib.bench_window_start()
        elif self._fifos is not None:
            self._perf("enable")

    def stop(self) -> None:
        if self._lib is not None:
            self._lib.bench_window_stop()
        elif self._fifos is not None:
            self._perf("disable")
