"""The command line as a new user meets it: --version, help texts, usage lines."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from netalert import __version__
from netalert.cli import app

_BOX = re.compile(r"[│╭╮╰╯─]+")


def _flat(text: str) -> str:
    """Help text without the panels' box drawing, whitespace collapsed (lines wrap at 80)."""
    return " ".join(_BOX.sub(" ", text).split())


def _commands() -> Iterator[tuple[str, ...]]:
    """The path of every command and command group (``("silence", "add")``)."""
    root = typer.main.get_command(app)

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(root, ())


@pytest.mark.daemon  # runs `netalert` as a process
def test_version_alone_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "netalert", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, f"netalert {__version__}\n", "")


@pytest.mark.parametrize("path", list(_commands()), ids=lambda p: " ".join(p) or "netalert")
def test_help_shows_flags_as_flags_and_arguments_in_capitals(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    # an argument reads as DEVICE or [VALUE], never as {device}
    assert "{" not in usage and "}" not in usage, usage
    # (a file name's extension, as in FILE.pcap, is not an argument name)
    last = re.sub(r"\.[a-z]+\b", "", usage.split("[OPTIONS]")[-1])
    assert not re.search(r"\b[a-z_]+\b(?=\s*$)", last), usage


def test_poll_usage_names_the_device_argument() -> None:
    result = CliRunner().invoke(app, ["poll", "--help"])
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert usage.split() == ["Usage:", "netalert", "poll", "[OPTIONS]", "DEVICE"]
    flat = _flat(result.output)
    assert "--json print JSON" in flat  # a flag: no type column between name and help
    assert "--timeout DURATION" in flat


def test_mib_translate_usage_marks_the_optional_value() -> None:
    result = CliRunner().invoke(app, ["mib", "translate", "--help"])
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert usage.split()[-2:] == ["NAME_OR_OID", "[VALUE]"]


def test_traps_listen_help_names_the_config_key() -> None:
    result = CliRunner().invoke(app, ["traps", "--help"])
    flat = _flat(result.output)
    assert "instead of [traps].listen" in flat, flat


def test_silence_match_help_lists_every_matcher_form() -> None:
    # the four forms docs/email.md lists (Matchers), negative regex included
    result = CliRunner().invoke(app, ["silence", "add", "--help"])
    flat = _flat(result.output)
    for form in ("NAME=VALUE", "NAME!=VALUE", "NAME=~REGEX", "NAME!~REGEX"):
        assert form in flat, flat
