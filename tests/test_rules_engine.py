"""The rule engine on poll results and traps (built-in MIB tree, real SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netalert.alerting import Alerting
from netalert.alerts.model import (
    LABEL_STATS,
    MAX_LABEL,
    AlertState,
    Transition,
    TransitionKind,
)
from netalert.alerts.store import SqliteAlertStore
from netalert.config import load_config_text
from netalert.poll import rows as poller
from netalert.poll.rows import PollResult, PollStatus
from netalert.snmp.types import Sample, SnmpType, TrapEvent, VarBind
from netalert.state import open_database
from tests.support.polls import Device
from tests.support.trees import builtin_tree

TREE = builtin_tree()
DEVICES = """
[[devices]]
name = "sw1"
address = "192.0.2.1"
collect = ["if", "sys"]
labels = { site = "milano" }

[[devices]]
name = "sw2"
address = "192.0.2.2"
collect = ["if", "sys"]
labels = { site = "roma" }

[collect.sys]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysName.0"]

[collect.if]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus",
        "IF-MIB::ifInOctets", "IF-MIB::ifHCInOctets", "IF-MIB::ifHighSpeed", "IF-MIB::ifAlias"]
"""
IF_DOWN = """
[[rules]]
name = "InterfaceDown"
expr = "ifOperStatus == 'down' and ifAdminStatus == 'up'"
for = "30s"
severity = "critical"
summary = "{{ device }} {{ ifDescr }} is {{ ifOperStatus }}"
"""
LINK_DOWN = """
[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
where = "ifAdminStatus == 'up'"
summary = "{{ device }} link {{ ifIndex }} down ({{ trap }} from {{ source }})"
"""


def make(rules: str, db_dir: Path | None = None, extra: str = "") -> Alerting:
    config = load_config_text(extra + DEVICES + rules)
    return Alerting(config, TREE, SqliteAlertStore(open_database(db_dir)))


_DEVICES: dict[str, Device] = {}


@pytest.fixture(autouse=True)
def fresh_devices() -> Iterator[None]:
    """Each test polls its own devices (their counters do not carry over)."""
    _DEVICES.clear()
    yield
    _DEVICES.clear()


def poll(
    device: str,
    t: float,
    rows: dict[str, dict[str, Any]],
    *,
    uptime: int | None = None,
    scalars: dict[str, Any] | None = None,
    status: PollStatus = "ok",
) -> PollResult:
    """One poll of ``device`` through the poller's own tracker (rates across polls)."""
    values = dict(scalars or {})
    if uptime is not None:
        values["sysUpTime"] = uptime
    found = _DEVICES.get(device)
    if found is None:
        found = _DEVICES[device] = Device(device)
    return found.poll(t, rows, scalars=values, status=status)


def iface(oper: int, admin: int = 1, descr: bytes = b"eth0", **more: Any) -> dict[str, Any]:
    return {"ifOperStatus": oper, "ifAdminStatus": admin, "ifDescr": descr, **more}


def kinds(changes: list[Transition]) -> list[str]:
    return [f"{c.kind.value}:{c.labels.get('device')}:{c.rule}" for c in changes]


# --- poll rules ----------------------------------------------------------------------


def test_interface_down_fires_after_for_and_resolves_once() -> None:
    engine = make(IF_DOWN)
    up, down = iface(1), iface(2)
    assert engine.on_poll(poll("sw1", 0, {"1": up, "2": down}), 0) == []
    assert engine.table.active()[0].state is AlertState.PENDING
    assert engine.on_poll(poll("sw1", 20, {"1": up, "2": down}), 20) == []
    fired = engine.on_poll(poll("sw1", 30, {"1": up, "2": down}), 30)
    assert kinds(fired) == ["firing:sw1:InterfaceDown"]
    alert = fired[0].alert
    assert dict(alert.labels) == {
        "rule": "InterfaceDown",
        "severity": "critical",
        "device": "sw1",
        "ifIndex": "2",
        "site": "milano",
    }
    assert alert.annotations["summary"] == "sw1 eth0 is down"
    assert (alert.value, alert.starts_at, alert.source) == ("down", 30, "poll")
    assert engine.on_poll(poll("sw1", 60, {"1": up, "2": down}), 60) == []
    resolved = engine.on_poll(poll("sw1", 90, {"1": up, "2": up}), 90)
    assert kinds(resolved) == ["resolved:sw1:InterfaceDown"]
    assert resolved[0].fingerprint == fired[0].fingerprint
    assert resolved[0].alert.ends_at == 90 and resolved[0].alert.value == "up"
    assert engine.on_poll(poll("sw1", 120, {"1": up, "2": up}), 120) == []
    assert engine.table.active() == []


def test_admin_down_interfaces_and_other_devices_do_not_fire() -> None:
    engine = make(
        IF_DOWN.replace('for = "30s"', "").replace("[[rules]]", '[[rules]]\ndevices = ["sw2"]')
    )
    assert engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0) == []  # not the rule's device
    assert engine.on_poll(poll("sw2", 0, {"1": iface(2, admin=2)}), 0) == []  # admin down
    assert kinds(engine.on_poll(poll("sw2", 10, {"1": iface(2)}), 10)) == [
        "firing:sw2:InterfaceDown"
    ]


