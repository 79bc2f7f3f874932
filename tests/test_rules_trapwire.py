"""Trap rules matched in a trap worker, applied by the agent (netalert.rules.trapflow).

A worker evaluates a trap with its own rule set, compiled from the same config,
and hands the agent what :meth:`TrapRules.matches` found; the agent's
:meth:`TrapRules.observed` must give the alert stage exactly the observations its
own :meth:`TrapRules.on_trap` would have made (fire, clear, where, key, value,
confirm, labels cut), and count a cut label as it would have.
"""

from __future__ import annotations

import marshal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.alerts import LABEL_STATS
from netalert.config import load_config_text
from netalert.rules.engine import RuleEngine
from netalert.rules.trapflow import TrapContext, TrapRules
from netalert.snmp.types import TrapEvent
from tests.test_rules_trapcache import _TRAPS, TREE, link
from tests.test_rules_trapcache import RULES as BASE

pytestmark = pytest.mark.unit


# the trap cache's rules (a clear trap, a where, a key, a value, labels cut), and more
RULES = (
    BASE
    + """
[[rules]]
name = "Templated"
trap = "IF-MIB::linkDown"
summary = "{{ device }} port {{ ifIndex }} ({{ ifAlias }}) down"

[[rules]]
name = "Confirmed"
trap = "IF-MIB::linkDown"
confirm = "ifAdminStatus == 'down'"

[[rules]]
name = "Anything"
trap = "*"
"""
)


AGENT = RuleEngine(load_config_text(RULES), TREE)
WORKER = RuleEngine(load_config_text(RULES), TREE)  # compiled again, as a worker does


@settings(max_examples=100, deadline=None)
@given(st.lists(_TRAPS, min_size=1, max_size=10))
def test_the_agent_gets_the_observations_it_would_have_made(traps: list[TrapEvent]) -> None:
    agent = TrapRules(AGENT.rules, AGENT.policy.rules)
    worker = TrapRules(WORKER.rules, WORKER.policy.rules)
    applied = TrapRules(AGENT.rules, AGENT.policy.rules)
    for event in traps:
        cut = LABEL_STATS.cut
        expected = agent.on_trap(event)
        own_cut = LABEL_STATS.cut - cut
        cut = LABEL_STATS.cut
        matches = worker.matches(event)
        assert matches[1] == LABEL_STATS.cut - cut == own_cut  # cut once, counted once
        # what crosses the channel is marshal's: builtin values only
        matches = marshal.loads(marshal.dumps(matches))
        LABEL_STATS.cut = cut  # the worker's count stays in the worker
        got = applied.observed(event, matches)
        assert got == expected
        assert LABEL_STATS.cut - cut == own_cut
        assert [o.policy for o in got] == [o.policy for o in expected]  # the agent's own
        assert all(isinstance(o.context, TrapContext) for o in got)


def test_the_context_is_built_only_when_read() -> None:
    rules = TrapRules(AGENT.rules, AGENT.policy.rules)
    event = link("linkDown", 3, "uplink", admin=1, device="sw1")
    matches = TrapRules(WORKER.rules, WORKER.policy.rules).matches(event)
    observed = rules.observed(event, matches)
    assert {o.policy.name for o in observed} == {
        "LinkDown",
        "ByAlias",
        "Templated",
        "Confirmed",
        "Anything",
    }
    assert all(o.context._data is None for o in observed)  # type: ignore[union-attr]
    first = observed[0].context
    assert first is not None
    assert first["ifAlias"] == "uplink" and first["trap_source"] == "192.0.2.1:50162 (SNMPv2c)"
    assert first["ifIndex"] == 3 and first["varbinds"] == event.varbinds


def test_a_trap_no_rule_matches_makes_no_observation() -> None:
    rules = TrapRules(AGENT.rules, AGENT.policy.rules)
    event = link("linkDown", 3, "uplink", admin=1, device="sw1")
    assert rules.observed(event, ((), 0)) == []


def test_a_repeated_trap_hands_over_the_same_labels_once_per_frame() -> None:
    """The worker's matches of a trap seen again carry the very labels dict of the first
    (kept with the alert's identity): marshal writes it once in a frame, and the agent
    reads back one dict, equal to what the labels are."""
    roomy = RuleEngine(load_config_text(RULES.replace("trap_cache_entries = 3", "")), TREE)
    worker = TrapRules(roomy.rules, roomy.policy.rules)
    event = link("linkDown", 3, "uplink", admin=1, device="sw1")
    first, again = worker.matches(event), worker.matches(event)
    labels = [match[3] for match in first[0] if match[3] is not None]
    assert labels and all(type(found) is dict for found in labels)
    assert [m[3] for m in first[0]] == [m[3] for m in again[0]]
    assert all(a[3] is b[3] for a, b in zip(first[0], again[0], strict=True))
    copied = tuple((*m[:3], m[3] and dict(m[3]), *m[4:]) for m in again[0])
    assert len(marshal.dumps((first, again))) < len(marshal.dumps((first, (copied, 0))))
    back_first, back_again = marshal.loads(marshal.dumps((first, again)))
    assert back_first[0][0][3] is back_again[0][0][3]
    observed = TrapRules(AGENT.rules, AGENT.policy.rules).observed(event, back_again)
    assert [dict(o.labels or {}) for o in observed if o.labels] == labels
