"""The ``netalert`` command line: thin commands that call the stages.

Each command resolves its config file the same way (``-c``, then
``$NETALERT_CONFIG``, then ``./config.toml``) and returns the exit codes of
docs/ (the command table in README.md). Logic lives in the stage packages, never here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netalert.cliformat import Command, Group
from netalert.errors import ConfigError

if TYPE_CHECKING:
    from netalert.config.models import Config
    from netalert.notify.silences import SilenceStore

__all__ = ["app", "main"]

app = typer.Typer(
    name="netalert",
    help="SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=Group,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="config file (default: $NETALERT_CONFIG, then ./config.toml)",
        metavar="FILE",
        show_default=False,
    ),
]


def _print_version(wanted: bool) -> None:
    # Eager: runs while the options are parsed, before a missing command is an error.
    if wanted:
        from netalert import version

        print(f"netalert {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """SNMP-to-e-mail alerting agent: SNMP watches devices, SMTP tells people."""


def config_path(option: Path | None) -> Path:
    """Returns the config file a command should read."""
    if option is not None:
        return option
    env = os.environ.get("NETALERT_CONFIG")
    if env:
        return Path(env)
    return Path("config.toml")


def config_problems(exc: ConfigError) -> typer.Exit:
    """Prints a ConfigError's lines on stderr; returns the Exit(2) to raise."""
    for line in exc.problems:
        print(line, file=sys.stderr)
    return typer.Exit(2)


def load_or_exit(config: Path | None, *, optional: bool = False) -> Config | None:
    """Loads the command's config file; on problems prints them and exits 2.

    With ``optional``, a missing default file (no ``-c``) gives None instead.
    """
    from netalert.config import load_config

    path = config_path(config)
    if optional and config is None and not path.exists():
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise config_problems(exc) from None


def fail(message: str, code: int) -> typer.Exit:
    """Prints ``message`` on stderr and returns the Exit to raise.

    Each line of ``message`` is escaped (:func:`netalert.logtext.escape`): it may
    carry a server's reply or a file's text, so no control character reaches
    the terminal. Never raises.
    """
    from netalert.logtext import escape

    print("\n".join(escape(line) for line in message.splitlines()), file=sys.stderr)
    return typer.Exit(code)


@app.command(cls=Command, name="check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the config, resolve every MIB name it uses, print a summary."""
    from netalert.config import summary
    from netalert.config.risks import config_warnings
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
    for warning in config_warnings(result.config):
        print(f"warning: {warning}", file=sys.stderr)
    print(summary(result.config, path))


# --- commands: mib (issue 3) ---
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
    from netalert.errors import ConfigError
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
@app.command(cls=Command, name="poll")
def poll(
    device: Annotated[
        str,
        typer.Argument(
            help="a device name from the config, or an ADDRESS (host\\[:port])", metavar="DEVICE"
        ),
    ],
    config: ConfigOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    community: Annotated[
        str | None,
        typer.Option(
            "--community",
            help="v1/v2c community",
            envvar="NETALERT_COMMUNITY",
            metavar="COMMUNITY",
        ),
    ] = None,
    snmp_version: Annotated[
        str | None, typer.Option("--snmp-version", "-v", help="1, 2c or 3", metavar="VERSION")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="SNMPv3 user", metavar="USER")
    ] = None,
    auth_protocol: Annotated[
        str | None,
        typer.Option(
            "--auth-protocol", "-a", help="MD5 SHA SHA-224 SHA-256 ...", metavar="PROTOCOL"
        ),
    ] = None,
    auth_password: Annotated[
        str | None,
        typer.Option(
            "--auth-password",
            "-A",
            help="v3 auth password",
            envvar="NETALERT_V3_AUTH",
            metavar="PASSWORD",
        ),
    ] = None,
    priv_protocol: Annotated[
        str | None,
        typer.Option(
            "--priv-protocol", "-x", help="DES AES-128 AES-192 AES-256", metavar="PROTOCOL"
        ),
    ] = None,
    priv_password: Annotated[
        str | None,
        typer.Option(
            "--priv-password",
            "-X",
            help="v3 priv password",
            envvar="NETALERT_V3_PRIV",
            metavar="PASSWORD",
        ),
    ] = None,
    get: Annotated[
        list[str] | None,
        typer.Option("--get", help="instance to GET (repeatable)", metavar="NAME_OR_OID"),
    ] = None,
    walk: Annotated[
        list[str] | None,
        typer.Option("--walk", help="subtree to walk (repeatable)", metavar="NAME_OR_OID"),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="per request, e.g. 2s", metavar="DURATION")
    ] = None,
    retries: Annotated[
        int | None, typer.Option("--retries", help="retries per request", metavar="N")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="gufo (default) or pysnmp", metavar="BACKEND")
    ] = None,
) -> None:
    """Poll one device once and print its named values (exit 1 on SNMP error)."""
    from netalert.cli.poll import PollOptions, run_poll
    from netalert.poll.client import AUTH_PROTOCOLS, PRIV_PROTOCOLS

    if auth_protocol is not None and auth_protocol.upper() not in AUTH_PROTOCOLS:
        raise fail(f"--auth-protocol: use one of {', '.join(AUTH_PROTOCOLS)}", 2)
    if priv_protocol is not None and priv_protocol.upper() not in PRIV_PROTOCOLS:
        raise fail(f"--priv-protocol: use one of {', '.join(PRIV_PROTOCOLS)}", 2)
    if backend not in (None, "gufo", "pysnmp"):
        raise fail("--backend: use gufo or pysnmp", 2)
    path = config_path(config)
    cfg = load_or_exit(config, optional=True)
    options = PollOptions(
        device=device,
        config=cfg,
        config_path=path,
        json=json_output,
        version=snmp_version,
        community=community,
        user=user,
        auth_protocol=auth_protocol.upper() if auth_protocol else None,
        auth_password=auth_password,
        priv_protocol=priv_protocol.upper() if priv_protocol else None,
        priv_password=priv_password,
        timeout=timeout,
        retries=retries,
        backend=backend,  # type: ignore[arg-type]
        get=tuple(get or ()),
        walk=tuple(walk or ()),
    )
    raise typer.Exit(run_poll(options))


