"""What the rules tell the alert stage, and what the alert stage lets the rules read.

The rules turn polls and traps into :class:`Observation` values ("row 3 of
PortDown on sw1 evaluated true", "a linkDown trap for ifIndex 3 arrived");
the alert stage (:mod:`netalert.alerts.stage`) finds the alert each one is
about and moves it (:func:`netalert.alerts.step.step`). Every observation
carries the :class:`RulePolicy` of its rule: the settings of the alert's life
(``for``, ``keep_firing_for``, ``resolve_after``, flap detection) and its
:class:`Describer`, which renders the rule's templates (the rules own them).
The rules read the alerts only through :class:`AlertView`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.snmp.types import VarBind

__all__ = [
    "AlertView",
    "Describer",
    "Event",
    "Observation",
    "Policy",
    "RulePolicy",
    "Watch",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Describer(Protocol):
    """A rule's templates, rendered for an alert (implemented by the rules)."""

    def firing(self, alert: Alert, value: str, context: Mapping[str, Any]) -> dict[str, str] | None:
        """The annotations of a pending or firing alert; None when the rule has no templates."""
        ...

    def resolved(self, names: Mapping[str, Any]) -> str:
        """A resolved alert's summary (``names`` holds ``firing_summary`` and ``fired_for``)."""
        ...

    def recall(self, alert: Alert, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The names the templates see for a stored alert (a change without a new trap)."""
        ...


@dataclass(frozen=True, slots=True)
class RulePolicy:
    """One rule as the alert stage needs it: identity, timings, flap settings, templates.

    ``source`` is ``poll``, ``trap``, ``builtin`` (DeviceUnreachable) or
    ``limit`` (a summary of the caps). ``signature`` changes when an edit of the
    rule makes its alerts obsolete. ``labels`` are the rule's static labels
    (a summary alert of the caps carries them). ``hysteresis``: the rule has a
    ``clear_expr``. ``confirm_every``: a trap rule with ``confirm``, else None.
    """

    name: str
    severity: str
    source: str
    signature: str
    describer: Describer
    flap: FlapSettings = field(default_factory=FlapSettings)
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    for_: float = 0.0
    keep_firing_for: float = 0.0
    hysteresis: bool = False
    resolve_after: float | None = None
    confirm_every: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """Every rule in force, for the alert stage (built by the rules at each load).

    ``rules`` holds DeviceUnreachable's policy whether it is on or not
    (``unreachable``); ``devices`` the configured devices; ``fallback``
    renders the resolved summary of an alert retired with its rule; ``summary``
    renders the summary alerts of the caps.
    """

    rules: Mapping[str, RulePolicy]
    devices: frozenset[str]
    unreachable: bool
    fallback: Describer
    summary: Describer


class Event(StrEnum):
    """What was observed about an alert."""

    EVALUATED = "evaluated"  # a poll rule's row (or DeviceUnreachable): fire / clear
    OCCURRED = "occurred"  # a trap rule's trap arrived
    CLEARED = "cleared"  # a clearing trap, or a confirm poll that shows all is well
    STILL_BAD = "still_bad"  # a confirm poll that shows the problem is still there
    TIME = "time"  # time passed (a trap alert's for and resolve_after, idle flap samples)
    RETIRED = "retired"  # the rule or the device is gone
    DECIDED = "decided"  # the caller decided the phase (the caps' summary alerts)


@dataclass(frozen=True, slots=True)
class Observation:
    """One thing seen about one alert, for :func:`netalert.alerts.step.step`.

    The alert is found by ``fingerprint`` when given, else by ``key`` (every
    record filed under it). ``labels`` are the alert's labels should it be new
    (ignored for an existing one). ``fire``/``clear`` are a poll evaluation
    (None: unknown); ``value`` and ``context`` what the alert shows and what its
    templates see (``context`` None: what the stored alert recalls).
    ``sample`` False: not a flap-detection result. ``extra`` is merged into
    the record's extra data; ``confirm_index`` is the instance a trap rule's
    confirm polls read. ``phase`` and ``count`` are set with
    :attr:`Event.DECIDED` only.
    """

    policy: RulePolicy
    key: str
    device: str
    event: Event
    labels: Mapping[str, str] | None = None
    fingerprint: str | None = None
    fire: bool | None = None
    clear: bool | None = None
    value: str = ""
    context: Mapping[str, Any] | None = field(default_factory=lambda: _EMPTY)
    varbinds: tuple[VarBind, ...] | None = None
    extra: Mapping[str, Any] | None = None
    confirm_index: str | None = None
    sample: bool = True
    phase: Phase | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Watch:
    """An active trap alert whose rule confirms it by polling (``confirm``)."""

    fingerprint: str
    rule: str
    device: str
    index: str


class AlertView(Protocol):
    """What the rules may read of the alerts (implemented by the alert stage)."""

    def state(self, key: str) -> AlertState | None:
        """The state of the alert filed under ``key``; None when there is none."""
        ...

    def active_keys(self, group: str) -> list[str]:
        """The keys of the active alerts whose key starts with ``group``."""
        ...

    def watching(self, device: str) -> list[Watch]:
        """The active trap alerts of ``device`` waiting for a confirm poll."""
        ...

    def watch(self, fingerprint: str) -> Watch | None:
        """The confirm watch of one alert, None when it no longer needs one."""
        ...
