"""The built-in DeviceUnreachable alert, observed from the poller's reachability changes.

The poller reports every poll without an answer with the count of such polls
in a row; the alert fires once that count reaches ``[agent] unreachable_after``
(one lost poll pages nobody), with ``[agent] unreachable_severity``. While
DeviceUnreachable fires for a device, the alert stage marks the device's poll
alerts ``silenced`` (inhibited): a device that cannot be read neither fires nor
resolves them, and notify need not mail them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from netalert.alerts import AlertState, AlertView, Event, Observation, RulePolicy, alert_labels
from netalert.alerts import make_key as alert_key
from netalert.rules.compile import UNREACHABLE, RuleSet

__all__ = ["reachable", "unreachable"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def unreachable(
    rules: RuleSet,
    policy: RulePolicy,
    view: AlertView,
    device: str,
    reason: str,
    *,
    failures: int,
) -> list[Observation]:
    """A poll of ``device`` got no answer, the ``failures``-th in a row.

    Observes DeviceUnreachable firing at ``[agent] unreachable_after`` polls in
    a row; later lost polls of the same outage observe nothing (no write, no
    scan of the alerts per poll). Nothing when ``[agent] device_unreachable = false``.
    """
    if not rules.unreachable or failures < rules.unreachable_after:
        return []
    key = alert_key("builtin", UNREACHABLE, device, "")
    state = view.state(key)
    if state is not None and state is not AlertState.RESOLVED:
        return []  # firing since an earlier lost poll of this outage: told once
    labels = alert_labels(
        UNREACHABLE,
        policy.severity,
        device,
        {},
        {},
        rules.device_labels.get(device, _EMPTY),
        limit=rules.max_label,
    )
    return [
        Observation(
            policy,
            key,
            device,
            Event.EVALUATED,
            labels=labels,
            fire=True,
            value=reason,
            context={"reason": reason, "failures": failures},
        )
    ]


def reachable(policy: RulePolicy, view: AlertView, device: str) -> list[Observation]:
    """``device`` answered: its DeviceUnreachable, if it has one, sees a good poll."""
    key = alert_key("builtin", UNREACHABLE, device, "")
    if view.state(key) is None:
        return []
    return [Observation(policy, key, device, Event.EVALUATED, fire=False, value="answering")]
