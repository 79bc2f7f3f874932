"""The rule test file: pydantic models, loading, and ``path: message`` errors.

A file holds one or more ``[[tests]]``; each names its config (default: the
file's own ``config``, else ``config.toml`` in the test file's folder), its
evaluation ``interval``, poll series per device and instance, traps,
silences and maintenance windows at given times, and ``[[tests.expect]]``
blocks: the alerts (and optionally the notifications) expected at a time.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netalert.config.loader import validation_problems
from netalert.config.models import Maintenance
from netalert.config.types import Duration
from netalert.errors import ConfigError
from netalert.matchers import parse_matcher

__all__ = [
    "DEFAULT_START",
    "Expectation",
    "ExpectedAlert",
    "ExpectedNotification",
    "RuleTest",
    "TestFile",
    "TestSilence",
    "TestTrap",
    "load_test_file",
]

# Virtual time 0 of every test unless it sets ``start``: a Monday, 00:00 UTC.
DEFAULT_START = datetime(2030, 1, 7, tzinfo=UTC)
TrapValue = int | float | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


def _matchers(values: list[str]) -> list[str]:
    for value in values:
        parse_matcher(value)
    return values


class TestTrap(_Model):
    """A trap that arrives at ``at``, as the receiver would get it from ``source``."""

    __test__ = False  # not a pytest class

    at: Duration
    trap: Annotated[str, Field(min_length=1)]
    source: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 50162
    version: Literal["1", "2c", "3"] = "2c"
    community: str = "public"
    user: str = ""
    uptime: Annotated[int, Field(ge=0, le=4294967295)] = 4200
    varbinds: dict[str, TrapValue] = {}


class TestSilence(_Model):
    """A silence set at ``at`` for ``for``, as ``netalert silence add`` would set it."""

    __test__ = False

    at: Duration = timedelta(0)
    for_: Duration = Field(alias="for")
    match: Annotated[list[str], Field(min_length=1)]
    comment: str = "rule test"

    _check = field_validator("match")(_matchers)


class ExpectedAlert(_Model):
    """An active alert: its rule, state and the labels to check (others are not checked)."""

    rule: Annotated[str, Field(min_length=1)]
    state: Literal["pending", "firing"] = "firing"
    labels: dict[str, str] = {}


class ExpectedNotification(_Model):
    """A notification (one e-mail); the keys left out are not checked.

    ``subject`` is the whole subject line, where ``*`` stands for any text;
    ``body`` is text the plain-text body must contain.
    """

    route: str | None = None
    to: list[str] | None = None
    reason: Literal["new", "changed", "repeat", "resolved", "flapping"] | None = None
    subject: str | None = None
    body: str | None = None


class Expectation(_Model):
    """What must be true at ``at``, after everything due by then happened.

    ``alerts``: exactly these alerts are pending or firing. ``notifications``:
    exactly these were sent since the previous expectation (or the start).
    Either may be left out; ``alerts = []`` means none.
    """

    at: Duration
    alerts: list[ExpectedAlert] | None = None
    notifications: list[ExpectedNotification] | None = None


class RuleTest(_Model):
    """One test: inputs over virtual time and the expectations."""

    __test__ = False

    name: Annotated[str, Field(min_length=1, max_length=200)]
    config: str | None = None
    interval: Duration | None = None
    start: datetime = DEFAULT_START
    polls: dict[str, dict[str, str]] = {}
    traps: list[TestTrap] = []
    silences: list[TestSilence] = []
    maintenance: list[Maintenance] = []
    expect: Annotated[list[Expectation], Field(min_length=1)]

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2030-01-07T22:00:00Z")
        return value


class TestFile(_Model):
    """A rule test file (TOML).

    ``max_duration`` bounds the virtual time one test may span (its last
    expectation) and ``max_values`` the values one series may expand to.
    """

    __test__ = False

    config: str = "config.toml"
    interval: Duration = timedelta(minutes=1)
    max_duration: Duration = timedelta(days=7)
    max_values: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    tests: Annotated[list[RuleTest], Field(min_length=1)]

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("must be at least 1s (the agent evaluates time once a second)")
        return value


def load_test_file(path: Path) -> TestFile:
    """Reads and validates a rule test file.

    Raises:
        ConfigError: One ``FILE: path.to.field: message`` line per problem.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read it: {reason}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    try:
        spec = TestFile.model_validate(raw)
    except ValidationError as exc:
        lines = validation_problems(exc, raw, TestFile)
        raise ConfigError([f"{path}: {line}" for line in lines]) from None
    problems = []
    for number, test in enumerate(spec.tests):
        interval = test.interval or spec.interval
        if interval.total_seconds() < 1:
            problems.append(f"{path}: tests[{number}].interval: must be at least 1s")
        for index, expect in enumerate(test.expect):
            if expect.at > spec.max_duration:
                problems.append(
                    f"{path}: tests[{number}].expect[{index}].at: beyond max_duration"
                    f" ({spec.max_duration.total_seconds():g}s)"
                )
    if problems:
        raise ConfigError(problems)
    return spec
