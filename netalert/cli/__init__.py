"""The ``netalert`` command line: thin commands that call the stages.

Each command resolves its config file the same way (``-c``, then
``$NETALERT_CONFIG``, then ``./config.toml``) and returns the exit codes of
docs/ (the command table in README.md). Logic lives in the stage packages, never here:
one module per command group registers its commands on :data:`netalert.cli.app.app`.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from netalert.cli.app import app
from netalert.gcpause import pause_start

# Each module registers its commands on the app when imported; --help lists them in this order.
for _group in (
    "check",
    "mibs",
    "intake",
    "alerts",
    "mail",
    "silences",
    "cluster",
    "rules",
    "agent",
):
    importlib.import_module(f"netalert.cli.{_group}")

__all__ = ["app", "main", "run_cli"]


def _one_line(text: str) -> str:
    from netalert.logtext import escape

    return escape(" ".join(text.split()))


def run_cli(args: list[str] | None = None) -> int:
    """Runs one ``netalert`` command; returns its exit code.

    Every error ends as one line on stderr: a usage error (unknown command or
    option, missing argument) as ``netalert COMMAND: what`` with exit 2, any
    other unexpected exception as ``netalert: what`` with exit 1 (its
    traceback only when ``NETALERT_DEBUG=1``). Commands print their own
    documented errors and codes. Never raises, except with ``NETALERT_DEBUG=1``.
    """
    # typer vendors click: its exceptions live here (typer's public Abort is its own).
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(args=args, prog_name="netalert", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `netalert mib`: the help (typer has printed it), exit 2
        if exc.format_message():
            print(exc.format_message(), file=sys.stderr)
        return 2
    except ClickException as exc:
        where = getattr(getattr(exc, "ctx", None), "command_path", None) or "netalert"
        hint = f" (see '{where} --help')" if isinstance(exc, UsageError) else ""
        print(f"{_one_line(where)}: {_one_line(exc.format_message())}{hint}", file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        print("netalert: aborted", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("NETALERT_DEBUG") == "1":
            raise
        what = str(exc) or type(exc).__name__
        print(f"netalert: {_one_line(what)} (NETALERT_DEBUG=1 shows where)", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point of the ``netalert`` console script: exits with :func:`run_cli`'s code."""
    pause_start()  # the collector is back once the MIB tree is loaded or a loop starts
    sys.exit(run_cli())
