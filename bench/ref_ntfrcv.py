"""The pysnmp reference trap receiver: pysnmp 7's NotificationReceiver, counting traps.

Started by :class:`PysnmpReceiver` as a child process so its CPU is read from
/proc like netalert's and snmptrapd's (``bench_traps.measure`` drives all
three the same way). It accepts community ``public`` (v1/v2c), decodes every
trap through pysnmp's engine (pyasn1 BER decode, message and security
processing, the ntfrcv application) and counts the callbacks. Its socket gets
the same receive buffer as netalert's default (SO_RCVBUF 4 MiB, 8 MiB
effective), so buffer size does not decide the comparison.

Run alone: .venv/bin/python -m bench.ref_ntfrcv PORT (prints "ready"; SIGUSR1
prints the count; SIGTERM stops).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["PysnmpReceiver", "serve"]


def serve(port: int) -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import ntfrcv

    count = [0]

    def on_trap(*_: Any) -> None:
        count[0] += 1

    async def main() -> None:
        snmp_engine = engine.SnmpEngine()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", port))
        config.add_transport(
            snmp_engine, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode(sock=sock)
        )
        config.add_v1_system(snmp_engine, "bench-area", "public")
        ntfrcv.NotificationReceiver(snmp_engine, on_trap)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: print(count[0], flush=True))
        snmp_engine.open_dispatcher()
        await asyncio.sleep(0.2)  # the transport's endpoint is created by a task
        print("ready", flush=True)
        await stop.wait()
        snmp_engine.close_dispatcher()

    asyncio.run(main())


class PysnmpReceiver:
    """The child process, driven like ``bench_traps.Netalert`` (port, pid, received, close)."""

    name = "pysnmp"

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ref_ntfrcv", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line
        self.pid = self.proc.pid

    def received(self) -> tuple[int, int]:
        """(traps counted, kernel drops: not read for the reference)."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        return int(self.proc.stdout.readline()), 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
