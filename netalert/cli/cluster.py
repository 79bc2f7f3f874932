"""``netalert cluster status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, fail, load_or_exit, run_loop
from netalert.cliformat import Command, Group

if TYPE_CHECKING:
    pass


cluster_app = typer.Typer(
    help="Several nodes sharing PostgreSQL and NATS (the cluster section of the config).",
    no_args_is_help=True,
    cls=Group,
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command(cls=Command, name="status")
def cluster_status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """Nodes, shards per node, lease ages, stream lag and outbox depth (PostgreSQL, NATS)."""
    import json

    import psycopg

    from netalert.cluster.status import format_status, gather

    cfg = load_or_exit(config)
    assert cfg is not None
    if cfg.cluster is None:
        raise fail(f"{config_path(config)}: no [cluster] section", 2)
    cluster = cfg.cluster
    try:
        status = run_loop(gather(cluster.postgres.get_secret_value(), cluster.nats_servers()))
    except (psycopg.Error, OSError) as exc:
        raise fail(f"cannot read the cluster database: {exc}", 1) from None
    print(json.dumps(status.as_dict(), indent=2) if as_json else format_status(status))
    if status.nats_error:
        raise typer.Exit(1)


# --- commands: test rules (rule tests issue) ---
