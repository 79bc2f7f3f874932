"""Series notation of rule tests: expansions, missing polls, timeouts, text (a pure unit)."""

from __future__ import annotations

import pytest

from netalert.ruletest.series import MISSING, TIMEOUT, expand_series


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up up down", ["up", "up", "down"]),
        ("0+100x4", [0, 100, 200, 300, 400]),
        ("10-2x2", [10, 8, 6]),
        ("1x3", [1, 1, 1, 1]),
        ("downx2", ["down", "down", "down"]),
        ("_ _x2 5", [MISSING, MISSING, MISSING, 5]),
        ("timeout timeoutx1", [TIMEOUT, TIMEOUT, TIMEOUT]),
        ("'eth 0'x1 'x2'", ["eth 0", "eth 0", "x2"]),
        ("1.5 -3", [1.5, -3]),
        ("  up  ", ["up"]),
    ],
)
def test_expansions(text: str, expected: list[object]) -> None:
    assert expand_series(text, limit=1000) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "an empty series"),
        ("'unclosed", "unclosed quote"),
        ("0+1x100000", "more than 1000 values"),
        ("upx-1", "more than"),  # not an expansion: a label; see below
    ],
)
def test_errors(text: str, message: str) -> None:
    if text == "upx-1":
        assert expand_series(text, limit=1000) == ["upx-1"]
        return
    with pytest.raises(ValueError, match=message):
        expand_series(text, limit=1000)
