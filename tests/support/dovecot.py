"""A private Dovecot IMAP server for tests: Maildir, one passwd-file user, TLS, loopback.

Load with ``pytest_plugins = ["tests.support.dovecot"]`` (done in tests/conftest.py).

Fixtures:

* ``dovecot`` - a started :class:`Dovecot`, stopped (by its PID) at teardown.
* ``dovecot_ca_file`` - the test CA (made at run time by trustme) its certificate chains to.

The server runs in the foreground (``dovecot -F``) from a config of its own in a
temporary folder: implicit TLS on :attr:`Dovecot.tls_port` (993 style) and a
STARTTLS listener on :attr:`Dovecot.starttls_port`, both on 127.0.0.1 ports found
free at run time, plain-text login only over TLS. Run as root, its mail processes
run as ``nobody`` (Dovecot refuses root) and its login processes as the
``dovecot``/``dovenull`` users the Debian package made. :meth:`Dovecot.deliver`
writes a message into the user's Maildir as a delivery agent does (a file in
``new/``); :meth:`Dovecot.restart` stops and starts it on the same ports.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.ports import free_tcp_port

__all__ = ["DOVECOT", "Dovecot"]

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
USER = "alerts"
PASSWORD = "imap-test-pw"

_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = {host}
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
first_valid_uid = 1
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
namespace inbox {{
  inbox = yes
  mailbox Done {{
    auto = create
  }}
}}
"""


def _accounts() -> tuple[int, int, str, str, str]:
    """(mail uid, mail gid, internal user, its group, login user)."""
    if os.getuid() != 0:
        me = pwd.getpwuid(os.getuid())
        return me.pw_uid, me.pw_gid, me.pw_name, _group(me.pw_gid), me.pw_name
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid, "dovecot", "dovecot", "dovenull"


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


class Dovecot:
    """One private Dovecot server (see the module docstring)."""

    def __init__(self, ca: trustme.CA) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="netalert-dovecot-"))
        os.chmod(self.base, 0o755)  # its mail processes run as another user
        self.uid, self.gid, internal, internal_group, login = _accounts()
        self.home = self.base / "home"
        self.maildir = self.home / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        self._own(self.home)
        cert = ca.issue_cert(HOST, "localhost")
        cert.private_key_pem.write_to_path(str(self.base / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.base / "cert.pem"))
        (self.base / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{self.home}::\n"
        )
        self.tls_port = free_tcp_port(HOST)
        self.starttls_port = free_tcp_port(HOST)
        self.config = self.base / "dovecot.conf"
        self.config.write_text(
            _CONF.format(
                base=self.base,
                host=HOST,
                internal=internal,
                internal_group=internal_group,
                login=login,
                tls_port=self.tls_port,
                starttls_port=self.starttls_port,
            )
        )
        self.user = USER
        self.password = PASSWORD
        self.host = HOST
        self.proc: subprocess.Popen[bytes] | None = None
        self._seq = 0

    def _own(self, path: Path) -> None:
        if os.getuid() == 0:
            for root, dirs, files in os.walk(path):
                os.chown(root, self.uid, self.gid)
                for name in dirs + files:
                    os.chown(os.path.join(root, name), self.uid, self.gid)

    def start(self, timeout: float = 10.0) -> None:
        """Starts the server and waits until both listeners accept connections."""
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its imap processes too: see stop()
        )
        deadline = time.monotonic() + timeout
        for port in (self.tls_port, self.starttls_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dovecot exited: {self.log()[-2000:]}")
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not listen on {port}: {self.log()[-2000:]}")
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server by its PID (SIGTERM, then SIGKILL) and waits for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        # The master tells its imap processes to end, but on a loaded machine one was
        # seen still serving its session 20 s after a restart: a "restarted" server
        # whose old sessions live on. What is left of the process group is told again
        # (and woken, should it be stopped), and killed if it does not end: a killed
        # imap process can leave a Maildir lock the next server waits on.
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Stops and starts the server again on the same ports."""
        self.stop()
        self.start()

    def deliver(self, data: bytes, folder: str = "") -> Path:
        """Writes one message into ``folder``'s ``new/`` ("" for INBOX) as a delivery agent does."""
        self._seq += 1
        name = f"{time.time_ns()}.M{self._seq}P{os.getpid()}.test"
        root = self._folder(folder)
        tmp = root / "tmp" / name
        tmp.write_bytes(data.replace(b"\r\n", b"\n"))
        self._own(tmp)
        final = root / "new" / name
        os.rename(tmp, final)
        return final

    def _folder(self, folder: str) -> Path:
        return self.maildir / f".{folder}" if folder else self.maildir

    def make_folder(self, folder: str) -> None:
        """Makes ``folder`` (Maildir++ ``.folder``) anew, empty: deleted first if it exists.

        Dovecot gives a folder made anew a new UIDVALIDITY and numbers its
        messages from 1 again (do it while the server is stopped).
        """
        root = self._folder(folder)
        shutil.rmtree(root, ignore_errors=True)
        for sub in ("new", "cur", "tmp"):
            (root / sub).mkdir(parents=True)
        self._own(root)

    def renumber(self, folder: str = "") -> None:
        """Drops ``folder``'s UID list and indexes (as a restore from a backup may), keeping
        its messages and their flags: Dovecot numbers them anew under a new UIDVALIDITY.

        Do it while the server is stopped.
        """
        root = self._folder(folder)
        for path in [root / "dovecot-uidlist", *root.glob("dovecot.index*")]:
            path.unlink(missing_ok=True)
        for path in self.maildir.glob("dovecot.list.index*"):
            path.unlink(missing_ok=True)

    def messages(self, folder: str = "") -> list[Path]:
        """The message files of ``folder`` ("" for INBOX), in ``new/`` and ``cur/``."""
        root = self._folder(folder)
        return sorted(
            p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir()
        )

    def log(self) -> str:
        """The server's log so far."""
        try:
            return (self.base / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def remove(self) -> None:
        """Stops the server and deletes its folder."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_ca() -> trustme.CA:
    """The test CA of the Dovecot servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def dovecot_ca_file(dovecot_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA certificate as a PEM file (``[ack.imap].ca_file``)."""
    path = tmp_path_factory.mktemp("dovecot-ca") / "ca.pem"
    dovecot_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def dovecot(dovecot_ca: trustme.CA) -> Iterator[Dovecot]:
    """A started private Dovecot, stopped and removed at teardown."""
    if not os.path.exists(DOVECOT):
        if os.environ.get("NETALERT_REQUIRE_SNMPD") or os.environ.get("CI"):
            pytest.fail("dovecot is not installed (make debs installs dovecot-imapd)")
        pytest.skip("dovecot is not installed (make debs installs dovecot-imapd)")
    server = Dovecot(dovecot_ca)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _group_alive(pgid: int) -> bool:
    """True while a process of the group ``pgid`` is left (zombies aside)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False
