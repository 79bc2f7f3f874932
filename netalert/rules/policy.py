"""The compiled rules as the alert stage sees them: one :class:`~netalert.alerts.RulePolicy` each.

Built once per config (:func:`build_policy`); the rules put the policy of the
rule into every observation they make, and the alert stage keeps the whole
:class:`~netalert.alerts.Policy` to move alerts as time passes and to retire
those of removed rules and devices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from netalert.alerts import FlapSettings, Policy, RulePolicy
from netalert.rules.compile import UNREACHABLE, PollRule, RuleSet, TrapRule
from netalert.rules.describe import SUMMARY, TemplateDescriber
from netalert.rules.describe import UNREACHABLE as UNREACHABLE_DESCRIBER

__all__ = ["build_policy", "signature"]

_FALLBACK = TemplateDescriber()


def signature(kind: str, severity: str, labels: Mapping[str, str]) -> str:
    """What of a rule, when edited, makes its existing alerts obsolete."""
    text = "\x00".join([kind, severity, *(f"{k}={labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _poll(rule: PollRule) -> RulePolicy:
    return RulePolicy(
        rule.name,
        rule.severity,
        "poll",
        signature("poll", rule.severity, rule.labels),
        TemplateDescriber(rule.summary, rule.description, rule.resolved_summary),
        rule.flap,
        rule.labels,
        for_=rule.for_,
        keep_firing_for=rule.keep_firing_for,
        hysteresis=rule.clear is not None,
    )


def _trap(rule: TrapRule, rules: RuleSet) -> RulePolicy:
    return RulePolicy(
        rule.name,
        rule.severity,
        "trap",
        signature("trap", rule.severity, rule.labels),
        TemplateDescriber(rule.summary, rule.description, rule.resolved_summary, rules.cache),
        rule.flap,
        rule.labels,
        for_=rule.for_,
        resolve_after=rule.resolve_after,
        confirm_every=rule.confirm_every if rule.confirm is not None else None,
    )


def build_policy(rules: RuleSet, devices: frozenset[str]) -> Policy:
    """Every rule's policy, DeviceUnreachable's included (on or not)."""
    policies: dict[str, RulePolicy] = {r.name: _poll(r) for r in rules.poll}
    policies |= {r.name: _trap(r, rules) for r in rules.trap}
    severity = rules.unreachable_severity
    policies[UNREACHABLE] = RulePolicy(
        UNREACHABLE,
        severity,
        "builtin",
        signature("builtin", severity, {}),
        UNREACHABLE_DESCRIBER,
        FlapSettings(),
    )
    return Policy(policies, devices, rules.unreachable, _FALLBACK, SUMMARY)
