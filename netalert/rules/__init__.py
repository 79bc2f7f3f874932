"""Rules: expressions compiled once, evaluated on polls and traps, turned into observations.

Entry points: :func:`compile_rules` / :func:`check_rules` (config load, check-config),
:class:`RuleEngine` (evaluates the poller's :class:`~netalert.snmp.rows.PollResult`
and the receiver's traps; the alert stage of :mod:`netalert.alerts` owns the
alerts), :class:`ConfirmRequest` (a trap rule's confirm poll).
"""

from __future__ import annotations

from netalert.rules.compile import RuleSet, check_rules, compile_rules
from netalert.rules.engine import RuleEngine
from netalert.rules.inputs import ConfirmRequest

__all__ = [
    "ConfirmRequest",
    "RuleEngine",
    "RuleSet",
    "check_rules",
    "compile_rules",
]
