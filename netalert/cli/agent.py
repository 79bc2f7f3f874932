"""``netalert demo`` and ``netalert run``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail, run_loop
from netalert.cliformat import Command
from netalert.errors import ConfigError

if TYPE_CHECKING:
    pass


@app.command(cls=Command, name="demo")
def demo(
    duration: Annotated[
        float,
        typer.Option("--duration", min=1, help="seconds the scenario runs", metavar="SECONDS"),
    ] = 60.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="show the agent's log (info level)")
    ] = False,
    speed: Annotated[
        float,
        typer.Option(
            "--speed", min=1, max=10, help="run the scenario and the agent's intervals N x faster"
        ),
    ] = 1.0,
) -> None:
    """Run a self-contained demo: simulated devices, the real agent, a local mail sink."""

    from netalert.demo import run_demo
    from netalert.errors import NetalertError

    try:
        run_loop(run_demo(duration, verbose=verbose, speed=speed))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"demo config: {line}", file=sys.stderr)
        raise typer.Exit(1) from None
    except NetalertError as exc:
        raise fail(f"netalert demo: {exc}", 1) from None


@app.command(cls=Command, name="run")
def run(
    config: ConfigOption = None,
    recover: Annotated[
        bool,
        typer.Option(
            "--recover",
            help="if the state database is damaged, move it aside as "
            "netalert.db.corrupt-TIMESTAMP and start with an empty one",
        ),
    ] = False,
) -> None:
    """Run the agent in the foreground until SIGTERM/SIGINT; SIGHUP reloads the config."""

    from netalert.config import load_config
    from netalert.errors import NetalertError
    from netalert.logs import setup_logging
    from netalert.service import prepare, raise_descriptor_limit, run_agent

    path = config_path(config)
    try:
        cfg = load_config(path)
        setup_logging(cfg.agent.log_level, cfg.agent.log_format, line_max=cfg.agent.log_line_max)
        prepared = prepare(cfg)
    except ConfigError as exc:
        raise config_problems(exc) from None
    except NetalertError as exc:  # e.g. an unusable state_dir: one line, no traceback
        raise fail(f"netalert: {exc}", 1) from None
    raise_descriptor_limit()  # one socket per polled device (gufo sessions)
    from netalert.traps import zygote
    from netalert.traps.workers import worker_count

    if cfg.traps.enabled and worker_count(cfg.traps) > 1:
        zygote.preload(prepared.tree)  # before the loop and its threads: the workers' fork
    try:
        run_loop(run_agent(prepared, config_path=path, recover=recover))
    except NetalertError as exc:
        raise fail(f"netalert: {exc}", 1) from None
    finally:
        zygote.shutdown()
