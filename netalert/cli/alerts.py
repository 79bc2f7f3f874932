"""``netalert alerts``, ``netalert ack`` and ``netalert unack``."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail
from netalert.cliformat import Command
from netalert.errors import ConfigError

if TYPE_CHECKING:
    from netalert.ack.store import AckTables
    from netalert.alerts.model import Alert
    from netalert.config.models import Config


@app.command(cls=Command, name="alerts")
def alerts_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List active alerts (pending and firing) from the state database."""
    import json
    import time

    from netalert.ack.cli import ack_json, current_acks
    from netalert.alerts.show import alert_json, alert_table
    from netalert.cli.silences import read_silences
    from netalert.notify.silences import is_silenced
    from netalert.state.db import DB_NAME

    cfg = _config(config)
    found: list[Any] = []
    acks: dict[str, Any] = {}
    # no state yet: nothing is active; [cluster]: the alerts of every node's shards
    if cfg.cluster is not None or (cfg.agent.state_dir / DB_NAME).exists():
        with _ack_state(cfg) as (tables, alerts):
            found = alerts()
            acks = current_acks(tables.acks(), found)  # [ack] (issue 17)
    now = time.time()
    silences = read_silences(cfg, now) if found else []
    # the silence muting each alert now, as the silence stage would judge it (issue 19)
    muted = {a.fingerprint: is_silenced(silences, a.labels, now) for a in found}
    if as_json:
        rows = [
            {
                **alert_json(a),
                "ack": ack_json(acks.get(a.fingerprint)),
                "silence": muted[a.fingerprint],
            }
            for a in found
        ]
        print(json.dumps(rows, indent=2))
        return
    silenced = {fp for fp, sid in muted.items() if sid is not None}
    print(alert_table(found, acked=set(acks), silenced=silenced) if found else "no active alerts")


def _config(config: Path | None) -> Config:
    from netalert.config import load_config

    try:
        return load_config(config_path(config))
    except ConfigError as exc:
        raise config_problems(exc) from None


@contextlib.contextmanager
def _ack_state(cfg: Config) -> Iterator[tuple[AckTables, Callable[[], list[Alert]]]]:
    """The ack tables and the active alerts: the agent's SQLite state, or with
    ``[cluster]`` the tables every node shares in PostgreSQL."""
    from netalert.errors import StateError

    try:
        if cfg.cluster is not None:
            from netalert.cluster.ack import PgAckTables

            shared = PgAckTables(cfg.cluster.postgres.get_secret_value(), refresh=1.0)
            try:
                shared.load()  # no refresher in a shell: the acks are read once, here
                yield shared, shared.active
            finally:
                shared.close()
            return
        from netalert.ack.store import AckStore
        from netalert.alerts.store import load_alerts
        from netalert.state import open_database

        db = open_database(cfg.agent.state_dir)
        try:
            yield AckStore(db), lambda: load_alerts(db)
        finally:
            db.close()
    except StateError as exc:
        raise fail(str(exc), 1) from None


# --- commands: ack, unack ([ack], issue 17) ---
@app.command(cls=Command, name="ack")
def ack_command(
    alert_id: Annotated[
        str, typer.Argument(help="the alert's id (fingerprint)", metavar="ALERT_ID")
    ],
    comment: Annotated[str, typer.Option("--comment", help="why", metavar="TEXT")] = "",
    author: Annotated[
        str, typer.Option("--author", help="who (default: $USER)", metavar="NAME")
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Acknowledge a firing alert: it is not mailed again until it resolves or is unacked."""
    from netalert.ack.cli import ack_alert
    from netalert.errors import NetalertError

    cfg = _config(config)
    if cfg.ack is None:  # the agent reads acks only with [ack]: kept, not honoured
        print(
            "warning: [ack] is not configured: the running agent does not honour "
            "acknowledgements (its mails repeat as before)",
            file=sys.stderr,
        )
    who = author or os.environ.get("USER", "") or "unknown"
    with _ack_state(cfg) as (tables, alerts):
        try:
            alert = ack_alert(tables, alerts(), alert_id, by=who, comment=comment)
        except NetalertError as exc:
            raise fail(str(exc), 1) from None
    print(f"acked {alert.fingerprint} ({alert.rule} on {alert.device})")


@app.command(cls=Command, name="unack")
def unack_command(
    alert_id: Annotated[
        str, typer.Argument(help="the alert's id (fingerprint)", metavar="ALERT_ID")
    ],
    author: Annotated[
        str, typer.Option("--author", help="who (default: $USER)", metavar="NAME")
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Remove an alert's acknowledgement: it repeats again while it fires."""
    from netalert.ack.cli import unack_alert
    from netalert.errors import NetalertError

    who = author or os.environ.get("USER", "") or "unknown"
    with _ack_state(_config(config)) as (tables, alerts):
        try:
            alert = unack_alert(tables, alerts(), alert_id, by=who)
        except NetalertError as exc:
            raise fail(str(exc), 1) from None
    print(f"unacked {alert.fingerprint} ({alert.rule} on {alert.device})")


# --- commands: mail, silence (issue 7) ---