def test_match_restricts_by_device_label() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', 'match = { site = "roma" }'))
    assert engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0) == []
    assert len(engine.on_poll(poll("sw2", 0, {"1": iface(2)}), 0)) == 1


def test_missing_values_are_unknown_not_recovery() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    assert len(engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)) == 1
    # the row is there but ifOperStatus is missing (noSuchInstance): keep firing
    assert engine.on_poll(poll("sw1", 10, {"1": {"ifAdminStatus": 1, "ifDescr": b"e"}}), 10) == []
    assert engine.table.active()[0].state is AlertState.FIRING


def test_a_row_that_disappears_resolves_its_alert() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    assert len(engine.on_poll(poll("sw1", 0, {"1": iface(1), "7": iface(2)}), 0)) == 1
    gone = engine.on_poll(poll("sw1", 10, {"1": iface(1)}), 10)
    assert kinds(gone) == ["resolved:sw1:InterfaceDown"]
    assert gone[0].value == "(no longer reported)"


UTIL = """
[[rules]]
name = "HighUtilisation"
expr = "rate(ifHCInOctets) * 8 / (ifHighSpeed * 1e6) * 100 > 90"
clear_expr = "rate(ifHCInOctets) * 8 / (ifHighSpeed * 1e6) * 100 < 80"
summary = "{{ ifDescr }} at {{ value }}% of {{ ifHighSpeed }} Mb/s"
"""


def test_rate_with_hysteresis() -> None:
    engine = make(UTIL)
    speed = 100  # Mb/s: 12.5e6 bytes/s is 100 %
    octets = 0

    def at(t: float, percent: float) -> list[Transition]:
        nonlocal octets
        octets += int(12_500_000 * percent / 100 * 10)  # 10 s between polls
        row = {"ifHCInOctets": octets, "ifHighSpeed": speed, "ifDescr": b"uplink"}
        return engine.on_poll(poll("sw1", t, {"5": row}), t)

    assert at(0, 0) == []  # first poll: no rate yet
    fired = at(10, 95)
    assert kinds(fired) == ["firing:sw1:HighUtilisation"]
    assert fired[0].annotations["summary"] == "uplink at 95% of 100 Mb/s"
    assert at(20, 85) == []  # between 80 and 90: still firing (hysteresis)
    assert at(30, 91) == []
    resolved = at(40, 70)
    assert kinds(resolved) == ["resolved:sw1:HighUtilisation"]
    assert resolved[0].value == "70"


def test_counter32_wrap_and_agent_reboot() -> None:
    engine = make('[[rules]]\nname = "Busy"\nexpr = "rate(ifInOctets) > 1000"\n')
    assert (
        engine.on_poll(poll("sw1", 0, {"1": {"ifInOctets": 2**32 - 5000}}, uptime=100_000), 0) == []
    )
    # wrapped: 5000 + 15000 = 20000 octets in 10 s = 2000/s
    assert (
        len(engine.on_poll(poll("sw1", 10, {"1": {"ifInOctets": 15_000}}, uptime=101_000), 10)) == 1
    )
    # agent rebooted (uptime went down): the drop is not a wrap, the rate is unknown: no change
    assert engine.on_poll(poll("sw1", 20, {"1": {"ifInOctets": 10}}, uptime=500), 20) == []
    assert engine.table.active()[0].state is AlertState.FIRING
    # from there on, real rates again: 50/s resolves it
    assert kinds(engine.on_poll(poll("sw1", 30, {"1": {"ifInOctets": 510}}, uptime=1500), 30)) == [
        "resolved:sw1:Busy"
    ]


