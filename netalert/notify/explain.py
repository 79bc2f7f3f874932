"""``netalert routes test``: where an alert with given labels would go, and what mutes it now.

Pure: the routes, maintenance windows and silences in, one
:class:`RouteExplanation` out, using the dispatcher's own route stage
(:meth:`~netalert.notify.routes.RouteTree.walk`, the same compiled tree and
matchers) and group keys (:func:`~netalert.notify.routes.group_key`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netalert.config.models import Maintenance, Route
from netalert.config.types import format_duration
from netalert.logtext import escape
from netalert.matchers import matches_all
from netalert.notify.maintenance import window_active
from netalert.notify.routes import RouteNode, RouteTree, compile_routes, group_key
from netalert.notify.silences import Silence

__all__ = ["Destination", "PathStep", "RouteExplanation", "explain", "parse_labels"]


@dataclass(frozen=True, slots=True)
class PathStep:
    """One route looked at (matched, or why not) or not reached, at its depth in the tree."""

    route: str
    matched: bool
    why: str
    depth: int = 0
    continues: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    """A route that handles the alert: the routes from the top down to it, and its group."""

    route: RouteNode
    lineage: tuple[str, ...]
    group: str
    group_labels: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        """A JSON-able form."""
        route = self.route
        return {
            "route": route.name,
            "tree_path": list(self.lineage),
            "receivers": list(route.to),
            "group": {
                "key": self.group,
                "labels": dict(self.group_labels),
                "group_wait": route.group_wait.total_seconds(),
                "group_interval": route.group_interval.total_seconds(),
                "repeat_interval": route.repeat_interval.total_seconds(),
                "send_resolved": route.send_resolved,
            },
        }

    def lines(self) -> list[str]:
        """The text form."""
        route = self.route
        return [
            f"route: {escape(route.name)} (tree path: {' > '.join(map(escape, self.lineage))})",
            "receivers: " + ", ".join(route.to),
            f"group: {escape(self.group)}",
            f"  group_wait {format_duration(route.group_wait)},"
            f" group_interval {format_duration(route.group_interval)},"
            f" repeat_interval {format_duration(route.repeat_interval)},"
            f" send_resolved {'yes' if route.send_resolved else 'no'}",
        ]


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    """The routes an alert takes (none: it is not mailed), how they were found, its mutes."""

    labels: Mapping[str, str]
    steps: tuple[PathStep, ...]
    destinations: tuple[Destination, ...]
    mutes: tuple[str, ...]

    @property
    def path(self) -> tuple[PathStep, ...]:
        """The routes looked at, in order (those not reached left out)."""
        return tuple(s for s in self.steps if s.why != "not reached")

    @property
    def skipped(self) -> tuple[str, ...]:
        """The routes not reached: a sibling before them took the alert."""
        return tuple(s.route for s in self.steps if s.why == "not reached")

    @property
    def group(self) -> str:
        """The group key under the first route that handles the alert ("" for none)."""
        return self.destinations[0].group if self.destinations else ""

    def as_json(self) -> dict[str, Any]:
        """A JSON-able form (``--json``); ``route``, ``receivers`` and ``group`` are the
        first destination's, ``routes`` all of them."""
        first = self.destinations[0].as_json() if self.destinations else None
        return {
            "labels": dict(self.labels),
            "path": [
                {
                    "route": s.route,
                    "matched": s.matched,
                    "why": s.why,
                    "depth": s.depth,
                    "continue": s.continues,
                }
                for s in self.path
            ],
            "not_reached": list(self.skipped),
            "route": first["route"] if first else None,
            "receivers": first["receivers"] if first else [],
            "muted_by": list(self.mutes),
            "group": first["group"] if first else None,
            "routes": [d.as_json() for d in self.destinations],
        }

    def lines(self) -> list[str]:
        """The text form: one line per fact, values escaped."""
        out = ["labels: " + " ".join(f"{k}={escape(v)}" for k, v in sorted(self.labels.items()))]
        out.append("path (first match wins, unless it says continue):")
        for step in self.steps:
            shown = "MATCH, continue" if step.matched and step.continues else step.why
            out.append(f"{'  ' * (step.depth + 1)}{escape(step.route)}: {shown}")
        if not self.destinations:
            out.append("no route matches: this alert is not mailed")
            return out
        for destination in self.destinations:
            out += destination.lines()
        if self.mutes:
            out += ["muted now by:"] + [f"  {escape(m)}" for m in self.mutes]
        else:
            out.append("muted now by: nothing")
        return out


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """``["severity=critical", "device=sw1"]`` → a dict.

    Raises:
        ValueError: An item without ``=`` or with an empty name.
    """
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r}: give labels as LABEL=VALUE, e.g. severity=critical")
        labels[name.strip()] = value
    return labels


def _mutes(
    maintenance: Sequence[Maintenance],
    silences: Sequence[Silence],
    labels: Mapping[str, str],
    now: float,
) -> tuple[str, ...]:
    mutes: list[str] = []
    for silence in silences:
        if silence.active(now) and matches_all(silence.matchers, labels):
            shown = " ".join(str(m) for m in silence.matchers)
            mutes.append(f"silence {silence.id} ({shown}) by {silence.author}: {silence.comment}")
    for window in maintenance:
        if window_active(window, now) and matches_all(window.matchers, labels):
            mutes.append(f"maintenance {window.name} ({' '.join(window.match) or 'all alerts'})")
    return tuple(mutes)


def _destination(tree: RouteTree, node: RouteNode, labels: Mapping[str, str]) -> Destination:
    lineage = tuple(n.name for n in tree.nodes() if node.path.startswith(n.path + "."))
    return Destination(
        node,
        (*lineage, node.name),
        group_key(node.name, node.group_by, labels),
        {n: labels.get(n, "") for n in node.group_by if n != "..."},
    )


def explain(
    routes: Sequence[Route],
    maintenance: Sequence[Maintenance],
    silences: Sequence[Silence],
    labels: Mapping[str, str],
    now: float,
) -> RouteExplanation:
    """Explains routing, muting and grouping of an alert carrying ``labels`` at ``now``."""
    tree = compile_routes(routes)
    taken, walked = tree.walk(labels)
    steps = tuple(
        PathStep(s.node.name, s.matched, s.why, s.depth, s.matched and s.node.continue_)
        for s in walked
    )
    return RouteExplanation(
        labels,
        steps,
        tuple(_destination(tree, node, labels) for node in taken),
        _mutes(maintenance, silences, labels, now),
    )
