"""``netalert check-config``: the problems of every stage of a config file, in one run.

Stages in order: the config's own schema and cross-references, the MIB names it
uses, the rules (expressions, types, traps, keys, templates), the mail
templates. A stage runs on what the earlier ones let through (see
:mod:`netalert.config.salvage`), so fixing a file takes one pass, not one per
stage; a file that cannot be read or parsed stops at that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netalert.config.models import Config
from netalert.config.salvage import salvage_config
from netalert.errors import ConfigError, StateError

if TYPE_CHECKING:
    from netalert.mib import MibTree
    from netalert.rules import RuleSet

__all__ = ["CheckResult", "check_config_file", "names_and_rules"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The config as loaded (None unless every stage passed) and every problem found."""

    config: Config | None
    problems: list[str]


def check_config_file(path: Path) -> CheckResult:
    """Checks ``path`` through every stage; one ``path: message`` line per problem.

    Raises:
        StateError: The MIB cache under ``[agent].state_dir`` cannot be written.
    """
    salvaged = salvage_config(path)
    config = salvaged.config
    if config is None:
        return CheckResult(None, salvaged.problems)
    later = _later_stages(config)
    problems = salvaged.problems + salvaged.later(later)
    return CheckResult(None if problems else config, problems)


def _later_stages(config: Config) -> list[str]:
    from netalert.mail.errors import MailTemplateError
    from netalert.mail.render import MailTemplates
    from netalert.mib import load_mibs

    try:
        tree = load_mibs(config.mibs, config.agent.state_dir)
    except OSError as exc:
        raise StateError(f"agent.state_dir: cannot write the MIB cache: {exc}") from None
    problems, _ = names_and_rules(config, tree)
    try:
        MailTemplates(config.smtp.templates_dir)
    except MailTemplateError as exc:
        text = str(exc)
        problems.append(text if text.startswith("smtp.") else f"smtp.templates_dir: {text}")
    return problems


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
