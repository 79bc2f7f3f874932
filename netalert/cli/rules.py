"""``netalert test rules``, ``netalert routes test`` and ``netalert replay``: rules offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import (
    ConfigOption,
    app,
    config_path,
    config_problems,
    fail,
    load_or_exit,
    run_loop,
)
from netalert.cliformat import Command, Group
from netalert.errors import ConfigError

if TYPE_CHECKING:
    pass


test_app = typer.Typer(
    help="Test rules in virtual time before they page anyone.", no_args_is_help=True, cls=Group
)
app.add_typer(test_app, name="test")


@test_app.command(cls=Command, name="rules")
def test_rules(
    files: Annotated[list[Path], typer.Argument(help="rule test files (TOML)", metavar="FILE...")],
) -> None:
    """Run rule tests: PASS/FAIL per test with a diff (exit 0 pass, 1 fail, 2 bad file)."""
    from netalert.ruletest.report import run_files

    raise typer.Exit(run_files(files))


routes_app = typer.Typer(help="Routes: where an alert would go.", no_args_is_help=True, cls=Group)
app.add_typer(routes_app, name="routes")


@routes_app.command(cls=Command, name="test")
def routes_test(
    labels: Annotated[
        list[str], typer.Argument(help="the alert's labels", metavar="LABEL=VALUE...")
    ],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """Show the route path, receivers, silences and maintenance muting it now, and its group."""
    import json
    import time

    from netalert.cli.silences import read_silences
    from netalert.notify.explain import explain, parse_labels

    try:
        wanted = parse_labels(labels)
    except ValueError as exc:
        raise fail(f"routes test: {exc}", 2) from None
    cfg = load_or_exit(config)
    assert cfg is not None
    now = time.time()
    silences = read_silences(cfg, now)
    found = explain(cfg.routes, cfg.maintenance, silences, wanted, now)
    if as_json:
        print(json.dumps(found.as_json(), indent=2, ensure_ascii=False))
        return
    for line in found.lines():
        print(line)


@app.command(cls=Command, name="replay")
def replay_command(
    capture: Annotated[Path, typer.Argument(help="pcap or pcapng file", metavar="FILE.pcap")],
    config: ConfigOption = None,
    speed: Annotated[
        float, typer.Option("--speed", min=0.001, help="times real time (2 = twice as fast)")
    ] = 1.0,
    fast: Annotated[
        bool, typer.Option("--as-fast-as-possible", help="no pauses between datagrams")
    ] = False,
    port: Annotated[
        list[int] | None,
        typer.Option(
            "--port", help="UDP port the traps went to (default: the config's listen ports)"
        ),
    ] = None,
    mail: Annotated[bool, typer.Option("--mail", help="send the notifications for real")] = False,
) -> None:
    """Feed recorded trap datagrams through decode, rules, alerts and notify; print what happens."""

    from netalert.errors import NetalertError
    from netalert.logs import setup_logging
    from netalert.ruletest.replay import ReplayOptions, run_replay

    setup_logging("error")
    options = ReplayOptions(
        capture=capture,
        speed=None if fast else speed,
        ports=frozenset(port or ()),
        mail=mail,
    )
    try:
        code = run_loop(run_replay(config_path(config), options))
    except ConfigError as exc:
        raise config_problems(exc) from None
    except (ValueError, OSError) as exc:
        raise fail(f"netalert replay: {exc}", 2) from None
    except NetalertError as exc:
        raise fail(f"netalert replay: {exc}", 1) from None
    raise typer.Exit(code)


# --- commands: run, demo (issue 8) ---
