"""Fixtures shared by every test module (see tests/support/)."""

from __future__ import annotations

pytest_plugins: list[str] = [
    "tests.support.snmpd",  # net-snmp snmpd on a free loopback port
    "tests.support.smtp",  # aiosmtpd: plain, STARTTLS, implicit TLS, AUTH, faults
]
