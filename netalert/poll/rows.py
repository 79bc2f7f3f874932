"""One poll's answer as the rule engine reads it: named samples joined into rows.

The one poll contract: the poller owns counters, rates and agent restarts, and
hands the rules this :class:`PollResult` as it is (no other poll type).
:class:`PollResult` and :class:`Row` are re-exported by :mod:`netalert.poll.poller`.
:class:`DeviceTracker` keeps the little state one device needs between polls
(previous counters and uptime) and turns VarBinds into a PollResult; apart from
that state it is pure (``now`` is passed in), so it is tested without sockets
(and the rule tests poll their virtual devices through it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from netalert.mib.node import MibNode
from netalert.poll.counters import (
    Point,
    Verdict,
    agent_restarted,
    make_point,
    max_rate_for,
    rate,
)
from netalert.poll.plan import SNMP_ENGINE_BOOTS, SNMP_ENGINE_TIME, SYS_UPTIME
from netalert.snmp.naming import Namer
from netalert.snmp.types import Sample, SnmpType, Value, VarBind, maker

__all__ = ["DeviceTracker", "PollResult", "PollStatus", "Row"]

PollStatus = Literal["ok", "partial", "timeout", "auth", "error"]

_EMPTY: Mapping[str, Sample] = MappingProxyType({})
_COUNTERS = frozenset({SnmpType.COUNTER32, SnmpType.COUNTER64})
_MISSING = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW})
_CLOCKS = frozenset({SYS_UPTIME, SNMP_ENGINE_BOOTS, SNMP_ENGINE_TIME})


@dataclass(frozen=True, slots=True)
class Row:
    """One table row (one index) of one poll, or the scalar row (``index == ""``).

    ``columns`` maps short names (``ifOperStatus``) to this row's samples;
    ``scalars`` is the poll's scalar samples (``sysName``), the same mapping in
    every row, so a rule sees both. ``rates``/``deltas`` hold per-second rates
    and increases of this row's counters; a counter is absent when no rate is
    known (first poll, agent restart, discontinuity, implausible).
    ``index_values`` is the decoded INDEX (``{"ifIndex": 2}``). ``values`` and
    ``labels`` are the columns' raw values and their labels (enum label,
    DISPLAY-HINT rendering) by short name, the samples without a value left out.
    """

    index: str
    columns: Mapping[str, Sample]
    scalars: Mapping[str, Sample] = field(default_factory=lambda: _EMPTY)
    index_values: Mapping[str, int | str | bytes] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    deltas: Mapping[str, int] = field(default_factory=dict)
    table: str = ""  # the row object's name, "IF-MIB::ifEntry"; "" for the scalar row
    values: Mapping[str, Value] = field(init=False, repr=False, compare=False)
    labels: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values: dict[str, Value] = {}
        labels: dict[str, str] = {}
        for name, sample in self.columns.items():
            if sample.value is None:
                continue
            values[name] = sample.value
            if sample.label:
                labels[name] = sample.label
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "labels", labels)

    def get(self, name: str) -> Sample | None:
        """The sample named ``name`` (short name): this row's column, else a scalar."""
        found = self.columns.get(name)
        return found if found is not None else self.scalars.get(name)

    def names(self) -> list[str]:
        """Every short name visible in this row (columns first, then scalars)."""
        return [*self.columns, *(n for n in self.scalars if n not in self.columns)]


_make_row = maker(Row)


def make_row(
    index: str,
    columns: Mapping[str, Sample],
    scalars: Mapping[str, Sample],
    index_values: Mapping[str, int | str | bytes],
    rates: Mapping[str, float],
    deltas: Mapping[str, int],
    table: str,
) -> Row:
    """``Row(...)`` with every field given, made through its slots (the poll path makes
    one per table row per poll); ``values`` and ``labels`` as ``__post_init__`` makes them."""
    values: dict[str, Value] = {}
    labels: dict[str, str] = {}
    for name, sample in columns.items():
        value = sample.value
        if value is None:
            continue
        values[name] = value
        if sample.label:
            labels[name] = sample.label
    return _make_row(index, columns, scalars, index_values, rates, deltas, table, values, labels)