# --- commands: traps (issue 5) ---
@app.command(cls=Command, name="traps")
def traps_command(
    config: ConfigOption = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            # "\\[": a bracket rich's markup keeps as text
            help="address to listen on instead of \\[traps].listen",
            metavar="HOST:PORT",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per trap")] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="also write every datagram received (accepted or refused) to this pcap file",
            metavar="FILE.pcap",
        ),
    ] = None,
) -> None:
    """Print decoded traps and informs as they arrive; sends no mail (0 on Ctrl-C)."""
    from netalert.cli.traps import run_traps

    cfg = load_or_exit(config, optional=True)
    raise typer.Exit(run_traps(cfg, listen=listen, as_json=as_json, record=record))


# --- commands: alerts (issue 6) ---
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
    from netalert.errors import ConfigError, StateError
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
    from netalert.errors import ConfigError, StateError
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
mail_app = typer.Typer(help="E-mail: check the SMTP path.", no_args_is_help=True, cls=Group)
app.add_typer(mail_app, name="mail")


@mail_app.command(cls=Command, name="test")
def mail_test(
    to: Annotated[
        list[str], typer.Option("--to", help="recipient (repeat for more)", metavar="ADDR")
    ],
    config: ConfigOption = None,
) -> None:
    """Send a test message through the configured SMTP server (exit 0 sent, 1 failed)."""
    import asyncio

    from netalert.config import load_config
    from netalert.config.types import mail_address
    from netalert.errors import ConfigError
    from netalert.mail.check import mail_test as run_mail_test

    for address in to:
        try:
            mail_address(address, "recipient")
        except ValueError as exc:
            raise fail(f"--to: {exc}", 2) from None
    try:
        cfg = load_config(config_path(config))
    except ConfigError as exc:
        raise config_problems(exc) from None
    ok, report = asyncio.run(run_mail_test(cfg.smtp, to))
    if not ok:
        raise fail(report, 1)
    print(report)


# --- commands: silence (notify) ---
silence_app = typer.Typer(
    help="Mute alerts for a while: add, list, expire.", no_args_is_help=True, cls=Group
)
app.add_typer(silence_app, name="silence")


def _silence_store(config: Path | None) -> SilenceStore:
    from netalert.config import load_config
    from netalert.errors import ConfigError, StateError
    from netalert.notify.silences import SilenceStore
    from netalert.state import open_database

    try:
        cfg = load_config(config_path(config))
        db = open_database(cfg.agent.state_dir)
    except ConfigError as exc:
        raise config_problems(exc) from None
    except StateError as exc:
        raise fail(str(exc), 1) from None
    return SilenceStore(db)


