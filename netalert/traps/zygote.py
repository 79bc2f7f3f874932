"""The trap workers' zygote: one small process holding the loaded MIB tree, forking workers.

A worker started as a new interpreter imports netalert and unpickles the
agent's MIB tree: most of a second of CPU each, on every start and restart.
The zygote does that once: ``netalert run`` forks it right after the config
and the MIB tree are loaded, before the event loop or any thread exists
(:func:`preload`); where that moment has passed (a reload that turns trap
workers on, tests, the demo), the first worker start runs it as
``python -m netalert.traps.zygote`` with the tree on its stdin. Asked over an
unnamed socket pair (:class:`Zygote`, one request at a time), it forks a
worker with the descriptors the agent passes (SCM_RIGHTS: the worker's
SO_REUSEPORT sockets and its end of the hand-over channel) and answers with
the worker's pid and a pidfd, through which the agent waits for and kills it.
The zygote reaps its workers and reports their exit status.

The zygote has one thread, never runs an event loop, and closes every
descriptor it was passed once the worker has it, so a worker's channel ends
when the worker does. It leaves when the agent's end of the pair closes (a
clean stop, or the agent killed): its workers see their own channels end
then, and it waits for them before it exits. A zygote that dies is logged
(``event=trap_zygote_exited``); the next worker start runs a new one, as does a
start that finds it gone only by asking it (:func:`start_worker`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netalert.logs import event

if TYPE_CHECKING:
    from netalert.traps.names import TrapTree
    from netalert.traps.worker import WorkerSpec

__all__ = [
    "Forked",
    "Zygote",
    "ZygoteError",
    "preload",
    "pump",
    "shutdown",
    "start_worker",
    "zygote_for",
]

log = logging.getLogger("netalert.traps")

_HEAD = 4  # bytes of a frame's length
# descriptors one request may pass (a worker's channel, then a socket per listen address):
# Linux's SCM_MAX_FD, the most one message carries ([traps] listen has at most LISTEN_MAX)
_FDS_MAX = 253
LISTEN_MAX = _FDS_MAX - 1
_REPLY_WITHIN = 30.0  # seconds the zygote has to fork a worker or load a tree
_CODES_MAX = 256  # exit statuses kept for workers nobody asked about yet
_WAIT_CHILDREN = 15.0  # seconds the zygote waits for its workers once the agent is gone
_STOP_WITHIN = 10.0  # seconds the agent waits for the zygote to exit at the end
_FOREVER = 365 * 86400.0
ZYGOTE_NAME = b"netalert-zygote"  # its /proc/PID/comm (what ps and top show)
WORKER_NAME = b"netalert-worker"
# What the zygote (and so every worker) keeps of the agent's environment, which may hold
# secrets (`${VAR}` in the config): what a Python and its locale and clock need.
_ENV_KEPT = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "HOME"})
_ENV_KEPT_PREFIXES = ("LC_", "PYTHON")


class ZygoteError(ConnectionError):
    """The zygote cannot start a worker: it is gone, or refused (the reason in the text)."""


def _frame(kind: str, body: Any) -> bytes:
    data = pickle.dumps((kind, body), protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEAD, "big") + data


class _Reader:
    """Frames and the descriptors passed with them, from a stream socket."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fds: deque[int] = deque()

    def read(self, sock: socket.socket) -> bool:
        """Reads what is there (as the socket's timeout says); False at the end."""
        data, ancillary, _, _ = sock.recvmsg(1 << 20, socket.CMSG_SPACE(_FDS_MAX * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                self.fds.extend(int.from_bytes(payload[n : n + 4], sys.byteorder, signed=True)
                                for n in range(0, usable, 4))  # fmt: skip
        self.buffer += data
        return bool(data)

    def frames(self) -> list[tuple[str, Any]]:
        out = []
        while len(self.buffer) >= _HEAD:
            size = int.from_bytes(self.buffer[:_HEAD], "big")
            if len(self.buffer) < _HEAD + size:
                break
            body = bytes(self.buffer[_HEAD : _HEAD + size])
            del self.buffer[: _HEAD + size]
            out.append(pickle.loads(body))  # noqa: S301 - agent and zygote, one program
        return out

    def take(self, count: int) -> list[int]:
        """The next ``count`` descriptors passed.

        Raises:
            ValueError: fewer came (those that did are closed: the next request starts clean).
        """
        if len(self.fds) < count:
            came = len(self.fds)
            _close(self.fds)
            self.fds.clear()
            raise ValueError(f"{count} descriptors announced, {came} came")
        return [self.fds.popleft() for _ in range(count)]


# --- the agent's side --------------------------------------------------------------------


class Forked:
    """A worker the zygote forked: its pid, and a pidfd to wait for and kill it by.

    The same four calls as :class:`subprocess.Popen` (the worker is the zygote's
    child, not ours; the pidfd names it even after its pid is reused)."""

    def __init__(self, zygote: Zygote, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._zygote = zygote
        self._pidfd = pidfd
        self.returncode: int | None = None

    def _gone(self, timeout: float) -> bool:
        if self.returncode is not None:
            return True
        if self._pidfd >= 0:
            return bool(select.select([self._pidfd], [], [], timeout)[0])
        # No pidfd (Linux before 5.3): the zygote's report, or its pid gone (reaped by init).
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            code = self._zygote.exit_code(self.pid, min(left, 0.1))
            if code is not None:
                self.returncode = code
                return True
            if not self._zygote.alive:
                if not _running(self.pid):
                    return True
                time.sleep(min(left, 0.05))
            if time.monotonic() >= deadline:
                return False

    def poll(self) -> int | None:
        """The exit status (as ``Popen.returncode``) once the zygote reported it, else None."""
        if self.returncode is None and self._gone(0) and self.returncode is None:
            self.returncode = self._zygote.exit_code(self.pid, 0.05)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Waits until the worker exited; its status, None when the zygote did not say.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        if not self._gone(_FOREVER if timeout is None else timeout):
            raise subprocess.TimeoutExpired(f"trap worker {self.pid}", timeout or 0.0)
        if self.returncode is None:
            self.returncode = self._zygote.exit_code(self.pid, 1.0)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL (nothing when it is gone already)."""
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        elif not self._gone(0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def __del__(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = -1


class Zygote:
    """The agent's end of a zygote: forks workers, keeps their exit statuses. Thread-safe
    (a worker is started from the agent's executor), one request at a time."""

    def __init__(
        self, sock: socket.socket, pid: int, tree: object, proc: subprocess.Popen[bytes] | None
    ) -> None:
        self.pid = pid
        self.tree = tree  # the tree it holds (by identity: another one is sent first)
        self._sock = sock
        self._proc = proc  # run as a new interpreter; None: forked by preload()
        self._reader = _Reader()
        self._lock = threading.Lock()
        self._codes: dict[int, int] = {}
        self._replies: deque[tuple[str, Any]] = deque()
        self.alive = True

    def fork(self, spec: WorkerSpec, fds: Sequence[int]) -> Forked:
        """A new worker with ``spec``, passed ``fds`` (its channel first, then its sockets).

        Raises:
            ZygoteError: the zygote is gone, or could not fork.
        """
        if len(fds) > _FDS_MAX:
            raise ZygoteError(
                f"a trap worker takes at most {LISTEN_MAX} listen addresses, not {len(fds) - 1}"
            )
        with self._lock:
            self._request(_frame("fork", (spec, len(fds))), fds)
            kind, body = self._reply()
            if kind == "failed":
                raise ZygoteError(f"the trap zygote could not fork a worker: {body}")
            pid, with_pidfd = body
            return Forked(self, int(pid), self._reader.take(1)[0] if with_pidfd else -1)

    def load(self, tree: TrapTree) -> None:
        """Replaces the tree the zygote forks workers with (a reload with other MIBs).

        Raises:
            ZygoteError: the zygote is gone, or could not load it.
        """
        data = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._request(_frame("tree", data), ())
            kind, body = self._reply()
            if kind == "failed":
                raise ZygoteError(f"the trap zygote could not load the MIB tree: {body}")
            self.tree = tree

    def pump(self) -> None:
        """Takes what the zygote reported (workers' exits) without waiting; notices its end."""
        if self._lock.acquire(blocking=False):
            try:
                self._read(0.0)
            finally:
                self._lock.release()

    def exit_code(self, pid: int, within: float) -> int | None:
        """The exit status the zygote reported for ``pid`` (waiting up to ``within`` s)."""
        deadline = time.monotonic() + within
        while True:
            if pid in self._codes:
                return self._codes.pop(pid)
            left = deadline - time.monotonic()
            if left <= 0 or not self.alive or not self._lock.acquire(timeout=left):
                return None
            try:
                self._read(max(deadline - time.monotonic(), 0.0))
            finally:
                self._lock.release()

    def close(self, within: float = _STOP_WITHIN) -> None:
        """Closes the pair (the zygote then leaves) and waits for it to exit."""
        with self._lock:
            self.alive = False
            self._sock.close()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._reaped():
                return
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._reaped(block=True)

    def _reaped(self, *, block: bool = False) -> bool:
        if self._proc is not None:
            return self._proc.wait() is not None if block else self._proc.poll() is not None
        try:
            pid, _ = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return True
        return pid != 0

    # under self._lock:

    def _request(self, data: bytes, fds: Sequence[int]) -> None:
        if not self.alive:
            raise ZygoteError("the trap zygote is gone")
        self._read(0.0)  # its exit reports first
        try:
            self._sock.settimeout(_REPLY_WITHIN)
            sent = self._sock.sendmsg(
                [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes(fds))] if fds else []
            )
            self._sock.sendall(data[sent:])
        except OSError as exc:
            self._ended(f"{exc}")
            raise ZygoteError(f"the trap zygote is gone ({exc})") from None

    def _reply(self) -> tuple[str, Any]:
        deadline = time.monotonic() + _REPLY_WITHIN
        while not self._replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self.alive:
                if self.alive:
                    self._ended("no answer")
                    with contextlib.suppress(OSError):
                        os.kill(self.pid, signal.SIGKILL)  # stuck: the next start runs another
                raise ZygoteError("the trap zygote is gone")
            self._read(left)
        return self._replies.popleft()

    def _read(self, timeout: float) -> None:
        """Reads and sorts what arrived within ``timeout`` (0: only what is there)."""
        if not self.alive:
            return
        try:
            self._sock.settimeout(max(timeout, 0.0))  # 0: does not wait
            more = self._reader.read(self._sock)
        except (BlockingIOError, TimeoutError, InterruptedError):
            return
        except OSError as exc:
            self._ended(f"{exc}")
            return
        for kind, body in self._reader.frames():
            if kind == "exited":
                pid, code = body
                self._codes[int(pid)] = int(code)
                while len(self._codes) > _CODES_MAX:
                    del self._codes[next(iter(self._codes))]
            else:
                self._replies.append((kind, body))
        if not more:
            self._ended("end of its channel")

    def _ended(self, why: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self._sock.close()
        code: object = "?"
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if self._proc is not None:
                code = self._proc.wait(1.0)
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status) if pid else "?"
        log.error(event("trap_zygote_exited", pid=self.pid, code=code, reason=why))


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _fd_bytes(fds: Sequence[int]) -> bytes:
    return b"".join(int(fd).to_bytes(4, sys.byteorder, signed=True) for fd in fds)


_current: Zygote | None = None
_current_lock = threading.Lock()


def preload(tree: TrapTree) -> Zygote | None:
    """Forks the zygote now, with ``tree`` and everything imported so far (``netalert run``,
    after the config and the MIB tree are loaded, before the event loop and any thread).

    Returns None, and the first worker start runs the zygote as a new interpreter, when
    a thread exists already (a fork would copy its locks mid-use) or the fork fails.
    """
    global _current
    import netalert.traps.worker  # noqa: F401 - imported once, here, not in every worker

    threads = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if threads:
        log.warning(event("trap_zygote_not_forked", threads=",".join(threads)))
        return None
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except OSError as exc:
        here.close()
        there.close()
        log.warning(event("trap_zygote_not_forked", error=exc))
        return None
    if pid == 0:  # the zygote
        try:
            here.close()
            gc.freeze()  # what it holds is left alone by collections: its pages stay shared
            _serve(there, tree)
        finally:
            os._exit(70)
    there.close()
    _current = Zygote(here, pid, tree, None)
    log.info(event("trap_zygote_started", pid=pid, start="fork"))
    return _current


def zygote_for(tree: TrapTree) -> Zygote:
    """The running zygote, holding ``tree`` (sent to it when it holds another), or a new
    one run as ``python -m netalert.traps.zygote``. Blocks: call it from a thread.

    Raises:
        OSError: the new interpreter cannot be started.
        ZygoteError: the zygote cannot load ``tree``.
    """
    global _current
    with _current_lock:
        zygote = _current
        if zygote is None or not zygote.alive:
            zygote = _current = _spawn(tree)
        if zygote.tree is not tree:
            zygote.load(tree)
        return zygote


def start_worker(tree: TrapTree, spec: WorkerSpec, fds: Sequence[int]) -> Forked:
    """A worker forked by the zygote holding ``tree`` (:func:`zygote_for`), passed ``fds``.

    A zygote found gone only by this request (killed since the agent last read its
    end of the pair) is replaced, once: the start does not fail for it. Blocks.

    Raises:
        OSError: the new interpreter cannot be started.
        ZygoteError: the zygote refused (it could not fork), or its replacement is gone too.
    """
    zygote = None
    try:
        zygote = zygote_for(tree)
        return zygote.fork(spec, fds)
    except ZygoteError:
        if zygote is not None and zygote.alive:
            raise  # it answered: it could not fork
    return zygote_for(tree).fork(spec, fds)


def _spawn(tree: TrapTree) -> Zygote:
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netalert.traps.zygote", str(there.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=(there.fileno(),),
            env=_kept_environment(os.environ),
        )
    except OSError:
        here.close()
        raise
    finally:
        there.close()
    assert proc.stdin is not None
    data = pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
    with contextlib.suppress(OSError):  # it died: its channel says so at the first request
        proc.stdin.write(data)
        proc.stdin.close()
    log.info(event("trap_zygote_started", pid=proc.pid, start="spawn"))
    return Zygote(here, proc.pid, tree, proc)


def pump() -> None:
    """Takes the running zygote's reports now (the agent's housekeeping, once a second)."""
    zygote = _current
    if zygote is not None:
        zygote.pump()


def shutdown() -> None:
    """Stops the zygote (``netalert run``, after the agent stopped its workers)."""
    global _current
    with _current_lock:
        zygote, _current = _current, None
    if zygote is not None:
        zygote.close()


atexit.register(shutdown)  # an agent run in-process (the demo, tests) ends its zygote too


# --- the zygote's side -------------------------------------------------------------------


def _name(name: bytes) -> None:
    with contextlib.suppress(OSError), open("/proc/self/comm", "wb") as comm:
        comm.write(name)


def _kept_environment(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in _ENV_KEPT or k.startswith(_ENV_KEPT_PREFIXES)}


def _forget_environment() -> None:
    """Keeps only :func:`_kept_environment` of the environment, here and in the process's
    start block (what ``/proc/PID/environ`` shows, which a fork copies from the agent)."""
    kept = _kept_environment(os.environ)
    os.environ.clear()  # unsetenv: C's environ no longer points into the start block
    os.environ.update(kept)  # setenv copies
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
        text = b"".join(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0" for k, v in kept.items())
        if 0 < start < end and len(text) <= end - start:
            with open("/proc/self/mem", "r+b", buffering=0) as mem:
                mem.seek(start)
                mem.write(text.ljust(end - start, b"\0"))


def _serve(sock: socket.socket, tree: TrapTree) -> None:
    """The zygote's loop: forks a worker per request, loads a tree, reports exits."""
    _name(ZYGOTE_NAME)
    _forget_environment()
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the agent's to handle; we leave with it
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sock.setblocking(True)
    reader = _Reader()
    children: set[int] = set()
    own = sock.fileno()
    while True:
        ready = select.select([own, wake_r], [], [])[0]
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _reap(sock, children)
        if own not in ready:
            continue
        try:
            more = reader.read(sock)
        except OSError:
            more = False
        for kind, body in reader.frames():
            if kind == "fork":
                spec, count = body
                try:
                    fds = reader.take(count)
                except ValueError as exc:  # not what the agent sends: refused, not fatal
                    _send(sock, "failed", f"{exc}")
                    continue
                _fork(sock, spec, fds, tree, children, (wake_r, wake_w))
            elif kind == "tree":
                try:
                    tree = pickle.loads(body)  # noqa: S301 - from the agent
                    gc.unfreeze()  # the old tree can go
                    gc.collect()
                    gc.freeze()
                    _send(sock, "loaded", None)
                except Exception as exc:
                    _send(sock, "failed", f"{exc!r}")
        if not more:
            break
    # The agent is gone or stopping: its workers see their channels end and leave.
    sock.close()
    deadline = time.monotonic() + _WAIT_CHILDREN
    while children and time.monotonic() < deadline:
        _reap(None, children)
        time.sleep(0.02)
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _reap(None, children, block=True)
    os._exit(0)


def _fork(
    sock: socket.socket,
    spec: WorkerSpec,
    fds: list[int],
    tree: TrapTree,
    children: set[int],
    wake: tuple[int, int],
) -> None:
    try:
        pid = os.fork()
    except OSError as exc:
        _close(fds)
        _send(sock, "failed", f"{exc}")
        return
    if pid == 0:  # the worker
        code = 70
        try:
            sock.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _close(wake)
            _name(WORKER_NAME)
            _reseed()
            from netalert.traps.worker import run

            names = list(spec.listen_fds)
            spec = replace(
                spec, channel_fd=fds[0], listen_fds=dict(zip(names, fds[1:], strict=True))
            )
            code = run(spec, tree)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    children.add(pid)
    _close(fds)  # the worker's now: its channel ends when it does
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # Linux before 5.3: the agent goes by the pid and our exit reports
        _send(sock, "forked", (pid, False))
        return
    try:
        _send(sock, "forked", (pid, True), [pidfd])
    finally:
        os.close(pidfd)


def _reap(sock: socket.socket | None, children: set[int], *, block: bool = False) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        if sock is not None:
            _send(sock, "exited", (pid, os.waitstatus_to_exitcode(status)))


def _send(sock: socket.socket, kind: str, body: Any, fds: Sequence[int] = ()) -> None:
    data = _frame(kind, body)
    with contextlib.suppress(OSError):  # the agent is gone: the loop sees the end next
        sent = sock.sendmsg(
            [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes(fds))] if fds else []
        )
        sock.sendall(data[sent:])


def _close(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _reseed() -> None:
    """Fresh per-process randomness a fork would otherwise share with every sibling:
    pysnmp draws its privacy salts' start (AES, DES) once, when imported."""
    import secrets

    for module, bits in (
        ("pysnmp.proto.secmod.rfc3826.priv.aes", 64),
        ("pysnmp.proto.secmod.rfc3414.priv.des", 32),
        ("pysnmp.proto.secmod.eso.priv.des3", 32),
    ):
        found = sys.modules.get(module)
        for value in vars(found).values() if found is not None else ():
            if isinstance(value, type) and isinstance(getattr(value, "local_int", None), int):
                setattr(value, "local_int", secrets.randbits(bits))  # noqa: B010


def main() -> int:
    """``python -m netalert.traps.zygote FD``: the tree on stdin, the agent's pair on FD."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    import netalert.traps.worker  # noqa: F401 - imported once, here, not in every worker

    tree = pickle.load(sys.stdin.buffer)  # noqa: S301 - from our parent, the agent
    sys.stdin.close()
    gc.collect()
    gc.freeze()
    _serve(sock, tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
