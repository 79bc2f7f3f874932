"""The demo's config.toml, written for the ports the demo found free.

It is an ordinary config file (the demo writes it to its temporary folder and
prints the path) so a newcomer can read what produced the e-mails and start
their own config from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import netalert
from netalert.errors import NetalertError

__all__ = [
    "DEMO_RECIPIENT",
    "MAX_SPEED",
    "DemoEndpoints",
    "DemoSetupError",
    "demo_config_text",
    "demo_mib_dir",
]

DEMO_RECIPIENT = "demo@localhost"
DEMO_MIB_FILE = "NETALERT-DEMO-MIB.mib"
MAX_SPEED = 10.0  # past it the polls (every 0.5 s) would outpace the agent's own timeouts


class DemoSetupError(NetalertError):
    """The demo cannot be set up (a missing file, no free port)."""


@dataclass(frozen=True, slots=True)
class DemoEndpoints:
    """Where each part of the demo listens (all loopback)."""

    switch: tuple[str, int]
    env: tuple[str, int]
    traps: tuple[str, int]
    smtp: tuple[str, int]
    web: tuple[str, int]


def demo_mib_dir() -> Path:
    """The folder holding NETALERT-DEMO-MIB's source: ``mibs/`` inside the package, in a
    wheel as in a checkout.

    Raises:
        DemoSetupError: The MIB is missing (a broken installation).
    """
    folder = Path(netalert.__file__).resolve().parent / "mibs"
    if not (folder / DEMO_MIB_FILE).is_file():
        raise DemoSetupError(
            f"cannot find {DEMO_MIB_FILE} in {folder}: this netalert installation is "
            "incomplete; reinstall it (pip install --force-reinstall netalert)"
        )
    return folder


def _hp(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _duration(seconds: float) -> str:
    """A config duration: ``"5s"`` for whole seconds, else milliseconds (``"1250ms"``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def demo_config_text(
    endpoints: DemoEndpoints, state_dir: Path, mib_dir: Path, *, speed: float = 1.0
) -> str:
    """The demo's config.toml: two devices every 5 s, three rules, one fast route.

    At ``speed`` N every interval the scenario depends on (polls, ``for``, group
    waits, the mail retry cap) is N times shorter.
    """

    def every(seconds: float) -> str:
        return _duration(seconds / speed)

    return f"""\
# Written by `netalert demo`: everything on loopback, nothing leaves this machine.

[agent]
state_dir = "{state_dir}"
http = "{_hp(endpoints.web)}"
log_level = "warning"

[mibs]
paths = ["{mib_dir}"]
system_paths = []                  # the demo needs no Debian MIB packages

[snmp]
version = "2c"
community = "public"
timeout = "1s"
retries = 1
interval = "{every(5)}"

[[devices]]
name = "demo-sw1"
address = "{_hp(endpoints.switch)}"
collect = ["system", "interfaces"]
labels = {{ site = "demo", role = "access-switch" }}

[[devices]]
name = "demo-env1"
address = "{_hp(endpoints.env)}"
collect = ["system", "chassis"]
labels = {{ site = "demo", role = "environment" }}

[collect.system]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysName.0"]

[collect.interfaces]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus",
        "IF-MIB::ifHCInOctets", "IF-MIB::ifHighSpeed"]

[collect.chassis]
get = ["NETALERT-DEMO-MIB::demoChassisTemperature.0",
       "NETALERT-DEMO-MIB::demoChassisTemperatureLimit.0"]

[traps]
listen = ["{_hp(endpoints.traps)}"]
communities = ["public"]
allow = ["127.0.0.0/8"]

[[rules]]                          # poll rule, one alert per interface row
name = "InterfaceDown"
expr = "ifOperStatus == 'down' and ifAdminStatus == 'up'"
for = "{every(5)}"
severity = "critical"
devices = ["demo-sw1"]
summary = "{{{{ device }}}} {{{{ ifDescr }}}} is down"

[[rules]]                          # trap rule: linkUp with the same ifIndex resolves it
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
key = ["ifIndex"]
severity = "warning"
summary = "{{{{ device }}}} reported linkDown on ifIndex {{{{ ifIndex }}}}"

[[rules]]                          # hysteresis: fires above 60, clears only below 55
name = "ChassisTooHot"
expr = "demoChassisTemperature > 60"
clear_expr = "demoChassisTemperature < 55"
severity = "warning"
devices = ["demo-env1"]
summary = "{{{{ device }}}} chassis at {{{{ demoChassisTemperature }}}} degrees C"

[smtp]
host = "{endpoints.smtp[0]}"
port = {endpoints.smtp[1]}
security = "none"
from = "netalert demo <netalert@localhost>"
timeout = "5s"
retry_max = "{every(2)}"

[[routes]]
name = "demo"
to = ["{DEMO_RECIPIENT}"]
group_by = ["rule", "device"]
group_wait = "{every(2)}"
group_interval = "{every(10)}"
repeat_interval = "1h"
"""
