"""The collector kept from walking every alert: pauses measured, survivors frozen each interval."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from netalert.heap import HeapKeeper
from netalert.metrics import HistogramSample, MetricSample


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leaves the test process's heap as it found it (unfrozen)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_every_pause_is_measured(unfrozen: None) -> None:
    keeper = HeapKeeper(interval=0)
    keeper.install()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        keeper.uninstall()
    gc.collect()  # not measured any more
    (pauses, frozen) = keeper.source()()
    assert isinstance(pauses, HistogramSample) and pauses.name == "netalert_gc_pause_seconds"
    assert pauses.buckets[-1] == (float("inf"), 2) and pauses.sum > 0
    assert isinstance(frozen, MetricSample) and frozen.value == 0


def test_tick_freezes_what_survived_once_per_interval(unfrozen: None) -> None:
    keeper = HeapKeeper(interval=1.0)
    keeper._last = 100.0
    assert not keeper.tick(100.5)
    kept = [{"alert": n} for n in range(1000)]  # tracked survivors, as alerts are
    assert keeper.tick(101.0)
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept) and keeper.freezes == 1
    assert not keeper.tick(101.9)
    assert keeper.tick(102.0) and gc.get_freeze_count() >= frozen
    del kept


def test_interval_zero_leaves_the_collector_alone(unfrozen: None) -> None:
    keeper = HeapKeeper(interval=0)
    assert not keeper.tick(10**9)
    assert gc.get_freeze_count() == 0 and keeper.freezes == 0
