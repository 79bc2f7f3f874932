"""``netalert check-config``: the problems of every stage of a config file, in one run.

Stages in order: the config's own schema and cross-references, then
:func:`netalert.prepare.prepare` — the same validation ``netalert run`` and a
SIGHUP reload use (state directory, MIB names, rules, poll plans, mail
templates, CA files, listen addresses). ``prepare`` runs on what the config
stage let through (see :mod:`netalert.config.salvage`), so fixing a file takes
one pass, not one per stage; a file that cannot be read or parsed stops at that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netalert.config.models import Config
from netalert.config.risks import ConfigWarning
from netalert.config.salvage import salvage_config
from netalert.errors import ConfigError

__all__ = ["CheckResult", "check_config_file"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The config as loaded (None unless every stage passed), every problem found, and the
    warnings of a valid config (:func:`netalert.prepare.prepared_warnings`)."""

    config: Config | None
    problems: list[str]
    warnings: tuple[ConfigWarning, ...] = ()


def check_config_file(path: Path) -> CheckResult:
    """Checks ``path`` through every stage; one ``path: message`` line per problem.

    Raises:
        StateError: The state directory or the MIB cache under it cannot be written.
    """
    from netalert.prepare import prepare, prepared_warnings

    salvaged = salvage_config(path)
    config = salvaged.config
    if config is None:
        return CheckResult(None, salvaged.problems)
    later: list[str] = []
    warnings: tuple[ConfigWarning, ...] = ()
    try:
        warnings = tuple(prepared_warnings(prepare(config)))
    except ConfigError as exc:
        later = exc.problems
    problems = salvaged.problems + [p for p in salvaged.later(later) if p not in salvaged.problems]
    if problems:
        return CheckResult(None, problems)
    return CheckResult(config, problems, warnings)
