"""Rules: expressions compiled once, evaluated on polls and traps, turned into observations.

Entry points: :func:`compile_rules` / :func:`check_rules` (config load, check-config),
:class:`RuleEngine` (evaluates; the alert stage of :mod:`netalert.alerts` owns
the alerts), :class:`PollResult` / :class:`Row` (what the engine reads;
:func:`from_poller` converts the poller's result, :func:`join_samples` builds
one from Samples), :class:`ConfirmRequest`.
"""

from __future__ import annotations

from netalert.rules.adapt import from_poller
from netalert.rules.compile import RuleSet, check_rules, compile_rules
from netalert.rules.engine import RuleEngine
from netalert.rules.inputs import ConfirmRequest, PollResult, Row, join_samples

__all__ = [
    "ConfirmRequest",
    "PollResult",
    "Row",
    "RuleEngine",
    "RuleSet",
    "check_rules",
    "compile_rules",
    "from_poller",
    "join_samples",
]
