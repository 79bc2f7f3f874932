"""The poller against net-snmp snmpd: named rows, rates, restarts, reachability, schedules."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from netalert.config import Config, load_config_text
from netalert.mib import MibTree
from netalert.poll.backends import make_client
from netalert.poll.client import Backend
from netalert.poll.plan import DevicePlan, build_plans
from netalert.poll.poller import Poller, PollResult, Reachability
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.engines import EngineRecord
from tests.support.order import timing
from tests.support.snmpd import DEFAULT_USER, PassScript, Snmpd, SnmpdFactory, V3User
from tests.support.trees import builtin_tree

# pysnmp_mibs' compiled modules call pysnmp's deprecated importSymbols/exportSymbols
# while the MIB layer reads them; the warning is attributed to the module file,
# outside the "pysnmp.*" exemption of pyproject.toml.
pytestmark = [
    timing("in-process"),  # sub-second SNMP timeouts and poll intervals
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]

MD5_DES = V3User("md5des", "MD5", "auth-pass-md5", "DES", "priv-pass-des")


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def config_for(agent: Snmpd, *, credentials: str = "", extra: str = "") -> Config:
    text = f"""
[snmp]
community = "c0mm"
timeout = "500ms"
retries = 1

[credentials.sha]
version = "3"
user = "netalert"
auth_protocol = "SHA-256"
auth_password = "{DEFAULT_USER.auth_password}"
priv_protocol = "AES-128"
priv_password = "{DEFAULT_USER.priv_password}"

[credentials.md5]
version = "3"
user = "md5des"
auth_protocol = "MD5"
auth_password = "{MD5_DES.auth_password}"
priv_protocol = "DES"
priv_password = "{MD5_DES.priv_password}"

[credentials.v1]
version = "1"
community = "c0mm"

[[devices]]
name = "sw1"
address = "{agent.address}"
{credentials}
collect = ["system", "interfaces"]
labels = {{ site = "lab" }}
{extra}

[collect.system]
get = ["SNMPv2-MIB::sysName.0", "SNMPv2-MIB::sysLocation", "SNMPv2-MIB::sysObjectID.0"]

[collect.interfaces]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifOperStatus", "IF-MIB::ifHCInOctets",
        "IF-MIB::ifSpeed", "IF-MIB::ifHighSpeed"]
