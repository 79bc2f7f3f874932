"""The poller's result (:class:`netalert.snmp.rows.PollResult`) as the rule engine reads it.

The poller joins rows by index, decodes indexes and computes counter rates
(wraps, restarts, discontinuities); the engine needs the raw values, their
labels and those rates per row. :func:`from_poller` converts one into the
other, so the service wires ``Poller(on_result=...)`` straight to the engine::

    async def on_result(result):
        if result.ok:
            engine.on_poll(from_poller(result), time.time())
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from netalert.rules.inputs import PollResult, Row
from netalert.snmp import rows as poller
from netalert.snmp.types import Sample, Value

__all__ = ["from_poller"]


def _row(index: str, samples: Mapping[str, Sample], source: poller.Row) -> Row:
    values: dict[str, Value] = {}
    labels: dict[str, str] = {}
    for name, sample in samples.items():
        if sample.value is None:
            continue
        values[name] = sample.value
        if sample.label:
            labels[name] = sample.label
    return Row(
        index,
        MappingProxyType(values),
        MappingProxyType(labels),
        rates=source.rates,
        deltas=source.deltas,
        index_values=source.index_values,
    )


def from_poller(result: poller.PollResult) -> PollResult:
    """Converts one answered poll (``result.ok``) for :meth:`RuleEngine.on_poll`.

    A partial result (a walk failed) is marked incomplete, so the rows it lacks
    do not resolve their alerts.
    """
    return PollResult(
        device=result.device,
        time=result.time,
        scalars=_row("", result.scalars.columns, result.scalars),
        rows=tuple(_row(r.index, r.columns, r) for r in result.rows),
        complete=result.status == "ok",
        by_oid=MappingProxyType(
            {oid: s.value for oid, s in result.unnamed.items() if s.value is not None}
        ),
    )
