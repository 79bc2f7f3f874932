"""Alerts: the alert value, its life (pending → firing → resolved, flapping) and its storage.

What other packages may use: the values below. The rules build
:class:`Observation` values with a :class:`RulePolicy` per rule and read the
alerts through :class:`AlertView`; the alert stage itself
(:class:`netalert.alerts.stage.AlertStage`), its pure ``step``
(:mod:`netalert.alerts.step`) and its stores (:mod:`netalert.alerts.store`)
are wired by the agent.
"""

from __future__ import annotations

from netalert.alerts.flap import FlapSettings
from netalert.alerts.model import (
    LABEL_STATS,
    MAX_LABEL,
    Alert,
    AlertState,
    Transition,
    TransitionKind,
    alert_labels,
    fingerprint,
    label_text,
)
from netalert.alerts.observe import (
    AlertView,
    Describer,
    Event,
    Observation,
    Policy,
    RulePolicy,
    Watch,
)
from netalert.alerts.table import group_of, make_key

__all__ = [
    "LABEL_STATS",
    "MAX_LABEL",
    "Alert",
    "AlertState",
    "AlertView",
    "Describer",
    "Event",
    "FlapSettings",
    "Observation",
    "Policy",
    "RulePolicy",
    "Transition",
    "TransitionKind",
    "Watch",
    "alert_labels",
    "fingerprint",
    "group_of",
    "label_text",
    "make_key",
]