def test_scalar_rule_runs_once_per_device() -> None:
    engine = make(
        '[[rules]]\nname = "Rebooted"\nexpr = "sysUpTime < 30000"\nsummary = "{{ sysName }}"\n'
    )
    changes = engine.on_poll(
        poll("sw1", 0, {"1": iface(1)}, uptime=500, scalars={"sysName": b"core"}), 0
    )
    assert kinds(changes) == ["firing:sw1:Rebooted"]
    assert changes[0].annotations["summary"] == "core"
    assert "ifIndex" not in changes[0].labels


def test_keep_firing_for_rides_out_one_good_sample() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', 'keep_firing_for = "15s"'))
    assert len(engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)) == 1
    assert engine.on_poll(poll("sw1", 10, {"1": iface(1)}), 10) == []
    assert engine.on_poll(poll("sw1", 20, {"1": iface(2)}), 20) == []
    assert engine.on_poll(poll("sw1", 30, {"1": iface(1)}), 30) == []
    assert len(engine.on_poll(poll("sw1", 40, {"1": iface(1)}), 40)) == 1


def test_device_data_cannot_run_template_code() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', "").replace("{{ device }} ", ""))
    changes = engine.on_poll(poll("sw1", 0, {"1": iface(2, descr=b"{{ 7*7 }}\r\nBcc: x")}), 0)
    # literal text, on one line (a summary may become a mail subject): CR LF escaped, visibly
    assert changes[0].annotations["summary"] == "{{ 7*7 }}\\r\\nBcc: x is down"


def test_value_from_device_text_is_escaped_and_bounded() -> None:
    rules = IF_DOWN.replace('for = "30s"', 'for = "30s"\nvalue = "ifDescr"')
    engine = make(rules.replace('for = "30s"', ""))
    descr = b"eth0\r\nBcc: x\tA" + b"A" * 5000  # printable text with controls
    changes = engine.on_poll(poll("sw1", 0, {"1": iface(2, descr=descr)}), 0)
    assert changes[0].value.startswith("eth0\\r\\nBcc: x\\tAA"), changes[0].value
    assert len(changes[0].value) <= MAX_LABEL


@pytest.mark.parametrize(("bound", "cut"), [(None, False), (32, True)])
def test_label_bound_is_a_config_key(bound: int | None, cut: bool) -> None:
    """[limits] max_label_chars bounds a label and a value from device text; each cut counts."""
    team = "t" * 100
    rules = IF_DOWN.replace('for = "30s"', f'value = "ifDescr"\nlabels = {{ team = "{team}" }}')
    extra = f"[limits]\nmax_label_chars = {bound}\n" if bound is not None else ""
    engine = make(rules, extra=extra)
    assert engine.engine.rules.max_label == (bound or MAX_LABEL)
    before = LABEL_STATS.cut
    descr = "eth0 " + "A" * 100  # longer than 32, shorter than the default 256
    (change,) = engine.on_poll(poll("sw1", 0, {"1": iface(2, descr=descr.encode())}), 0)
    if cut:
        assert change.value == descr[:31] + "…"
        assert change.labels["team"] == team[:31] + "…"
        assert LABEL_STATS.cut == before + 2
    else:
        assert (change.value, change.labels["team"]) == (descr, team)
        assert LABEL_STATS.cut == before


def test_templates_run_in_a_sandbox() -> None:
    rules = IF_DOWN.replace('for = "30s"', "").replace(
        'summary = "{{ device }} {{ ifDescr }} is {{ ifOperStatus }}"',
        'summary = "{{ ifDescr.__class__.__mro__ }}"',
    )
    engine = make(rules)
    summary = engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)[0].annotations["summary"]
    assert summary == (
        "(template failed: SecurityError: access to attribute '__class__' of 'str' object"
        " is unsafe.)"
    )


# --- DeviceUnreachable ---------------------------------------------------------------


