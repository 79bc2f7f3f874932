"""Test tiers: every test is ``unit``, ``daemon`` or ``e2e``, and cannot hide in the wrong one.

* ``unit``: this process only. No child process, so no Debian package is needed;
  ``make check`` runs this tier (``pytest -m unit``).
* ``daemon``: a real server or tool next to the test, or its files: net-snmp (snmpd,
  snmptrap, the MIBs of Debian's libsnmp-base), tcpdump, the aiosmtpd server of
  :mod:`tests.support.smtp`, a one-shot ``netalert`` command in a subprocess.
* ``e2e``: a whole agent (``netalert run``, ``netalert demo``), headless Chromium,
  an installed wheel.

A test gets its tier from an explicit ``@pytest.mark.unit|daemon|e2e`` (or a
module's ``pytestmark``) when it has one, else from the fixtures it uses (those
of :data:`FIXTURE_TIERS`' modules), else it is ``unit``. Two different tier
marks on one test are a collection error. While a test runs, starting a process
its tier does not allow fails it with the mark it needs (:func:`spawn_guard`), so
an unmarked test that starts snmpd cannot slip into the fast tier.

Load with ``pytest_plugins = ["tests.support.tiers"]`` (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import PurePath
from typing import Any

import pytest

__all__ = [
    "FIXTURE_TIERS",
    "TIERS",
    "TierError",
    "TierViolation",
    "classify",
    "needed_tier",
    "spawn_guard",
]

TIERS: tuple[str, ...] = ("unit", "daemon", "e2e")
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}

# A test using any fixture of these modules is at least this tier.
FIXTURE_TIERS: dict[str, str] = {
    "tests.support.snmpd": "daemon",  # snmpd processes
    "tests.support.smtp": "daemon",  # aiosmtpd servers (threads of this process)
    "tests.support.postgres": "daemon",  # PostgreSQL servers
    "tests.support.nats": "daemon",  # nats-server processes
    "tests.support.dovecot": "daemon",  # Dovecot IMAP server processes
    "tests.support.faults": "e2e",  # `netalert run` processes and their MIB cache
}

_DESCRIPTIONS = {
    "unit": "in this process only, no child process (make check)",
    "daemon": "real servers, tools or their files: net-snmp (snmpd, snmptrap, MIBs), tcpdump, "
    "aiosmtpd, Dovecot, one netalert command",
    "e2e": "a whole agent (netalert run, netalert demo), Chromium, an installed wheel",
}

# netalert subcommands that run a whole agent; Chromium is a whole browser.
_E2E_COMMANDS = frozenset({"run", "demo"})
_E2E_PROGRAMS = ("chromium", "chromedriver", "chrome")


class TierError(pytest.UsageError):
    """A test's tier marks contradict each other (raised at collection)."""


class TierViolation(Exception):
    """A test started a process its tier does not allow."""


def classify(explicit: Collection[str], fixture_tiers: Iterable[str], *, name: str = "") -> str:
    """The tier of a test: its one explicit tier mark, else the highest fixture tier, else unit.

    Raises:
        TierError: ``explicit`` names more than one tier.
    """
    marks = sorted(set(explicit), key=_RANK.__getitem__)
    if len(marks) > 1:
        raise TierError(f"{name}: marked {' and '.join(marks)}; a test has exactly one tier")
    if marks:
        return marks[0]
    return max(fixture_tiers, key=_RANK.__getitem__, default="unit")


def needed_tier(args: str | bytes | PurePath | Sequence[Any] | None) -> str:
    """The tier a command line needs: e2e for a whole agent or a browser, else daemon.

    Wrappers are seen through: ``unshare ... sh -c 'python -m netalert run ...'`` is e2e.
    """
    words = _words(args)
    if words and PurePath(words[0]).name.startswith(_E2E_PROGRAMS):
        return "e2e"
    for i, word in enumerate(words):
        if PurePath(word).name == "netalert":
            rest = words[i + 1 :]
        elif word == "-m" and words[i + 1 : i + 2] == ["netalert"]:
            rest = words[i + 2 :]
        else:
            continue
        command = next((w for w in rest if not w.startswith("-")), "")
        if command in _E2E_COMMANDS:
            return "e2e"
    return "daemon"


