"""The matcher language and the routing tree: tables of cases, no I/O."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from netalert.config import load_config_text
from netalert.config.models import Maintenance, Route
from netalert.errors import ConfigError
from netalert.matchers import Matcher, compile_matchers, first_miss, parse_matcher
from netalert.notify.explain import explain
from netalert.notify.routes import RouteTree, compile_routes

# --- the matcher language: operator by value by label -----------------------------------------

MISSING = None  # the alert has no such label


@pytest.mark.parametrize(
    ("op", "value", "label", "expected"),
    [
        ("=", "sw1", "sw1", True),
        ("=", "sw1", "sw12", False),
        ("=", "sw1", MISSING, False),
        ("=", "", MISSING, True),  # a missing label reads as ""
        ("=", "", "", True),
        ("=", "sw.*", "sw1", False),  # = is literal
        ("!=", "sw1", "sw1", False),
        ("!=", "sw1", "sw2", True),
        ("!=", "sw1", MISSING, True),
        ("!=", "", MISSING, False),
        ("=~", "sw[0-9]+", "sw12", True),
        ("=~", "sw", "sw12", False),  # anchored at the end
        ("=~", "12", "sw12", False),  # anchored at the start
        ("=~", "core-.*|edge-.*", "edge-3", True),  # the alternation is anchored as a whole
        ("=~", "core-.*|edge-.*", "xedge-3", False),
        ("=~", ".*", MISSING, True),
        ("=~", ".+", MISSING, False),
        ("=~", "(?i)CRIT.*", "critical", True),
        ("!~", "sw[0-9]+", "sw12", False),
        ("!~", "sw", "sw12", True),
        ("!~", "core-.*", "edge-1", True),
        ("!~", ".+", MISSING, True),
        ("!~", "", MISSING, False),
    ],
)
def test_matcher_table(op: str, value: str, label: str | None, expected: bool) -> None:
    labels = {} if label is None else {"device": label}
    assert parse_matcher(f"device{op}{value}").matches(labels) is expected
    assert Matcher("device", op, value).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("a=b", ("a", "=", "b")),
        ("a!=b", ("a", "!=", "b")),
        ("a=~b", ("a", "=~", "b")),
        ("a!~b", ("a", "!~", "b")),
        (" a =b", ("a", "=", "b")),
        ("a=b!=c", ("a", "=", "b!=c")),  # the first operator splits; the rest is the value
        ("a=~x=~y", ("a", "=~", "x=~y")),
        ("a=", ("a", "=", "")),
        ("if.name-x=1", ("if.name-x", "=", "1")),
    ],
)
def test_parse_matcher_splits_at_the_first_operator(
    text: str, parsed: tuple[str, str, str]
) -> None:
    m = parse_matcher(text)
    assert (m.name, m.op, m.value) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device", "invalid matcher 'device': use name=value, name!=value, name=~regex"),
        ("=x", "invalid matcher '=x': bad label name ''"),
        ("a b=c", "invalid matcher 'a b=c': bad label name 'a b'"),
        ("a!~[", "invalid matcher 'a!~[': unterminated character set at position 0"),
    ],
)
def test_bad_matcher_messages(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_matcher(text)
    assert str(info.value) == message


def test_a_table_is_equality_matchers_and_first_miss_says_why() -> None:
    ms = compile_matchers({"severity": "critical", "site": "milano"})
    assert [str(m) for m in ms] == ["severity=critical", "site=milano"]
    assert first_miss(ms, {"severity": "critical", "site": "milano"}) is None
    assert first_miss(ms, {"severity": "critical"}) == "no site, wants 'milano'"
    regex = compile_matchers(["device=~core-.*"])
    assert first_miss(regex, {"device": "edge-1"}) == "device='edge-1', wants =~'core-.*'"
    with pytest.raises(ValueError, match="bad label name '1x'"):
        compile_matchers({"1x": "y"})


# --- the routing tree ------------------------------------------------------------------------


def tree(text: str) -> RouteTree:
    return compile_routes(load_config_text(text, env={}).routes)


def taken(t: RouteTree, **labels: str) -> list[str]:
    return [r.name for r in t.match(labels)]


TREE = """
[[routes]]
name = "ops"
match = ["severity=~critical|warning"]
to = ["ops@example.org"]
group_by = ["rule"]
group_wait = "1s"
repeat_interval = "1h"
send_resolved = false

  [[routes.routes]]
  name = "pager"
  match = ["rule=~Core.*", "site!=lab"]
  to = ["pager@example.org"]
  group_wait = "0s"
  continue = true

  [[routes.routes]]
  match = { site = "milano" }
  to = ["milano@example.org"]

    [[routes.routes.routes]]
    name = "milano-core"
    match = ["device=~core-.*"]
    group_by = ["device"]

  [[routes.routes]]
  name = "not-edge"
  match = ["rule!~Edge.*"]
  send_resolved = true

