"""``netalert poll``: poll one device once and print its named values.

``netalert poll DEVICE`` uses a device of the config (its credentials and
collect groups); ``netalert poll ADDRESS`` polls any agent with the options
given (else the config's ``[snmp]`` defaults) and, without ``--get``/``--walk``,
reads the system group and the interfaces' names and states.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from netalert.cli.app import run_loop
from netalert.config.models import Config
from netalert.config.types import parse_duration, parse_hostport
from netalert.errors import ConfigError, NetalertError
from netalert.poll.client import Backend, Target
from netalert.poll.plan import SYS_UPTIME, DevicePlan, build_plans, resolve_oid
from netalert.poll.poller import Poller, PollResult
from netalert.present import json_value, value_text
from netalert.snmp.naming import MibTreeLike

__all__ = ["DEFAULT_GET", "DEFAULT_WALK", "PollOptions", "format_lines", "result_json", "run_poll"]

DEFAULT_GET = (
    "SNMPv2-MIB::sysDescr.0",
    "SNMPv2-MIB::sysObjectID.0",
    "SNMPv2-MIB::sysUpTime.0",
    "SNMPv2-MIB::sysContact.0",
    "SNMPv2-MIB::sysName.0",
    "SNMPv2-MIB::sysLocation.0",
)
DEFAULT_WALK = ("IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus")


@dataclass(frozen=True, slots=True)
class PollOptions:
    """Command-line options of ``netalert poll`` (None: from the config or defaults)."""

    device: str
    config: Config | None = None
    config_path: Path | None = None
    json: bool = False
    version: str | None = None
    community: str | None = None
    user: str | None = None
    auth_protocol: str | None = None
    auth_password: str | None = None
    priv_protocol: str | None = None
    priv_password: str | None = None
    timeout: str | None = None
    retries: int | None = None
    backend: Backend | None = None
    get: tuple[str, ...] = ()
    walk: tuple[str, ...] = field(default=())


def _tree(options: PollOptions) -> MibTreeLike:
    if options.config is not None:
        from netalert.mib import load_mibs

        state_dir = options.config.agent.state_dir
        if options.config_path is not None and not state_dir.is_absolute():
            state_dir = options.config_path.parent / state_dir
        return load_mibs(options.config.mibs, state_dir)
    from netalert.mib import MibTree

    return MibTree.builtin()


def _address_plan(options: PollOptions, tree: MibTreeLike) -> DevicePlan:
    snmp = options.config.snmp if options.config is not None else None
    try:
        address = parse_hostport(options.device)
    except ValueError as exc:
        raise ConfigError([f"address: {exc}"]) from None
    host = _numeric_host(address.host, options)
    version = options.version or (
        "3" if options.user else (snmp.version if snmp is not None else "2c")
    )
    if version in ("2", "v2c"):
        version = "2c"
    if version not in ("1", "2c", "3"):
        raise ConfigError([f"--snmp-version: {version!r} is not 1, 2c or 3"])
    if version == "3" and not options.user:
        raise ConfigError(["--user: SNMPv3 needs a user"])
    community = options.community
    if community is None:
        community = snmp.community.get_secret_value() if snmp is not None else "public"
    if options.timeout:
        timeout = parse_duration(options.timeout)
    else:
        timeout = snmp.timeout if snmp is not None else timedelta(seconds=2)
    target = Target(
        host=host,
        port=address.port or (snmp.port if snmp is not None else 161),
        version=version,  # type: ignore[arg-type]
        community=community,
        user=options.user or "",
        auth_protocol=options.auth_protocol,
        auth_password=options.auth_password or "",
        priv_protocol=options.priv_protocol,
        priv_password=options.priv_password or "",
        timeout=timeout.total_seconds(),
        retries=options.retries if options.retries is not None else (snmp.retries if snmp else 1),
        max_repetitions=snmp.max_repetitions if snmp is not None else 25,
    )
    return DevicePlan(
        name=options.device,
        target=target,
        backend=options.backend or (snmp.backend if snmp is not None else "native"),
    )


def _numeric_host(host: str, options: PollOptions) -> str:
    """``host`` as an IP address (the gufo backend takes no names).

    Raises:
        ConfigError: The name is neither a configured device nor a host that
            resolves; the message lists the config's devices.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        infos = []
    # IPv4 first: "localhost" often resolves to both, and agents listen on 127.0.0.1.
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return str(info[4][0])
    if options.config is None:
        path = options.config_path or Path("config.toml")
        raise ConfigError(
            [f"poll: no host named {host!r}, and no config file {path} to find a device in"]
        )
    names = ", ".join(d.name for d in options.config.devices) or "none"
    path = options.config_path or Path("config.toml")
    raise ConfigError(
        [f"poll: no device named {host!r} in {path} (devices: {names}), and no host of that name"]
    )


