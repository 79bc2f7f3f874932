"""The route stage: which routes of the routing tree take an alert.

``[[routes]]`` is a tree, as Alertmanager's: the top-level routes are the
children of an implicit root. Among siblings the first route whose matchers
hold takes the alert and the later siblings are not looked at, unless that
route says ``continue = true``. A route that takes an alert hands it on to its
own children the same way; when none of them takes it, the route handles it
itself. A child inherits ``to``, ``group_by``, the timers and
``send_resolved`` from its parent unless it sets them.

:func:`compile_routes` turns the config models into :class:`RouteNode` values
once per config; :meth:`RouteTree.match` is the stage's one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from netalert.config.models import Route
from netalert.matchers import Matcher, first_miss, matches_all

__all__ = ["RouteNode", "RouteStep", "RouteTree", "compile_routes", "group_key"]


@dataclass(frozen=True, slots=True)
class RouteNode:
    """One route of the tree, with what it inherits already resolved.

    ``name`` is the route's ``name`` or its ``path`` (``routes[1].routes[0]``):
    the key of its groups in the notification log, in logs and in mail headers.
    """

    path: str
    name: str
    matchers: tuple[Matcher, ...]
    to: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    send_resolved: bool
    continue_: bool
    children: tuple[RouteNode, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every matcher of the route holds for ``labels``."""
        return matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One route looked at for an alert (``netalert routes test``): matched, or why not."""

    node: RouteNode
    depth: int
    matched: bool
    why: str  # "MATCH", "no match (...)" or "not reached"


@dataclass(frozen=True, slots=True)
class RouteTree:
    """The compiled ``[[routes]]``."""

    top: tuple[RouteNode, ...]

    def match(self, labels: Mapping[str, str]) -> tuple[RouteNode, ...]:
        """The routes that handle an alert carrying ``labels``, in tree order (none: the
        alert is not mailed)."""
        out: list[RouteNode] = []
        _descend(self.top, labels, out, None)
        return tuple(out)

    def walk(self, labels: Mapping[str, str]) -> tuple[tuple[RouteNode, ...], list[RouteStep]]:
        """As :meth:`match`, and every route looked at or skipped on the way, in order."""
        out: list[RouteNode] = []
        steps: list[RouteStep] = []
        _descend(self.top, labels, out, steps)
        return tuple(out), steps

    def nodes(self) -> list[RouteNode]:
        """Every route, parents before children."""
        found: list[RouteNode] = []
        stack = list(reversed(self.top))
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found


def _descend(
    siblings: Sequence[RouteNode],
    labels: Mapping[str, str],
    out: list[RouteNode],
    steps: list[RouteStep] | None,
    depth: int = 0,
) -> bool:
    """Routes ``labels`` among ``siblings``; True when one of them took the alert."""
    taken = False
    for index, node in enumerate(siblings):
        if not node.matches(labels):
            if steps is not None:
                steps.append(RouteStep(node, depth, False, _why_not(node, labels)))
            continue
        taken = True
        if steps is not None:
            steps.append(RouteStep(node, depth, True, "MATCH"))
        if not _descend(node.children, labels, out, steps, depth + 1):
            out.append(node)
        if not node.continue_:
            if steps is not None:
                steps += [RouteStep(n, depth, False, "not reached") for n in siblings[index + 1 :]]
            break
    return taken


def _why_not(node: RouteNode, labels: Mapping[str, str]) -> str:
    miss = first_miss(node.matchers, labels)
    return f"no match ({miss})" if miss else "no match"


def compile_routes(routes: Sequence[Route]) -> RouteTree:
    """The routing tree of a config's ``[[routes]]`` (validated when it was loaded)."""
    return RouteTree(tuple(_node(r, f"routes[{i}]", None) for i, r in enumerate(routes)))


def _node(route: Route, path: str, parent: RouteNode | None) -> RouteNode:
    given = route.model_fields_set

    def pick(key: str) -> Any:
        return getattr(parent if parent is not None and key not in given else route, key)

    node = RouteNode(
        path=path,
        name=route.name or path,
        matchers=route.matchers,
        to=tuple(route.to) if route.to or parent is None else parent.to,
        group_by=tuple(pick("group_by")),
        group_wait=pick("group_wait"),
        group_interval=pick("group_interval"),
        repeat_interval=pick("repeat_interval"),
        send_resolved=pick("send_resolved"),
        continue_=route.continue_,
        children=(),
    )
    children = tuple(_node(c, f"{path}.routes[{j}]", node) for j, c in enumerate(route.routes))
    return replace(node, children=children)


def group_key(route: str, group_by: Sequence[str], labels: Mapping[str, str]) -> str:
    """A stable key for the group an alert joins under a route.

    ``group_by = ["..."]`` (the literal string) puts every alert in its own group.
    """
    if list(group_by) == ["..."]:
        parts = sorted(labels.items())
    else:
        parts = [(name, labels.get(name, "")) for name in group_by]
    return route + "{" + ",".join(f"{k}={v!r}" for k, v in parts) + "}"