[[routes]]
name = "fallback"
to = ["fallback@example.org"]
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # pager continues; the milano child takes it; its own child does not match
        (
            {"severity": "critical", "rule": "CoreDown", "site": "milano", "device": "sw1"},
            ["pager", "routes[0].routes[1]"],
        ),
        # the grandchild takes it in place of its parent
        (
            {"severity": "critical", "rule": "CoreDown", "site": "milano", "device": "core-1"},
            ["pager", "milano-core"],
        ),
        # pager continues, milano does not match, not-edge takes it
        ({"severity": "warning", "rule": "CoreDown", "site": "roma"}, ["pager", "not-edge"]),
        # pager does not match (site=lab): the negative matcher
        ({"severity": "warning", "rule": "CoreDown", "site": "lab"}, ["not-edge"]),
        # no child matches: the parent handles it itself
        ({"severity": "warning", "rule": "EdgeDown", "site": "roma"}, ["ops"]),
        # the first top-level route does not match: the next one
        ({"severity": "info", "rule": "CoreDown"}, ["fallback"]),
        ({}, ["fallback"]),
    ],
)
def test_tree_first_match_continue_and_children(
    labels: dict[str, str], expected: list[str]
) -> None:
    assert taken(tree(TREE), **labels) == expected


def test_children_inherit_what_they_do_not_set() -> None:
    by_name = {r.name: r for r in tree(TREE).nodes()}
    pager, milano = by_name["pager"], by_name["routes[0].routes[1]"]
    core, not_edge = by_name["milano-core"], by_name["not-edge"]
    assert pager.to == ("pager@example.org",)
    assert pager.group_wait == timedelta(0)  # its own
    assert pager.group_by == ("rule",) and pager.repeat_interval == timedelta(hours=1)
    assert milano.group_wait == timedelta(seconds=1) and milano.send_resolved is False
    # a grandchild inherits from its parent, which inherited from its own
    assert core.to == ("milano@example.org",) and core.group_by == ("device",)
    assert core.group_wait == timedelta(seconds=1)
    assert not_edge.to == ("ops@example.org",) and not_edge.send_resolved is True
    # a top-level route gets the defaults
    fallback = by_name["fallback"]
    assert fallback.group_wait == timedelta(seconds=30) and fallback.group_by == ("device",)
    assert [r.path for r in tree(TREE).nodes()] == [
        "routes[0]",
        "routes[0].routes[0]",
        "routes[0].routes[1]",
        "routes[0].routes[1].routes[0]",
        "routes[0].routes[2]",
        "routes[1]",
    ]


def test_continue_on_the_last_match_of_the_top_level() -> None:
    t = tree(
        """
[[routes]]
name = "audit"
to = ["audit@example.org"]
continue = true
[[routes]]
name = "crit"
match = { severity = "critical" }
to = ["noc@example.org"]
continue = true
[[routes]]
name = "never"
match = { severity = "none" }
to = ["x@example.org"]
"""
    )
    assert taken(t, severity="critical") == ["audit", "crit"]
    assert taken(t, severity="info") == ["audit"]


