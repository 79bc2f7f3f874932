"""Warnings about a valid config that exposes more than an operator likely meant.

A warning does not stop anything: ``netalert check-config`` prints each one
(exit status 0) and ``netalert run`` logs each at start and after a reload.
Refusals are config errors instead and live on the models.
"""

from __future__ import annotations

from dataclasses import dataclass

from netalert.config.models import Config, Route

__all__ = ["ConfigWarning", "config_warnings"]

_ALLOW_HINT = 'list the networks your devices send from, e.g. allow = ["192.0.2.0/24"]'


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """One warning: the config path it is about and what to do."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def config_warnings(config: Config) -> list[ConfigWarning]:
    """Returns the warnings of ``config``, in a stable order; empty when there are none."""
    warnings: list[ConfigWarning] = []
    traps = config.traps
    # A prefix length of 0 matches every address of its family: whoever reaches
    # the port and guesses a community can raise alerts and send mail.
    everywhere = [str(net) for net in traps.allow if net.prefixlen == 0]
    if traps.enabled and everywhere:
        nets = ", ".join(everywhere)
        if "allow" not in traps.model_fields_set:
            nets = f"the default {nets}"
        warnings.append(
            ConfigWarning(
                "traps.allow", f"traps are accepted from anywhere ({nets}); {_ALLOW_HINT}"
            )
        )
    warnings.extend(_shared_addresses(config))
    warnings.extend(_ack_risks(config))
    warnings.extend(_route_warnings(config.routes))
    return warnings


def _ack_risks(config: Config) -> list[ConfigWarning]:
    """[ack] (issue 17): settings that weaken who may act on a reply."""
    ack = config.ack
    if ack is None:
        return []
    out = []
    if not ack.imap.verify:
        out.append(
            ConfigWarning(
                "ack.imap.verify",
                "the IMAP server's certificate is not verified: whoever sits on the path can "
                "read the password and the replies",
            )
        )
    if not ack.authserv_id:
        out.append(
            ConfigWarning(
                "ack.authserv_id",
                "replies are trusted on their From address and token alone; set authserv_id to "
                "require DKIM or DMARC from your mail server's Authentication-Results",
            )
        )
    return out


def _shared_addresses(config: Config) -> list[ConfigWarning]:
    """Devices that share an address: a trap from it is credited to the first of them."""
    first: dict[str, int] = {}
    out: list[ConfigWarning] = []
    for number, device in enumerate(config.devices):
        host = device.address.host.lower()
        if host not in first:
            first[host] = number
            continue
        owner = config.devices[first[host]]
        out.append(
            ConfigWarning(
                f"devices[{number}].address",
                f"{device.name!r} has the address of {owner.name!r} ({host}): traps from it "
                f"are credited to {owner.name!r}; give {device.name!r} an engine_id (SNMPv3) "
                "or its own address",
            )
        )
    return out


def _route_warnings(routes: list[Route], parent: str = "") -> list[ConfigWarning]:
    """Routes after a catch-all sibling (never reached), and route names used twice (their
    groups would share notification log entries: one group's mail can stop another's)."""
    out: list[ConfigWarning] = []
    names: dict[str, str] = {}
    stack = [(parent, routes)]
    while stack:
        prefix, siblings = stack.pop()
        catch_all = ""
        for j, route in enumerate(siblings):
            path = f"{prefix}.routes[{j}]" if prefix else f"routes[{j}]"
            if catch_all:
                out.append(
                    ConfigWarning(path, f"never reached: {catch_all} before it takes every alert")
                )
            elif not route.match and not route.continue_:
                catch_all = f"{path} (no match, no continue)"
            name = route.name or path
            if name in names:
                out.append(
                    ConfigWarning(
                        f"{path}.name",
                        f"{name!r} is also the name of {names[name]}: their groups share "
                        "notification log entries; give each route its own name",
                    )
                )
            else:
                names[name] = path
            stack.append((path, route.routes))
    return sorted(out, key=lambda w: w.path)
