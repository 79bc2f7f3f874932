"""The trap path's caches (netalert.rules.trapcache): the same answers, within their bound.

1. A trap's view (names, decoded index labels) through the varbind cache is the
   view worked out without it, for random varbinds of tables indexed by integers,
   addresses, strings and IMPLIED strings, malformed suffixes, scalars and OIDs no
   MIB names, with a cache small enough to drop entries on the way (hypothesis).
2. The observations of a trap rule set with its caches are those of a fresh one
   (nothing cached), trap after trap; a cut label is counted at every trap.
3. The bound holds: the least recently used entry goes, each drop is counted,
   and ``[limits] trap_cache_entries`` bounds the engine's caches.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.alerts import LABEL_STATS
from netalert.config import load_config_text
from netalert.metrics import Metrics
from netalert.rules.engine import RuleEngine
from netalert.rules.scope import NodeCache
from netalert.rules.trapcache import TRAP_CACHE_STATS, Lru, TrapCacheStats
from netalert.rules.trapenv import Named, view
from netalert.rules.trapflow import TrapRules
from netalert.snmp.types import SnmpType, TrapEvent
from netalert.traps.names import TrapNamer
from netalert.web.sources import trap_cache_source
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.unit

TREE = builtin_tree()
NAMER = TrapNamer(TREE)
# columns indexed by: ifIndex; ifIndex + IpAddress; two strings + Unsigned32; an IMPLIED
# string. Then a scalar (an index other than 0 decodes to nothing) and an unnamed OID.
COLUMNS = (
    "1.3.6.1.2.1.2.2.1.7",
    "1.3.6.1.2.1.4.22.1.2",
    "1.3.6.1.2.1.118.1.2.2.1.1",
    "1.3.6.1.2.1.10.94.3.1.22.1.1",
    "1.3.6.1.2.1.1.3",
    "1.3.6.1.4.1.99999.1.2",
)
_SUFFIXES = st.lists(st.integers(0, 300), max_size=7)
_VARBINDS = st.lists(st.tuples(st.sampled_from(COLUMNS), _SUFFIXES, st.integers(0, 9)), max_size=6)


def event_of(varbinds: list[tuple[str, list[int], int]], *, device: str = "sw1") -> TrapEvent:
    """A linkDown with these varbinds, named as the receiver names a trap."""
    raw = [
        (".".join([column, *map(str, suffix)]), SnmpType.INTEGER, value)
        for column, suffix, value in varbinds
    ]
    return NAMER.event(
        source="192.0.2.1",
        port=50162,
        version="2c",
        trap_oid="1.3.6.1.6.3.1.1.5.3",
        raw=[("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"), *raw],
        uptime=1,
        received=0.0,
        device=device,
        community="public",
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(_VARBINDS, min_size=1, max_size=8), st.integers(1, 4))
def test_the_cached_view_is_the_view(
    traps: list[list[tuple[str, list[int], int]]], bound: int
) -> None:
    memo: Lru[tuple[str, str], Named] = Lru("index", bound, TrapCacheStats())
    cached = NodeCache(TREE)
    for varbinds in traps:
        event = event_of(varbinds)
        expected = view(event, NodeCache(TREE))  # nothing memoised anywhere
        assert view(event, cached, memo) == expected  # misses, or hits of earlier traps
        assert view(event, cached, memo) == expected  # hits, where the bound kept them
        assert len(memo) <= bound


def test_the_cache_decodes_each_index_once() -> None:
    memo: Lru[tuple[str, str], Named] = Lru("index", 8, TrapCacheStats())
    cache = NodeCache(TREE)
    decoded: list[str] = []
    real = TREE.decode_index

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(TREE, name)

        def decode_index(self, node: object, index: str) -> object:
            decoded.append(index)
            return real(node, index)  # type: ignore[arg-type]

    cache.tree = Counting()  # type: ignore[assignment]
    event = event_of([("1.3.6.1.2.1.4.22.1.2", [3, 192, 0, 2, 7], 1)])
    first = view(event, cache, memo)
    assert first.index == {"ipNetToMediaIfIndex": "3", "ipNetToMediaNetAddress": "192.0.2.7"}
    for _ in range(5):
        assert view(event, cache, memo) == first
    assert decoded == ["3.192.0.2.7"]


# --- 2. the engine's observations -----------------------------------------------------

RULES = """
[limits]
max_label_chars = 16
trap_cache_entries = 3

[[devices]]
name = "sw1"
address = "192.0.2.1"
labels = { site = "lab" }

[[devices]]
name = "sw2"
address = "192.0.2.2"

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
where = "ifAdminStatus == 'up'"
labels = { team = "net" }