def test_an_old_style_config_routes_as_before() -> None:
    routes = [
        Route(match={"severity": "critical"}, to=["noc@example.org"]),
        Route(name="rest", to=["all@example.org"]),
    ]
    t = compile_routes(routes)
    assert taken(t, severity="critical", device="x") == ["routes[0]"]
    assert taken(t, severity="info") == ["rest"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[routes]]\nto = ["a@example.org"]\n[[routes]]\nto = ["a@example.org"]\n'
            '[[routes.routes]]\n[[routes.routes]]\nmatch = ["device=~core-(" ]\n',
            "routes[1].routes[1].match: invalid matcher 'device=~core-(': "
            "missing ), unterminated subpattern at position 5",
        ),
        (
            '[[routes]]\nto = ["a@example.org"]\nmatch = ["severity"]\n',
            "routes[0].match: invalid matcher 'severity': use name=value, name!=value, name=~regex",
        ),
        (
            '[[routes]]\nto = ["a@example.org"]\nmatch = "severity=critical"\n',
            'routes[0].match: expected a table of labels ({ severity = "critical" }) or a '
            'list of matchers (["severity=~critical|warning"])',
        ),
        (
            '[[routes]]\nto = ["a@example.org"]\nmatch = { "bad name" = "x" }\n',
            "routes[0].match: bad label name 'bad name'",
        ),
        ("[[routes]]\nname = 'x'\n", "routes[0].to: needs at least one recipient"),
        (
            '[[routes]]\nto = ["a@example.org"]\n[[routes.routes]]\ncontinu = true\n',
            "routes[0].routes[0].continu: unknown key (did you mean 'continue'?)",
        ),
        (
            '[[maintenance]]\nname = "m"\nstart = "01:00"\nend = "02:00"\nmatch = ["a=~("]\n',
            "maintenance[0].match: invalid matcher 'a=~(': "
            "missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_bad_routes_are_config_errors_naming_the_route(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env={})
    assert info.value.problems == [problem]


def test_matchers_compiled_once_and_again_after_a_copy() -> None:
    route = Route.model_validate({"to": ["a@example.org"], "match": ["device=~sw.*"]})
    assert route.matchers is route.matchers
    copied = route.model_copy(update={"match": {"site": "x"}})
    assert [str(m) for m in copied.matchers] == ["site=x"]
    window = Maintenance(name="m", start="00:00", end="00:00", match=["site!~lab.*"])
    assert [str(m) for m in window.matchers] == ["site!~lab.*"]


# --- netalert routes test: the tree path --------------------------------------------------


def _explained(labels: dict[str, Any]) -> list[str]:
    config = load_config_text(TREE, env={})
    return explain(config.routes, [], [], labels, 0.0).lines()


def test_explain_shows_the_tree_path_and_every_destination() -> None:
    lines = _explained(
        {"severity": "critical", "rule": "CoreDown", "site": "milano", "device": "core-1"}
    )
    assert lines[1:9] == [
        "path (first match wins, unless it says continue):",
        "  ops: MATCH",
        "    pager: MATCH, continue",
        "    routes[0].routes[1]: MATCH",
        "      milano-core: MATCH",
        "    not-edge: not reached",
        "  fallback: not reached",
        "route: pager (tree path: ops > pager)",
    ]
    assert "route: milano-core (tree path: ops > routes[0].routes[1] > milano-core)" in lines
    assert "receivers: milano@example.org" in lines
    assert "group: milano-core{device='core-1'}" in lines


def test_explain_json_keeps_the_first_route_and_lists_all() -> None:
    config = load_config_text(TREE, env={})
    labels = {"severity": "warning", "rule": "EdgeDown", "site": "lab"}
    data = explain(config.routes, [], [], labels, 0.0).as_json()
    assert data["route"] == "ops" and data["receivers"] == ["ops@example.org"]
    assert [s["route"] for s in data["path"]] == ["ops", "pager", "routes[0].routes[1]", "not-edge"]
    assert data["path"][1]["why"] == "no match (rule='EdgeDown', wants =~'Core.*')"
    assert data["not_reached"] == ["fallback"]
    assert [(r["route"], r["tree_path"]) for r in data["routes"]] == [("ops", ["ops"])]


def test_the_routing_example_of_the_docs_routes_as_it_says() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "email.md").read_text()
    section = page[page.index("### Example") :]
    example = section[
        section.index("```toml") + len("```toml") : section.index("```\n\nA critical")
    ]
    t = tree(example)
    assert taken(t, severity="critical", device="core-1", site="milano") == ["pager", "milano"]
    assert taken(t, severity="critical", device="core-2", site="roma") == ["pager", "noc-rest"]
    assert taken(t, severity="warning", device="sw1", site="milano") == ["milano"]
    assert taken(t, severity="info", device="sw1") == ["digest"]
    milano = next(r for r in t.nodes() if r.name == "milano")
    assert milano.group_wait == timedelta(seconds=30) and milano.group_by == ("device",)


def test_config_warnings_about_unreachable_routes_and_shared_names() -> None:
    from netalert.config.risks import config_warnings

    config = load_config_text(
        """
[[routes]]
name = "noc"
to = ["noc@example.org"]
  [[routes.routes]]
  match = ["site=x"]
  [[routes.routes]]
  name = "noc"
  [[routes.routes]]
  name = "late"
[[routes]]
name = "never"
to = ["a@example.org"]
""",
        env={},
    )
    assert [str(w) for w in config_warnings(config) if w.path.startswith("routes")] == [
        "routes[0].routes[1].name: 'noc' is also the name of routes[0]: their groups share"
        " notification log entries; give each route its own name",
        "routes[0].routes[2]: never reached: routes[0].routes[1] (no match, no continue)"
        " before it takes every alert",
        "routes[1]: never reached: routes[0] (no match, no continue) before it takes every alert",
    ]
    tree_config = load_config_text(TREE, env={})
    assert [w for w in config_warnings(tree_config) if w.path.startswith("routes")] == []


def test_a_copy_compiles_its_own_matchers_and_leaves_the_original_alone() -> None:
    route = Route.model_validate({"to": ["a@example.org"], "match": ["device=~sw.*"]})
    twin = Route.model_validate({"to": ["a@example.org"], "match": ["device=~sw.*"]})
    copied = route.model_copy(update={"match": ["device=x"]})
    assert [str(m) for m in copied.matchers] == ["device=x"]
    assert [str(m) for m in route.matchers] == ["device=~sw.*"]
    assert route == twin and route.model_copy() == route