"""
    return load_config_text(text, source=agent.directory / "config.toml")


@pytest.fixture
def agent(snmpd_factory: SnmpdFactory) -> Snmpd:
    return snmpd_factory(community="c0mm", users=[DEFAULT_USER, MD5_DES], sys_name="sw1-name")


def one_plan(agent: Snmpd, tree: MibTree, credentials: str = "", **kw: object) -> DevicePlan:
    (plan,) = build_plans(config_for(agent, credentials=credentials), tree)
    return replace(plan, **kw)  # type: ignore[arg-type]


CREDENTIALS = {
    "v1": 'credentials = "v1"',
    "v2c": "",
    "v3-sha256-aes128": 'credentials = "sha"',
    "v3-md5-des": 'credentials = "md5"',
}


@pytest.mark.parametrize("backend", ["gufo", "native", "pysnmp"])
@pytest.mark.parametrize("version", list(CREDENTIALS))
async def test_poll_names_and_joins_rows(
    agent: Snmpd, tree: MibTree, version: str, backend: str
) -> None:
    plan = one_plan(agent, tree, CREDENTIALS[version], backend=backend)
    poller = Poller([plan], tree)
    try:
        result = await poller.poll("sw1")
    finally:
        await poller.stop()
    assert result.status == "ok", result.error
    assert result.labels == {"site": "lab"}
    sys_name = result.scalars.get("sysName")
    assert sys_name is not None
    assert (sys_name.name, sys_name.index, sys_name.label) == (
        "SNMPv2-MIB::sysName",
        "0",
        "sw1-name",
    )
    uptime = result.scalars.get("sysUpTime")
    assert uptime is not None and uptime.type is SnmpType.TIMETICKS
    assert result.scalars.get("sysLocation") is not None  # ".0" added to a bare scalar
    by_descr = {r.get("ifDescr").label: r for r in result.rows if r.get("ifDescr")}  # type: ignore[union-attr]
    lo = by_descr["lo"]
    assert lo.index_values == {"ifIndex": int(lo.index)}
    assert lo.table == "IF-MIB::ifEntry"
    oper = lo.get("ifOperStatus")
    assert oper is not None and (oper.value, oper.label) == (1, "up")
    hc = lo.get("ifHCInOctets")  # ifXTable joined with ifTable by ifIndex
    if version == "v1":
        assert hc is None  # SNMPv1 cannot carry Counter64: the agent skips them
    else:
        assert hc is not None and hc.type is SnmpType.COUNTER64
    assert lo.get("sysName") is sys_name  # scalars visible to every row
    assert lo.rates == {}  # first poll: no rates yet
    if version.startswith("v3"):
        record = poller.engines.get("sw1")
        assert record is not None and record.engine_id == agent.engine_id


async def test_backends_give_identical_samples(agent: Snmpd, tree: MibTree) -> None:
    stable = ("sysName", "sysObjectID", "sysLocation", "ifDescr", "ifOperStatus", "ifSpeed")
    seen = {}
    for backend in ("gufo", "native", "pysnmp"):
        plan = one_plan(agent, tree, 'credentials = "sha"', backend=backend)
        poller = Poller([plan], tree)
        result = await poller.poll("sw1")
        await poller.stop()
        # values (and their labels) of clocks and counters move between the two polls
        seen[backend] = [
            (s.name, s.index, s.type)
            + ((s.value, s.label) if s.name.split("::")[1] in stable else (bool(s.label),))
            for s in result.samples
        ]
    assert seen["gufo"] == seen["native"] == seen["pysnmp"]
    assert len(seen["gufo"]) > 10


@pytest.mark.parametrize("backend", ["gufo", "native", "pysnmp"])
async def test_wrong_credentials_fail_clearly(agent: Snmpd, tree: MibTree, backend: str) -> None:
    bad_community = one_plan(agent, tree, backend=backend)
    bad_community = replace(bad_community, target=replace(bad_community.target, community="x"))
    sha = one_plan(agent, tree, 'credentials = "sha"', backend=backend)
    bad_password = replace(sha, name="sw2", target=replace(sha.target, auth_password="wrong-pw-1"))
    poller = Poller([bad_community, bad_password], tree)
    try:
        # The poller's own timeout (0.5 s x 2 attempts) ends both polls; the bounds here only
        # stop a hung poll, and leave room for a loaded machine (the v3 poll discovers first).
        timed_out = await asyncio.wait_for(poller.poll("sw1"), 30.0)
        refused = await asyncio.wait_for(poller.poll("sw2"), 30.0)
    finally:
        await poller.stop()
    assert timed_out.status == "timeout"
    assert timed_out.error == (
        f"{agent.address}: no answer within 0.5s x 2 attempts (check address, port, community)"
    )
    assert refused.status == "auth"
    assert "wrongDigest (wrong auth password or auth protocol)" in refused.error


async def test_unreachable_then_back(agent: Snmpd, tree: MibTree) -> None:
    changes: list[Reachability] = []
    results: list[PollResult] = []
    poller = Poller(
        [one_plan(agent, tree)], tree, on_reachability=changes.append, on_result=results.append
    )
    try:
        # Let the agent's uptime grow past what it will have right after the restart.
        await asyncio.sleep(1.0)
        assert (await poller.poll("sw1")).ok
        agent.stop()
        assert (await poller.poll("sw1")).status == "timeout"
        assert (await poller.poll("sw1")).status == "timeout"
        # every poll without an answer is reported, with the count of them in a row
        assert [(c.reachable, c.device, c.failures) for c in changes] == [
            (False, "sw1", 1),
            (False, "sw1", 2),
        ]
        assert "no answer within" in changes[0].reason
        agent.start()
        again = await poller.poll("sw1")
    finally:
        await poller.stop()
    assert again.ok and again.restarted  # sysUpTime went back: no counter spike
    assert all(row.rates == {} for row in again.rows)
    assert [(c.reachable, c.failures) for c in changes] == [(False, 1), (False, 2), (True, 0)]
    assert [r.status for r in results] == ["ok", "timeout", "timeout", "ok"]
    assert poller.stats.polls == {"ok": 2, "timeout": 2}


PASS_SCRIPT = """#!{python}
import json, sys
state = json.load(open({state!r}))
UP, CTR = ".1.3.6.1.2.1.1.3.0", ".1.3.6.1.2.1.2.2.1.10.1"
mode, oid = sys.argv[1], sys.argv[2]
if mode == "-g" and oid == UP or mode == "-n" and oid == ".1.3.6.1.2.1.1.3":
    print(UP); print("timeticks"); print(state["uptime"])
elif mode == "-g" and oid == CTR or mode == "-n" and oid == ".1.3.6.1.2.1.2.2.1.10":
    print(CTR); print("counter"); print(state["ctr"])
