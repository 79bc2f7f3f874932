"""Routing: the first route whose matchers an alert satisfies takes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from netalert.config.models import Route

__all__ = ["group_key", "match_route", "route_name"]


def route_name(index: int, route: Route) -> str:
    """The name a route is known by in logs, the notification log and mail headers."""
    return route.name or f"routes[{index}]"


def match_route(routes: Sequence[Route], labels: Mapping[str, str]) -> int | None:
    """Returns the index of the first route matching ``labels``, or None.

    A route matches when every ``match`` key is present in the labels with the
    same value; a route without ``match`` catches everything.
    """
    for index, route in enumerate(routes):
        if all(labels.get(key) == value for key, value in route.match.items()):
            return index
    return None


def group_key(route: str, group_by: Sequence[str], labels: Mapping[str, str]) -> str:
    """A stable key for the group an alert joins under a route.

    ``group_by = ["..."]`` (the literal string) puts every alert in its own group.
    """
    if list(group_by) == ["..."]:
        parts = sorted(labels.items())
    else:
        parts = [(name, labels.get(name, "")) for name in group_by]
    return route + "{" + ",".join(f"{k}={v!r}" for k, v in parts) + "}"
