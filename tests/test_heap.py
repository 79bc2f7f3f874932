"""The collector kept from walking every alert: pauses measured, survivors frozen each interval."""

from __future__ import annotations

import gc
import weakref
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


class _Cycle:
    """Garbage only the cyclic collector frees."""

    def __init__(self) -> None:
        self.me = self


def test_the_start_walks_only_what_came_after_start_up_a_reload_everything(
    unfrozen: None,
) -> None:
    # The start's freeze walks what the stages made, not the start-up's frozen heap
    # again (the MIB tree: a full pass is tens of ms of every agent start); a reload
    # unfreezes first, so a replaced tree, and start-up's few cycles, are freed then.
    from netalert.service import freeze_heap

    enabled = gc.isenabled()
    gc.disable()  # as at start-up (gcpause): nothing collects the cycle before the freeze
    try:
        during = _Cycle()
        start_up = weakref.ref(during)
        del during
        gc.freeze()  # gcpause.end_start
        after = _Cycle()
        stages = weakref.ref(after)
        del after
        freeze_heap(start=True)
        assert stages() is None
        assert start_up() is not None
        freeze_heap()
        assert start_up() is None
    finally:
        if enabled:
            gc.enable()
