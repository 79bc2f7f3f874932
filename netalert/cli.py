"""The ``netalert`` command line: thin commands that call the stages.

Each command resolves its config file the same way (``-c``, then
``$NETALERT_CONFIG``, then ``./config.toml``) and returns the exit codes of
SPEC.md. Logic lives in the stage packages, never here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="netalert",
    help="SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="config file (default: $NETALERT_CONFIG, then ./config.toml)",
        show_default=False,
    ),
]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
) -> None:
    """SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people."""
    if version:
        from netalert import __version__

        print(f"netalert {__version__}")
        raise typer.Exit(0)


def config_path(option: Path | None) -> Path:
    """Returns the config file a command should read."""
    if option is not None:
        return option
    env = os.environ.get("NETALERT_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml")


def fail(message: str, code: int) -> typer.Exit:
    """Prints ``message`` on stderr and returns the Exit to raise."""
    print(message, file=sys.stderr)
    return typer.Exit(code)


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the config, resolve every MIB name it uses, print a summary."""
    from netalert.config import load_config, summary
    from netalert.errors import ConfigError

    path = config_path(config)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise typer.Exit(2) from None
    # --- check-config: MIB and rule checks (mib, rules issues) ---
    print(summary(cfg, path))


# --- commands: mib (issue 3) ---
# --- commands: poll (issue 4) ---
# --- commands: traps (issue 5) ---
# --- commands: alerts (issue 6) ---
# --- commands: mail, silence (issue 7) ---
# --- commands: run, demo (issue 8) ---


def main() -> None:
    """Entry point of the ``netalert`` console script."""
    app()
