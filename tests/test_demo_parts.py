"""The demo's other parts: mail sink, trap sender, config, scenario runner."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from netalert.config import load_config_text
from netalert.demo.config import DemoEndpoints, demo_config_text, demo_mib_dir
from netalert.demo.devices import DemoEnvMonitor, DemoSwitch
from netalert.demo.scenario import COOL, STORM_COUNT, Step, run_steps, timeline
from netalert.demo.sink import MailSink, ReceivedMail, format_mail
from netalert.demo.trapsend import (
    LINK_DOWN,
    LINK_UP,
    POE_FAULT,
    TrapSender,
    link_trap,
    poe_fault_trap,
)
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import Message, PduType, decode_message
from tests.support.ports import free_udp_port

# --- mail sink ---------------------------------------------------------------------------


def alert_mail(subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "netalert demo <netalert@localhost>"
    msg["To"] = "demo@localhost"
    msg["Subject"] = subject
    msg.set_content(body)
    msg.add_alternative(f"<html><body><pre>{body}</pre></body></html>", subtype="html")
    return msg


async def test_sink_prints_each_mail_it_receives(capsys: pytest.CaptureFixture[str]) -> None:
    def show(mail: ReceivedMail) -> None:
        for line in format_mail(mail, len(sink.received)):
            print(line)

    sink = MailSink(show)
    await sink.start("127.0.0.1")
    try:
        body = "\n".join(f"line {n}" for n in range(1, 31))
        for subject in (
            "[FIRING] critical InterfaceDown on demo-sw1",
            "[RESOLVED] critical InterfaceDown on demo-sw1",
        ):
            await aiosmtplib.send(
                alert_mail(subject, body), hostname=sink.host, port=sink.port, timeout=5
            )
    finally:
        await sink.stop()
    out = capsys.readouterr().out.splitlines()
    assert [m.state for m in sink.received] == ["FIRING", "RESOLVED"]
    assert sink.received[0].envelope_to == ("demo@localhost",)
    assert out[0].startswith("+--- e-mail #1 ")
    assert out[1:5] == [
        "| From:    netalert demo <netalert@localhost>",
        "| To:      demo@localhost",
        "| Subject: [FIRING] critical InterfaceDown on demo-sw1",
        "|",
    ]
    # The text part, not the HTML one, and only its first lines.
    assert out[5:7] == ["|   line 1", "|   line 2"]
    assert "|   line 16" in out and "|   line 17" not in out
    assert "|   ... (14 more lines)" in out
    assert "| Subject: [RESOLVED] critical InterfaceDown on demo-sw1" in out
    assert not any("<pre>" in line for line in out)


def test_mail_state_comes_from_the_subject() -> None:
    def mail(subject: str) -> ReceivedMail:
        return ReceivedMail("a@b", ("c@d",), "a@b", "c@d", subject, "")

    assert mail("[FIRING:2] warning LinkDown on demo-sw1").state == "FIRING"
    assert mail("[RESOLVED] warning LinkDown").state == "RESOLVED"
    assert mail("netalert test message").state == ""


# --- trap sender ---------------------------------------------------------------------------


@pytest.fixture
def trapd() -> str:
    path = shutil.which("snmptrapd") or "/usr/sbin/snmptrapd"
    assert Path(path).exists(), "net-snmp's snmptrapd is needed (Debian package snmptrapd)"
    return path


@pytest.mark.daemon
async def test_traps_are_standard_v2c_traps_snmptrapd_accepts(tmp_path: Path, trapd: str) -> None:
    conf = tmp_path / "snmptrapd.conf"
    conf.write_text("disableAuthorization yes\nformat2 TRAP %V| %v\\n\n")
    port = free_udp_port()
    env = {
        **os.environ,
        "MIBS": "",
        "MIBDIRS": str(tmp_path),
        "SNMPCONFPATH": str(tmp_path),
        "SNMP_PERSISTENT_DIR": str(tmp_path),
    }
    proc = await asyncio.create_subprocess_exec(
        trapd,
        "-f",
        "-Lo",
        "-n",
        "-C",
        "-c",
        str(conf),
        "-On",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    switch = DemoSwitch()
    sender = TrapSender(("127.0.0.1", port))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 10
        # snmptrapd says nothing when it is ready: send until the first trap shows.
        while not any(line.startswith("TRAP") for line in lines):
            assert time.monotonic() < deadline, lines
            sender.send(link_trap(switch, 2, up=False))
            try:
                raw = await asyncio.wait_for(proc.stdout.readline(), timeout=0.5)
            except TimeoutError:
                continue
            lines.append(raw.decode().strip())
        sender.send(poe_fault_trap(switch, 3))
        while sum(line.startswith("TRAP") and POE_FAULT in line for line in lines) < 1:
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout=5)
            lines.append(raw.decode().strip())
    finally:
        sender.close()
        proc.terminate()
        await proc.wait()
    link = next(line for line in lines if line.startswith("TRAP"))
    assert f"OID: .{LINK_DOWN}" in link
    assert ".1.3.6.1.2.1.2.2.1.1.2 = INTEGER: 2" in link  # ifIndex
    assert ".1.3.6.1.2.1.2.2.1.7.2 = INTEGER: 1" in link  # ifAdminStatus up
    assert ".1.3.6.1.2.1.2.2.1.8.2 = INTEGER: 2" in link  # ifOperStatus down
    poe = next(line for line in lines if POE_FAULT in line)
    assert '"GigabitEthernet0/3"' in poe and ".1.3.6.1.4.1.32473.1.1.2.1.2.3 = INTEGER: 4" in poe


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: list[tuple[float, Message]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        decoded = decode_message(data)
        assert isinstance(decoded, Message), decoded
        self.messages.append((time.monotonic(), decoded))


async def test_storm_is_paced_over_its_duration() -> None:
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(
        _Collector, local_addr=("127.0.0.1", 0)
    )
    sender = TrapSender(transport.get_extra_info("sockname")[:2])
    switch = DemoSwitch()
    try:
        began = time.monotonic()
        sent = await sender.storm(lambda: poe_fault_trap(switch, 3), count=STORM_COUNT, seconds=1.0)
        took = time.monotonic() - began
        for _ in range(50):
            if len(collector.messages) >= STORM_COUNT:
                break
            await asyncio.sleep(0.02)
    finally:
        sender.close()
        transport.close()
    assert sent == STORM_COUNT == len(collector.messages)
    assert 0.9 <= took < 3.0
    times = [t for t, _ in collector.messages]
    # Paced: the first and last tenth of the traps are far apart, not one burst.
    assert times[-1] - times[0] > 0.7
    first = collector.messages[0][1]
    assert first.version == 1 and first.community == b"public"
    assert first.pdu_type == PduType.TRAP_V2
    assert first.varbinds[1] == ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, POE_FAULT)
    ids = {m.request_id for _, m in collector.messages}
    assert len(ids) == STORM_COUNT


# --- config --------------------------------------------------------------------------------


def test_demo_config_is_valid_and_resolves_every_name(tmp_path: Path) -> None:
    from netalert.service import prepare

    endpoints = DemoEndpoints(
        switch=("127.0.0.1", 16101),
        env=("127.0.0.2", 16102),
        traps=("127.0.0.1", 16162),
        smtp=("127.0.0.1", 16025),
        web=("127.0.0.1", 16180),
    )
    text = demo_config_text(endpoints, tmp_path / "state", demo_mib_dir())
    config = load_config_text(text, source=tmp_path / "config.toml")
    assert [d.name for d in config.devices] == ["demo-sw1", "demo-env1"]
    assert {d.address.port for d in config.devices} == {16101, 16102}
    assert config.snmp.interval.total_seconds() == 5
    assert config.traps.enabled and config.traps.listen[0].port == 16162
    assert config.agent.http is not None and config.agent.http.port == 16180
    assert (config.smtp.host, config.smtp.port) == ("127.0.0.1", 16025)
    route = config.routes[0]
    assert route.to == ["demo@localhost"]
    assert route.group_wait.total_seconds() == 2 and route.group_interval.total_seconds() == 10
    rules = {r.name: r for r in config.rules}
    assert rules["InterfaceDown"].for_.total_seconds() == 5
    assert rules["LinkDown"].clear_trap == "IF-MIB::linkUp"
    assert rules["ChassisTooHot"].clear_expr == "demoChassisTemperature < 55"
    prepared = prepare(config)  # compiles the demo MIB; raises on any unknown name
    assert len(prepared.rules.poll) == 2 and len(prepared.rules.trap) == 1
    assert [str(w) for w in prepared.rules.warnings] == []  # every template name is given


def test_demo_config_at_a_faster_speed_shrinks_every_interval(tmp_path: Path) -> None:
    endpoints = DemoEndpoints(
        switch=("127.0.0.1", 16101),
        env=("127.0.0.2", 16102),
        traps=("127.0.0.1", 16162),
        smtp=("127.0.0.1", 16025),
        web=("127.0.0.1", 16180),
    )
    text = demo_config_text(endpoints, tmp_path / "state", demo_mib_dir(), speed=4)
    config = load_config_text(text, source=tmp_path / "config.toml")
    assert config.snmp.interval.total_seconds() == 1.25
    route = config.routes[0]
    assert route.group_wait.total_seconds() == 0.5 and route.group_interval.total_seconds() == 2.5
    assert config.smtp.retry_max.total_seconds() == 0.5
    assert {r.name: r.for_ for r in config.rules}["InterfaceDown"].total_seconds() == 1.25
    assert 'interval = "1250ms"' in text and 'group_wait = "500ms"' in text


# --- scenario ------------------------------------------------------------------------------


async def test_steps_run_in_time_order_until_the_duration() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str]] = []
    ran: list[str] = []

    async def later() -> None:
        ran.append("c")

    steps = [
        Step(0.2, "c", later),
        Step(0.1, "a", lambda: ran.append("a")),
        Step(0.15, "b", lambda: ran.append("b")),
        Step(5.0, "too late", lambda: ran.append("late")),
    ]
    start = loop.time()
    done = await run_steps(
        steps,
        start=start,
        duration=1.0,
        stop=asyncio.Event(),
        say=lambda at, text: seen.append((at, text)),
    )
    took = loop.time() - start
    assert ran == ["a", "b", "c"] and done == 3
    assert [at for at, _ in seen] == [0.1, 0.15, 0.2]
    assert 0.19 <= took < 1.0  # returns after the last step that fits, not at the duration


async def test_steps_at_a_faster_speed_run_sooner_and_say_scenario_times() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str]] = []
    steps = [Step(0.4, "a", lambda: None), Step(0.8, "b", lambda: None), Step(5.0, "c", print)]
    start = loop.time()
    done = await run_steps(
        steps,
        start=start,
        duration=2.0,  # scenario seconds: "c" is past it
        stop=asyncio.Event(),
        say=lambda at, text: seen.append((at, text)),
        speed=4.0,
    )
    took = loop.time() - start
    assert done == 2 and seen == [(0.4, "a"), (0.8, "b")]
    assert 0.19 <= took < 0.6  # 0.8 s of scenario at 4x: 0.2 s


async def test_stop_ends_the_scenario_early() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    ran: list[str] = []
    loop.call_later(0.1, stop.set)
    steps = [Step(0.05, "a", lambda: ran.append("a")), Step(10.0, "b", lambda: ran.append("b"))]
    began = loop.time()
    await run_steps(steps, start=began, duration=60, stop=stop, say=lambda at, text: None)
    assert ran == ["a"] and loop.time() - began < 1.0


async def test_timeline_changes_the_devices_as_it_says() -> None:
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(
        _Collector, local_addr=("127.0.0.1", 0)
    )
    switch, env = DemoSwitch(), DemoEnvMonitor()
    sender = TrapSender(transport.get_extra_info("sockname")[:2])
    steps = timeline(switch, env, sender)
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert steps[-1].at <= 35  # leaves time for the last resolved mail in 60 s
    ports = []
    try:
        for step in steps:
            if "storm" not in step.text:  # 2 s of pacing; tested above
                step.action()
            ports.append(switch.ports[3].oper)
        await asyncio.sleep(0.1)
    finally:
        sender.close()
        transport.close()
    assert ports[0] == 2 and ports[-1] == 1  # port 3 went down and came back
    assert env.target == COOL
    trap_oids = [m.varbinds[1][2] for _, m in collector.messages]
    assert trap_oids == [LINK_DOWN, LINK_UP]
    assert all(
        m.varbinds[2] == ("1.3.6.1.2.1.2.2.1.1.2", SnmpType.INTEGER, 2)
        for _, m in collector.messages
    )
