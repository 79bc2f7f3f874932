"""Hypothesis strategies for the values that cross stage and process boundaries."""

from __future__ import annotations

from hypothesis import strategies as st

from netalert.snmp.types import SnmpType, TrapEvent, VarBind

__all__ = ["TRAP_EVENTS", "VALUES", "VARBINDS"]

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # Integer32 to Counter64
    st.floats(allow_nan=False),
    st.binary(max_size=64),
    st.text(max_size=32),
)
VARBINDS = st.builds(
    VarBind,
    oid=st.text(max_size=40),
    type=st.sampled_from(list(SnmpType)),
    value=VALUES,
    name=st.text(max_size=20),
    index=st.text(max_size=10),
    label=st.text(max_size=20),
)
TRAP_EVENTS = st.builds(
    TrapEvent,
    source=st.text(max_size=40),
    source_port=st.integers(0, 65535),
    version=st.sampled_from(["1", "2c", "3"]),
    trap_oid=st.text(max_size=40),
    trap_name=st.text(max_size=40),
    varbinds=st.lists(VARBINDS, max_size=5).map(tuple),
    uptime=st.none() | st.integers(0, 2**32 - 1),
    received=st.floats(min_value=0, max_value=2e9),
    device=st.text(max_size=20),
    community=st.text(max_size=20),
    user=st.text(max_size=20),
    inform=st.booleans(),
    storm_count=st.integers(1, 10**6),
)
