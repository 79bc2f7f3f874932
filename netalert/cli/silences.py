"""``netalert silence add``, ``list`` and ``expire``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail
from netalert.cliformat import Command, Group
from netalert.errors import ConfigError

if TYPE_CHECKING:
    from netalert.config.models import Config
    from netalert.notify.silences import Silence, Silences


silence_app = typer.Typer(
    help="Mute alerts for a while: add, list, expire.", no_args_is_help=True, cls=Group
)
app.add_typer(silence_app, name="silence")


def _silence_store(config: Path | None) -> Silences:
    """The silences of the config's agent: its SQLite state, or with ``[cluster]`` the
    table every node shares in PostgreSQL."""
    from netalert.config import load_config
    from netalert.errors import StateError
    from netalert.notify.silences import SilenceStore
    from netalert.state import open_database

    try:
        cfg = load_config(config_path(config))
        if cfg.cluster is not None:
            from netalert.cluster.shared import PgSilenceStore

            return PgSilenceStore(cfg.cluster.postgres.get_secret_value())
        db = open_database(cfg.agent.state_dir)
    except ConfigError as exc:
        raise config_problems(exc) from None
    except StateError as exc:
        raise fail(str(exc), 1) from None
    return SilenceStore(db)


def read_silences(cfg: Config, now: float) -> list[Silence]:
    """The silences of ``cfg``'s agent not yet expired at ``now`` (``[cluster]``: PostgreSQL's).

    An agent with no state yet has none, and reading creates no state. Exits 1 (printed)
    when the state cannot be read.
    """
    from netalert.errors import StateError
    from netalert.notify.silences import SilenceStore
    from netalert.state import open_database
    from netalert.state.db import DB_NAME

    try:
        if cfg.cluster is not None:  # the silences every node shares
            from netalert.cluster.shared import PgSilenceStore

            return PgSilenceStore(cfg.cluster.postgres.get_secret_value()).list(now)
        if not (cfg.agent.state_dir / DB_NAME).exists():
            return []
        db = open_database(cfg.agent.state_dir)
        try:
            return SilenceStore(db).list(now)
        finally:
            db.close()
    except StateError as exc:
        raise fail(str(exc), 1) from None


@silence_app.command(cls=Command, name="add")
def silence_add(
    match: Annotated[
        list[str],
        typer.Option(
            "--match",
            "-m",
            help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX",
            metavar="MATCHER",
        ),
    ],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 2h", metavar="DURATION")],
    comment: Annotated[
        str, typer.Option("--comment", help="why (shown on the status page)", metavar="TEXT")
    ],
    author: Annotated[
        str, typer.Option("--author", help="who (default: $USER)", metavar="NAME")
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Silence the alerts matching every --match for a duration."""
    import time

    from netalert.config.types import parse_duration
    from netalert.errors import NetalertError, StateError

    try:
        length = parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise fail(f"--for: {exc}", 2) from None
    store = _silence_store(config)
    now = time.time()
    who = author or os.environ.get("USER", "") or "unknown"
    try:
        silence = store.add(match, starts_at=now, ends_at=now + length, comment=comment, author=who)
    except StateError as exc:  # [cluster]: PostgreSQL refused or cannot be reached
        raise fail(str(exc), 1) from None
    except NetalertError as exc:
        raise fail(str(exc), 2) from None
    from netalert.notify.labelnames import silence_warnings

    for warning in silence_warnings(config_path(config), silence.matchers):
        print(f"warning: {warning}", file=sys.stderr)
    print(silence.id)


@silence_app.command(cls=Command, name="list")
def silence_list(
    config: ConfigOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="include expired silences")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List active silences (with --all, expired ones too)."""
    import json
    import time
    from datetime import UTC, datetime

    from netalert.errors import StateError
    from netalert.tables import print_table

    store = _silence_store(config)
    now = time.time()
    try:
        silences = store.list(now, include_expired=show_all)
    except StateError as exc:
        raise fail(str(exc), 1) from None
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": s.id,
                        "matchers": [str(m) for m in s.matchers],
                        "starts_at": s.starts_at,
                        "ends_at": s.ends_at,
                        "comment": s.comment,
                        "author": s.author,
                        "active": s.active(now),
                    }
                    for s in silences
                ],
                indent=2,
            )
        )
        return
    if not silences:
        print("no silences" if show_all else "no active silences")
        return
    rows = [
        (
            s.id,
            "active" if s.active(now) else "expired",
            datetime.fromtimestamp(s.ends_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            s.author,
            " ".join(str(m) for m in s.matchers),
            s.comment,
        )
        for s in silences
    ]
    print_table(("ID", "STATE", "UNTIL", "AUTHOR", "MATCHERS", "COMMENT"), rows)


@silence_app.command(cls=Command, name="expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="the silence's id", metavar="ID")],
    config: ConfigOption = None,
) -> None:
    """End a silence now."""
    import time

    from netalert.errors import StateError

    store = _silence_store(config)
    try:
        expired = store.expire(silence_id, time.time())
    except StateError as exc:
        raise fail(str(exc), 1) from None
    if not expired:
        raise fail(f"no active silence with id {silence_id!r}", 1)
    print(f"expired {silence_id}")
