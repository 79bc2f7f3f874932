"""Fixtures shared by every test module (see tests/support/)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

pytest_plugins: list[str] = [
    "tests.support.snmpd",  # net-snmp snmpd on a free loopback port
    "tests.support.smtp",  # aiosmtpd: plain, STARTTLS, implicit TLS, AUTH, faults
    "tests.support.faults",  # mib_cache: a compiled MIB cache for `netalert run` subprocesses
    "tests.support.tarpit",  # an SMTP server that accepts and never answers
]

# tests/soak/ (minutes of load each) runs only with `make soak`, which sets NETALERT_SOAK=1.
collect_ignore: list[str] = [] if os.environ.get("NETALERT_SOAK") else ["soak"]


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collects garbage after each test, so a leaked socket or file fails the test
    that leaked it (filterwarnings=error) instead of whichever test runs next."""
    yield
    gc.collect()