def test_device_unreachable_inhibits_and_resolves() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    assert len(engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)) == 1
    # one lost poll pages nobody: [agent] unreachable_after = 2 by default
    assert engine.device_unreachable("sw1", 5, "timeout after 2 retries", failures=1) == []
    assert {a.rule for a in engine.table.active()} == {"InterfaceDown"}
    fired = engine.device_unreachable("sw1", 10, "timeout after 2 retries", failures=2)
    assert kinds(fired) == ["firing:sw1:DeviceUnreachable"]
    assert fired[0].alert.source == "builtin" and fired[0].alert.severity == "critical"
    assert fired[0].annotations["summary"] == (
        "sw1 did not answer 2 SNMP polls in a row (timeout after 2 retries)"
    )
    assert engine.device_unreachable("sw1", 20, "timeout", failures=3) == []  # told once
    by_rule = {a.rule: a for a in engine.table.active()}
    assert by_rule["InterfaceDown"].silenced is True
    assert by_rule["DeviceUnreachable"].silenced is False
    back = engine.on_poll(poll("sw1", 30, {"1": iface(2)}), 30)
    assert kinds(back) == ["resolved:sw1:DeviceUnreachable"]
    assert engine.table.active()[0].silenced is False
    assert engine.device_reachable("sw1", 40) == []


def test_device_unreachable_can_be_disabled() -> None:
    engine = make(IF_DOWN, extra="[agent]\ndevice_unreachable = false\n")
    assert engine.device_unreachable("sw1", 0, "timeout", failures=5) == []


def test_device_unreachable_threshold_and_severity_from_the_config() -> None:
    extra = '[agent]\nunreachable_after = 3\nunreachable_severity = "warning"\n'
    engine = make(IF_DOWN, extra=extra)
    assert engine.device_unreachable("sw1", 0, "timeout", failures=2) == []
    (fired,) = engine.device_unreachable("sw1", 10, "timeout", failures=3)
    assert fired.alert.severity == "warning" and fired.labels["severity"] == "warning"


# --- traps ---------------------------------------------------------------------------

LINK = "1.3.6.1.6.3.1.1.5"


def trap(kind: str, if_index: int, t: float, *, admin: int = 1, device: str = "sw1") -> TrapEvent:
    oid = {"linkDown": f"{LINK}.3", "linkUp": f"{LINK}.4", "coldStart": f"{LINK}.1"}[kind]
    base = "1.3.6.1.2.1.2.2.1"
    oper = 2 if kind == "linkDown" else 1
    varbinds = (
        VarBind(
            f"{base}.1.{if_index}", SnmpType.INTEGER, if_index, "IF-MIB::ifIndex", str(if_index)
        ),
        VarBind(
            f"{base}.7.{if_index}", SnmpType.INTEGER, admin, "IF-MIB::ifAdminStatus", str(if_index)
        ),
        VarBind(
            f"{base}.8.{if_index}", SnmpType.INTEGER, oper, "IF-MIB::ifOperStatus", str(if_index)
        ),
    )
    return TrapEvent(
        source="192.0.2.1",
        source_port=40000,
        version="2c",
        trap_oid=oid,
        trap_name=f"{'SNMPv2-MIB' if kind == 'coldStart' else 'IF-MIB'}::{kind}",
        varbinds=varbinds if kind != "coldStart" else (),
        uptime=1234,
        received=t,
        device=device,
        community="public",
    )


def test_link_down_then_up_for_the_same_index() -> None:
    engine = make(LINK_DOWN)
    fired = engine.on_trap(trap("linkDown", 3, 0), 0)
    assert kinds(fired) == ["firing:sw1:LinkDown"]
    alert = fired[0].alert
    assert dict(alert.labels) == {
        "rule": "LinkDown",
        "severity": "warning",
        "device": "sw1",
        "ifIndex": "3",
        "site": "milano",
    }
    assert alert.annotations["summary"] == "sw1 link 3 down (linkDown from 192.0.2.1)"
    assert (alert.source, alert.count, alert.value, len(alert.varbinds)) == (
        "trap",
        1,
        "linkDown",
        3,
    )
    assert engine.on_trap(trap("linkDown", 3, 5), 5) == []  # folded
    assert engine.table.get(alert.fingerprint).alert.count == 2  # type: ignore[union-attr]
    assert engine.on_trap(trap("linkUp", 4, 6), 6) == []  # another interface
    assert engine.on_trap(trap("linkDown", 4, 6, admin=2), 6) == []  # where: admin down
    resolved = engine.on_trap(trap("linkUp", 3, 9), 9)
    assert kinds(resolved) == ["resolved:sw1:LinkDown"]
    assert resolved[0].fingerprint == alert.fingerprint and resolved[0].value == "linkUp"
    assert engine.on_trap(trap("linkUp", 3, 10), 10) == []


