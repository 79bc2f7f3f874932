"""What the rule engine is fed: one device's poll result, and what it asks the poller for.

The poller delivers a :class:`PollResult` per device and poll: the scalars
(``sysUpTime``, ``.0`` instances) and the table rows joined by index (row
``"3"`` holds ``ifDescr``, ``ifOperStatus`` and ``ifHCInOctets`` of interface 3).
:func:`join_samples` builds one from the poller's :class:`~netalert.snmp.types.Sample`
values. A rule reads the rows that carry at least one of its columns.

A trap rule with ``confirm`` makes the engine emit :class:`ConfirmRequest`
values (see :meth:`netalert.rules.engine.RuleEngine.confirm_requests`): the
poller GETs ``oids`` from ``device`` at once and hands the answer back as a
PollResult to :meth:`~netalert.rules.engine.RuleEngine.on_confirm`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from netalert.rules.mibview import MIB_ERRORS, MibTreeLike, short_name
from netalert.snmp.types import Sample, Value

__all__ = ["ConfirmRequest", "PollResult", "Row", "join_samples"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_EMPTY_VALUES: Mapping[str, Value] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Row:
    """One table row (or the scalars, with ``index`` ``""``) of one device.

    ``values`` maps MIB short names to raw values (absent: noSuchInstance and
    the like); ``labels`` maps the same names to the enum label or DISPLAY-HINT
    rendering the poller found (``Sample.label``), when there is one.

    ``rates``/``deltas``, when given (the poller computes them, with counter
    wraps, agent restarts and discontinuities handled), are what ``rate()`` and
    ``delta()`` return for counters; a counter missing from them is unknown.
    None makes the engine compute them from the previous poll itself.
    ``index_values`` is the decoded index (``{"ifIndex": 3}``) when the poller
    has it; None makes the engine decode ``index`` through the MIB.
    """

    index: str
    values: Mapping[str, Value]
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    rates: Mapping[str, float] | None = None
    deltas: Mapping[str, int] | None = None
    index_values: Mapping[str, int | str | bytes] | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """Everything one poll of one device returned.

    ``time`` is when the poll's answers arrived (unix seconds); rates are
    computed between the ``time`` of consecutive results. ``complete`` is False
    when part of the poll failed (a walk timed out): rows missing from such a
    result are not taken as gone. ``by_oid`` holds the values no MIB object
    names, by numeric OID (``value('1.3.6...')`` reads them).
    """

    device: str
    time: float
    scalars: Row
    rows: tuple[Row, ...] = ()
    complete: bool = True
    by_oid: Mapping[str, Value] = field(default_factory=lambda: _EMPTY_VALUES)


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Please GET these instances from this device now (a trap rule's ``confirm``).

    ``names`` are full instance names (``IF-MIB::ifOperStatus.3``), ``oids`` the
    same as dotted numbers. ``fingerprint`` identifies the alert to confirm;
    hand the answer, as a PollResult whose rows carry ``index``, to
    ``RuleEngine.on_confirm(request, result, now)``.
    """

    rule: str
    fingerprint: str
    device: str
    index: str
    names: tuple[str, ...]
    oids: tuple[str, ...]
    requested: float


def join_samples(
    device: str, samples: Iterable[Sample], time: float, tree: MibTreeLike | None = None
) -> PollResult:
    """Joins one poll's samples into scalars and rows by index.

    A sample is a scalar when the MIB says so (``tree``), or without a tree
    when its index is ``"0"``. Samples without a value (noSuchObject,
    noSuchInstance, endOfMibView) are left out.
    """
    scalar_values: dict[str, Value] = {}
    scalar_labels: dict[str, str] = {}
    rows: dict[str, tuple[dict[str, Value], dict[str, str]]] = {}
    kinds: dict[str, bool] = {}
    for sample in samples:
        if sample.value is None:
            continue
        name = short_name(sample.name) if sample.name else sample.oid
        scalar = kinds.get(name)
        if scalar is None:
            scalar = kinds[name] = _is_scalar(tree, sample, name)
        if scalar:
            values, labels = scalar_values, scalar_labels
        else:
            values, labels = rows.setdefault(sample.index, ({}, {}))
        values[name] = sample.value
        if sample.label:
            labels[name] = sample.label
    return PollResult(
        device=device,
        time=time,
        scalars=Row("", scalar_values, scalar_labels),
        rows=tuple(Row(index, v, lab) for index, (v, lab) in rows.items()),
    )


def _is_scalar(tree: MibTreeLike | None, sample: Sample, name: str) -> bool:
    if tree is not None and sample.name:
        try:
            return tree.node(sample.name).kind == "scalar"
        except MIB_ERRORS:
            return sample.index == "0"  # an unknown name: the index tells
    return sample.index == "0"
