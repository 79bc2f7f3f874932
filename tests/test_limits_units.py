"""Pure units of the [limits] section: the default resolve_after of trap rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from netalert.config.models import Rule
from netalert.rules.compile import trap_resolve_after

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("fields", "default", "expected"),
    [
        ({}, HOUR, 3600.0),  # nothing else would end it: the default
        ({}, timedelta(0), None),  # the default switched off
        ({"resolve_after": "10m"}, HOUR, 600.0),  # its own value wins
        ({"resolve_after": "0s"}, HOUR, None),  # opted out
        ({"clear_trap": "IF-MIB::linkUp"}, HOUR, None),  # waits for its clearing trap
        ({"clear_trap": "IF-MIB::linkUp", "resolve_after": "2h"}, HOUR, 7200.0),
        ({"confirm": "ifOperStatus != 'up'"}, HOUR, 3600.0),  # a bad confirm poll refreshes it
    ],
)
def test_trap_resolve_after(
    fields: dict[str, str], default: timedelta, expected: float | None
) -> None:
    rule = Rule.model_validate({"name": "R", "trap": "IF-MIB::linkDown", **fields})
    assert trap_resolve_after(rule, default) == expected
