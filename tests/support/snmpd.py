"""net-snmp ``snmpd`` as a real device for tests (pytest plugin).

Fixtures:

* ``snmpd_factory``: call it with the agent you want, get a running :class:`Snmpd`;
  every agent it started is stopped (by PID) at the end of the test.
* ``snmpd``: a default agent, v2c community ``public`` plus one v3 authPriv user
  ``netalert`` (SHA-256 / AES-128, see :data:`DEFAULT_USER`).

Example::

    def test_x(snmpd_factory):
        agent = snmpd_factory(
            community="s3cret",
            users=[V3User("md5des", "MD5", "authpass-1", "DES", "privpass-1")],
            sys_name="edge-1",
            passes=[PassScript(".1.3.6.1.4.1.99999", SCRIPT_TEXT)],
        )
        agent.host, agent.port, agent.address, agent.engine_id, agent.pid

Isolation: each agent gets its own directory (config, log, persistent state). It is
started with ``SNMPCONFPATH=<dir>:<dir>/persist`` and ``SNMP_PERSISTENT_DIR`` so it
never reads ``/etc/snmp`` nor ``/var/lib/snmp``, and with ``MIBS=`` (no MIB files
loaded, start-up stays fast): config lines must use numeric OIDs. The persistent
directory survives :meth:`Snmpd.restart`, so a restart keeps the engine ID and
increments snmpEngineBoots while sysUpTime starts again from 0, like a rebooted device.

:attr:`Snmpd.env` is an environment for the net-snmp command-line tools
(``snmpget``, ``snmptrap``...) with the same isolation. As a plugin, the module also
gives every test process a persistent folder of its own (``SNMP_PERSISTENT_DIR``), so
the tools a test starts with the inherited environment share nothing in
``/var/lib/snmp`` and print nothing about making their folder.

The module also works outside pytest (``bench/`` uses :class:`Snmpd` directly).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ports import free_udp_port
from tests.support.stopping import stop_pid

__all__ = [
    "DEFAULT_USER",
    "SNMPD",
    "PassScript",
    "Snmpd",
    "SnmpdError",
    "SnmpdFactory",
    "V3User",
    "discover_engine",
    "persistent_dir",
    "snmpd",
    "snmpd_factory",
]

SNMPD = os.environ.get("NETALERT_TEST_SNMPD", "/usr/sbin/snmpd")

# createUser spells the protocols its own way; the keys are netalert's names (SPEC.md).
_AUTH = {
    "MD5": "MD5",
    "SHA": "SHA",
    "SHA-224": "SHA-224",
    "SHA-256": "SHA-256",
    "SHA-384": "SHA-384",
    "SHA-512": "SHA-512",
}
_PRIV = {"DES": "DES", "AES-128": "AES", "AES-192": "AES192", "AES-256": "AES256"}


class SnmpdError(RuntimeError):
    """snmpd could not be started or did not answer."""


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 USM user the agent knows (read-only access to everything).

    ``auth_protocol`` is one of MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512 or None;
    ``priv_protocol`` one of DES, AES-128, AES-192, AES-256 or None.
    """

    name: str
    auth_protocol: str | None = "SHA-256"
    auth_password: str = "auth-pass-123"
    priv_protocol: str | None = "AES-128"
    priv_password: str = "priv-pass-123"

    @property
    def level(self) -> str:
        """The USM security level: noAuthNoPriv, authNoPriv or authPriv."""
        if self.auth_protocol is None:
            return "noAuthNoPriv"
        return "authNoPriv" if self.priv_protocol is None else "authPriv"

    def config_lines(self) -> list[str]:
        """The ``createUser`` and ``rouser`` lines of snmpd.conf."""
        words = ["createUser", self.name]
        if self.auth_protocol is not None:
            words += [_AUTH[self.auth_protocol], _quote(self.auth_password)]
            if self.priv_protocol is not None:
                words += [_PRIV[self.priv_protocol], _quote(self.priv_password)]
        level = {"noAuthNoPriv": "noauth", "authNoPriv": "auth", "authPriv": "priv"}[self.level]
        return [" ".join(words), f"rouser {self.name} {level}"]

    def cli_args(self) -> list[str]:
        """Arguments of the net-snmp tools (``snmpget``...) for this user."""
        args = ["-v3", "-u", self.name, "-l", self.level]
        if self.auth_protocol is not None:
            args += ["-a", self.auth_protocol, "-A", self.auth_password]
            if self.priv_protocol is not None:
                args += ["-x", _PRIV[self.priv_protocol], "-X", self.priv_password]
        return args