"""


@pytest.fixture
def scripted(snmpd_factory: SnmpdFactory, tmp_path: Path) -> Iterator[tuple[Snmpd, Path]]:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"uptime": 1000, "ctr": 100}))
    source = PASS_SCRIPT.format(python=sys.executable, state=str(state))
    agent = snmpd_factory(
        community="c0mm",
        passes=[
            PassScript(".1.3.6.1.2.1.1.3", source, priority=10),
            PassScript(".1.3.6.1.2.1.2.2.1.10", source, priority=10),
        ],
    )
    yield agent, state


# Both backends: a counter that went back makes the poller read sysUpTime once more
# after the walks, and the next poll's GET must not get that reading again.
@pytest.mark.parametrize("backend", ["gufo", "native", "pysnmp"])
async def test_rates_survive_wrap_and_uptime_going_back(
    scripted: tuple[Snmpd, Path], tree: MibTree, backend: str
) -> None:
    agent, state = scripted
    clock = [1000.0]
    walk = ("1.3.6.1.2.1.2.2.1.5", "1.3.6.1.2.1.2.2.1.10")  # ifSpeed bounds the rate
    base = one_plan(agent, tree)
    # Each request runs the Python pass script (several per GETBULK); on a loaded
    # machine that can take longer than the config's 500 ms, and no timeout is tested here.
    target = replace(base.target, timeout=3.0)
    plan = replace(base, get=("1.3.6.1.2.1.1.3.0",), walk=walk, backend=backend, target=target)
    poller = Poller([plan], tree, clock=lambda: clock[0])
    steps = [  # (seconds later, sysUpTime ticks, ifInOctets.1) -> expected rate
        (0, 1_000, 100, None),  # first poll
        (60, 7_000, 6_100, 100.0),
        (60, 13_000, 2**32 - 900, None),  # implausible jump for a 10 Mbit/s link: dropped
        (60, 19_000, 59_100, 1_000.0),  # Counter32 wrap: 2**32 - 900 + 60_000
        (60, 25_000, 119_100, 1_000.0),
        (60, 500, 50, None),  # agent restarted: sysUpTime went back, counter reset
        (60, 6_500, 6_050, 100.0),
    ]
    rates = []
    try:
        for later, uptime, ctr, _ in steps:
            clock[0] += later
            state.write_text(json.dumps({"uptime": uptime, "ctr": ctr}))
            result = await poller.poll("sw1")
            assert result.ok, result.error
            (row,) = [r for r in result.rows if r.index == "1"]  # the scripted interface
            rates.append(row.rates.get("ifInOctets"))
            assert row.get("ifInOctets").type is SnmpType.COUNTER32  # type: ignore[union-attr]
    finally:
        await poller.stop()
    assert rates == [s[3] for s in steps]
    assert poller.stats.restarts == 1
    assert poller.stats.implausible_rates == 1


async def test_schedule_overruns_and_in_flight_limit(
    snmpd_factory: SnmpdFactory, tree: MibTree
) -> None:
    # snmpd is single-threaded: the slow device gets an agent of its own.
    slow = f"#!{sys.executable}\nimport time, sys\ntime.sleep(0.3)\n"
    slow_agent = snmpd_factory(community="c0mm", passes=[PassScript(".1.3.6.1.4.1.99999", slow)])
    agent = snmpd_factory(community="c0mm")
    base = one_plan(agent, tree, interval=0.25, jitter=0.0, get=("1.3.6.1.2.1.1.3.0",), walk=())
    slow_plan = replace(
        one_plan(slow_agent, tree, interval=0.25, jitter=0.0, walk=()),
        name="slow",
        get=("1.3.6.1.4.1.99999.1.0",),
    )
    fast = [replace(base, name=f"fast{i}") for i in range(3)]
    results: list[PollResult] = []
    poller = Poller([slow_plan, *fast], tree, on_result=results.append, max_in_flight=2)

    def counts() -> dict[str, int]:
        return {name: sum(r.device == name for r in results) for name in poller.devices}

    poller.start()
    # APScheduler runs on the wall clock: wait (bounded) for what the test needs, no longer.
    deadline = asyncio.get_running_loop().time() + 10.0
    while not (
        all(counts()[f"fast{i}"] >= 3 for i in range(3))
        and counts()["slow"] >= 1
        and poller.stats.overruns >= 1
    ):
        assert asyncio.get_running_loop().time() < deadline, (counts(), poller.stats)
        await asyncio.sleep(0.02)
    await poller.stop()
    per_device = counts()
    assert all(per_device[f"fast{i}"] >= 3 for i in range(3)), per_device
    assert 1 <= per_device["slow"] < per_device["fast0"]
    assert poller.stats.overruns >= 1  # the slow device's runs came due while it ran
    assert poller.stats.max_in_flight_seen <= 2


async def test_engine_registry_notifies_once(agent: Snmpd, tree: MibTree) -> None:
    plan = one_plan(agent, tree, 'credentials = "sha"')
    poller = Poller([plan], tree)
    heard: list[EngineRecord] = []
    poller.engines.subscribe(heard.append)
    try:
        await poller.poll("sw1")
        await poller.poll("sw1")
    finally:
        await poller.stop()
    assert [(r.device, r.engine_id, r.port) for r in heard] == [
        ("sw1", agent.engine_id, agent.port)
    ]
    assert poller.engines.get_by_engine(agent.engine_id) is heard[0]


@pytest.mark.parametrize("backend", ["native", "gufo"])
async def test_shared_client_serves_many_devices(
    agent: Snmpd, tree: MibTree, backend: Backend
) -> None:
    client = make_client(backend)
    plans = [replace(one_plan(agent, tree), name=f"d{i}", backend=backend) for i in range(20)]
    poller = Poller(plans, tree, clients={backend: client})
    try:
        results = await asyncio.gather(*(poller.poll(p.name) for p in plans))
    finally:
        await poller.stop()
        await client.close()
    assert [r.status for r in results] == ["ok"] * 20


async def test_jitter_spreads_starts_but_keeps_the_interval(agent: Snmpd, tree: MibTree) -> None:
    """With jitter, devices on a 5 s interval were once polled every ~5.25 s (drift)."""
    base = one_plan(agent, tree, interval=0.4, jitter=0.5, get=("1.3.6.1.2.1.1.3.0",), walk=())
    plans = [replace(base, name=f"dev{i}") for i in range(10)]
    seen: dict[str, list[float]] = {plan.name: [] for plan in plans}
    loop = asyncio.get_running_loop()

    def record(result: PollResult) -> None:
        seen[result.device].append(loop.time())

    poller = Poller(plans, tree, on_result=record)
    poller.start()
    await asyncio.sleep(4.5)
    await poller.stop()
    gaps = [b - a for times in seen.values() for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 60, seen
    mean = sum(gaps) / len(gaps)
    # APScheduler's own jitter delays each run from the previous *jittered* run: the
    # interval grew by half the jitter on average (0.5 s here instead of 0.4 s).
    assert 0.38 <= mean <= 0.42, (mean, gaps)
    starts = sorted(times[0] for times in seen.values())
    assert starts[-1] - starts[0] > 0.1  # first polls still spread out


async def test_set_active_schedules_only_the_active_devices(agent: Snmpd, tree: MibTree) -> None:
    """A cluster node polls the devices of its shards: set_active starts and stops
    schedules without rebuilding the poller."""
    base = one_plan(agent, tree, interval=0.2, jitter=0.0, get=("1.3.6.1.2.1.1.3.0",), walk=())
    plans = [replace(base, name=f"d{i}") for i in range(4)]
    results: list[PollResult] = []
    poller = Poller(plans, tree, on_result=results.append)
    poller.set_active(["d0", "d1", "unknown"])
    poller.start(spread=False)
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 10.0
        while min(sum(r.device == d for r in results) for d in ("d0", "d1")) < 3:
            assert loop.time() < deadline, results
            await asyncio.sleep(0.02)
        assert {r.device for r in results} == {"d0", "d1"}
        poller.set_active(["d1", "d2"])
        await asyncio.sleep(0.05)  # a poll of d0 under way when it was dropped reports nothing
        mark = len(results)
        deadline = loop.time() + 10.0
        while min(sum(r.device == d for r in results[mark:]) for d in ("d1", "d2")) < 3:
            assert loop.time() < deadline, results[mark:]
            await asyncio.sleep(0.02)
    finally:
        await poller.stop()
    assert {r.device for r in results[mark:]} == {"d1", "d2"}
    assert poller.devices == ["d0", "d1", "d2", "d3"]  # still known: set_active again adds them


async def test_a_device_dropped_mid_poll_reports_nothing(
    snmpd_factory: SnmpdFactory, tree: MibTree
) -> None:
    slow = f"#!{sys.executable}\nimport time, sys\ntime.sleep(0.5)\n"
    slow_agent = snmpd_factory(community="c0mm", passes=[PassScript(".1.3.6.1.4.1.99999", slow)])
    plan = replace(
        one_plan(slow_agent, tree, interval=0.2, jitter=0.0, walk=()),
        name="slow",
        get=("1.3.6.1.4.1.99999.1.0",),
    )
    results: list[PollResult] = []
    changes: list[Reachability] = []
    poller = Poller([plan], tree, on_result=results.append, on_reachability=changes.append)
    poller.start(spread=False)
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + 10.0
        while poller.stats.in_flight == 0:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        poller.set_active([])  # lost while its poll is under way
        await asyncio.sleep(1.5)
    finally:
        await poller.stop()
    assert results == [] and changes == []
