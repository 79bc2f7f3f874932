"""Config values that become mail headers are one line: refused at load, before any send.

``[smtp].from``, a route's ``to``, ``canary_to`` and ``netalert mail test --to``
holding CR or LF would add headers of their own (or crash the renderer): each is
a config or usage error with the exact path, from ``load_config_text`` and from
``netalert check-config`` / ``netalert mail test`` run as processes against aiosmtpd.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.errors import ConfigError
from tests.support.smtp import SmtpServer

FORGED_FROM = "netalert <alerts@example.org>\r\nBcc: victim@evil.example"
CONTROL = "a mail header cannot hold control characters such as CR or LF"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.toml", env={})
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[smtp]\nfrom = "netalert <alerts@example.org>\\r\\nBcc: victim@evil.example"\n',
            [f"smtp.from: invalid sender address {FORGED_FROM!r}: {CONTROL}"],
        ),
        (
            '[smtp]\nfrom = "alerts@example.org\\nX-Injected: 1"\n',
            [f"smtp.from: invalid sender address 'alerts@example.org\\nX-Injected: 1': {CONTROL}"],
        ),
        (
            '[smtp]\nfrom = "alerts@example.org\\u0000"\n',
            ["smtp.from: contains a NUL character"],  # refused in any value, before its field
        ),
        ('[smtp]\nfrom = "netalert"\n', ["smtp.from: invalid sender address 'netalert'"]),
        (
            '[[routes]]\nto = ["noc@example.org\\r\\nBcc: victim@evil.example"]\n',
            [
                "routes[0].to: invalid recipient address "
                f"'noc@example.org\\r\\nBcc: victim@evil.example': {CONTROL}"
            ],
        ),
        (
            '[smtp]\ncanary_to = ["noc@example.org\\rX: 1"]\n',
            [f"smtp.canary_to: invalid recipient address 'noc@example.org\\rX: 1': {CONTROL}"],
        ),
    ],
)
def test_refused_at_config_time(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_one_line_values_pass() -> None:
    config = load_config_text(
        '[smtp]\nfrom = "Ünïcode Alerts <alerts@example.org>"\ncanary_to = ["a@example.org"]\n'
        '[[routes]]\nto = ["NOC <noc@example.org>"]\n',
        env={},
    )
    assert config.smtp.from_ == "Ünïcode Alerts <alerts@example.org>"


def netalert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_check_config_and_mail_test_refuse_a_multiline_from(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    (tmp_path / "config.toml").write_text(
        '[agent]\nstate_dir = "state"\nhttp = ""\n'
        f'[smtp]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\n'
        'from = "netalert <alerts@example.org>\\r\\nBcc: victim@evil.example"\n'
    )
    line = f"smtp.from: invalid sender address {FORGED_FROM!r}: {CONTROL}\n"
    checked = netalert("check-config", "-c", "config.toml", cwd=tmp_path)
    assert (checked.returncode, checked.stderr, checked.stdout) == (2, line, "")
    mailed = netalert("mail", "test", "--to", "noc@example.org", "-c", "config.toml", cwd=tmp_path)
    assert (mailed.returncode, mailed.stderr) == (2, line)
    assert smtp_server.received() == [] and smtp_server.connections == 0


def test_mail_test_refuses_a_multiline_recipient(tmp_path: Path, smtp_server: SmtpServer) -> None:
    (tmp_path / "config.toml").write_text(
        '[agent]\nstate_dir = "state"\nhttp = ""\n'
        f'[smtp]\nhost = "{smtp_server.host}"\nport = {smtp_server.port}\n'
    )
    forged = "noc@example.org\r\nBcc: victim@evil.example"
    done = netalert("mail", "test", "--to", forged, "-c", "config.toml", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        f"--to: invalid recipient address {forged!r}: {CONTROL}\n",
    )
    assert smtp_server.received() == [] and smtp_server.connections == 0
    # the same command with a one-line address goes through: the check is not the failure
    done = netalert("mail", "test", "--to", "noc@example.org", "-c", "config.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [m.rcpt_tos for m in smtp_server.received()] == [("noc@example.org",)]