DEFAULT_USER = V3User("netalert", "SHA-256", "auth-pass-123", "AES-128", "priv-pass-123")


@dataclass(frozen=True, slots=True)
class PassScript:
    """A ``pass`` (or ``pass_persist``) handler: the test controls the values.

    ``source`` is the script text (start it with a ``#!`` line, e.g.
    ``f"#!{sys.executable}"``); it is written executable into the agent's
    directory. ``priority`` below 127 (e.g. 10) lets the script take over an
    object snmpd implements itself, such as sysUpTime (``.1.3.6.1.2.1.1.3``).
    See snmpd.conf(5) for the pass protocol (``-g``/``-n`` and three output lines).

    A ``pass`` script runs once for every request, so what it answers can change
    between any two requests. snmpd itself would not do that: it keeps the output
    of its last ``pass`` command for 30 s and hands it out again when the same
    command line (script, ``-g``, OID) comes next, so of two GETs of the same OID
    the second got the first one's answer. Such a script is therefore served
    through a ``pass_persist`` relay (:data:`_RELAY`) that runs it per request.
    """

    oid: str
    source: str
    persist: bool = False
    priority: int | None = None


# The pass_persist process standing in for a ``pass`` script: it runs the script with
# pass's arguments for every request and relays its first three lines, or NONE when
# it printed fewer. Like pass, the script's stderr goes into its answer. A shell
# script, so that starting it (on snmpd's first request) costs next to nothing; the
# answer goes through a file, byte for byte.
_RELAY = """#!/bin/sh
script='{script}'
out='{script}.out'
while IFS= read -r command; do
    case "$command" in
    PING) echo PONG ;;
    get | getnext)
        IFS= read -r oid
        flag=-g
        [ "$command" = getnext ] && flag=-n
        "$script" "$flag" "$oid" </dev/null 2>&1 | head -n 3 >"$out"
        if [ "$(grep -a -c '' "$out")" -eq 3 ]; then
            cat "$out"
            [ -z "$(tail -c 1 "$out")" ] || echo  # the last line's end, if it had none
        else
            echo NONE
        fi
        ;;
    set)
        read -r oid
        read -r value
        echo not-writable
        ;;
    esac
done
"""


