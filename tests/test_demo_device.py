"""The demo's simulated devices, asked by net-snmp's own tools (snmpget, snmpbulkwalk...)."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netalert.demo.devices import DemoEnvMonitor, DemoSwitch
from netalert.demo.responder import MAX_BULK_VARBINDS, DemoAgentError, SimulatedAgent

IF_TABLE = "1.3.6.1.2.1.2.2"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_LAST_CHANGE = "1.3.6.1.2.1.2.2.1.9"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IFX_TABLE = "1.3.6.1.2.1.31.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
TEMPERATURE = "1.3.6.1.4.1.32473.1.1.1.1.0"
SENSOR_TABLE = "1.3.6.1.4.1.32473.1.1.3"


class FakeClock:
    """A clock the test moves by hand, so counters are exact."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    for tool in ("snmpget", "snmpgetnext", "snmpbulkwalk", "snmpbulkget", "snmpwalk"):
        assert shutil.which(tool), f"net-snmp's {tool} is needed (Debian package snmp)"
    # No MIB files and no user config: numeric OIDs in, numeric OIDs out.
    return {**os.environ, "MIBS": "", "MIBDIRS": str(tmp_path), "SNMPCONFPATH": str(tmp_path)}


async def snmp(env: dict[str, str], tool: str, *args: str, ok: bool = True) -> list[str]:
    """Runs a net-snmp tool (without blocking the loop the device answers on)."""
    proc = await asyncio.create_subprocess_exec(
        tool,
        "-t",
        "2",
        "-r",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    if ok:
        assert proc.returncode == 0, err.decode()
    return out.decode().splitlines() + (err.decode().splitlines() if not ok else [])


def values(lines: list[str]) -> dict[str, str]:
    """``.1.3.6... = value`` lines (from -On -OQ) as {oid: value}; endOfMibView left out."""
    out = {}
    for line in lines:
        if "No more variables left in this MIB View" in line:
            continue
        oid, _, value = line.partition(" = ")
        out[oid.lstrip(".")] = value.strip()
    return out


@pytest.fixture
async def switch() -> AsyncIterator[tuple[DemoSwitch, FakeClock, str]]:
    clock = FakeClock()
    model = DemoSwitch(clock=clock)
    agent = SimulatedAgent(model.table)
    await agent.start("127.0.0.1")
    yield model, clock, f"127.0.0.1:{agent.port}"
    await agent.stop()


V2 = ("-v2c", "-c", "public", "-On", "-Ot", "-OQ")


@pytest.mark.daemon
async def test_get_answers_values_and_exceptions(switch, tool_env) -> None:
    _, _, address = switch
    got = values(
        await snmp(
            tool_env,
            "snmpget",
            *V2,
            address,
            SYS_NAME,
            SYS_UPTIME,
            f"{IF_DESCR}.3",
            "1.3.6.1.2.1.1.2.0",
        )
    )
    assert got[SYS_NAME] == '"demo-sw1"'
    assert int(got[SYS_UPTIME]) >= 12 * 86400 * 100  # a switch up for twelve days
    assert got[f"{IF_DESCR}.3"] == '"GigabitEthernet0/3"'
    assert got["1.3.6.1.2.1.1.2.0"] == ".1.3.6.1.4.1.32473.1"
    # An unknown object and an unknown instance of a known column differ (RFC 3416).
    lines = await snmp(
        tool_env,
        "snmpget",
        "-v2c",
        "-c",
        "public",
        "-On",
        address,
        "1.3.6.1.2.1.1.9.0",
        f"{IF_DESCR}.9",
    )
    assert "No Such Object" in lines[0]
    assert "No Such Instance" in lines[1]


@pytest.mark.daemon
async def test_getnext_steps_in_oid_order(switch, tool_env) -> None:
    _, _, address = switch
    got = values(await snmp(tool_env, "snmpgetnext", *V2, address, SYS_UPTIME, f"{IF_OPER}.4"))
    assert got == {"1.3.6.1.2.1.1.4.0": '"noc@example.org"', f"{IF_LAST_CHANGE}.1": "3000"}
    lines = await snmp(tool_env, "snmpgetnext", "-v2c", "-c", "public", "-On", address, "1.4")
    assert "No more variables left in this MIB View" in lines[0]


@pytest.mark.parametrize("repetitions", ["25", "3"])
@pytest.mark.daemon
async def test_bulkwalk_of_iftable(switch, tool_env, repetitions: str) -> None:
    _, _, address = switch
    got = values(await snmp(tool_env, "snmpbulkwalk", *V2, f"-Cr{repetitions}", address, IF_TABLE))
    columns = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16}
    assert set(got) == {f"{IF_TABLE}.1.{c}.{i}" for c in columns for i in range(1, 5)}
    assert [got[f"{IF_DESCR}.{i}"] for i in range(1, 5)] == [
        f'"GigabitEthernet0/{i}"' for i in range(1, 5)
    ]
    assert [got[f"{IF_TABLE}.1.7.{i}"] for i in range(1, 5)] == ["1", "1", "1", "2"]  # admin
    assert [got[f"{IF_OPER}.{i}"] for i in range(1, 5)] == ["1", "1", "1", "2"]
    assert got[f"{IF_TABLE}.1.5.1"] == "1000000000"


@pytest.mark.daemon
async def test_getbulk_answer_is_capped(switch, tool_env) -> None:
    _, _, address = switch
    lines = await snmp(tool_env, "snmpbulkget", *V2, "-Cn0", "-Cr500", address, "1.3.6.1.2.1")
    assert len(lines) == MAX_BULK_VARBINDS
    oids = [tuple(int(x) for x in line.split(" = ")[0].strip(".").split(".")) for line in lines]
    assert oids == sorted(oids) and len(set(oids)) == len(oids)


