"""``netalert alerts``, ``netalert ack`` and ``netalert unack``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail
from netalert.cliformat import Command
from netalert.errors import ConfigError

if TYPE_CHECKING:
    pass


@app.command(cls=Command, name="alerts")
def alerts_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List active alerts (pending and firing) from the state database."""
    import json

    from netalert.alerts.show import alert_json, alert_table
    from netalert.alerts.store import load_alerts
    from netalert.config import load_config
    from netalert.errors import StateError
    from netalert.state import open_database
    from netalert.state.db import DB_NAME

    try:
        cfg = load_config(config_path(config))
    except ConfigError as exc:
        raise config_problems(exc) from None
    from netalert.ack.cli import ack_json, current_acks

    found = []
    acks: dict[str, Any] = {}
    if (cfg.agent.state_dir / DB_NAME).exists():  # no state yet: nothing is active
        try:
            db = open_database(cfg.agent.state_dir)
            try:
                found = load_alerts(db)
                acks = current_acks(db, found)  # [ack] (issue 17)
            finally:
                db.close()
        except StateError as exc:
            raise fail(str(exc), 1) from None
    if as_json:
        rows = [{**alert_json(a), "ack": ack_json(acks.get(a.fingerprint))} for a in found]
        print(json.dumps(rows, indent=2))
        return
    print(alert_table(found, acked=set(acks)) if found else "no active alerts")


# --- commands: ack, unack ([ack], issue 17) ---
def _ack_db(config: Path | None, *, warn: bool = False) -> Any:
    from netalert.config import load_config
    from netalert.errors import StateError
    from netalert.state import open_database

    try:
        cfg = load_config(config_path(config))
        db = open_database(cfg.agent.state_dir)
    except ConfigError as exc:
        raise config_problems(exc) from None
    except StateError as exc:
        raise fail(str(exc), 1) from None
    if warn and cfg.ack is None:  # the agent reads acks only with [ack]: kept, not honoured
        print(
            "warning: [ack] is not configured: the running agent does not honour "
            "acknowledgements (its mails repeat as before)",
            file=sys.stderr,
        )
    return db


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

    db = _ack_db(config, warn=True)
    try:
        alert = ack_alert(
            db, alert_id, by=author or os.environ.get("USER", "") or "unknown", comment=comment
        )
    except NetalertError as exc:
        raise fail(str(exc), 1) from None
    finally:
        db.close()
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

    db = _ack_db(config)
    try:
        alert = unack_alert(db, alert_id, by=author or os.environ.get("USER", "") or "unknown")
    except NetalertError as exc:
        raise fail(str(exc), 1) from None
    finally:
        db.close()
    print(f"unacked {alert.fingerprint} ({alert.rule} on {alert.device})")


# --- commands: mail, silence (issue 7) ---
