"""``netalert routes test``: where an alert with given labels would go, and what mutes it now.

Pure: the routes, maintenance windows and silences in, one
:class:`RouteExplanation` out, using the same matching the dispatcher uses
(:func:`~netalert.notify.routes.match_route`, :func:`~netalert.notify.routes.group_key`,
the silence and maintenance matchers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netalert.config.models import Maintenance, Route
from netalert.config.types import format_duration
from netalert.logtext import escape
from netalert.notify.maintenance import window_active
from netalert.notify.matchers import matches_all, parse_matcher
from netalert.notify.routes import group_key, match_route, route_name
from netalert.notify.silences import Silence

__all__ = ["PathStep", "RouteExplanation", "explain", "parse_labels"]


@dataclass(frozen=True, slots=True)
class PathStep:
    """One route looked at: matched, or why not."""

    route: str
    matched: bool
    why: str


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    """The route an alert takes (None: none matches), its receivers, mutes and group."""

    labels: Mapping[str, str]
    path: tuple[PathStep, ...]
    skipped: tuple[str, ...]
    route: Route | None
    route_name: str
    mutes: tuple[str, ...]
    group: str
    group_labels: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        """A JSON-able form (``--json``)."""
        route = self.route
        return {
            "labels": dict(self.labels),
            "path": [{"route": s.route, "matched": s.matched, "why": s.why} for s in self.path],
            "not_reached": list(self.skipped),
            "route": self.route_name if route is not None else None,
            "receivers": list(route.to) if route is not None else [],
            "muted_by": list(self.mutes),
            "group": None
            if route is None
            else {
                "key": self.group,
                "labels": dict(self.group_labels),
                "group_wait": route.group_wait.total_seconds(),
                "group_interval": route.group_interval.total_seconds(),
                "repeat_interval": route.repeat_interval.total_seconds(),
                "send_resolved": route.send_resolved,
            },
        }

    def lines(self) -> list[str]:
        """The text form: one line per fact, values escaped."""
        out = ["labels: " + " ".join(f"{k}={escape(v)}" for k, v in sorted(self.labels.items()))]
        out.append("path (first match wins):")
        for step in self.path:
            out.append(f"  {escape(step.route)}: {'MATCH' if step.matched else step.why}")
        out += [f"  {escape(name)}: not reached" for name in self.skipped]
        route = self.route
        if route is None:
            out.append("no route matches: this alert is not mailed")
            return out
        out.append("receivers: " + ", ".join(route.to))
        if self.mutes:
            out += ["muted now by:"] + [f"  {escape(m)}" for m in self.mutes]
        else:
            out.append("muted now by: nothing")
        out.append(f"group: {escape(self.group)}")
        out.append(
            f"  group_wait {format_duration(route.group_wait)},"
            f" group_interval {format_duration(route.group_interval)},"
            f" repeat_interval {format_duration(route.repeat_interval)},"
            f" send_resolved {'yes' if route.send_resolved else 'no'}"
        )
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


def _why_not(route: Route, labels: Mapping[str, str]) -> str:
    for key, wanted in route.match.items():
        if labels.get(key) != wanted:
            got = labels.get(key)
            have = f"{key}={got!r}" if got is not None else f"no {key}"
            return f"no match ({have}, wants {wanted!r})"
    return "no match"


def explain(
    routes: Sequence[Route],
    maintenance: Sequence[Maintenance],
    silences: Sequence[Silence],
    labels: Mapping[str, str],
    now: float,
) -> RouteExplanation:
    """Explains routing, muting and grouping of an alert carrying ``labels`` at ``now``."""
    index = match_route(routes, labels)
    last = len(routes) - 1 if index is None else index
    path = tuple(
        PathStep(
            route_name(i, routes[i]),
            i == index,
            "MATCH" if i == index else _why_not(routes[i], labels),
        )
        for i in range(last + 1)
    )
    skipped = tuple(route_name(i, routes[i]) for i in range(last + 1, len(routes)))
    mutes: list[str] = []
    for silence in silences:
        if silence.active(now) and matches_all(silence.matchers, labels):
            shown = " ".join(str(m) for m in silence.matchers)
            mutes.append(f"silence {silence.id} ({shown}) by {silence.author}: {silence.comment}")
    for window in maintenance:
        parsed = [parse_matcher(m) for m in window.match]
        if window_active(window, now) and matches_all(parsed, labels):
            mutes.append(f"maintenance {window.name} ({' '.join(window.match) or 'all alerts'})")
    if index is None:
        return RouteExplanation(labels, path, skipped, None, "", tuple(mutes), "", {})
    route = routes[index]
    name = route_name(index, route)
    group_labels = {n: labels.get(n, "") for n in route.group_by if n != "..."}
    return RouteExplanation(
        labels,
        path,
        skipped,
        route,
        name,
        tuple(mutes),
        group_key(name, route.group_by, labels),
        group_labels,
    )