@dataclass(frozen=True, slots=True)
class PollResult:
    """Everything one poll of one device produced (also when it failed).

    ``status``: ok, partial (a walk failed; the rest is there), timeout (no
    answer within timeout x retries: the device is unreachable), auth (a v3
    report refused us), error (anything else). ``time`` is when the agent's
    first answer arrived, or, for an agent that restarted during the poll, when
    sysUpTime was read again after the walks (the samples' timestamp; rates are
    taken between the ``time`` of consecutive results). ``missing`` lists instances the agent does
    not have, as (``"SNMPv2-MIB::sysFoo.0"`` or the numeric OID, ``"noSuchObject"``).
    ``restarted`` is True when the agent restarted since the previous poll.
    ``unnamed`` holds the samples no MIB object names (a vendor OID without its
    MIB), by their numeric OID: rules read them with ``value('1.3.6...')``.
    """

    device: str
    address: str
    status: PollStatus
    started: float
    duration: float
    time: float = 0.0
    samples: tuple[Sample, ...] = ()
    scalars: Row = field(default_factory=lambda: Row("", _EMPTY))
    rows: tuple[Row, ...] = ()
    missing: tuple[tuple[str, str], ...] = ()
    error: str = ""
    restarted: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    unnamed: Mapping[str, Sample] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the device answered (ok or partial)."""
        return self.status in ("ok", "partial")

    @property
    def complete(self) -> bool:
        """True when every part of the poll answered: a row missing from it is gone."""
        return self.status == "ok"


class DeviceTracker:
    """Per-device memory between polls and the VarBinds → PollResult assembly."""

    __slots__ = ("counters", "device", "namer", "uptime")

    def __init__(self, device: str, namer: Namer) -> None:
        self.device = device
        self.namer = namer
        self.counters: dict[str, Point] = {}
        self.uptime: tuple[float, int | None, int | None] | None = None

    def assemble(
        self,
        varbinds: Sequence[VarBind],
        *,
        address: str,
        started: float,
        answered: float,
        finished: float,
        status: PollStatus = "ok",
        error: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> tuple[PollResult, dict[Verdict, int]]:
        """Builds the PollResult of one successful poll and counts rate verdicts.

        ``answered`` is when the agent's first answer arrived: the time counters
        and sysUpTime are taken at.
        """
        namer, device = self.namer, self.device
        samples: list[Sample] = []
        missing: list[tuple[str, str]] = []
        scalars: dict[str, Sample] = {}
        rows: dict[tuple[object, str], tuple[MibNode, dict[str, Sample]]] = {}
        unnamed: dict[str, Sample] = {}
        clocks: dict[str, Sample] = {}  # sysUpTime, snmpEngineBoots/Time: the restart test
        sample_of = namer.sample
        for vb in varbinds:
            sample, node = sample_of(device, vb, answered)
            if vb.type in _MISSING:
                shown = f"{sample.name}.{sample.index}" if sample.name else vb.oid
                missing.append((shown, vb.type.value))
                continue
            samples.append(sample)
            if vb.oid in _CLOCKS:
                clocks[vb.oid] = sample
            if node is None:
                unnamed[vb.oid.lstrip(".")] = sample
                continue
            kind = node.kind
            if kind == "column":
                # Tables sharing an INDEX (ifEntry and its AUGMENTS ifXEntry) join.
                key = (node.index or node.oid[:-1], sample.index)
                found = rows.get(key)
                if found is None:
                    rows[key] = found = (node, {})
                found[1][node.name] = sample
            elif kind == "scalar":
                scalars[node.name] = sample
            else:
                unnamed[vb.oid.lstrip(".")] = sample

        uptime = _int(clocks.get(SYS_UPTIME))
        boots = _int(clocks.get(SNMP_ENGINE_BOOTS))
        if uptime is None:
            engine_time = _int(clocks.get(SNMP_ENGINE_TIME))
            uptime = engine_time * 100 if engine_time is not None else None
        restarted = False
        if self.uptime is not None:
            prev_time, prev_up, prev_boots = self.uptime
            restarted = agent_restarted(prev_up, uptime, answered - prev_time, prev_boots, boots)
        self.uptime = (answered, uptime, boots)

        verdicts: dict[Verdict, int] = {}
        counters: dict[str, Point] = {}
        frozen_scalars = MappingProxyType(scalars)

        def rates_of(
            columns: Mapping[str, Sample], speed_row: Mapping[str, Sample]
        ) -> tuple[dict[str, float], dict[str, int]]:
            disc = _int(speed_row.get("ifCounterDiscontinuityTime"))
            speed = _int(speed_row.get("ifSpeed"))
            high = _int(speed_row.get("ifHighSpeed"))
            out_rates: dict[str, float] = {}
            out_deltas: dict[str, int] = {}
            for name, sample in columns.items():
                if sample.type not in _COUNTERS or not isinstance(sample.value, int):
                    continue
                cur = make_point(sample.value, answered, uptime, boots, disc)
                counters[sample.oid] = cur
                result = rate(
                    self.counters.get(sample.oid),
                    cur,
                    sample.type,
                    max_rate=max_rate_for(name, speed, high),
                )
                verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
                if result.rate is not None and result.delta is not None:
                    out_rates[name] = result.rate
                    out_deltas[name] = result.delta
            return out_rates, out_deltas

        s_rates, s_deltas = rates_of(scalars, {})
        scalar_row = make_row("", frozen_scalars, frozen_scalars, {}, s_rates, s_deltas, "")
        built: list[Row] = []
        for (_, index), (node, columns) in rows.items():
            r_rates, r_deltas = rates_of(columns, columns)
            built.append(
                make_row(
                    index,
                    MappingProxyType(columns),
                    frozen_scalars,
                    namer.index_values(node, index),
                    r_rates,
                    r_deltas,
                    namer.entry_name(node),
                )
            )
        self.counters = counters
        result = PollResult(
            device=device,
            address=address,
            status=status,
            started=started,
            duration=finished - started,
            time=answered,
            samples=tuple(samples),
            scalars=scalar_row,
            rows=tuple(built),
            missing=tuple(missing),
            error=error,
            restarted=restarted,
            labels=labels or {},
            unnamed=unnamed,
        )
        return result, verdicts


def _int(sample: Sample | None) -> int | None:
    if sample is None or not isinstance(sample.value, int):
        return None
    return sample.value
