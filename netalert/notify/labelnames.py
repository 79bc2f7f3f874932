"""Which label names alerts can carry, and what a silence matcher on any other name means.

An alert's labels are ``rule``, ``severity`` and ``device``, the device's and
the rule's ``labels``, and its key: a poll rule's row index columns
(``ifIndex``), a trap rule's ``key`` or, by default, the index columns of the
trap's varbinds (plus ``trap`` for a glob rule). A matcher on a name outside
all of these (``devcie=winxp``) is almost always a typo: it either never
holds or always holds, whatever the alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from netalert.config.models import Config
from netalert.matchers import Matcher
from netalert.rules.compile import RuleSet
from netalert.rules.mibview import MIB_ERRORS

__all__ = ["LabelNames", "label_names", "matcher_warnings", "silence_warnings"]

FIXED = ("rule", "severity", "device")


@dataclass(frozen=True, slots=True)
class LabelNames:
    """The label names a config's alerts can carry.

    ``open_ended`` is True when a glob trap rule keys on the index columns of
    whatever traps match it: then any MIB column name may be a label too.
    """

    names: frozenset[str]
    open_ended: bool
    rules: RuleSet

    def known(self, name: str) -> bool:
        """True when an alert of this config can carry a label ``name``."""
        if name in self.names:
            return True
        if not self.open_ended:
            return False
        node = self.rules.cache.node(name)
        return node is not None and node.kind == "column"


def label_names(config: Config, rules: RuleSet) -> LabelNames:
    """The label names the alerts of ``config`` (its compiled ``rules``) can carry."""
    names = set(FIXED)
    for device in config.devices:
        names.update(device.labels)
    open_ended = False
    for poll in rules.poll:
        names.update(poll.labels)
        if poll.index_node is not None:
            names.update(poll.index_node.index)
    for trap in rules.trap:
        names.update(trap.labels)
        if trap.trap.glob:
            names.add("trap")
        if trap.key is not None:
            names.update(k for k in trap.key if k != "device")
        elif trap.trap.glob:
            open_ended = True
        else:
            names.update(_trap_indexes(rules, trap.trap.oid))
    return LabelNames(frozenset(names), open_ended, rules)


def _trap_indexes(rules: RuleSet, trap_oid: str) -> set[str]:
    try:
        objects = rules.cache.tree.notification_objects(trap_oid)
    except MIB_ERRORS:
        return set()
    out: set[str] = set()
    for name in objects:
        node = rules.cache.node(name)
        if node is not None:
            out.update(node.index)
    return out


def matcher_warnings(
    matchers: Sequence[Matcher], names: LabelNames, active: Iterable[Mapping[str, str]]
) -> list[str]:
    """One warning per matcher on a label no active alert has and the config cannot give.

    Args:
        matchers: The silence's matchers.
        names: What the config can produce (:func:`label_names`).
        active: The labels of the active alerts.
    """
    in_use = set(names.names)
    for labels in active:
        in_use.update(labels)
    out = []
    for matcher in matchers:
        if matcher.name in in_use or names.known(matcher.name):
            continue
        # A missing label reads as "": the matcher then holds for no alert, or for all.
        effect = (
            f"'{matcher}' holds for every alert"
            if matcher.matches({})
            else "this silence matches nothing"
        )
        shown = ", ".join(sorted(in_use))
        out.append(
            f"no alert has a label {matcher.name!r} and no rule gives one"
            f" (labels: {shown}); {effect}"
        )
    return out


def silence_warnings(config_file: Path, matchers: Sequence[Matcher]) -> list[str]:
    """:func:`matcher_warnings` for ``netalert silence add``: reads the config, its MIBs
    (from the cache) and the active alerts of the state database.

    Empty when the config or its rules cannot be loaded: no guess beats a wrong warning.
    """
    from netalert.alerts.store import load_alerts
    from netalert.config import load_config
    from netalert.errors import NetalertError
    from netalert.mib import load_mibs
    from netalert.rules import compile_rules
    from netalert.state import open_database

    try:
        config = load_config(config_file)
        rules = compile_rules(config, load_mibs(config.mibs, config.agent.state_dir))
        db = open_database(config.agent.state_dir)
        try:
            active = [alert.labels for alert in load_alerts(db)]
        finally:
            db.close()
    except (NetalertError, OSError):
        return []
    return matcher_warnings(matchers, label_names(config, rules), active)
