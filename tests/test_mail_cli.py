"""``netalert mail test`` against a real aiosmtpd, through the installed CLI code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from netalert.cli import app
from tests.support.smtp import SmtpServer


def write_config(tmp_path: Path, server: SmtpServer, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    security = {"plain": "none"}.get(server.mode, server.mode)
    path.write_text(
        f"""
[agent]
state_dir = "var"
http = ""

[smtp]
host = "{server.host}"
port = {server.port}
security = "{security}"
from = "netalert <alerts@example.org>"
ca_file = "{server.ca_file}"
timeout = "5s"
{extra}
"""
    )
    return path


def test_mail_test_sends_over_starttls_with_auth(smtp_factory: Any, tmp_path: Path) -> None:
    server: SmtpServer = smtp_factory("starttls", auth=("alice", "s3cret"), auth_required=True)
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = write_config(tmp_path, server, 'username = "alice"\npassword_file = "pw"')
    result = CliRunner().invoke(app, ["mail", "test", "--to", "noc@example.net", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "sent to noc@example.net" in result.output
    [got] = server.received()
    assert got.tls and got.rcpt_tos == ("noc@example.net",)
    assert got.parsed()["Subject"] == "[TEST] netalert mail test"


def test_mail_test_wrong_password_exits_1_with_the_code(smtp_factory: Any, tmp_path: Path) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    cfg = write_config(tmp_path, server, 'username = "alice"\npassword = "nope"')
    result = CliRunner().invoke(app, ["mail", "test", "--to", "noc@example.net", "-c", str(cfg)])
    assert result.exit_code == 1
    assert "SMTP 535" in result.output and "alice" in result.output
    assert "nope" not in result.output  # secrets never printed
    assert server.received() == []


def test_mail_test_refused_recipient_exits_1(smtp_server: SmtpServer, tmp_path: Path) -> None:
    smtp_server.fail("rcpt", "550 5.1.1 no such user", recipient="gone@example.net")
    cfg = write_config(tmp_path, smtp_server)
    result = CliRunner().invoke(
        app, ["mail", "test", "--to", "noc@example.net", "--to", "gone@example.net", "-c", str(cfg)]
    )
    assert result.exit_code == 1
    assert "gone@example.net: 550 5.1.1 no such user" in result.output
    assert [m.rcpt_tos for m in smtp_server.received()] == [("noc@example.net",)]


def test_mail_test_server_down_exits_1(smtp_server: SmtpServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, smtp_server)
    smtp_server.stop()
    result = CliRunner().invoke(app, ["mail", "test", "--to", "noc@example.net", "-c", str(cfg)])
    assert result.exit_code == 1
    assert "cannot connect" in result.output


def test_mail_test_escapes_a_hostile_server_reply(smtp_server: SmtpServer, tmp_path: Path) -> None:
    # The server's reply text is network data: an escape sequence must not reach the terminal.
    smtp_server.fail("rcpt", "550 5.1.1 no\x1b[2J such user", recipient="gone@example.net")
    cfg = write_config(tmp_path, smtp_server)
    result = CliRunner().invoke(app, ["mail", "test", "--to", "gone@example.net", "-c", str(cfg)])
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert "gone@example.net: 550 5.1.1 no\\u001b[2J such user" in result.output
