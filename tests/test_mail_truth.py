"""Mails an on-call engineer can trust: right value, right counts, no contradictions.

Each test runs the real agent (`netalert run`) against net-snmp's snmpd, whose
tables are served by pass_persist scripts reading a file the test rewrites
(tests/support/tables.py), and reads the mails as an aiosmtpd server accepted
them. The rules are the "Worked examples" of docs/rules.md, taken from that page
itself so the documentation cannot drift from what the agent does; only their
``for`` is set to "0s" so the test takes seconds, not minutes.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import ROOT, AgentProcess, metric_values
from tests.support.markdown import section
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import Snmpd, SnmpdFactory
from tests.support.tables import Values, served_by

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
HR_STORAGE = "1.3.6.1.2.1.25.2.3.1"
FIXED_DISK = ".1.3.6.1.2.1.25.2.1.4"
RAM = ".1.3.6.1.2.1.25.2.1.2"
DAY = 8_640_000  # TimeTicks: hundredths of a second
# hrStorageTable is registered per column in snmpd: serve each column (tables.served_by).
SUBTREES = [
    "1.3.6.1.2.1.1.3",
    IF_ENTRY,
    IFX_ENTRY,
    *(f"{HR_STORAGE}.{column}" for column in (2, 3, 4, 5, 6)),
]


def readme_examples(*rules: str) -> str:
    """The docs' worked-example TOML blocks that define ``rules``, with ``for = "0s"``."""
    examples = section((ROOT / "docs" / "rules.md").read_text(), "Worked examples")
    blocks = re.findall(r"```toml\n(.*?)```", examples, re.DOTALL)
    chosen = []
    for name in rules:
        found = [b for b in blocks if f'name = "{name}"' in b]
        assert len(found) == 1, f"the worked examples define {name!r} {len(found)} times"
        if found[0] not in chosen:
            chosen.append(found[0])
    return "\n".join(re.sub(r'^for = "[^"]*"', 'for = "0s"', b, flags=re.M) for b in chosen)


def agent_config(
    device: Snmpd, examples: str, *, http: int, smtp: int, group_by: str, timeout: str = "5s"
) -> str:
    """The agent's config; its SNMP ``timeout`` is long (a loaded machine must not make a
    DeviceUnreachable mail of a slow answer) unless the test wants the device lost."""
    collect = sorted(tomllib.loads(examples).get("collect", {}))
    return f"""
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"

[snmp]
timeout = "{timeout}"
retries = 1
interval = "1s"

[[devices]]
name = "srv1"
address = "{device.address}"
collect = {collect!r}

[traps]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = {group_by}
group_wait = "0s"
group_interval = "1s"

{examples}
"""


def interfaces(*, gi3_oper: int, uplink_octets_per_s: float) -> dict[str, tuple[str, Any]]:
    """Two ports: 1 "uplink0/1" (1 Gbit/s, receiving at the given rate), 3 "GigabitEthernet0/3"."""
    return {
        f"{IF_ENTRY}.2.1": ("string", "uplink0/1"),
        f"{IF_ENTRY}.2.3": ("string", "GigabitEthernet0/3"),
        f"{IF_ENTRY}.7.1": ("integer", 1),
        f"{IF_ENTRY}.7.3": ("integer", 1),
        f"{IF_ENTRY}.8.1": ("integer", 1),
        f"{IF_ENTRY}.8.3": ("integer", gi3_oper),
        f"{IFX_ENTRY}.6.1": ("counter64", {"start": 10**12, "rate": uplink_octets_per_s}),
        f"{IFX_ENTRY}.6.3": ("counter64", {"start": 0, "rate": 0}),
        f"{IFX_ENTRY}.15.1": ("gauge", 1000),
        f"{IFX_ENTRY}.15.3": ("gauge", 1000),
        f"{IFX_ENTRY}.18.1": ("string", "to core"),
        f"{IFX_ENTRY}.18.3": ("string", "to printer"),
    }


