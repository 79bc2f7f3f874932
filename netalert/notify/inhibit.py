"""The inhibit stage's muter: an alert is not mailed while a more basic one explains it.

Two kinds of inhibition:

- built in: while ``DeviceUnreachable`` fires for a device, the rule engine
  marks that device's poll alerts ``silenced`` (their values are stale, not
  news);
- ``[[inhibit]]`` rules: while an alert matching a rule's source matchers
  fires, the alerts matching its target matchers that share its ``equal``
  labels are muted (an alert never inhibits itself).

The muter learns the firing source alerts from every alert change the
dispatcher sees (:meth:`Inhibitor.observe`), so its state is bounded by the
active alerts and rebuilt with the dispatcher on a reload.
"""

from __future__ import annotations

from collections.abc import Sequence

from netalert.alerts.model import Alert, AlertState
from netalert.config.models import Inhibit
from netalert.matchers import matches_all

__all__ = ["Inhibitor"]

BUILT_IN = "inhibited by DeviceUnreachable"


class Inhibitor:
    """Mutes the alerts a firing source alert inhibits."""

    def __init__(self, rules: Sequence[Inhibit] = ()) -> None:
        self.rules = tuple(rules)
        self._names = tuple(r.name or f"inhibit[{i}]" for i, r in enumerate(self.rules))
        # per rule: the values of its equal labels → the firing source alerts with them
        self._sources: list[dict[tuple[str, ...], dict[str, Alert]]] = [{} for _ in self.rules]

    def observe(self, alert: Alert) -> None:
        """Takes a new or changed alert: a firing source alert inhibits from now on, one
        that stopped firing no longer does."""
        if not self.rules:
            return
        for rule, sources in zip(self.rules, self._sources, strict=True):
            if not matches_all(rule.source, alert.labels):
                continue
            key = _key(rule, alert)
            if alert.state is AlertState.FIRING:
                sources.setdefault(key, {})[alert.fingerprint] = alert
            elif key in sources:
                sources[key].pop(alert.fingerprint, None)
                if not sources[key]:
                    del sources[key]

    def mutes(self, alert: Alert, now: float) -> str | None:
        """Why ``alert`` is inhibited (``"inhibited by NAME (RULE on DEVICE)"``), or None."""
        if alert.silenced:
            return BUILT_IN
        for rule, name, sources in zip(self.rules, self._names, self._sources, strict=True):
            if not sources or not matches_all(rule.target, alert.labels):
                continue
            for source in sources.get(_key(rule, alert), {}).values():
                if source.fingerprint != alert.fingerprint:
                    return f"inhibited by {name} ({source.rule} on {source.device})"
        return None


def _key(rule: Inhibit, alert: Alert) -> tuple[str, ...]:
    return tuple(alert.labels.get(label, "") for label in rule.equal)
