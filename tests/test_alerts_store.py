"""The alert store: counts kept as records change (firing per severity, the caps); row JSON."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.alerts.store import SqliteAlertStore
from netalert.alerts.table import AlertRecord, AlertTable
from netalert.present import varbind_from_json as _varbind
from netalert.present import varbind_json as _varbind_json
from netalert.snmp.types import SnmpType, VarBind
from netalert.state import open_database

T0 = 1_790_000_000.0


def record(n: int, state: AlertState = AlertState.FIRING, severity: str = "warning") -> AlertRecord:
    labels = {"rule": "R", "severity": severity, "device": f"d{n}"}
    alert = Alert(
        fingerprint=f"{n:016x}",
        rule="R",
        severity=severity,
        device=f"d{n}",
        labels=MappingProxyType(labels),
        annotations=MappingProxyType({}),
        state=state,
        starts_at=T0,
        ends_at=T0 + 1 if state is AlertState.RESOLVED else None,
        updated_at=T0,
        value="v",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
    )
    return AlertRecord(alert=alert, key=f"k{n}", phase=Phase(state, T0, T0))


def moved(rec: AlertRecord, state: AlertState) -> AlertRecord:
    rec.alert = dataclasses.replace(rec.alert, state=state)
    rec.phase = Phase(state, T0, T0)
    return rec


def recount(store: AlertTable) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in store.active():
        if alert.state is AlertState.FIRING:
            counts[alert.severity] = counts.get(alert.severity, 0) + 1
    return counts


_STATES = st.sampled_from(list(AlertState))
_STEPS = st.lists(
    st.tuples(st.integers(0, 9), st.sampled_from(["put", "remove"]), _STATES, st.booleans()),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS)
def test_firing_counts_follow_every_change(steps: list[tuple[int, str, AlertState, bool]]) -> None:
    store = AlertTable()
    records: dict[int, AlertRecord] = {}
    for n, op, state, critical in steps:
        if op == "remove":
            store.remove(f"{n:016x}")
            records.pop(n, None)
        elif n in records:
            store.put(moved(records[n], state))  # changed in place, as the engine does
        else:
            records[n] = record(n, state, "critical" if critical else "warning")
            store.put(records[n])
        assert store.firing_counts() == recount(store)
        assert store.active_total() == len(store.active())  # the caps' count, kept too


def test_counts_of_the_records_loaded_at_start(tmp_path: Path) -> None:
    records = [
        record(n, state, "critical" if n else "warning")
        for n, state in enumerate([AlertState.FIRING, AlertState.PENDING, AlertState.FIRING])
    ]
    SqliteAlertStore(open_database(tmp_path)).save(records, [], on_lost=lambda: None)
    again = AlertTable(SqliteAlertStore(open_database(tmp_path)).load())
    assert again.firing_counts() == {"warning": 1, "critical": 1} == recount(again)


def _reference_json(vb: VarBind) -> dict[str, Any]:
    # dataclasses.asdict, bytes as netalert.present writes them in JSON: the oracle
    out = dataclasses.asdict(vb)
    out["type"] = vb.type.value
    if isinstance(vb.value, bytes):
        out["value"] = {"hex": vb.value.hex()}
    return out


_VALUES = st.one_of(st.none(), st.integers(-(2**64), 2**64), st.binary(max_size=40), st.text())


@settings(max_examples=300, deadline=None)
@given(
    oid=st.text(max_size=30),
    kind=st.sampled_from(list(SnmpType)),
    value=_VALUES,
    name=st.text(max_size=20),
    index=st.text(max_size=10),
    label=st.text(max_size=10),
)
def test_varbind_json_is_the_same_as_before(
    oid: str, kind: SnmpType, value: Any, name: str, index: str, label: str
) -> None:
    vb = VarBind(oid, kind, value, name, index, label)
    assert json.dumps(_varbind_json(vb)) == json.dumps(_reference_json(vb))
    assert _varbind(json.loads(json.dumps(_varbind_json(vb)))) == vb  # read back exactly


def test_varbinds_stored_before_hex_read_back() -> None:
    old = {"oid": "1.3.6.1.2.1.2.2.1.6.3", "type": "OCTET STRING", "value": {"b64": "ABor"}}
    assert _varbind(old).value == b"\x00\x1a\x2b"


def test_adopted_records_are_not_saved_again_and_forgotten_ones_not_deleted() -> None:
    # a cluster node taking a shard over, then losing it: the store is written by its owner
    table = AlertTable()
    rec = record(1)
    assert table.adopt(rec) and not table.dirty
    assert not table.adopt(record(1))  # one already here is kept as it is
    assert table.active() == [rec.alert] and table.firing_counts() == {"warning": 1}
    assert table.forget(rec.alert.fingerprint) is rec
    assert table.active() == [] and not table.dirty and table.changes() == ([], [])
    assert table.firing_counts() == {} and table.forget("nothing") is None