def _words(args: str | bytes | PurePath | Sequence[Any] | None) -> list[str]:
    """A command line as words, a shell string among them split into its own words."""
    if args is None:
        return []
    if isinstance(args, str | bytes | PurePath):
        args = [args]
    words: list[str] = []
    for arg in args:
        word = os.fsdecode(arg) if isinstance(arg, bytes | PurePath) else str(arg)
        try:
            words += shlex.split(word) if " " in word else [word]
        except ValueError:  # not shell syntax: keep it whole
            words.append(word)
    return words


@contextlib.contextmanager
def spawn_guard(tier: str, on_violation: Callable[[str], None]) -> Iterator[None]:
    """Within the block, a process start that needs more than ``tier`` calls
    ``on_violation(message)`` and raises :class:`TierViolation` instead of starting.

    Covers :mod:`subprocess` (and so asyncio's subprocesses), ``os.fork``,
    ``os.forkpty``, ``os.posix_spawn[p]`` and ``os.system``.
    """

    def check(what: str, needs: str) -> None:
        if _RANK[needs] > _RANK[tier]:
            message = (
                f"a {tier} test started {what}: mark it @pytest.mark.{needs} "
                f"({needs}: {_DESCRIPTIONS[needs]})"
            )
            on_violation(message)
            raise TierViolation(message)

    original_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> Any:
        check(f"a process ({_show(args)})", needed_tier(args))
        return original_child(self, args, *rest, **kw)

    def refuse(name: str) -> Callable[..., Any]:
        original = getattr(os, name)

        def guarded(*args: Any, **kw: Any) -> Any:
            check(f"a process (os.{name})", "daemon")
            return original(*args, **kw)

        return guarded

    names = [
        n for n in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system") if hasattr(os, n)
    ]
    saved = {n: getattr(os, n) for n in names}
    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    for name in names:
        setattr(os, name, refuse(name))
    try:
        yield
    finally:
        subprocess.Popen._execute_child = original_child  # type: ignore[attr-defined]
        for name, original in saved.items():
            setattr(os, name, original)


def _show(args: Any) -> str:
    text = args if isinstance(args, str) else shlex.join(str(a) for a in args)
    return text if len(text) <= 120 else text[:117] + "..."


# --- the pytest plugin -------------------------------------------------------------

_TIER = pytest.StashKey[str]()
_VIOLATIONS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: {_DESCRIPTIONS[tier]}")


def _fixture_tiers(item: pytest.Item) -> list[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    tiers = []
    for name in item.fixturenames:  # type: ignore[attr-defined]
        for definition in info.name2fixturedefs.get(name, ()):
            tier = FIXTURE_TIERS.get(getattr(definition.func, "__module__", ""))
            if tier is not None:
                tiers.append(tier)
    return tiers


@pytest.hookimpl(tryfirst=True)  # before -m selects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        explicit = [m.name for m in item.iter_markers() if m.name in _RANK]
        tier = classify(explicit, _fixture_tiers(item), name=item.nodeid)
        if not explicit:
            item.add_marker(tier)
        item.stash[_TIER] = tier
        item.stash[_VIOLATIONS] = []
    unclassified = [i.nodeid for i in items if _TIER not in i.stash]
    if unclassified:  # a test collected behind this hook's back
        raise TierError(f"tests without a tier: {', '.join(unclassified)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    tier = item.stash.get(_TIER, "unit")
    with spawn_guard(tier, item.stash.setdefault(_VIOLATIONS, []).append):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    violations = item.stash.get(_VIOLATIONS, [])
    if violations:
        # A test that swallowed the TierViolation still fails, in the phase that spawned.
        if report.passed:
            report.outcome = "failed"
            report.longrepr = "\n".join(violations)
        violations.clear()
    return report
