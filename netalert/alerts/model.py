"""The alert value and the transition value (docs/architecture.md).

An :class:`Alert` is what the notify and mail stages see: a frozen snapshot of
one alert's life, identified by a fingerprint of its rule and labels. A
:class:`Transition` is what the alert stage says happened to one alert at one
instant (it fired, it resolved, it started or stopped flapping); it carries the
Alert snapshot taken right after the change so the next stage needs no lookup.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from netalert.logtext import escape
from netalert.present import clip
from netalert.snmp.types import VarBind

__all__ = [
    "LABEL_STATS",
    "MAX_LABEL",
    "Alert",
    "AlertState",
    "LabelStats",
    "Transition",
    "TransitionKind",
    "alert_labels",
    "fingerprint",
    "label_text",
]

# characters of a label value (a DisplayString, 255, fits whole): the default of
# [limits] max_label_chars
MAX_LABEL = 256


@dataclass(slots=True)
class LabelStats:
    """Counters of :func:`label_text` (exported in /metrics)."""

    cut: int = 0  # label and alert values cut to [limits] max_label_chars


LABEL_STATS = LabelStats()


class AlertState(StrEnum):
    """Where an alert is in its life."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as the notify and mail stages see it.

    ``labels`` always holds ``rule``, ``severity`` and ``device`` plus the key or
    index labels (``ifIndex``), the rule's static labels and the device's labels.
    ``starts_at`` is when it became firing (for a pending alert: when its
    condition was first true); ``ends_at`` is set once resolved. ``silenced`` is
    true while a firing ``DeviceUnreachable`` of the same device inhibits it.
    """

    fingerprint: str
    rule: str
    severity: str
    device: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState
    starts_at: float
    ends_at: float | None
    updated_at: float
    value: str
    count: int
    flapping: bool
    silenced: bool
    source: str  # "poll" | "trap" | "builtin" | "limit" (a rule's summary past its caps)
    varbinds: tuple[VarBind, ...] = ()


class TransitionKind(StrEnum):
    """What happened to an alert.

    FIRING and RESOLVED are the two things an operator is told. FLAPPING says the
    alert began to flap: from then on its FIRING/RESOLVED changes are held back
    until it settles, and the settling is reported as one FIRING or RESOLVED
    transition whose annotations carry ``flap_summary``.
    """

    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of one alert the next stage must act on (rules → alerts → notify)."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    kind: TransitionKind
    value: str
    time: float
    alert: Alert

    @property
    def firing(self) -> bool:
        """True when the alert is firing after this transition."""
        return self.alert.state is AlertState.FIRING


def fingerprint(labels: Mapping[str, str]) -> str:
    """Returns the stable 16-hex-digit identity of an alert from its labels.

    The labels include ``rule``, so two rules never share a fingerprint. The
    hash (SHA-256) is over the JSON array of the sorted ``[name, value]``
    pairs, compact and not ASCII-escaped: unambiguous whatever characters
    names and values hold. Persisted alerts depend on it: never change it.
    """
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def label_text(value: str, limit: int = MAX_LABEL) -> str:
    """Device text as an alert's label or value shows it: escaped
    (:func:`netalert.logtext.escape`: a control, bidi or zero-width character reads
    ``\\u001b``...) and cut to ``limit`` characters (``[limits] max_label_chars``),
    the cut counted in :data:`LABEL_STATS`. A pure function of ``value`` and
    ``limit`` (the same text gives the same label at every poll); clean text under
    the bound is returned as it is."""
    text = escape(value)
    if len(text) <= limit:
        return text
    LABEL_STATS.cut += 1
    return clip(text, limit)


def alert_labels(
    rule: str,
    severity: str,
    device: str,
    own: Mapping[str, str],
    static: Mapping[str, str],
    device_labels: Mapping[str, str],
    *,
    limit: int = MAX_LABEL,
) -> Mapping[str, str]:
    """An alert's labels: fixed ones win over key/index labels, over rule labels, over device's.

    The one place where device text (an index, a trap's key varbind) becomes a
    label: every value goes through :func:`label_text` (cut to ``limit``), so the
    labels, and the fingerprint, stay the same from one poll or trap to the next.
    """
    merged = {**device_labels, **static, **own, "rule": rule, "severity": severity}
    merged["device"] = device
    return MappingProxyType({k: label_text(v, limit) for k, v in merged.items()})
