"""The shape every notify stage after grouping has, and the value that flows through them.

A group due for a flush becomes a :class:`Batch`; each :class:`Stage` takes it
and returns it (changed) or None (nothing to mail for this group now), as
Alertmanager's ``Stage.Exec``. The mute stages are all one :class:`MuteStage`
around a different :class:`Muter` (inhibition, silences, maintenance windows,
flapping, and whatever mute a later feature adds): a
muter answers, for one firing alert, why it must not be mailed now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from netalert.alerts.model import Alert
from netalert.notify.model import Reason
from netalert.notify.routes import RouteNode

__all__ = ["Batch", "MuteStage", "Muter", "Stage", "first_mute", "run_stages"]


@dataclass(frozen=True, slots=True)
class Batch:
    """One aggregation group at one flush, on its way down the stages.

    ``firing`` are the group's firing alerts no stage muted and ``resolved``
    those resolved since its last flush, by fingerprint; ``muted`` maps the
    fingerprint of each firing alert a mute stage held back to why. The dedup
    stage fills ``told`` (what the group's last mail told firing) and
    ``reason``.
    """

    route: RouteNode
    key: str
    labels: Mapping[str, str]
    firing: Mapping[str, Alert]
    resolved: Mapping[str, Alert]
    now: float
    muted: Mapping[str, str] = field(default_factory=dict)
    told: frozenset[str] = frozenset()
    reason: Reason | None = None

    @property
    def held(self) -> frozenset[str]:
        """Muted alerts an earlier mail told firing: still told, their resolution is due."""
        return frozenset(fp for fp in self.muted if fp in self.told)


class Stage(Protocol):
    """One step between a group's timer and the mail."""

    def exec(self, batch: Batch) -> Batch | None:
        """The batch to hand on, or None when this group sends nothing now."""
        ...


class Muter(Protocol):
    """Decides whether one firing alert is muted now."""

    def mutes(self, alert: Alert, now: float) -> str | None:
        """Why ``alert`` must not be mailed at ``now`` (e.g. ``"silence 3f9a"``), or None."""
        ...


class MuteStage:
    """Marks the firing alerts its muter mutes (those no earlier stage muted)."""

    def __init__(self, muter: Muter) -> None:
        self.muter = muter

    def exec(self, batch: Batch) -> Batch | None:
        """``batch`` with this muter's mutes added to ``muted``."""
        found = {}
        for fp, alert in batch.firing.items():
            why = self.muter.mutes(alert, batch.now)
            if why is not None:
                found[fp] = why
        if not found:
            return batch
        firing = {fp: a for fp, a in batch.firing.items() if fp not in found}
        return replace(batch, firing=firing, muted={**batch.muted, **found})


def first_mute(muters: Sequence[Muter], alert: Alert, now: float) -> str | None:
    """Why ``alert`` is muted at ``now``: the first of ``muters`` that mutes it, or None."""
    for muter in muters:
        why = muter.mutes(alert, now)
        if why is not None:
            return why
    return None


def run_stages(stages: Sequence[Stage], batch: Batch) -> Batch | None:
    """Hands ``batch`` down ``stages`` in order; None as soon as one ends it."""
    current: Batch | None = batch
    for stage in stages:
        if current is None:
            break
        current = stage.exec(current)
    return current
