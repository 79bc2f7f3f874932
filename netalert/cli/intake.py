"""``netalert poll`` and ``netalert traps``: ask a device, listen for traps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, fail, load_or_exit
from netalert.cliformat import Command

if TYPE_CHECKING:
    pass


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
        str | None,
        typer.Option("--backend", help="gufo (default), native or pysnmp", metavar="BACKEND"),
    ] = None,
) -> None:
    """Poll one device once and print its named values (exit 1 on SNMP error)."""
    from netalert.cli.poll import PollOptions, run_poll
    from netalert.poll.client import AUTH_PROTOCOLS, PRIV_PROTOCOLS

    if auth_protocol is not None and auth_protocol.upper() not in AUTH_PROTOCOLS:
        raise fail(f"--auth-protocol: use one of {', '.join(AUTH_PROTOCOLS)}", 2)
    if priv_protocol is not None and priv_protocol.upper() not in PRIV_PROTOCOLS:
        raise fail(f"--priv-protocol: use one of {', '.join(PRIV_PROTOCOLS)}", 2)
    if backend not in (None, "gufo", "native", "pysnmp"):
        raise fail("--backend: use gufo, native or pysnmp", 2)
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