def storage(c_used: int, export_used: int) -> dict[str, tuple[str, Any]]:
    """The two disks of the bug report (sizes as they were) and RAM, which is no disk."""
    rows = {
        1: (FIXED_DISK, "C:\\", 4096, 1952447, c_used),
        2: (FIXED_DISK, "/export", 1024, 96144541, export_used),
        3: (RAM, "Physical memory", 1024, 1000, 999),
    }
    out: dict[str, tuple[str, Any]] = {}
    for index, (kind, descr, unit, size, used) in rows.items():
        out[f"{HR_STORAGE}.2.{index}"] = ("objectid", kind)
        out[f"{HR_STORAGE}.3.{index}"] = ("string", descr)
        out[f"{HR_STORAGE}.4.{index}"] = ("integer", unit)
        out[f"{HR_STORAGE}.5.{index}"] = ("integer", size)
        out[f"{HR_STORAGE}.6.{index}"] = ("integer", used)
    return out


def uptime(start: int, epoch: int) -> dict[str, tuple[str, Any]]:
    """sysUpTime counting from ``start`` ticks; a new ``epoch`` is a reboot."""
    return {SYS_UPTIME: ("timeticks", {"start": start, "rate": 100, "epoch": epoch})}


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def blocks(text: str) -> dict[str, list[str]]:
    """The text body's alerts: ``[STATE] SEVERITY Rule on device`` -> the lines under it."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("[") and "] " in line:
            current = out.setdefault(line, [])
        elif current is not None and line.startswith("  "):
            current.append(line.strip())
        elif current is not None and line.strip():
            current = None
    return out


Mails = Callable[[Callable[[list[EmailMessage]], bool], float], list[EmailMessage]]


@pytest.fixture
def device(snmpd_factory: SnmpdFactory, tmp_path: Path) -> Iterator[tuple[Snmpd, Values]]:
    values = Values(tmp_path / "values.json")
    values.write({})
    agent = snmpd_factory(passes=served_by(values, SUBTREES))
    yield agent, values


def warm(device: Snmpd) -> None:
    """Starts every pass_persist script before the agent polls (each is a Python start)."""
    for prefix in SUBTREES:
        device.snmpget(prefix, tool="snmpbulkwalk")


@pytest.fixture
def mails(smtp_server: SmtpServer) -> Mails:
    def wait(done: Callable[[list[EmailMessage]], bool], within: float) -> list[EmailMessage]:
        deadline = time.monotonic() + within
        while True:
            got = [m.parsed() for m in smtp_server.received()]
            if done(got):
                return got
            subjects = [str(m["Subject"]) for m in got]
            assert time.monotonic() < deadline, f"mails so far: {subjects}"
            time.sleep(0.05)

    return wait


def subjects(got: list[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in got]


def by_subject(got: list[EmailMessage], pattern: str) -> EmailMessage:
    found = [m for m in got if re.fullmatch(pattern, str(m["Subject"]))]
    assert len(found) == 1, (pattern, subjects(got))
    return found[0]


def polled(agent: AgentProcess, within: float = 30.0) -> None:
    """Waits until the agent has finished a poll with an answer."""
    deadline = time.monotonic() + within
    while metric_values(agent.get("/metrics")[1], "netalert_polls_total").get('result="ok"', 0) < 1:
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)


def start_agent(tmp_path: Path, text: str, http: int, mib_cache: Path) -> AgentProcess:
    proc = AgentProcess(tmp_path / "agent", text, http, mib_cache)
    proc.directory.mkdir()
    proc.start()
    return proc


PROBLEMS = {  # 950 Mbit/s into a 1 Gbit/s port; disks at 97.3 % and 92.0 %; up for 12 days
    **interfaces(gi3_oper=2, uplink_octets_per_s=118_750_000),
    **storage(1_900_000, 88_452_978),
    **uptime(12 * DAY, 0),
}


def test_readme_examples_mail_the_value_that_decided(
    device: tuple[Snmpd, Values],
    smtp_server: SmtpServer,
    mails: Mails,
    mib_cache: Path,
    tmp_path: Path,
) -> None:
    snmpd, values = device
    examples = readme_examples("InterfaceDown", "HighInboundUtilisation", "DiskFull")
    http = free_tcp_port()
    text = agent_config(snmpd, examples, http=http, smtp=smtp_server.port, group_by='["..."]')
    values.write(PROBLEMS)
    warm(snmpd)
    agent = start_agent(tmp_path, text, http, mib_cache)
    try:
        got = mails(lambda got: len(got) >= 4, 30)
        assert sorted(subjects(got)) == [
            "[FIRING] critical DiskFull on srv1",
            "[FIRING] critical DiskFull on srv1",
            "[FIRING] critical InterfaceDown on srv1",
            "[FIRING] warning HighInboundUtilisation on srv1",
        ], subjects(got)
        disks = sorted(
            next(iter(blocks(text_of(m)).values())) for m in got if "DiskFull" in str(m["Subject"])
        )
        # the used share, not hrStorageSize (1952447 and 96144541 before the fix)
        assert re.fullmatch(r"Value:\s+92(\.0+)?", disks[0][1]), disks
        assert re.fullmatch(r"Value:\s+97\.31", disks[1][1]), disks
        assert re.fullmatch(r"srv1 /export is 92(\.0)?% full \(84\.\d GiB used\)", disks[0][0])
        assert re.fullmatch(r"srv1 C:\\ is 97\.3% full \(7\.2\d GiB used\)", disks[1][0])
        (util,) = blocks(text_of(by_subject(got, r".*HighInboundUtilisation.*"))).values()
        # the utilisation (about 95: the poll times jitter), not ifHighSpeed (1000) of the
        # guard "ifHighSpeed > 0"
        shown = re.fullmatch(r"Value:\s+(\d+(\.\d+)?)", util[1])
        assert shown is not None and 90 < float(shown[1]) < 120, util
        summary = re.fullmatch(r"srv1 uplink0/1 inbound at (\d+(\.\d)?)% of 1 Gbit/s", util[0])
        assert summary is not None and abs(float(summary[1]) - float(shown[1])) <= 0.05, util
        (down,) = blocks(text_of(by_subject(got, r".*InterfaceDown.*"))).values()
        assert down[0] == "srv1 GigabitEthernet0/3 (to printer) is down", down
        assert re.fullmatch(r"Value:\s+down", down[1]), down
    finally:
        agent.cleanup()


def test_readme_examples_resolve_without_contradiction_and_reboot(
    device: tuple[Snmpd, Values],
    smtp_server: SmtpServer,
    mails: Mails,
    mib_cache: Path,
    tmp_path: Path,
) -> None:
    snmpd, values = device
    examples = readme_examples(
        "InterfaceDown", "HighInboundUtilisation", "DiskFull", "DeviceRebooted"
    )
    http = free_tcp_port()
    text = agent_config(snmpd, examples, http=http, smtp=smtp_server.port, group_by='["..."]')
    values.write(PROBLEMS)
    warm(snmpd)
    agent = start_agent(tmp_path, text, http, mib_cache)
    try:
        mails(lambda got: len(got) >= 4, 30)
        # The problems go away and the device reboots.
        calm = {
            **interfaces(gi3_oper=1, uplink_octets_per_s=12_500_000),
            **storage(976_000, 48_000_000),
        }
        values.write({**calm, **uptime(4_200, 1)})
        got = mails(lambda got: len(got) >= 9, 30)
        later = got[4:]
        assert sorted(subjects(later)) == [
            "[FIRING] warning DeviceRebooted on srv1",
            "[RESOLVED] critical DiskFull on srv1",
            "[RESOLVED] critical DiskFull on srv1",
            "[RESOLVED] critical InterfaceDown on srv1",
            "[RESOLVED] warning HighInboundUtilisation on srv1",
        ], subjects(later)
        (reboot,) = blocks(text_of(by_subject(later, r".*DeviceRebooted.*"))).values()
        assert re.fullmatch(r"srv1 restarted \d+s ago", reboot[0]), reboot

        up = text_of(by_subject(later, r".*InterfaceDown.*"))
        (up_lines,) = blocks(up).values()
        # not "GigabitEthernet0/3 is down" over "Value: up"
        assert re.fullmatch(
            r"resolved after \d+s; was: srv1 GigabitEthernet0/3 \(to printer\) is down",
            up_lines[0],
        ), up_lines
        assert re.fullmatch(r"Value:\s+up \(when resolved\)", up_lines[1]), up_lines
        for message in later:
            if "RESOLVED" in str(message["Subject"]):
                (lines,) = blocks(text_of(message)).values()
                assert lines[0].startswith("resolved after "), lines
                assert "resolved after " in html_of(message)

        # Up for a day now: the reboot alert resolves with the rule's own wording.
        values.write({**calm, **uptime(DAY + 360_000, 2)})
        got = mails(lambda got: len(got) >= 10, 30)
        last = by_subject(got[9:], r"\[RESOLVED\] warning DeviceRebooted on srv1")
        (back,) = blocks(text_of(last)).values()
        assert back[0] == "srv1 is up again, for 1d 1h now", back
    finally:
        agent.cleanup()


def test_group_subject_counts_firing_and_names_the_newest_change_first(
    device: tuple[Snmpd, Values],
    smtp_server: SmtpServer,
    mails: Mails,
    mib_cache: Path,
    tmp_path: Path,
) -> None:
    snmpd, values = device
    examples = readme_examples("InterfaceDown", "DiskFull")
    http = free_tcp_port()
    text = agent_config(snmpd, examples, http=http, smtp=smtp_server.port, group_by='["device"]')
    quiet = interfaces(gi3_oper=1, uplink_octets_per_s=0)
    values.write({**quiet, **storage(1_900_000, 88_452_978), **uptime(DAY, 0)})
    warm(snmpd)
    agent = start_agent(tmp_path, text, http, mib_cache)
    try:
        got = mails(lambda got: len(got) >= 1, 30)
        assert subjects(got) == ["[FIRING:2] critical DiskFull on srv1"]

        # A new problem joins the group: the subject names it, not the old ones.
        ports_down = interfaces(gi3_oper=2, uplink_octets_per_s=0)
        values.write({**ports_down, **storage(1_900_000, 88_452_978), **uptime(DAY, 0)})
        got = mails(lambda got: len(got) >= 2, 30)
        assert subjects(got)[1] == "[FIRING:3] critical InterfaceDown (+1 more) on srv1"

        # Both disks are freed: one alert still fires, two resolved.
        values.write({**ports_down, **storage(976_000, 48_000_000), **uptime(DAY, 0)})
        got = mails(lambda got: len(got) >= 3, 30)
        assert subjects(got)[2] == "[FIRING] critical InterfaceDown on srv1 (2 resolved)"
        assert text_of(got[2]).startswith("FIRING: 1 firing, 2 resolved")

        # Everything resolved: the subject says so.
        values.write({**quiet, **storage(976_000, 48_000_000), **uptime(DAY, 0)})
        got = mails(lambda got: len(got) >= 4, 30)
        assert subjects(got)[3] == "[RESOLVED] critical InterfaceDown on srv1"
        assert text_of(got[3]).startswith("RESOLVED: 0 firing, 1 resolved")
    finally:
        agent.cleanup()


def test_resolved_device_unreachable_does_not_claim_it_still_fails(
    device: tuple[Snmpd, Values],
    smtp_server: SmtpServer,
    mails: Mails,
    mib_cache: Path,
    tmp_path: Path,
) -> None:
    snmpd, values = device
    http = free_tcp_port()
    examples = '[collect.system]\nget = ["SNMPv2-MIB::sysUpTime.0"]\n'
    text = agent_config(
        snmpd, examples, http=http, smtp=smtp_server.port, group_by='["device"]', timeout="1s"
    )
    values.write(uptime(DAY, 0))
    warm(snmpd)
    agent = start_agent(tmp_path, text, http, mib_cache)
    try:
        polled(agent)  # reachable first
        snmpd.stop()
        got = mails(lambda got: len(got) >= 1, 30)
        assert subjects(got) == ["[FIRING] critical DeviceUnreachable on srv1"]
        (firing,) = blocks(text_of(got[0])).values()
        assert firing[0].startswith("srv1 did not answer 2 SNMP polls in a row ("), firing

        snmpd.start()
        got = mails(lambda got: len(got) >= 2, 30)
        assert subjects(got)[1] == "[RESOLVED] critical DeviceUnreachable on srv1"
        body = text_of(got[1])
        (resolved,) = blocks(body).values()
        # not "srv1 does not answer SNMP (answering)"
        assert re.fullmatch(r"srv1 answers SNMP again \(no answer for \d+s\)", resolved[0])
        assert "does not answer" not in body and "does not answer" not in html_of(got[1])
    finally:
        agent.cleanup()
