"""``prepare(config) → Prepared``: the one validator of a config.

``netalert check-config``, ``netalert run`` and a SIGHUP reload all call
:func:`prepare`, so a config one of them accepts the others accept too. It
checks, in this order, everything the agent will need, and builds what can be
built without starting anything:

1. the state directory (created if needed, proven writable);
2. the MIBs (compiled into the cache under it) and every MIB name the config
   uses;
3. the rules (expressions, types, traps, keys, templates);
4. the poll plans (the numeric OIDs each device reads);
5. the mail templates (``[smtp].templates_dir``);
6. the TLS contexts of ``[smtp]`` and ``[smtp.fallback]`` (``ca_file``);
7. the listen addresses (``[traps].listen``, ``[agent].http``): each must
   resolve to an address of this host.

Every problem found is reported at once, one line each. What only the moment
of binding can tell (a port another program holds, a privileged port) is found
when the stage is built: at start, or in a reload's build step, which changes
nothing when it fails. Route matchers are compiled by the config's own
validation, before ``prepare`` sees the config.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netalert.config.models import Config
from netalert.errors import ConfigError, StateError
from netalert.state.db import check_state_dir

if TYPE_CHECKING:
    from netalert.config.risks import ConfigWarning
    from netalert.mail.render import MailTemplates
    from netalert.mib import MibTree
    from netalert.poll.plan import DevicePlan
    from netalert.rules import RuleSet

__all__ = ["Prepared", "SmtpTls", "names_and_rules", "prepare", "prepared_warnings"]


@dataclass(frozen=True, slots=True)
class SmtpTls:
    """The client TLS contexts of ``[smtp]`` and ``[smtp.fallback]`` (None: no TLS)."""

    primary: ssl.SSLContext | None
    fallback: ssl.SSLContext | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A config validated completely, with what the stages are built from."""

    config: Config
    tree: MibTree
    rules: RuleSet
    plans: list[DevicePlan]
    templates: MailTemplates | None  # None: not prepared for an agent (agent=False)
    tls: SmtpTls | None


def prepare(config: Config, *, tree: MibTree | None = None, agent: bool = True) -> Prepared:
    """Validates everything ``config`` refers to and builds what the stages need; starts nothing.

    Args:
        config: A loaded config (schema and cross-references already checked).
        tree: The MIB tree to use instead of loading ``config.mibs`` (tests).
        agent: False for the tools that only evaluate rules (``netalert test
            rules``, ``netalert replay``): the mail templates, CA files and
            listen addresses, which only a running agent needs, are left out.

    Raises:
        ConfigError: One line per problem (MIB names, rules, poll plans, mail
            templates, CA files, listen addresses).
        StateError: The state directory cannot be created or written (read-only,
            full, a file in the way); checked first, before the MIB cache is used.
    """
    if tree is None:
        tree = _load_tree(config)
    problems, rules = names_and_rules(config, tree)
    plans = _plans(config, tree, problems)
    templates = tls = None
    if agent:
        templates = _templates(config, problems)
        tls = _tls(config, problems)
        problems += listen_problems(config)
    if problems or rules is None:
        raise ConfigError(problems)
    return Prepared(config, tree, rules, plans, templates, tls)


def prepared_warnings(prepared: Prepared) -> list[ConfigWarning]:
    """Every warning of a valid config: its settings' risks, then the template names nothing
    provides (one list for ``check-config``, ``run`` and a reload)."""
    from netalert.config.risks import config_warnings
    from netalert.rules.templatenames import mail_template_warnings

    templates = prepared.templates.templates_dir if prepared.templates is not None else None
    mail = mail_template_warnings(templates) if templates is not None else []
    return config_warnings(prepared.config) + list(prepared.rules.warnings) + mail


def _load_tree(config: Config) -> MibTree:
    from netalert.mib import load_mibs

    state_dir = check_state_dir(config.agent.state_dir)
    try:
        return load_mibs(config.mibs, state_dir)
    except OSError as exc:  # the cache under state_dir filled the disk, or vanished
        raise StateError(
            f"state_dir {state_dir}: cannot write the MIB cache ({exc.strerror or exc}); "
            "free space there or set [agent].state_dir to a writable folder"
        ) from None


def names_and_rules(config: Config, tree: MibTree) -> tuple[list[str], RuleSet | None]:
    """The MIB-name and rule problems of ``config`` together, and its rules when there are none.

    A field the MIB check flagged (an unknown trap name) is not reported again by the rules.
    """
    from netalert.mib import check_config_names
    from netalert.rules import compile_rules

    problems = check_config_names(config, tree)
    try:
        rules: RuleSet | None = compile_rules(config, tree)
    except ConfigError as exc:
        flagged = {line.split(": ", 1)[0] for line in problems}
        problems += [p for p in exc.problems if p.split(": ", 1)[0] not in flagged]
        rules = None
    return problems, (rules if not problems else None)


def _plans(config: Config, tree: MibTree, problems: list[str]) -> list[DevicePlan]:
    from netalert.poll.plan import build_plans

    if problems:  # an unknown name in a collect group is reported once, by the MIB check
        return []
    try:
        return build_plans(config, tree)
    except ConfigError as exc:
        problems += exc.problems
        return []


def _templates(config: Config, problems: list[str]) -> MailTemplates | None:
    from netalert.mail.errors import MailTemplateError
    from netalert.mail.render import MailTemplates

    try:
        return MailTemplates(config.smtp.templates_dir)
    except MailTemplateError as exc:
        text = str(exc)
        problems.append(text if text.startswith("smtp.") else f"smtp.templates_dir: {text}")
        return None


def _tls(config: Config, problems: list[str]) -> SmtpTls | None:
    from netalert.mail.errors import MailTlsError
    from netalert.mail.transport import SmtpTarget, tls_context

    smtp = config.smtp
    contexts: list[ssl.SSLContext | None] = []
    failed = False
    for where, table in (("smtp", smtp), ("smtp.fallback", smtp.fallback)):
        if table is None:
            contexts.append(None)
            continue
        try:
            contexts.append(tls_context(SmtpTarget.from_config(table), warn=False))
        except MailTlsError as exc:
            text = str(exc)
            problems.append(text if where == "smtp" else text.replace("smtp.", f"{where}.", 1))
            failed = True
    return None if failed else SmtpTls(contexts[0], contexts[1])


def listen_problems(config: Config) -> list[str]:
    """Listen addresses that do not resolve, or are not addresses of this host.

    A probe socket is bound to each host with port 0, so a port the running
    agent (or anyone) holds does not count here; the stage's own bind finds that.
    """
    out: list[str] = []
    for i, address in enumerate(config.traps.listen if config.traps.enabled else ()):
        hostport = address.with_default(162)
        reason = _unbindable(hostport.host, socket.SOCK_DGRAM)
        if reason:
            out.append(f"traps.listen[{i}]: cannot listen on {hostport}: {reason}")
    http = config.agent.http
    if http is not None:
        reason = _unbindable(http.host, socket.SOCK_STREAM)
        if reason:
            out.append(f"agent.http: cannot listen on {http}: {reason}")
    return out


def _unbindable(host: str, kind: socket.SocketKind) -> str:
    """Why ``host`` cannot be bound ("" when it can, or when only the port could be the trouble)."""
    try:
        infos = socket.getaddrinfo(host or None, 0, type=kind, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return str(exc.strerror)
    family, kind_, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind_, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return f"{exc.strerror} (not an address of this host)"
    return ""
