"""Alerts: the alert value, its life (pending → firing → resolved, flapping) and its storage."""

from __future__ import annotations

from netalert.alerts.model import Alert, AlertState, Transition, TransitionKind, fingerprint

__all__ = ["Alert", "AlertState", "Transition", "TransitionKind", "fingerprint"]