def test_trap_for_hides_a_bounce_and_resolve_after_expires() -> None:
    engine = make(
        LINK_DOWN.replace("where = \"ifAdminStatus == 'up'\"", 'for = "30s"\nresolve_after = "5m"')
    )
    assert engine.on_trap(trap("linkDown", 3, 0), 0) == []
    assert engine.on_trap(trap("linkUp", 3, 3), 3) == []
    assert engine.tick(40) == []
    assert engine.on_trap(trap("linkDown", 5, 100), 100) == []
    assert kinds(engine.tick(130)) == ["firing:sw1:LinkDown"]
    assert engine.tick(399) == []
    expired = engine.tick(400)
    assert kinds(expired) == ["resolved:sw1:LinkDown"] and expired[0].value == "expired"


def test_default_key_without_index_folds_per_device_and_glob_keys_on_trap() -> None:
    engine = make('[[rules]]\nname = "Any"\ntrap = "SNMPv2-MIB::*"\n' + LINK_DOWN)
    first = engine.on_trap(trap("coldStart", 0, 0), 0)
    assert kinds(first) == ["firing:sw1:Any"] and first[0].labels["trap"] == "coldStart"
    assert engine.on_trap(trap("coldStart", 0, 1), 1) == []
    assert engine.on_trap(trap("coldStart", 0, 2, device="sw2"), 2) != []


def test_confirm_polls_and_resolves_when_fine() -> None:
    engine = make(LINK_DOWN.replace("where", "confirm = \"ifOperStatus != 'up'\"\nwhere"))
    engine.on_trap(trap("linkDown", 3, 0), 0)
    (request,) = engine.confirm_requests(0)
    assert (request.device, request.index) == ("sw1", "3")
    assert request.names == ("IF-MIB::ifOperStatus.3",)
    assert request.oids == ("1.3.6.1.2.1.2.2.1.8.3",)
    assert engine.confirm_requests(1) == []  # next one after confirm_every (60 s)
    still_down = poll("sw1", 2, {"3": {"ifOperStatus": 2}})
    assert engine.on_confirm(request, still_down, 2) == []
    assert len(engine.confirm_requests(61)) == 1
    fine = engine.on_confirm(request, poll("sw1", 62, {"3": {"ifOperStatus": 1}}), 62)
    assert kinds(fine) == ["resolved:sw1:LinkDown"]
    assert fine[0].value == "confirmed clear: up"
    assert engine.confirm_requests(200) == []


def test_confirm_from_a_regular_poll() -> None:
    engine = make(IF_DOWN + LINK_DOWN.replace("where", "confirm = \"ifOperStatus != 'up'\"\nwhere"))
    engine.on_trap(trap("linkDown", 3, 0), 0)
    resolved = engine.on_poll(poll("sw1", 10, {"3": iface(1)}), 10)
    assert kinds(resolved) == ["resolved:sw1:LinkDown"]


# --- flapping, reload, persistence ----------------------------------------------------


def test_flapping_poll_alert_is_held_then_summarised() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    told: list[tuple[int, TransitionKind]] = []
    for i in range(60):
        status = (2 if i % 2 == 0 else 1) if i < 20 else 2
        for change in engine.on_poll(poll("sw1", i * 10, {"1": iface(status)}), i * 10):
            told.append((i, change.kind))
            last = change
    flapping_at = [i for i, k in told if k is TransitionKind.FLAPPING]
    assert len(flapping_at) == 1
    after = [k for i, k in told if i > flapping_at[0]]
    assert after == [TransitionKind.FIRING]  # held, then one summary when it settled
    assert "flapped:" in last.annotations["flap_summary"]
    assert last.alert.flapping is False


def test_reload_resolves_alerts_of_removed_rules() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)
    engine.reload(load_config_text(DEVICES), TREE)
    changes = engine.tick(5)
    assert kinds(changes) == ["resolved:sw1:InterfaceDown"]
    assert engine.table.alerts() == []


