"""Fixtures shared by every test module (see tests/support/)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins: list[str] = [
    "tests.support.gcstart",  # no cyclic GC until collection ends, then start-up frozen
    "pytester",  # tests/test_tiers.py runs small sessions of its own
    "tests.support.shared",  # a folder the xdist workers share: ports, MIB facts, MIB cache
    "tests.support.pyc",  # the test modules' asserts rewritten once per run, not per worker
    "tests.support.keycache",  # pysnmp hashes each SNMPv3 password once per process
    "tests.support.mibcode",  # pysnmp compiles each of its MIB modules once per process
    "tests.support.tiers",  # unit / daemon / e2e: every test gets one, `make check` runs unit
    "tests.support.snmpd",  # net-snmp snmpd on a free loopback port
    "tests.support.smtp",  # aiosmtpd: plain, STARTTLS, implicit TLS, AUTH, faults
    "tests.support.faults",  # mib_cache: a compiled MIB cache for `netalert run` subprocesses
    "tests.support.tarpit",  # an SMTP server that accepts and never answers
    "tests.support.postgres",  # a private PostgreSQL server (initdb, free loopback port)
    "tests.support.nats",  # nats-server -js on a free loopback port
    "tests.support.dovecot",  # a private Dovecot IMAP server ([ack] replies)
    "tests.support.order",  # the longest modules first, for pytest-xdist (make test)
]

# The suite shares its cores with other jobs (4 xdist workers on 2 cores, other helpers' runs):
# how fast hypothesis draws an input or runs an example says nothing about the code, so
# neither is checked (tests/test_hypothesis_profile.py). A test's own @settings overrides the
# keys it names.
settings.register_profile("netalert", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("netalert")

# tests/soak/ (minutes of load each) runs only with `make soak`, which sets NETALERT_SOAK=1.
collect_ignore: list[str] = [] if os.environ.get("NETALERT_SOAK") else ["soak"]
