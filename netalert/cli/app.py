"""The ``netalert`` Typer app, its shared options and the helpers every command uses."""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from netalert.cliformat import Group
from netalert.errors import ConfigError
from netalert.gcpause import end_start

if TYPE_CHECKING:
    from netalert.config.models import Config

__all__ = [
    "ConfigOption",
    "app",
    "config_path",
    "config_problems",
    "fail",
    "load_or_exit",
    "run_loop",
]

_T = TypeVar("_T")

app = typer.Typer(
    name="netalert",
    help="SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=Group,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="config file (default: $NETALERT_CONFIG, then ./config.toml)",
        metavar="FILE",
        show_default=False,
    ),
]


def _print_version(wanted: bool) -> None:
    # Eager: runs while the options are parsed, before a missing command is an error.
    if wanted:
        from netalert import version

        print(f"netalert {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people."""


def config_path(option: Path | None) -> Path:
    """Returns the config file a command should read."""
    if option is not None:
        return option
    env = os.environ.get("NETALERT_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml")


def config_problems(exc: ConfigError) -> typer.Exit:
    """Prints a ConfigError's lines on stderr; returns the Exit(2) to raise."""
    for line in exc.problems:
        print(line, file=sys.stderr)
    return typer.Exit(2)


def load_or_exit(config: Path | None, *, optional: bool = False) -> Config | None:
    """Loads the command's config file; on problems prints them and exits 2.

    With ``optional``, a missing default file (no ``-c``) gives None instead.
    """
    from netalert.config import load_config

    path = config_path(config)
    if optional and config is None and not path.exists():
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise config_problems(exc) from None


def fail(message: str, code: int) -> typer.Exit:
    """Prints ``message`` on stderr and returns the Exit to raise.

    Each line of ``message`` is escaped (:func:`netalert.logtext.escape`): it may
    carry a server's reply or a file's text, so no control character reaches
    the terminal. Never raises.
    """
    from netalert.logtext import escape

    print("\n".join(escape(line) for line in message.splitlines()), file=sys.stderr)
    return typer.Exit(code)


def run_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` for a command: the one way a command starts its event loop.

    The garbage collector, off while the command started (:mod:`netalert.gcpause`),
    is back on before the loop runs: a loop may run for as long as the agent does.
    """
    import asyncio

    end_start()
    return asyncio.run(main)