def test_restart_keeps_state_and_does_not_resend(tmp_path: Path) -> None:
    rules = IF_DOWN + LINK_DOWN
    first = make(rules, tmp_path)
    first.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)  # pending
    assert first.on_trap(trap("linkDown", 3, 1), 1) != []
    first.stage.store._db.close()  # type: ignore[attr-defined]  # the process ends

    second = make(rules, tmp_path)
    assert {a.rule: a.state for a in second.table.active()} == {
        "InterfaceDown": AlertState.PENDING,
        "LinkDown": AlertState.FIRING,
    }
    # the pending alert keeps counting `for` from t=0
    assert kinds(second.on_poll(poll("sw1", 30, {"1": iface(2)}), 30)) == [
        "firing:sw1:InterfaceDown"
    ]
    second.stage.store._db.close()  # type: ignore[attr-defined]

    third = make(rules, tmp_path)
    assert third.on_poll(poll("sw1", 40, {"1": iface(2)}), 40) == []  # no second FIRING
    assert third.on_trap(trap("linkDown", 3, 41), 41) == []  # folded into the restored alert
    assert kinds(third.on_trap(trap("linkUp", 3, 42), 42)) == ["resolved:sw1:LinkDown"]
    restored = next(a for a in third.table.alerts() if a.rule == "LinkDown")
    assert restored.count == 2 and restored.varbinds[0].name == "IF-MIB::ifIndex"


def test_unknown_devices_and_config_errors() -> None:
    with pytest.raises(Exception, match="unknown name"):
        make('[[rules]]\nname = "X"\nexpr = "nope > 1"\n')


def test_incomplete_poll_does_not_resolve_missing_rows() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    assert len(engine.on_poll(poll("sw1", 0, {"7": iface(2)}), 0)) == 1
    partial = poll("sw1", 10, {}, status="partial")
    assert engine.on_poll(partial, 10) == []
    assert engine.table.active()[0].state is AlertState.FIRING


def _sample(name: str, index: str, kind: SnmpType, value: Any, label: str = "") -> Sample:
    return Sample("sw1", f"x.{index}", f"IF-MIB::{name}", index, kind, value, label, 0.0)


def test_poller_results_and_their_rates() -> None:
    """The poller's own rates (wraps, restarts, discontinuities) are what rate() returns."""
    engine = make(UTIL)
    columns = {
        "ifHCInOctets": _sample("ifHCInOctets", "5", SnmpType.COUNTER64, 10**9),
        "ifHighSpeed": _sample("ifHighSpeed", "5", SnmpType.GAUGE32, 100),
        "ifDescr": _sample("ifDescr", "5", SnmpType.OCTET_STRING, b"uplink"),
    }

    def result(t: float, rates: dict[str, float]) -> poller.PollResult:
        row = poller.Row("5", columns, {}, {"ifIndex": 5}, rates, {k: 1 for k in rates})
        return poller.PollResult("sw1", "192.0.2.1:161", "ok", t, 0.01, t, rows=(row,))

    # 12.1e6 bytes/s on a 100 Mb/s link: 96.8 %
    fired = engine.on_poll(result(0, {"ifHCInOctets": 12.1e6}), 0)
    assert kinds(fired) == ["firing:sw1:HighUtilisation"]
    assert fired[0].value == "96.8" and fired[0].labels["ifIndex"] == "5"
    # the poller gave no rate (a discontinuity): unknown, the alert stays
    assert engine.on_poll(result(10, {}), 10) == []
    resolved = engine.on_poll(result(20, {"ifHCInOctets": 1e6}), 20)
    assert kinds(resolved) == ["resolved:sw1:HighUtilisation"]


# --- what resolved alerts say, and the value they show ---------------------------------------


def test_resolved_summary_is_said_of_the_past_by_default() -> None:
    engine = make(
        IF_DOWN.replace('for = "30s"', 'description = "{{ ifDescr }} is {{ ifOperStatus }}"')
    )
    fired = engine.on_poll(poll("sw1", 0, {"2": iface(2)}), 0)
    assert fired[0].annotations["summary"] == "sw1 eth0 is down"
    resolved = engine.on_poll(poll("sw1", 725, {"2": iface(1)}), 725)
    notes = resolved[0].annotations
    # not "sw1 eth0 is up": the summary template is not rendered again with the cure
    assert notes["summary"] == "resolved after 12m 5s; was: sw1 eth0 is down"
    assert notes["firing_summary"] == "sw1 eth0 is down"
    assert notes["description"] == "eth0 is down"  # as it read while firing
    assert resolved[0].value == "up"
    # it fires again: its own summary again, the old resolution forgotten
    again = engine.on_poll(poll("sw1", 800, {"2": iface(2)}), 800)
    assert dict(again[0].annotations) == {
        "summary": "sw1 eth0 is down",
        "description": "eth0 is down",
    }