@pytest.mark.daemon
async def test_counters_grow_with_the_clock_and_wrap(switch, tool_env) -> None:
    model, clock, address = switch
    before = values(await snmp(tool_env, "snmpbulkwalk", *V2, address, IF_HC_IN_OCTETS))
    before32 = values(await snmp(tool_env, "snmpbulkwalk", *V2, address, IF_IN_OCTETS))
    clock.now += 20.0
    after = values(await snmp(tool_env, "snmpbulkwalk", *V2, address, IF_HC_IN_OCTETS))
    after32 = values(await snmp(tool_env, "snmpbulkwalk", *V2, address, IF_IN_OCTETS))
    for i in range(1, 5):
        delta = int(after[f"{IF_HC_IN_OCTETS}.{i}"]) - int(before[f"{IF_HC_IN_OCTETS}.{i}"])
        rate = model.ports[i].in_rate if i != 4 else 0  # port 4 is down: no traffic
        assert delta == rate * 20, i
        assert int(after32[f"{IF_IN_OCTETS}.{i}"]) == int(after[f"{IF_HC_IN_OCTETS}.{i}"]) % 2**32
    # Port 1 started just below a multiple of 2**32: its 32-bit counter wrapped.
    assert int(after32[f"{IF_IN_OCTETS}.1"]) < int(before32[f"{IF_IN_OCTETS}.1"])


@pytest.mark.daemon
async def test_a_port_the_scenario_takes_down(switch, tool_env) -> None:
    model, clock, address = switch
    clock.now += 5.0
    model.set_oper(3, up=False)
    got = values(
        await snmp(
            tool_env,
            "snmpget",
            *V2,
            address,
            f"{IF_OPER}.3",
            f"{IF_LAST_CHANGE}.3",
            f"{IF_HC_IN_OCTETS}.3",
        )
    )
    assert got[f"{IF_OPER}.3"] == "2"
    uptime = int((clock.now - model.boot) * 100)
    assert int(got[f"{IF_LAST_CHANGE}.3"]) == uptime
    clock.now += 30.0  # a down port carries no traffic
    again = values(await snmp(tool_env, "snmpget", *V2, address, f"{IF_HC_IN_OCTETS}.3"))
    assert again[f"{IF_HC_IN_OCTETS}.3"] == got[f"{IF_HC_IN_OCTETS}.3"]
    model.set_oper(3, up=True)
    back = values(await snmp(tool_env, "snmpget", *V2, address, f"{IF_OPER}.3"))
    assert back[f"{IF_OPER}.3"] == "1"


@pytest.mark.daemon
async def test_v1_walk_skips_counter64(switch, tool_env) -> None:
    _, _, address = switch
    lines = await snmp(tool_env, "snmpwalk", "-v1", "-c", "public", "-On", address, IFX_TABLE)
    assert lines and not any("Counter64" in line for line in lines)
    assert sum("Gauge32: 1000" in line for line in lines) == 4  # ifHighSpeed still there


@pytest.mark.daemon
async def test_wrong_community_gets_no_answer(switch, tool_env) -> None:
    _, _, address = switch
    lines = await snmp(tool_env, "snmpget", "-v2c", "-c", "private", address, SYS_NAME, ok=False)
    assert any("Timeout" in line for line in lines)


@pytest.mark.daemon
async def test_env_monitor_temperature_drifts_and_sensor_table(tool_env) -> None:
    clock = FakeClock()
    model = DemoEnvMonitor(clock=clock, temperature=42.0)
    agent = SimulatedAgent(model.table)
    await agent.start("127.0.0.1")
    address = f"127.0.0.1:{agent.port}"
    try:

        def expected(base: float) -> int:
            return round(base + math.sin(clock.now / 5.0))

        got = values(await snmp(tool_env, "snmpget", *V2, address, TEMPERATURE))
        assert int(got[TEMPERATURE]) == expected(42.0)
        model.heat_to(66.0, slope=3.0)
        clock.now += 4.0  # 42 + 3 * 4
        got = values(await snmp(tool_env, "snmpget", *V2, address, TEMPERATURE))
        assert int(got[TEMPERATURE]) == expected(54.0)
        clock.now += 30.0  # reached the target, stays there
        walk = values(await snmp(tool_env, "snmpbulkwalk", *V2, address, SENSOR_TABLE))
        got = values(await snmp(tool_env, "snmpget", *V2, address, TEMPERATURE))
        hot = expected(66.0)
        assert int(got[TEMPERATURE]) == hot
        # INDEX { demoSensorKind, IMPLIED demoSensorName }: the name's bytes, no length.
        inlet = "1." + ".".join(str(b) for b in b"inlet")
        fan = "2." + ".".join(str(b) for b in b"fan1")
        assert len(walk) == 6
        assert walk[f"{SENSOR_TABLE}.1.3.{inlet}"] == str(hot - 4)
        assert walk[f"{SENSOR_TABLE}.1.4.{inlet}"] == "2"  # warning: above the 60 C limit
        assert walk[f"{SENSOR_TABLE}.1.4.{fan}"] == "1"
    finally:
        await agent.stop()


async def test_a_busy_port_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        agent = SimulatedAgent(DemoSwitch().table)
        with pytest.raises(DemoAgentError, match=r"cannot listen on 127\.0\.0\.1:"):
            await agent.start("127.0.0.1", taken.getsockname()[1])
