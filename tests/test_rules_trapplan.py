"""Trap rules compiled per trap OID (netalert.rules.trapplan): the plain matcher's answers.

1. On random trap rule sets (every matching form, clear traps, ``where``, ``key``,
   ``value``, ``confirm``, device scopes and label matches, names the view sets
   itself) and random traps (repeated and missing values, index columns sent as
   varbinds, tables indexed by addresses, malformed indexes, OIDs no MIB names,
   several devices and sources), the rules through their plans observe what the
   plain matcher (every rule tried in turn over the whole view) observes, and hand a
   worker's matches equal to its own, trap after trap (hypothesis).
2. A plan holds the rules of its trap OID and the names they read, and no more; a
   trap with varbinds laid out as before takes its layout from the cache, bounded and
   counted like the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.alerts import LABEL_STATS
from netalert.config import load_config_text
from netalert.rules.engine import RuleEngine
from netalert.rules.trapcache import TRAP_CACHE_STATS
from netalert.rules.trapflow import TrapRules
from netalert.snmp.types import SnmpType, TrapEvent
from netalert.traps.names import TrapNamer
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.unit

TREE = builtin_tree()
NAMER = TrapNamer(TREE)
DEVICES = """
[[devices]]
name = "sw1"
address = "192.0.2.1"
labels = { site = "lab", team = "lan" }
[[devices]]
name = "sw2"
address = "192.0.2.2"
labels = { site = "core" }
"""
LINK = "1.3.6.1.6.3.1.1.5"
TRAP_OIDS = (f"{LINK}.3", f"{LINK}.4", f"{LINK}.1", "1.3.6.1.4.1.9.0.1", "1.3.6.1.4.1.99999.7")
IF = "1.3.6.1.2.1.2.2.1"

_TRAPS = (
    "IF-MIB::linkDown", "IF-MIB::linkUp", "IF-MIB::link*", "*", "*Down", "1.3.6.1.6.3.1.1.5.*",
    "SNMPv2-MIB::coldStart", "1.3.6.1.4.1.9.0.1", ".1.3.6.1.4.1.*", "?F-MIB::*",
)  # fmt: skip
_WHERE = (
    "ifAdminStatus == 'up'", "ifOperStatus != 'down'", "ifIndex > 2", "ifDescr == 'Gi0/3'",
    "ifAlias == 'uplink'", "source == '192.0.2.1'", "device == 'sw1'", "community == 'public'",
    "version == '2c'", "trap == 'linkDown'", "user == ''", "sysUpTime > 100",
    "ifOperStatus == 'down' or ifIndex == 3", "ipNetToMediaNetAddress == '192.0.2.7'",
    "ifAdminStatus in ('up', 'testing')", "ifInOctets > 5", "rate(ifInOctets) > 1",
    "ipNetToMediaIfIndex == 3 and ifAdminStatus == 'up'",
)  # fmt: skip
_KEYS = (
    '["ifAlias"]', '["device"]', '["source"]', '["trap"]', '["ifIndex", "ifDescr"]',
    '["sysUpTime"]', '["community"]', '["ipNetToMediaNetAddress"]',
)  # fmt: skip
_VALUES = ("ifAlias", "ifIndex", "ifDescr", "sysUpTime", "ifInOctets * 2", "device", "trap")
_CONFIRMS = ("ifAdminStatus == 'down'", "sysUpTime > 0", "ipNetToMediaType == 'static'")


def _maybe(options: tuple[str, ...]) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(options)


_RULES = st.lists(
    st.fixed_dictionaries(
        {
            "trap": st.sampled_from(_TRAPS),
            "clear_trap": _maybe(("IF-MIB::linkUp", "IF-MIB::linkDown", "*Up", "*")),
            "where": _maybe(_WHERE),
            "key": _maybe(_KEYS),
            "value": _maybe(_VALUES),
            "confirm": _maybe(_CONFIRMS),
            "devices": _maybe(('["sw1"]', '["sw2", "sw1"]')),
            "match": _maybe(('{ site = "lab" }', '{ device = "sw1" }', '{ site = "x" }')),
            "labels": _maybe(('{ team = "net" }', '{ ifIndex = "0" }')),
        }
    ),
    min_size=1,
    max_size=6,
)


def engine_of(rules: list[dict[str, str | None]]) -> RuleEngine:
    """The rule engine of these trap rules (r0, r1...), with a small trap cache."""
    text = "[limits]\ntrap_cache_entries = 4\nmax_label_chars = 16\n" + DEVICES
    for n, rule in enumerate(rules):
        text += f'\n[[rules]]\nname = "r{n}"\n'
        for key, value in rule.items():
            if value is None:
                continue
            text += (
                f"{key} = {value}\n"
                if key in ("key", "devices", "match", "labels")
                else (f'{key} = "{value}"\n')
            )
    return RuleEngine(load_config_text(text), TREE)


# varbinds: (OID, type, value); a missing value is a noSuchInstance
_INDEX = st.sampled_from(["3", "4", "3.4", "0", ""])
_VARBIND = st.one_of(
    st.builds(lambda i: ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, i), st.integers(0, 300)),
    st.builds(
        lambda column, index, value: (
            f"{IF}.{column}.{index}".rstrip("."),
            SnmpType.INTEGER,
            value,
        ),
        st.sampled_from(["1", "7", "8"]),
        _INDEX,
        st.integers(0, 4),
    ),
    st.builds(
        lambda index, text: (f"{IF}.2.{index}".rstrip("."), SnmpType.OCTET_STRING, text),
        _INDEX,
        st.sampled_from([b"Gi0/3", b"uplink", b"\xff\x00", b""]),
    ),
    st.builds(
        lambda index, text: (f"1.3.6.1.2.1.31.1.1.1.18.{index}", SnmpType.OCTET_STRING, text),
        _INDEX,
        st.sampled_from([b"uplink", b"a" * 20, b"core\x1b[31m"]),
    ),
    st.builds(lambda n: (f"{IF}.10.{n}", SnmpType.COUNTER32, n * 7), st.integers(1, 4)),
    st.builds(
        lambda n, t: (f"1.3.6.1.2.1.4.22.1.{n}.3.192.0.2.7", t, 3),
        st.sampled_from(["1", "4"]),
        st.just(SnmpType.INTEGER),
    ),
    st.builds(
        lambda suffix: (f"1.3.6.1.2.1.4.22.1.3.{suffix}", SnmpType.IP_ADDRESS, "192.0.2.7"),
        st.sampled_from(["3.192.0.2.7", "3.192.0", "9"]),
    ),
    st.builds(lambda n: (f"1.3.6.1.4.1.99999.1.{n}", SnmpType.INTEGER, n), st.integers(1, 3)),
    st.builds(lambda i: (f"{IF}.7.{i}", SnmpType.NO_SUCH_INSTANCE, None), _INDEX),
)


def named(
    trap_oid: str,
    varbinds: list[tuple[str, SnmpType, Any]],
    *,
    source: str = "192.0.2.1",
    version: str = "2c",
    community: str = "public",
) -> TrapEvent:
    """A trap with snmpTrapOID.0 and these varbinds, named as the receiver names a trap."""
    return NAMER.event(
        source=source,
        port=50162,
        version=version,
        trap_oid=trap_oid,
        raw=[("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, trap_oid), *varbinds],
        uptime=1,
        received=0.0,
        device={"192.0.2.1": "sw1", "192.0.2.2": "sw2"}.get(source, ""),
        community=community,
    )


@st.composite
def traps(draw: Callable[..., Any]) -> TrapEvent:
    return named(
        draw(st.sampled_from(TRAP_OIDS)),
        draw(st.lists(_VARBIND, max_size=7)),
        source=draw(st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.9"])),
        version=draw(st.sampled_from(["2c", "1"])),
        community=draw(st.sampled_from(["public", "other"])),
    )


def observed(rules: TrapRules, event: TrapEvent) -> tuple[list[Any], int]:
    """What ``rules`` observe of ``event`` (contexts read), and the labels cut."""
    cut = LABEL_STATS.cut
    out = rules.on_trap(event)
    return [dataclasses.replace(o, context=dict(o.context or {})) for o in out], (
        LABEL_STATS.cut - cut
    )


# 150 examples (about 6 s of CPU). Breaks put into trapplan.py, 3 seeds each: a rule's
# value, key or special names left out of its plan, a missing value not sent to the whole
# view, a decoded index name left out of a layout, a device match not scoping a rule: 3
# of 3 failed; the first varbind of a name winning over the last: 2 of 3. The confirm
# index column's value (rarely read) has a test of its own below.
@settings(max_examples=150, deadline=None)
@given(_RULES, st.lists(traps(), min_size=1, max_size=12))
def test_planned_rules_observe_what_the_plain_matcher_observes(
    rules: list[dict[str, str | None]], events: list[TrapEvent]
) -> None:
    engine = engine_of(rules)
    planned = TrapRules(engine.rules, engine.policy.rules)
    plain = TrapRules(engine.rules, engine.policy.rules, linear=True)
    for event in events * 2:  # the second time through the caches
        expected = observed(plain, event)
        assert observed(planned, event) == expected
        cut = LABEL_STATS.cut
        assert planned.matches(event) == plain.matches(event)
        LABEL_STATS.cut = cut
        assert len(planned._layouts) <= 4 and len(planned._matches) <= 4


# --- 2. the plan and the layouts -----------------------------------------------------------

RULES = [
    {"trap": "IF-MIB::linkDown", "where": "ifAdminStatus == 'up'", "value": "ifAlias"},
    {"trap": "*", "key": '["source", "ifDescr"]', "devices": '["sw1"]'},
    {"trap": "SNMPv2-MIB::coldStart"},
]


def link_down(if_index: int, *, alias: bytes = b"uplink") -> TrapEvent:
    return named(
        f"{LINK}.3",
        [
            (f"{IF}.7.{if_index}", SnmpType.INTEGER, 1),
            (f"1.3.6.1.2.1.31.1.1.1.18.{if_index}", SnmpType.OCTET_STRING, alias),
        ],
    )


def test_a_plan_holds_its_trap_s_rules_and_the_names_they_read() -> None:
    engine = engine_of([dict.fromkeys(("clear_trap", "confirm", "match", "labels"), None) | r
                        for r in RULES])  # fmt: skip
    rules = TrapRules(engine.rules, engine.policy.rules)
    rules.on_trap(link_down(3))
    plan = rules._plan(f"{LINK}.3", "IF-MIB::linkDown")
    assert [(r.name, fires, clears, scoped) for r, fires, clears, scoped in plan.rules] == [
        ("r0", True, False, False),
        ("r1", True, False, True),
    ]
    assert (plan.wanted, plan.specials, plan.trap) == (
        ("ifAdminStatus", "ifAlias", "ifDescr"),
        ("source",),
        "linkDown",
    )
    assert rules._plan("1.3.6.1.4.1.9.0.1", "1.3.6.1.4.1.9.0.1").wanted == ("ifDescr",)


def test_a_layout_is_kept_per_varbind_names_and_indexes_bounded_and_counted() -> None:
    engine = engine_of([dict.fromkeys(("clear_trap", "confirm", "match", "labels"), None) | r
                        for r in RULES])  # fmt: skip
    rules = TrapRules(engine.rules, engine.policy.rules)
    first = rules.on_trap(link_down(3))
    assert len(rules._layouts) == 1
    # the same names and indexes, other values: the same layout, the trap's own values
    other = rules.on_trap(link_down(3, alias=b"core"))
    assert len(rules._layouts) == 1
    assert [o.value for o in first] == ["uplink", "linkDown"]
    assert [o.value for o in other] == ["core", "linkDown"]
    before = TRAP_CACHE_STATS.evicted["layouts"]
    for if_index in range(10):
        rules.on_trap(link_down(if_index))
    assert len(rules._layouts) == 4  # [limits] trap_cache_entries
    # 9 new layouts (ifIndex 3 is kept) after the one: all but 4 dropped
    assert TRAP_CACHE_STATS.evicted["layouts"] - before == 10 - 4


def test_a_confirm_index_read_from_the_index_column_s_value() -> None:
    # ifIndex sent as a bare column (no instance): no varbind of ifTable gives the row,
    # so confirm_index reads the ifIndex name of the view, which the plan must hold
    engine = engine_of([{"trap": "IF-MIB::linkDown", "confirm": "ifAdminStatus == 'down'"}])
    event = named(f"{LINK}.3", [(f"{IF}.1", SnmpType.INTEGER, 5)])
    planned = TrapRules(engine.rules, engine.policy.rules)
    plain = TrapRules(engine.rules, engine.policy.rules, linear=True)
    assert [o.confirm_index for o in planned.on_trap(event)] == ["5"]
    assert observed(planned, event) == observed(plain, event)