@silence_app.command(cls=Command, name="add")
def silence_add(
    match: Annotated[
        list[str],
        typer.Option(
            "--match", "-m", help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX", metavar="MATCHER"
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
    from netalert.errors import NetalertError

    try:
        length = parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise fail(f"--for: {exc}", 2) from None
    store = _silence_store(config)
    now = time.time()
    who = author or os.environ.get("USER", "") or "unknown"
    try:
        silence = store.add(match, starts_at=now, ends_at=now + length, comment=comment, author=who)
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

    from netalert.tables import print_table

    store = _silence_store(config)
    now = time.time()
    silences = store.list(now, include_expired=show_all)
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

    store = _silence_store(config)
    if not store.expire(silence_id, time.time()):
        raise fail(f"no active silence with id {silence_id!r}", 1)
    print(f"expired {silence_id}")


cluster_app = typer.Typer(
    help="Several nodes sharing PostgreSQL and NATS ([cluster]).", no_args_is_help=True, cls=Group
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command(cls=Command, name="status")
def cluster_status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """Nodes, shards per node, lease ages and stream lag, from the shared PostgreSQL and NATS."""
    import asyncio
    import json

    import psycopg

    from netalert.cluster.status import format_status, gather

    cfg = load_or_exit(config)
    assert cfg is not None
    if cfg.cluster is None:
        raise fail(f"{config_path(config)}: no [cluster] section", 2)
    cluster = cfg.cluster
    try:
        status = asyncio.run(gather(cluster.postgres.get_secret_value(), cluster.nats_servers()))
    except (psycopg.Error, OSError) as exc:
        raise fail(f"cannot read the cluster database: {exc}", 1) from None
    print(json.dumps(status.as_dict(), indent=2) if as_json else format_status(status))
    if status.nats_error:
        raise typer.Exit(1)


# --- commands: test rules (rule tests issue) ---
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

    from netalert.errors import StateError
    from netalert.notify.explain import explain, parse_labels
    from netalert.notify.silences import SilenceStore
    from netalert.state import open_database
    from netalert.state.db import DB_NAME

    try:
        wanted = parse_labels(labels)
    except ValueError as exc:
        raise fail(f"routes test: {exc}", 2) from None
    cfg = load_or_exit(config)
    assert cfg is not None
    now = time.time()
    silences = []
    if (cfg.agent.state_dir / DB_NAME).exists():  # no state yet: no silence either
        try:
            db = open_database(cfg.agent.state_dir)
            try:
                silences = SilenceStore(db).list(now)
            finally:
                db.close()
        except StateError as exc:
            raise fail(str(exc), 1) from None
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
    import asyncio

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
        code = asyncio.run(run_replay(config_path(config), options))
    except ConfigError as exc:
        raise config_problems(exc) from None
    except (ValueError, OSError) as exc:
        raise fail(f"netalert replay: {exc}", 2) from None
    except NetalertError as exc:
        raise fail(f"netalert replay: {exc}", 1) from None
    raise typer.Exit(code)


# --- commands: run, demo (issue 8) ---
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
    import asyncio

    from netalert.demo import run_demo
    from netalert.errors import ConfigError, NetalertError

    try:
        asyncio.run(run_demo(duration, verbose=verbose, speed=speed))
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
    import asyncio

    from netalert.config import load_config
    from netalert.errors import ConfigError, NetalertError
    from netalert.logs import setup_logging
    from netalert.service import prepare, run_agent

    path = config_path(config)
    try:
        cfg = load_config(path)
        setup_logging(cfg.agent.log_level, cfg.agent.log_format, line_max=cfg.agent.log_line_max)
        prepared = prepare(cfg)
    except ConfigError as exc:
        raise config_problems(exc) from None
    except NetalertError as exc:  # e.g. an unusable state_dir: one line, no traceback
        raise fail(f"netalert: {exc}", 1) from None
    try:
        asyncio.run(run_agent(prepared, config_path=path, recover=recover))
    except NetalertError as exc:
        raise fail(f"netalert: {exc}", 1) from None


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
    sys.exit(run_cli())