def test_resolved_summary_of_the_rule_sees_the_clearing_values() -> None:
    rule = IF_DOWN.replace(
        'for = "30s"',
        'resolved_summary = "{{ device }} {{ ifDescr }} is {{ ifOperStatus }} after {{ fired_for'
        ' | duration }} (was: {{ firing_summary }})"',
    )
    engine = make(rule)
    engine.on_poll(poll("sw1", 0, {"2": iface(2)}), 0)
    resolved = engine.on_poll(poll("sw1", 90, {"2": iface(1)}), 90)
    assert (
        resolved[0].annotations["summary"] == "sw1 eth0 is up after 1m 30s (was: sw1 eth0 is down)"
    )


def test_device_unreachable_resolves_in_its_own_words() -> None:
    engine = make(IF_DOWN)
    engine.device_unreachable("sw1", 10, "timeout", failures=2)
    back = engine.device_reachable("sw1", 70)
    assert back[0].annotations["summary"] == "sw1 answers SNMP again (no answer for 1m)"
    assert back[0].value == "answering"


def test_removed_rule_resolves_without_restating_the_problem() -> None:
    engine = make(IF_DOWN.replace('for = "30s"', ""))
    engine.on_poll(poll("sw1", 0, {"1": iface(2)}), 0)
    engine.reload(load_config_text(DEVICES), TREE)
    (gone,) = engine.tick(5)
    assert gone.annotations["summary"] == "resolved after 5s; was: sw1 eth0 is down"
    assert gone.value == "rule or device removed"


def test_value_expression_is_what_the_alert_shows() -> None:
    engine = make(
        '[[rules]]\nname = "Busy"\nexpr = "ifHighSpeed > 0 and rate(ifHCInOctets) * 8 /'
        ' (ifHighSpeed * 1e6) * 100 > 90"\nvalue = "rate(ifHCInOctets) * 8"\n'
        'summary = "{{ ifDescr }} receives {{ value | bits }}"\n'
    )
    row = {"ifHighSpeed": 1000, "ifDescr": b"uplink"}
    assert engine.on_poll(poll("sw1", 0, {"1": {**row, "ifHCInOctets": 0}}), 0) == []
    fired = engine.on_poll(poll("sw1", 10, {"1": {**row, "ifHCInOctets": 1_187_500_000}}), 10)
    assert fired[0].value == "950000000"
    assert fired[0].annotations["summary"] == "uplink receives 950 Mbit/s"


def test_trap_rule_value_is_computed_from_the_trap() -> None:
    engine = make(LINK_DOWN + 'value = "ifIndex * 10"\n')
    fired = engine.on_trap(trap("linkDown", 3, 0), 0)
    assert fired[0].value == "30"
    cleared = engine.on_trap(trap("linkUp", 3, 5), 5)
    assert cleared[0].value == "linkUp"
    assert cleared[0].annotations["summary"].startswith("resolved after 5s; was: sw1 link 3 down")


def test_the_builtin_alerts_templates_compile_when_first_rendered() -> None:
    # netalert's own templates are not compiled at start (no start renders them): each
    # compiles, and renders its text, at first use.
    from netalert.rules import describe
    from netalert.rules.templates import DEFAULT_RESOLVED, EMPTY, BuiltinTemplate

    own = [DEFAULT_RESOLVED, EMPTY]
    for describer in (describe.UNREACHABLE, describe.SUMMARY):
        own += [t for t in (describer._summary, describer._description, describer._resolved) if t]
    assert all(isinstance(t, BuiltinTemplate) for t in own)
    names = {
        "device": "sw1",
        "failures": 3,
        "value": "timeout",
        "fired_for": 90,
        "firing_summary": "was down",
        "suppressed": 2,
        "cap": "max_alerts",
        "labels": {"rule": "R"},
    }
    texts = [t.render(names) for t in own]
    assert texts[0] == "resolved after 1m 30s; was: was down" and texts[1] == ""
    assert all(texts[2:]) and "sw1 did not answer 3 SNMP polls in a row (timeout)" in texts
