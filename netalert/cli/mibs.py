"""``netalert mib translate`` and ``netalert mib compile``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail
from netalert.cliformat import Command, Group
from netalert.errors import ConfigError

if TYPE_CHECKING:
    pass


mib_app = typer.Typer(
    name="mib",
    help="Translate MIB names and OIDs; compile MIB sources (the MIB doctor).",
    no_args_is_help=True,
    cls=Group,
)
app.add_typer(mib_app, name="mib")

if TYPE_CHECKING:
    from netalert.mib import MibTree

MibsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--mibs",
        help="MIB source folder, used instead of the config's mibs.paths (repeatable)",
        metavar="DIR",
        show_default=False,
    ),
]


def _mib_tree(config: Path | None, mibs: list[Path] | None) -> MibTree:
    """Loads the MIB tree a ``mib`` command works on (exit 2 on a config error)."""
    from netalert.mib import load_mibs
    from netalert.mib.commands import mib_settings

    explicit = config is not None or bool(os.environ.get("NETALERT_CONFIG"))
    try:
        mibs_config, state_dir = mib_settings(config_path(config), explicit, mibs)
    except ConfigError as exc:
        raise config_problems(exc) from None
    try:
        return load_mibs(mibs_config, state_dir)
    except OSError as exc:
        raise fail(f"agent.state_dir: cannot write the MIB cache: {exc}", 2) from None


@mib_app.command(cls=Command, name="translate")
def mib_translate(
    name_or_oid: Annotated[
        str, typer.Argument(help="IF-MIB::ifOperStatus.3 or 1.3.6.1...", metavar="NAME_OR_OID")
    ],
    value: Annotated[
        str | None,
        typer.Argument(help="a value: its enum label, number or rendering", metavar="VALUE"),
    ] = None,
    mibs: MibsOption = None,
    config: ConfigOption = None,
) -> None:
    """Translate a name to its OID or an OID to its name; with VALUE, what it means."""
    from netalert.errors import MibError
    from netalert.mib.commands import translate

    tree = _mib_tree(config, mibs)
    try:
        lines = translate(tree, name_or_oid, value)
    except MibError as exc:
        raise fail(str(exc), 1) from None
    for line in lines:
        print(line)


@mib_app.command(cls=Command, name="compile")
def mib_compile(mibs: MibsOption = None, config: ConfigOption = None) -> None:
    """Compile MIB sources into the cache; one line per module (exit 1 if any failed)."""
    tree = _mib_tree(config, mibs)
    report = tree.report
    if report is None:  # pragma: no cover - load_mibs always reports
        raise typer.Exit(1)
    for line in report.lines():
        print(line)
    if not report.ok or report.builtin_failed:
        raise typer.Exit(1)


# --- commands: poll (issue 4) ---
