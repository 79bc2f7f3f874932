"""Configs and assertions shared by the fast fault tests and their soak variants."""

from __future__ import annotations

import json
import time
from collections import Counter

from tests.support.faults import AgentProcess, FloodReport, delivered, metric_values
from tests.support.smtp import ReceivedMessage, SmtpServer

__all__ = [
    "MAIL_RULE",
    "MAX_HEALTHZ_LATENCY",
    "assert_exactly_once",
    "check_flood",
    "flood_config",
    "mail_config",
    "wait_mail",
]

MAIL_RULE = "FaultLinkDown"
MAX_HEALTHZ_LATENCY = 0.100  # seconds

_MAIL_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
# storm control out of the way: every trap must become an alert
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

[[rules]]
name = "{rule}"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "fault-test ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
retry_max = "{retry_max}"

[[routes]]
to = ["noc@example.org"]
group_by = ["..."]
group_wait = "0s"
"""

_FLOOD_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
storm_interval = "{storm_interval}"

[[rules]]
name = "FloodLinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "flood ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_wait = "0s"
"""


def mail_config(
    *, traps: int, smtp: int, http: int, retry_max: str = "1s", workers: int | None = None
) -> str:
    """One trap rule keyed by ifIndex, one route grouping each alert alone, no storm limits:
    N linkDown traps with distinct ifIndex make N alerts and N mails. ``workers``: a
    ``[traps] workers`` line (none: the default, one worker per core)."""
    text = _MAIL_CONFIG.format(
        http=http, traps=traps, smtp=smtp, rule=MAIL_RULE, retry_max=retry_max
    )
    return text.replace("[traps]\n", f"[traps]\nworkers = {workers}\n", 1) if workers else text


def flood_config(*, traps: int, smtp: int, http: int, storm_interval: str = "2s") -> str:
    """Default storm limits; storm events emitted every ``storm_interval``."""
    return _FLOOD_CONFIG.format(http=http, traps=traps, smtp=smtp, storm_interval=storm_interval)


def wait_mail(smtp: SmtpServer, count: int, *, within: float) -> list[ReceivedMessage]:
    """Waits until the sink accepted at least ``count`` mails."""
    deadline = time.monotonic() + within
    while len(got := smtp.received()) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} mails within {within}s"
        time.sleep(0.05)
    return got


def assert_exactly_once(
    smtp: SmtpServer, indexes: set[int], *, within: float = 30.0, settle: float = 2.0
) -> None:
    """Every alert (ifIndex) in ``indexes`` got exactly one mail, and no other mail came."""
    wait_mail(smtp, len(indexes), within=within)
    time.sleep(settle)  # a duplicate (re-send, re-notification) would arrive now
    messages = smtp.received()
    by_id, by_index = delivered(messages)
    duplicates = {mid: n for mid, n in by_id.items() if n > 1}
    assert not duplicates, f"Message-IDs delivered more than once: {duplicates}"
    assert len(messages) == len(indexes) == len(by_id), (len(messages), len(indexes))
    assert by_index == Counter(indexes), (
        f"missing {sorted(indexes - set(by_index))}, extra {sorted(set(by_index) - indexes)}"
    )


def check_flood(agent: AgentProcess, report: FloodReport, count: int) -> dict[str, float]:
    """/healthz stayed fast, every trap is accounted for, the storm is summarised.

    Returns the measured figures (for the test's output).
    """
    assert report.sent == count
    assert set(report.statuses) == {200}, report.statuses
    slow = [round(x * 1000, 1) for x in sorted(report.latencies)[-5:]]
    assert report.worst < MAX_HEALTHZ_LATENCY, f"slowest /healthz answers (ms): {slow}"

    # Every trap is received (passed or folded into a storm event) or dropped by the
    # kernel, and the storm events in /api/traps add up to the folded count.
    deadline = time.monotonic() + 15
    while True:
        body = agent.get("/metrics")[1]
        received = metric_values(body, "netalert_traps_received_total").get('version="2c"', 0.0)
        drops = metric_values(body, "netalert_trap_socket_drops").get("", 0.0)
        folded = metric_values(body, "netalert_storm_folded_total")[""]
        traps = json.loads(agent.get("/api/traps")[1])["traps"]
        storms = [t for t in traps if t["count"] > 1]
        summarised = sum(t["count"] for t in storms)
        if received + drops == count and summarised == folded:
            break
        assert time.monotonic() < deadline, (received, drops, folded, summarised, storms)
        time.sleep(0.2)
    passed = received - folded
    # Nearly all of the flood is folded; what passed is about the storm buckets' burst.
    assert folded > 0.9 * received, (folded, received)
    assert 0 < passed < 0.1 * received, passed
    assert all(t["trap"].endswith("linkDown") for t in storms), storms
    assert agent.get("/healthz")[0] == 200
    return {
        "worst_ms": round(report.worst * 1000, 1),
        "p50_ms": round(sorted(report.latencies)[len(report.latencies) // 2] * 1000, 1),
        "probes": len(report.latencies),
        "received": received,
        "kernel_drops": drops,
        "passed": passed,
        "folded": folded,
        "storm_events": len(storms),
    }
