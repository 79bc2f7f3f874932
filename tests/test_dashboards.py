"""contrib/grafana-dashboard.json and contrib/prometheus-rules.yml: well formed, about
what they say, and naming only series a real ``netalert run`` exports.

promtool (Debian's prometheus package, ~100 MB with the server) is not among the test
packages: the rules' structure is checked here with PyYAML, their expressions with
:mod:`tests.support.promql`, and every metric, label and label value they name
against the /metrics of a running agent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.faults import ROOT, AgentProcess, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.promql import names
from tests.support.smtp import SmtpServer
from tests.support.snmpd import Snmpd

DASHBOARD = ROOT / "contrib" / "grafana-dashboard.json"
RULES = ROOT / "contrib" / "prometheus-rules.yml"

# Labels Prometheus adds to every scraped series (the scrape config's job, the target).
TARGET_LABELS = {"job", "instance"}
PROMETHEUS_OWN = {"up"}  # series Prometheus makes about the scrape itself
HTTP_MAX_CONNECTIONS = 37


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def panels() -> list[dict[str, Any]]:
    out = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # collapsed rows hold their panels
    return out


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target."""
    return [(f"panel {p['title']!r}", t["expr"]) for p in panels() for t in p.get("targets", [])]


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every rule."""
    return dashboard_expressions() + [(f"rule {r['alert']}", r["expr"]) for r in rules()]


# --- the files on their own (unit) -------------------------------------------------------


def test_rules_file_is_prometheus_rule_groups() -> None:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(data) == {"groups"}
    seen: set[str] = set()
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert re.fullmatch(r"Netalert[A-Z]\w+", rule["alert"]), rule
            assert rule["alert"] not in seen, f"two rules named {rule['alert']}"
            seen.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert {"summary", "description"} <= set(rule["annotations"])
            for text in rule["annotations"].values():  # Go templates: braces balance
                assert text.count("{{") == text.count("}}"), text


def test_rules_cover_what_goes_wrong_with_netalert_itself() -> None:
    exprs = " ".join(r["expr"] for r in rules())
    for metric in (
        "netalert_outbox_pending",  # the outbox growing
        "netalert_mail_failed_total",  # mail failing
        "netalert_traps_rejected_total",  # forged, downgraded or replayed v3 traps
        "netalert_loop_lag_seconds",
        "netalert_http_connections",
        "netalert_http_max_connections",  # ... near the cap
        "netalert_state_writable",  # the state disk full (docs/metrics.md's own list has it)
        "netalert_polls_missed_total",  # polls that never ran ("alert on any rise")
        "netalert_trap_worker_restart_delay_seconds",  # a trap worker crash-looping
    ):
        assert metric in exprs, metric
    rejected = [
        m
        for r in rules()
        for m in names(r["expr"]).matchers
        if m.metric == "netalert_traps_rejected_total" and m.label == "reason"
    ]
    reasons = {v for m in rejected for v in m.value.split("|")}
    assert {"bad_digest", "bad_security_level", "not_in_time_window"} <= reasons


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    data = dashboard()
    assert data["title"] and data["uid"] and isinstance(data["schemaVersion"], int)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels():
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            # every query follows the job / instance pickers at the top
            selectors = names(target["expr"]).matchers
            assert {(m.label, m.value) for m in selectors} >= {
                ("job", "$job"),
                ("instance", "$instance"),
            }, (panel["title"], target["expr"])


def test_dashboard_shows_the_issue_list() -> None:
    shown = {m for _, expr in dashboard_expressions() for m in names(expr).metrics}
    for metric in (
        "netalert_polls_total",
        "netalert_traps_received_total",
        "netalert_traps_rejected_total",
        "netalert_alerts_active",
        "netalert_outbox_pending",
        "netalert_mail_failed_total",
        "netalert_loop_lag_seconds",
        "netalert_http_connections",
    ):
        assert metric in shown, metric
    by = " ".join(expr for _, expr in dashboard_expressions())
    for grouping in ("by (version)", "by (reason)", "by (severity)", "by (kind)"):
        assert grouping in by, grouping


def test_every_expression_reads() -> None:
    for where, expr in expressions():
        try:
            found = names(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}")
        assert found.metrics, f"{where}: names no metric: {expr}"


# --- against a real agent (e2e) --------------------------------------------------------------

AGENT_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
http_max_connections = {cap}

[snmp]
timeout = "200ms"
retries = 0
interval = "1s"

[[devices]]
name = "sw1"
address = "{device}"
collect = ["system"]

[collect.system]
get = ["SNMPv2-MIB::sysUpTime.0"]

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[limits]
max_active_alerts_per_rule = 1    # the second linkDown is held back: a suppressed count

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
"""


WANTED = (  # a device polled, an alert held back by the cap
    r'netalert_polls_total\{result="ok"\}',
    r'netalert_alerts_suppressed_total\{rule="LinkDown"\}',
)


@pytest.fixture
def scraped(
    tmp_path: Path, snmpd: Snmpd, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[str]:
    """The /metrics body of a real agent that has polled a device and held back an alert."""
    http, traps = free_tcp_port(), free_udp_port()
    text = AGENT_CONFIG.format(
        http=http,
        cap=HTTP_MAX_CONNECTIONS,
        device=snmpd.address,
        traps=traps,
        smtp=smtp_server.port,
    )
    agent = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    try:
        agent.start()
        send_traps(traps, [link_down(1), link_down(2)])
        deadline = time.monotonic() + 20
        while True:
            status, body = agent.get("/metrics")
            assert status == 200, body
            if all(re.search(rf"^{want} \d*[1-9]", body, re.MULTILINE) for want in WANTED):
                break
            assert time.monotonic() < deadline, f"not there in 20 s:\n{body}\n{agent.log()}"
            time.sleep(0.1)
        yield body
    finally:
        agent.cleanup()


def _series(body: str) -> dict[str, list[dict[str, str]]]:
    """Every sample's metric name -> the label sets it has in ``body``."""
    out: dict[str, list[dict[str, str]]] = {}
    for name, labels in re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$", body, re.MULTILINE):
        out.setdefault(name, []).append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels)))
    return out


@pytest.mark.e2e
def test_every_series_named_is_exported_by_a_running_agent(scraped: str) -> None:
    series = _series(scraped)
    assert series.get("netalert_http_max_connections") == [{}], "no netalert_http_max_connections"
    assert re.search(rf"^netalert_http_max_connections {HTTP_MAX_CONNECTIONS}(\.0)?$", scraped,
                     re.MULTILINE), scraped  # fmt: skip
    for where, expr in expressions():
        found = names(expr)
        for metric in found.metrics - PROMETHEUS_OWN:
            assert metric in series, f"{where}: {metric} is not in /metrics"
        labels = {k for m in found.metrics - PROMETHEUS_OWN for s in series[m] for k in s}
        for label in found.grouping - TARGET_LABELS:
            assert label in labels, f"{where}: no series of {sorted(found.metrics)} has {label}"
        for matcher in found.matchers:
            if matcher.label in TARGET_LABELS or matcher.metric in PROMETHEUS_OWN:
                continue
            values = {s.get(matcher.label) for s in series[matcher.metric]}
            assert values - {None}, f"{where}: {matcher.metric} has no label {matcher.label}"
            if matcher.op in ("=", "=~") and re.fullmatch(r"\w+(\|\w+)*", matcher.value):
                for value in matcher.value.split("|"):  # preset values: exported from the start
                    assert value in values, f"{where}: {matcher.metric}{{{matcher.label}={value}}}"
