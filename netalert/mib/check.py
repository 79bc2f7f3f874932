"""check-config's MIB checks: every MIB name the config uses must resolve."""

from __future__ import annotations

import re

from netalert.config.models import Config
from netalert.errors import MibError
from netalert.mib.tree import MibTree

__all__ = ["check_config_names"]

_GLOB = re.compile(r"[*?\[]")
_NUMERIC = re.compile(r"^\.?\d+(?:\.\d+)*$")


def check_config_names(config: Config, tree: MibTree) -> list[str]:
    """One ``path: message`` line per MIB name of ``config`` that does not resolve.

    Checks ``[collect.*]`` get/walk names, trap rules' ``trap``/``clear_trap``
    (a glob's module must be loaded; a name must be a NOTIFICATION-TYPE) and
    ``[mibs].load`` modules.
    """
    problems: list[str] = []
    loaded = set(tree.modules)
    for group_name, group in config.collect.items():
        for key, names in (("get", group.get), ("walk", group.walk)):
            for i, name in enumerate(names):
                try:
                    tree.oid(name)
                except MibError as exc:
                    problems.append(f"collect.{group_name}.{key}[{i}]: {exc}")
    for i, rule in enumerate(config.rules):
        for key in ("trap", "clear_trap"):
            pattern = getattr(rule, key)
            if pattern:
                problem = _check_trap(pattern, tree, loaded)
                if problem:
                    problems.append(f"rules[{i}].{key}: {problem}")
    for i, module in enumerate(config.mibs.load):
        if module not in loaded:
            problems.append(f"mibs.load[{i}]: {_module_problem(module, tree)}")
    return problems


def _check_trap(pattern: str, tree: MibTree, loaded: set[str]) -> str:
    text = pattern.strip()
    if _GLOB.search(text):
        module, sep, _ = text.rpartition("::")
        if sep and not _GLOB.search(module) and module not in loaded:
            return _module_problem(module, tree)
        return ""
    if _NUMERIC.match(text):
        return ""  # any OID may arrive as a trap OID, named or not
    try:
        node = tree.node(text)
    except MibError as exc:
        return str(exc)
    if node.kind != "notification":
        return f"{node.full_name} is not a NOTIFICATION-TYPE (it is a {node.kind})"
    return ""


def _module_problem(module: str, tree: MibTree) -> str:
    report = tree.report
    if report is not None:
        for result in report.results:
            if result.module == module and not result.ok:
                return f"MIB module '{module}' failed to compile: {result.describe()}"
    return f"MIB module '{module}' is not loaded (no source in the MIB folders, not built in)"