def _quote(text: str) -> str:
    if any(c.isspace() or c in "\"'#" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


# --- a tiny BER codec for the readiness probe (an SNMPv3 discovery request) ---------


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + body


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Returns (tag, content, next position) of the TLV at ``pos``."""
    tag, size = data[pos], data[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        size = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + size], pos + size


def _children(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, body, pos = _read(content, pos)
        out.append((tag, body))
    return out


def _discovery_request(msg_id: int) -> bytes:
    header = _tlv(0x30, _int(msg_id) + _int(65507) + _tlv(0x04, b"\x04") + _int(3))
    usm = _tlv(0x30, _tlv(0x04, b"") + _int(0) + _int(0) + _tlv(0x04, b"") * 3)
    pdu = _tlv(0xA0, _int(msg_id) + _int(0) + _int(0) + _tlv(0x30, b""))
    scoped = _tlv(0x30, _tlv(0x04, b"") + _tlv(0x04, b"") + pdu)
    return _tlv(0x30, _int(3) + header + _tlv(0x04, usm) + scoped)


def discover_engine(host: str, port: int, timeout: float = 0.2) -> bytes | None:
    """Sends one SNMPv3 discovery request; returns the agent's engine ID or None.

    Every SNMPv3 agent answers it (with a Report) whatever its users and
    communities, so it tells "up and answering" without credentials.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        # connect(): only datagrams from the address asked are received
        sock.connect((host, port))
        msg_id = int(time.monotonic_ns() % 0x7FFFFFFF)
        try:
            sock.send(_discovery_request(msg_id))
            data = sock.recv(65535)
        except OSError:  # timeout, or ICMP port unreachable while snmpd binds
            return None
    try:
        _, message, _ = _read(data, 0)
        parts = _children(message)
        usm = _children(_read(parts[2][1], 0)[1])
        return usm[0][1]
    except (IndexError, ValueError):
        return None


# --- the agent ----------------------------------------------------------------------


@dataclass
class Snmpd:
    """One snmpd process and its private directory. Start with :meth:`start`."""

    directory: Path
    community: str | None = "public"
    users: Sequence[V3User] = ()
    sys_name: str = "netalert-test"
    sys_location: str = "test lab"
    sys_contact: str = "noc@example.org"
    sys_descr: str | None = None
    passes: Sequence[PassScript] = ()
    extra: Sequence[str] = ()
    engine_id_hex: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 10.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    engine_id: bytes = b""

    @property
    def pid(self) -> int:
        """PID of the running snmpd."""
        if self.process is None:
            raise SnmpdError("snmpd is not running")
        return self.process.pid

    @property
    def address(self) -> str:
        """``host:port`` as netalert's config writes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "snmpd.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "snmpd.log"

    @property
    def persist_dir(self) -> Path:
        return self.directory / "persist"

    @property
    def env(self) -> dict[str, str]:
        """Environment for net-snmp command-line tools, isolated like the agent."""
        cli = self.directory / "cli"
        persistent_dir(cli)
        return {
            **os.environ,
            "SNMPCONFPATH": str(cli),
            "SNMP_PERSISTENT_DIR": str(cli),
            "MIBS": "",
            "MIBDIRS": str(cli),
        }

    def log(self) -> str:
        """The agent's log so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _write_config(self, listen_host: str) -> None:
        lines = [
            "# written by tests/support/snmpd.py",
            "dontLogTCPWrappersConnects yes",
            f"sysName {self.sys_name}",
            f"sysLocation {self.sys_location}",
            f"sysContact {self.sys_contact}",
        ]
        if self.sys_descr is not None:
            lines.append(f"sysDescr {self.sys_descr}")
        if self.engine_id_hex is not None:
            lines.append(f"exactEngineID 0x{self.engine_id_hex.lower().removeprefix('0x')}")
        if self.community is not None:
            source = "127.0.0.0/8" if listen_host != "::1" else "::1"
            keyword = "rocommunity6" if ":" in listen_host else "rocommunity"
            lines.append(f"{keyword} {_quote(self.community)} {source}")
        for user in self.users:
            lines += user.config_lines()
        for number, script in enumerate(self.passes):
            path = self.directory / f"pass{number}"
            path.write_text(script.source)
            path.chmod(0o755)
            if not script.persist:  # see PassScript: snmpd would cache its answers
                relay = self.directory / f"pass{number}-relay"
                relay.write_text(_RELAY.format(script=path))
                relay.chmod(0o755)
                path = relay
            prio = f" -p {script.priority}" if script.priority is not None else ""
            lines.append(f"pass_persist{prio} {script.oid} {path}")
        lines += list(self.extra)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, listen_host: str | None = None) -> Snmpd:
        """Starts snmpd and waits until it answers; returns self.

        Keeps the port of a previous start (a restart); else finds a free one,
        trying another if the port was taken in between (the machine is shared).
        ``listen_host`` overrides the bound address (the bench binds 0.0.0.0 to
        answer on every 127.x.y.z; communities stay limited to 127.0.0.0/8).

        Raises:
            SnmpdError: snmpd is missing, exited, or did not answer in time.
        """
        if not Path(SNMPD).is_file():
            raise SnmpdError(f"{SNMPD} not found: install net-snmp's snmpd (apt-get install snmpd)")
        if self.process is not None:
            raise SnmpdError("snmpd is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persist_dir.mkdir(exist_ok=True)
        bind = listen_host or self.host
        self._write_config(bind)
        fixed = self.port != 0
        last = ""
        for _ in range(1 if fixed else 5):
            port = self.port if fixed else free_udp_port(self.host)
            if self._launch(bind, port):
                self.port = port
                return self
            last = self.log()
            self.stop()
        raise SnmpdError(f"snmpd did not start; its log:\n{last}")

    def _launch(self, bind: str, port: int) -> bool:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SNMPCONFPATH": f"{self.directory}:{self.persist_dir}",
            "SNMP_PERSISTENT_DIR": str(self.persist_dir),
            "MIBS": "",
            "MIBDIRS": str(self.persist_dir),
        }
        endpoint = f"udp6:[{bind}]:{port}" if ":" in bind else f"udp:{bind}:{port}"
        with self.log_path.open("ab") as log:
            log.write(f"--- start on {endpoint}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [SNMPD, "-f", "-Lf", str(self.log_path), endpoint],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.directory,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            engine = discover_engine(self.host, port, timeout=0.1)
            # snmpd may answer with an empty engine ID while it is still starting
            if engine is not None and len(engine) >= 5:
                self.engine_id = engine
                return True
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stops snmpd by its PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self.process = self.process, None
        stop_pid(proc, signal.SIGTERM, timeout)

    def restart(self) -> Snmpd:
        """Stops and starts again on the same port with the same persistent state.

        Raises:
            SnmpdError: the new process did not answer.
        """
        self.stop()
        return self.start()

    def snmpget(
        self,
        *oids: str,
        user: V3User | None = None,
        tool: str = "snmpget",
        timeout: float = 5.0,
    ) -> str:
        """Runs a net-snmp tool against the agent; returns its stdout (``-On -Oqt``).

        ``timeout``: seconds per attempt (two attempts). Long by default: the first request
        to a ``pass_persist`` script starts it, which on a loaded machine takes seconds.

        Raises:
            SnmpdError: the tool failed.
        """
        auth = user.cli_args() if user is not None else ["-v2c", "-c", self.community or ""]
        result = subprocess.run(
            [tool, "-On", "-Oqt", "-t", str(timeout), "-r", "1", *auth, self.address, *oids],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise SnmpdError(f"{tool} failed: {result.stderr.strip()}")
        return result.stdout


SnmpdFactory = Callable[..., Snmpd]

_PERSISTENT = pytest.StashKey[Path]()


def persistent_dir(path: Path) -> Path:
    """``path`` made ready as a net-snmp persistent folder (``SNMP_PERSISTENT_DIR``).

    A tool given a folder that does not exist yet makes it and its ``cert_indexes``
    and says so on stderr ("Created directory: ..."): made here, the tools say nothing.
    """
    (path / "cert_indexes").mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def pytest_configure(config: pytest.Config) -> None:
    # The net-snmp tools a test starts with this process's environment keep their
    # persistent files (snmpapp.conf, cert_indexes) in a folder of this process, not in
    # /var/lib/snmp, which every xdist worker (and every other run) would share.
    made = persistent_dir(Path(tempfile.mkdtemp(prefix="netalert-net-snmp-")))
    config.stash[_PERSISTENT] = made
    os.environ["SNMP_PERSISTENT_DIR"] = str(made)


def pytest_unconfigure(config: pytest.Config) -> None:
    made = config.stash.get(_PERSISTENT, None)
    if made is not None:
        if os.environ.get("SNMP_PERSISTENT_DIR") == str(made):
            del os.environ["SNMP_PERSISTENT_DIR"]
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def snmpd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdFactory]:
    """Starts snmpd agents configured by keyword (see :class:`Snmpd`); stops them after.

    A missing snmpd fails the test: it never skips.
    """
    started: list[Snmpd] = []

    def make(**options: object) -> Snmpd:
        directory = Path(tempfile.mkdtemp(prefix="snmpd-", dir=tmp_path_factory.getbasetemp()))
        agent = Snmpd(directory=directory, **options)  # type: ignore[arg-type]
        started.append(agent)
        try:
            return agent.start()
        except SnmpdError as exc:
            pytest.fail(str(exc), pytrace=False)

    if shutil.which(SNMPD) is None:
        pytest.fail(f"{SNMPD} not found: install net-snmp's snmpd (apt-get install snmpd)")
    yield make
    for agent in started:
        agent.stop()


@pytest.fixture
def snmpd(snmpd_factory: SnmpdFactory) -> Snmpd:
    """A default agent: v2c community ``public`` and v3 authPriv user :data:`DEFAULT_USER`."""
    return snmpd_factory(community="public", users=[DEFAULT_USER])