[[rules]]
name = "ByAlias"
trap = "IF-MIB::link*"
key = ["ifAlias"]
value = "ifAlias"
"""


def link(kind: str, if_index: int, alias: str, *, admin: int = 1, device: str = "sw1") -> TrapEvent:
    base = "1.3.6.1.2.1.2.2.1"
    trap_oid = "1.3.6.1.6.3.1.1.5." + ("3" if kind == "linkDown" else "4")
    return NAMER.event(
        source="192.0.2.1",
        port=50162,
        version="2c",
        trap_oid=trap_oid,
        raw=[
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, trap_oid),
            (f"{base}.1.{if_index}", SnmpType.INTEGER, if_index),
            (f"{base}.7.{if_index}", SnmpType.INTEGER, admin),
            (f"1.3.6.1.2.1.31.1.1.1.18.{if_index}", SnmpType.OCTET_STRING, alias.encode()),
        ],
        uptime=1,
        received=0.0,
        device=device,
        community="public",
    )


_TRAPS = st.builds(
    link,
    st.sampled_from(["linkDown", "linkUp"]),
    st.integers(1, 5),
    st.sampled_from(["uplink", "a" * 40, "core\x1b[31m", ""]),
    admin=st.integers(1, 2),
    device=st.sampled_from(["sw1", "sw2"]),
)
ENGINE = RuleEngine(load_config_text(RULES), TREE)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TRAPS, min_size=1, max_size=12))
def test_the_cached_observations_are_those_of_a_fresh_rule_set(traps: list[TrapEvent]) -> None:
    cached = TrapRules(ENGINE.rules, ENGINE.policy.rules)
    for event in traps:
        fresh = TrapRules(ENGINE.rules, ENGINE.policy.rules)  # empty caches
        cut = LABEL_STATS.cut
        expected = fresh.on_trap(event)
        cuts = LABEL_STATS.cut - cut
        assert cached.on_trap(event) == expected
        assert LABEL_STATS.cut - cut == 2 * cuts  # a hit counts the cut label again
        assert max(map(len, (cached._matches, cached._named, cached._identities))) <= 3


def test_a_long_alias_is_cut_and_counted_at_every_trap() -> None:
    rules = TrapRules(ENGINE.rules, ENGINE.policy.rules)
    cut = LABEL_STATS.cut
    first = rules.on_trap(link("linkDown", 2, "a" * 40))
    again = rules.on_trap(link("linkDown", 2, "a" * 40))
    assert first == again
    alias = next(o for o in first if o.policy.name == "ByAlias")
    assert alias.labels["ifAlias"] == "a" * 15 + "…"
    assert LABEL_STATS.cut - cut == 4  # the label and the value, at each of the two traps


# --- 3. the bound -----------------------------------------------------------------------


def test_the_least_recently_used_entry_goes_and_is_counted() -> None:
    stats = TrapCacheStats()
    lru: Lru[str, int] = Lru("labels", 3, stats)
    for n, key in enumerate("abc"):
        lru.put(key, n)
    assert lru.get("a") == 0  # a is now the most recently used: b goes first
    lru.put("d", 3)
    assert (lru.get("b"), len(lru), stats.evicted["labels"]) == (None, 3, 1)
    for n in range(100):
        lru.put(f"k{n}", n)
    assert len(lru) == 3 and stats.evicted["labels"] == 101
    assert [lru.get(f"k{n}") for n in (96, 97, 98, 99)] == [None, 97, 98, 99]
    with pytest.raises(ValueError, match="at least 1"):
        Lru("index", 0)


def test_trap_cache_entries_bounds_the_engines_caches() -> None:
    rules = TrapRules(ENGINE.rules, ENGINE.policy.rules)
    before = dict(TRAP_CACHE_STATS.evicted)
    for if_index in range(1, 21):
        rules.on_trap(link("linkDown", if_index, f"port{if_index}"))
        assert max(map(len, (rules._matches, rules._named, rules._identities))) <= 3
    # 20 traps, 3 indexed varbinds and 2 alerts each, every one new: all but 3 dropped
    assert TRAP_CACHE_STATS.evicted["index"] - before["index"] == 20 * 4 - 3
    assert TRAP_CACHE_STATS.evicted["labels"] - before["labels"] == 20 * 2 - 3
    for n in range(10):  # 10 vendor trap OIDs no rule names, after the one linkDown
        vendor = f"1.3.6.1.4.1.9.0.{n}"
        unnamed = dataclasses.replace(link("linkDown", 1, ""), trap_oid=vendor, trap_name=vendor)
        assert rules.on_trap(unnamed) == []
    assert TRAP_CACHE_STATS.evicted["matches"] - before["matches"] == 11 - 3
    assert len(rules._matches) == 3
    default = RuleEngine(load_config_text(RULES.replace("trap_cache_entries = 3", "")), TREE)
    assert default.rules.trap_cache == 4096


def test_evictions_are_exported_by_cache() -> None:
    stats = TrapCacheStats()
    Lru("index", 1, stats).put("a", 1)  # 1 entry: nothing dropped yet
    lru: Lru[str, int] = Lru("labels", 1, stats)
    lru.put("a", 1)
    lru.put("b", 2)
    metrics = Metrics()
    metrics.register_source("trap_cache", trap_cache_source(stats))
    body = metrics.render()[0].decode()
    assert 'netalert_trap_cache_evictions_total{cache="labels"} 1' in body
    assert 'netalert_trap_cache_evictions_total{cache="index"} 0' in body


def test_made_up_varbind_oids_do_not_grow_the_mib_lookups() -> None:
    # A sender can send as many OIDs as it likes: the rule set's MIB lookups behind the
    # caches (NodeCache, not bounded by trap_cache_entries) are keyed by the names the
    # MIB gives (an unknown OID is named by its longest known prefix), so made-up OIDs
    # add no entry once their prefixes are known.
    engine = RuleEngine(load_config_text(RULES), TREE)
    rules = TrapRules(engine.rules, engine.policy.rules)
    cache = engine.rules.cache

    def send(n: int) -> None:
        event = event_of([(f"1.3.6.1.4.1.99999.{n}", [n, 7], 1), ("1.3.6.1.2.1.2.2.1.7", [n], 2)])
        rules.on_trap(dataclasses.replace(event, trap_oid="1.3.6.1.6.3.1.1.5.3"))

    for n in range(10):
        send(n)
    sizes = (len(cache.nodes), len(cache.converters))
    for n in range(10, 400):
        send(n)
    assert (len(cache.nodes), len(cache.converters)) == sizes
