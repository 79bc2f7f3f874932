"""``netalert check-config``: every problem of a config file, one line each."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from netalert.cli.app import ConfigOption, app, config_path, fail
from netalert.cliformat import Command

if TYPE_CHECKING:
    pass


@app.command(cls=Command, name="check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the config, resolve every MIB name it uses, print a summary."""
    from netalert.config import summary
    from netalert.configcheck import check_config_file
    from netalert.errors import StateError

    path = config_path(config)
    try:
        result = check_config_file(path)
    except StateError as exc:
        raise fail(str(exc), 2) from None
    if result.config is None:
        for line in result.problems:
            print(line, file=sys.stderr)
        raise typer.Exit(2)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(result.config, path))


# --- commands: mib (issue 3) ---
