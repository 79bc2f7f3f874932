"""The CLI's one table printer, colour gating, and one-line errors with their exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netalert.cli import run_cli
from netalert.tables import colour_wanted, format_table, print_table


def test_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    text = format_table(("A", "LONGER", "LAST"), [("xyz", "1", "free text"), ("q", "", "")])
    assert text.splitlines() == [
        "A    LONGER  LAST",
        "xyz  1       free text",
        "q",
    ]


def test_table_escapes_hostile_cells() -> None:
    # A device's string may carry an escape sequence or a newline: never raw on a terminal.
    text = format_table(("NAME", "VALUE"), [("sw\x1b[31m1", "a\nb")])
    assert "\x1b" not in text and len(text.splitlines()) == 2
    assert "sw\\u001b[31m1" in text and "a\\nb" in text


def test_print_table_writes_to_the_stream_it_is_given() -> None:
    out = io.StringIO()
    print_table(("K",), [("v",)], out=out)
    assert out.getvalue() == "K\nv\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "json_output", "env", "wanted"),
    [
        (True, False, {}, True),
        (False, False, {}, False),
        (True, True, {}, False),
        (True, False, {"NO_COLOR": "1"}, False),
        (True, False, {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        (True, False, {"TERM": "dumb"}, False),
    ],
)
def test_colour_only_on_a_tty_without_json_or_no_color(
    tty: bool, json_output: bool, env: dict[str, str], wanted: bool
) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert colour_wanted(stream, json_output=json_output, environ=env) is wanted


def test_usage_error_is_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["poll"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("netalert poll: ")
    assert "DEVICE" in err and "\x1b" not in err


def test_unknown_command_is_one_escaped_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["no\x1bsuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("netalert: ") and "\x1b" not in err


def _netalert(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.daemon  # runs `netalert` as a process
@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (("poll",), 2, "netalert poll: "),  # missing argument
        (("nosuch",), 2, "netalert: "),  # unknown command
        (("alerts", "--bogus"), 2, "netalert alerts: "),  # unknown option
        (("silence", "expire", "0123", "-c", "config.toml"), 1, "no active silence"),
        (("mib", "translate", "NO-SUCH-MIB::thing"), 1, ""),
        (("replay", "missing.pcap", "-c", "config.toml"), 2, "netalert replay: "),
    ],
)
def test_failing_commands_print_one_stderr_line(
    tmp_path: Path, args: tuple[str, ...], code: int, start: str
) -> None:
    (tmp_path / "config.toml").write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    result = _netalert(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(start)
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr


def test_an_unexpected_exception_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug stands in for any exception no command expects (a fake: the point is the printing).
    import netalert.config

    def broken(path: Path) -> None:
        raise RuntimeError("broken\nstate")

    monkeypatch.setattr(netalert.config, "load_config", broken)
    monkeypatch.delenv("NETALERT_DEBUG", raising=False)
    assert run_cli(["alerts", "-c", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert err == "netalert: broken state (NETALERT_DEBUG=1 shows where)\n"
    monkeypatch.setenv("NETALERT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run_cli(["alerts", "-c", "x.toml"])
