"""What to poll on each device, resolved once from the config: targets and numeric OIDs."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from netalert.config.models import Config, Device
from netalert.errors import ConfigError
from netalert.poll.client import Backend, Target
from netalert.snmp.naming import MibTreeLike

__all__ = [
    "SNMP_ENGINE_BOOTS",
    "SNMP_ENGINE_TIME",
    "SYS_UPTIME",
    "DevicePlan",
    "build_plans",
    "resolve_oid",
    "target_for",
]

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_ENGINE_BOOTS = "1.3.6.1.6.3.10.2.1.2.0"
SNMP_ENGINE_TIME = "1.3.6.1.6.3.10.2.1.3.0"


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One device's polling plan. ``get`` always starts with sysUpTime.0.

    sysUpTime is read on every poll: it detects agent restarts (no counter spike)
    and is the cheapest proof of life.
    """

    name: str
    target: Target
    backend: Backend = "native"
    interval: float = 60.0
    jitter: float = 0.1
    get: tuple[str, ...] = (SYS_UPTIME,)
    walk: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def offset(self) -> float:
        """Where in its interval this device's first poll falls (stable per name).

        Spreads 10,000 devices evenly instead of polling them all at start.
        """
        return (zlib.crc32(self.name.encode()) / 0xFFFFFFFF) * self.interval


def target_for(device: Device, config: Config) -> Target:
    """The SNMP target of a configured device: credentials, else inline, else [snmp]."""
    snmp = config.snmp
    port = device.address.port or snmp.port
    timeout = (device.timeout or snmp.timeout).total_seconds()
    retries = snmp.retries if device.retries is None else device.retries
    reps = device.max_repetitions or snmp.max_repetitions
    common = {
        "host": device.address.host,
        "port": port,
        "timeout": timeout,
        "retries": retries,
        "max_repetitions": reps,
    }
    if device.credentials is not None:
        cred = config.credentials[device.credentials]
        if cred.version == "3":
            return Target(
                version="3",
                user=cred.user,
                auth_protocol=cred.auth_protocol,
                auth_password=cred.auth_password.get_secret_value() if cred.auth_password else "",
                priv_protocol=cred.priv_protocol,
                priv_password=cred.priv_password.get_secret_value() if cred.priv_password else "",
                context=cred.context,
                **common,  # type: ignore[arg-type]
            )
        community = cred.community.get_secret_value() if cred.community else ""
        return Target(version=cred.version, community=community, **common)  # type: ignore[arg-type]
    version = device.version or snmp.version
    community = (device.community or snmp.community).get_secret_value()
    return Target(version=version, community=community, **common)  # type: ignore[arg-type]


def resolve_oid(tree: MibTreeLike, name: str, *, instance: bool) -> str:
    """A name or numeric OID as a dotted numeric OID.

    With ``instance``, a scalar named without its instance gets ``.0`` appended
    (``SNMPv2-MIB::sysName`` → ``1.3.6.1.2.1.1.5.0``).

    Raises:
        MibError: the name is unknown.
    """
    numeric = tree.oid_str(name).lstrip(".")
    if instance:
        node, index = tree.lookup(numeric)
        if node is not None and node.kind == "scalar" and not index:
            numeric += ".0"
    return numeric


def build_plans(config: Config, tree: MibTreeLike) -> list[DevicePlan]:
    """Plans for every enabled device, OIDs resolved through ``tree``.

    Raises:
        ConfigError: a collect group names an unknown MIB object, or a device unknown
            credentials (a config ``check-config`` salvaged), one line per problem.
    """
    problems: list[str] = []
    resolved: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for group_name, group in config.collect.items():
        gets: list[str] = []
        walks: list[str] = []
        for key, names, out in (("get", group.get, gets), ("walk", group.walk, walks)):
            for i, name in enumerate(names):
                try:
                    out.append(resolve_oid(tree, name, instance=key == "get"))
                except Exception as exc:
                    problems.append(f"collect.{group_name}.{key}[{i}]: {exc}")
        resolved[group_name] = (tuple(gets), tuple(walks))
    for i, device in enumerate(config.devices):
        if device.credentials is not None and device.credentials not in config.credentials:
            problems.append(f"devices[{i}].credentials: unknown credentials {device.credentials!r}")
    if problems:
        raise ConfigError(problems)
    plans = []
    for device in config.devices:
        if not device.enabled:
            continue
        gets_all: list[str] = [SYS_UPTIME]
        walks_all: list[str] = []
        for group_name in device.collect:
            group_gets, group_walks = resolved.get(group_name, ((), ()))
            gets_all += [o for o in group_gets if o not in gets_all]
            walks_all += [o for o in group_walks if o not in walks_all]
        target = target_for(device, config)
        backend: Backend = device.backend or config.snmp.backend
        if target.context and backend == "gufo":
            backend = "pysnmp"  # gufo-snmp cannot send a v3 context name
        interval = (device.interval or config.snmp.interval).total_seconds()
        plans.append(
            DevicePlan(
                name=device.name,
                target=target,
                backend=backend,
                interval=interval,
                jitter=config.snmp.jitter,
                get=tuple(gets_all),
                walk=tuple(walks_all),
                labels=dict(device.labels),
            )
        )
    return plans
