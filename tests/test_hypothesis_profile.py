"""The property tests run on a machine other jobs share: no timing health check."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def test_a_slow_draw_or_example_is_no_failure() -> None:
    # Under load a draw can take a second (seen: "Input generation is slow", 6 inputs in
    # 1 s, in test_traps_workers_units.py at load 19); how fast hypothesis draws or runs
    # an example says nothing about the code under test.
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    assert settings.default.deadline is None