def _plan(options: PollOptions, tree: MibTreeLike) -> DevicePlan:
    plan: DevicePlan | None = None
    if options.config is not None:
        for candidate in build_plans(options.config, tree):
            if candidate.name == options.device:
                plan = candidate
        if plan is None and any(d.name == options.device for d in options.config.devices):
            raise ConfigError([f"device {options.device!r} is disabled in the config"])
    if plan is None:
        plan = _address_plan(options, tree)
        gets, walks = options.get or DEFAULT_GET, options.walk or DEFAULT_WALK
        if options.get and not options.walk:
            walks = ()
        if options.walk and not options.get:
            gets = ()
    else:
        gets, walks = options.get, options.walk
        if options.backend is not None:
            plan = replace(plan, backend=options.backend)
        if options.timeout or options.retries is not None:
            t = plan.target
            plan = replace(
                plan,
                target=replace(
                    t,
                    timeout=parse_duration(options.timeout).total_seconds()
                    if options.timeout
                    else t.timeout,
                    retries=options.retries if options.retries is not None else t.retries,
                ),
            )
    if gets or walks:
        option = "--get"  # an unknown name is reported with the option that gave it
        try:
            get_oids = [resolve_oid(tree, n, instance=True) for n in gets]
            option = "--walk"
            walk_oids = [resolve_oid(tree, n, instance=False) for n in walks]
        except NetalertError as exc:
            raise ConfigError([f"{option}: {exc}"]) from None
        plan = replace(
            plan,
            get=tuple(dict.fromkeys([SYS_UPTIME, *get_oids])),
            walk=tuple(walk_oids),
        )
    return plan


def format_lines(result: PollResult) -> list[str]:
    """``IF-MIB::ifOperStatus.2 = down`` lines, then missing instances."""
    lines = []
    for sample in result.samples:
        name = f"{sample.name}.{sample.index}" if sample.name else sample.oid
        lines.append(f"{name} = {value_text(sample.type, sample.value, sample.label)}")
    lines += [f"{name} = {kind}" for name, kind in result.missing]
    return lines


def result_json(result: PollResult) -> dict[str, Any]:
    """The result as JSON-ready data (bytes as hex, see :func:`netalert.present.json_value`;
    text in ``label``)."""
    return {
        "device": result.device,
        "address": result.address,
        "status": result.status,
        "error": result.error,
        "time": result.time,
        "duration": round(result.duration, 6),
        "restarted": result.restarted,
        "samples": [
            {
                "name": s.name,
                "index": s.index,
                "oid": s.oid,
                "type": s.type.value,
                "value": json_value(s.value),
                "label": s.label,
            }
            for s in result.samples
        ],
        "missing": [{"name": n, "kind": k} for n, k in result.missing],
    }


async def _poll_once(plan: DevicePlan, tree: MibTreeLike) -> PollResult:
    poller = Poller([plan], tree)
    try:
        return await poller.poll(plan.name)
    finally:
        await poller.stop()


def run_poll(options: PollOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Polls once and prints; returns the exit code (0 ok, 1 SNMP error, 2 bad input)."""
    # The poller's own warnings would repeat the error printed below.
    logging.getLogger("netalert.poll").setLevel(logging.ERROR)
    try:
        tree = _tree(options)
        plan = _plan(options, tree)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=err)
        return 2
    except NetalertError as exc:
        print(f"netalert: {exc}", file=err)
        return 2
    try:
        result = run_loop(_poll_once(plan, tree))
    except (OSError, ValueError) as exc:  # DNS failure, unusable address
        print(f"netalert: poll {options.device}: {exc}", file=err)
        return 1
    if options.json:
        json.dump(result_json(result), out, indent=2)
        out.write("\n")
    else:
        for line in format_lines(result):
            print(line, file=out)
    if result.status != "ok":
        print(f"netalert: poll {options.device}: {result.status}: {result.error}", file=err)
        return 1
    return 0
