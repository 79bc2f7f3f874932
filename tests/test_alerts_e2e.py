"""End to end: net-snmp snmpd and snmptrap → poller / trap receiver → rule engine → alerts.

The agent serves ENTITY-SENSOR-MIB's entPhySensorTable (which snmpd does not
implement itself) through a ``pass`` script reading a file the test writes, so
the test moves a temperature across its thresholds. Traps come from
net-snmp's ``snmptrap`` through netalert's receiver. The alert state lives in a
SQLite file; each test restarts the engine (new store on the same file) in the
middle and checks that nothing is sent twice and nothing is forgotten.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from netalert.alerting import Alerting
from netalert.alerts.model import AlertState, Transition, TransitionKind
from netalert.alerts.store import SqliteAlertStore
from netalert.config import Config, load_config_text
from netalert.mib import MibTree
from netalert.poll.plan import SYS_UPTIME, DevicePlan, build_plans
from netalert.poll.poller import Poller, Reachability
from netalert.rules import ConfirmRequest
from netalert.snmp.types import TrapEvent
from netalert.state import open_database
from netalert.traps.receiver import TrapReceiver
from tests.support.ports import free_udp_port
from tests.support.snmpd import PassScript, Snmpd, SnmpdFactory
from tests.support.trees import builtin_tree

# pysnmp_mibs' compiled modules call pysnmp's deprecated importSymbols/exportSymbols
# while the built-in MIB tree reads them (attributed to the module file).
pytestmark = [
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]

SENSORS = ".1.3.6.1.2.1.99.1.1"
PASS_SCRIPT = """#!{python}
import sys
celsius = int(open({value_file!r}).read().strip())
rows = [  # entPhySensorType (celsius), Scale (units), Precision, Value, OperStatus (ok)
    ("{base}.1.1.5", "integer", "8"),
    ("{base}.1.2.5", "integer", "9"),
    ("{base}.1.3.5", "integer", "0"),
    ("{base}.1.4.5", "integer", str(celsius)),
    ("{base}.1.5.5", "integer", "1"),
]
def key(oid):
    return tuple(int(x) for x in oid.strip(".").split("."))
mode, oid = sys.argv[1], sys.argv[2]
if mode == "-g":
    found = [r for r in rows if key(r[0]) == key(oid)]
elif mode == "-n":
    found = [r for r in rows if key(r[0]) > key(oid)]
else:
    print("not-writable")
    sys.exit(0)
if found:
    print("\\n".join(found[0]))
"""


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def sensor_config(agent: Snmpd, state_dir: Path) -> Config:
    text = f"""
[agent]
state_dir = "{state_dir}"

[snmp]
community = "public"
timeout = "10s"
retries = 0

[[devices]]
name = "srv1"
address = "{agent.address}"
collect = ["sensors"]
labels = {{ site = "lab" }}

[collect.sensors]
walk = ["ENTITY-SENSOR-MIB::entPhySensorType", "ENTITY-SENSOR-MIB::entPhySensorValue",
        "ENTITY-SENSOR-MIB::entPhySensorOperStatus"]

[[rules]]
name = "TooHot"
expr = '''entPhySensorType == "celsius" and entPhySensorOperStatus == "ok"
          and entPhySensorValue > 70'''
clear_expr = "entPhySensorValue < 60"
for = "1s"
severity = "critical"
summary = "{{{{ device }}}} sensor {{{{ entPhysicalIndex }}}} at {{{{ value }}}} °C"
"""
    return load_config_text(text, source=state_dir / "config.toml")


class Harness:
    """A poller and an engine over one state directory; :meth:`restart` swaps the engine.

    Both read the harness's clock, which moves only when the test calls :meth:`advance`:
    a rule's ``for`` passes without waiting for it.

    The config's SNMP timeout is long: every request runs the Python ``pass`` script, which
    on a loaded machine can take seconds, and no timeout is tested while the device
    answers. :meth:`expect_silence` swaps in a poller with a short one, asking for
    sysUpTime alone (snmpd's own answer, no script), for the polls meant to go unanswered.
    """

    def __init__(self, config: Config, tree: MibTree) -> None:
        self.config = config
        self.tree = tree
        self.now = time.time()
        self.told: list[Transition] = []
        self.engine = self._engine()
        self.poller = self._poller(build_plans(config, tree))

    def _poller(self, plans: list[DevicePlan]) -> Poller:
        return Poller(plans, self.tree, on_reachability=self._reach, clock=self.clock)

    async def expect_silence(self, seconds: float) -> None:
        """The polls from now on get sysUpTime alone and wait ``seconds`` for it (a new
        poller: the reachability it reports starts afresh)."""
        await self.poller.stop()
        plans = build_plans(self.config, self.tree)
        short = [
            replace(p, get=(SYS_UPTIME,), walk=(), target=replace(p.target, timeout=seconds))
            for p in plans
        ]
        self.poller = self._poller(short)

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def _engine(self) -> Alerting:
        db = open_database(self.config.agent.state_dir)
        return Alerting(self.config, self.tree, SqliteAlertStore(db))

    def _reach(self, change: Reachability) -> None:
        if change.reachable:
            self.told += self.engine.device_reachable(change.device, change.time)
        else:
            self.told += self.engine.device_unreachable(
                change.device, change.time, change.reason, failures=change.failures
            )

    def restart(self) -> None:
        self.engine.stage.store._db.close()  # type: ignore[attr-defined]  # the process ends
        self.engine = self._engine()

    async def poll(self, device: str) -> list[Transition]:
        before = len(self.told)
        result = await self.poller.poll(device)
        if result.ok:
            self.told += self.engine.on_poll(result, self.now)
        return self.told[before:]


def told(changes: list[Transition]) -> list[str]:
    return [f"{c.kind.value}:{c.rule}" for c in changes]


async def test_temperature_fires_once_survives_restart_and_resolves_once(
    snmpd_factory: SnmpdFactory, tree: MibTree, tmp_path: Path
) -> None:
    value = tmp_path / "celsius"
    value.write_text("75")
    script = PASS_SCRIPT.format(python=sys.executable, value_file=str(value), base=SENSORS)
    agent = snmpd_factory(passes=[PassScript(SENSORS, script)])
    harness = Harness(sensor_config(agent, tmp_path / "state"), tree)
    try:
        assert await harness.poll("srv1") == []  # 75 °C: pending for 1 s
        (pending,) = harness.engine.table.active()
        assert pending.state is AlertState.PENDING
        assert await harness.poll("srv1") == []  # still pending: the 1 s has not passed
        harness.advance(1.1)
        fired = await harness.poll("srv1")
        assert told(fired) == ["firing:TooHot"]
        alert = fired[0].alert
        assert alert.annotations["summary"] == "srv1 sensor 5 at 75 °C"
        assert dict(alert.labels) == {
            "rule": "TooHot",
            "severity": "critical",
            "device": "srv1",
            "entPhysicalIndex": "5",
            "site": "lab",
        }
        assert await harness.poll("srv1") == []  # still hot: told once

        harness.restart()
        assert [a.state for a in harness.engine.table.active()] == [AlertState.FIRING]
        assert await harness.poll("srv1") == []  # no second FIRING after the restart
        value.write_text("65")
        assert await harness.poll("srv1") == []  # between clear (60) and fire (70): still firing
        value.write_text("50")
        resolved = await harness.poll("srv1")
        assert told(resolved) == ["resolved:TooHot"]
        assert resolved[0].fingerprint == alert.fingerprint
        assert resolved[0].value == "50"
        assert await harness.poll("srv1") == []

        # The agent stops answering: DeviceUnreachable fires once (at the second poll
        # without an answer), then resolves once.
        await harness.expect_silence(1.0)
        agent.stop()
        assert await harness.poll("srv1") == []
        down = await harness.poll("srv1")
        assert told(down) == ["firing:DeviceUnreachable"]
        assert "no answer within" in down[0].value
        assert await harness.poll("srv1") == []
        agent.start()
        assert told(await harness.poll("srv1")) == ["resolved:DeviceUnreachable"]
    finally:
        await harness.poller.stop()
        harness.engine.stage.store._db.close()  # type: ignore[attr-defined]
    kinds = [c.kind for c in harness.told]
    assert kinds.count(TransitionKind.FIRING) == 2 and kinds.count(TransitionKind.RESOLVED) == 2


TRAP_RULES = """
[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
where = "ifAdminStatus == 'up'"
severity = "warning"
summary = "{{ device }} interface {{ ifIndex }} is down"

[[rules]]
name = "LinkDownConfirmed"
trap = "IF-MIB::linkDown"
confirm = "ifOperStatus != 'up'"
"""
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"


def link(if_index: int, oper: int) -> list[str]:
    base = "1.3.6.1.2.1.2.2.1"
    return [
        *(f"{base}.1.{if_index}", "i", str(if_index)),
        *(f"{base}.7.{if_index}", "i", "1"),
        *(f"{base}.8.{if_index}", "i", str(oper)),
    ]


@pytest.fixture
async def traps(
    tree: MibTree, tmp_path: Path
) -> AsyncIterator[tuple[TrapReceiver, asyncio.Queue[TrapEvent]]]:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    config = load_config_text(
        f'[traps]\nlisten = ["127.0.0.1:{port}"]\ncommunities = ["public"]\n'
    ).traps
    devices = load_config_text('[[devices]]\nname = "sw1"\naddress = "127.0.0.1"\n').devices
    receiver = TrapReceiver(config, sink=queue, tree=tree, devices=devices)
    await receiver.start()
    yield receiver, queue
    await receiver.stop()


async def snmptrap(agent: Snmpd, port: int, trap_oid: str, varbinds: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        "snmptrap", "-v", "2c", "-c", "public", f"127.0.0.1:{port}", "", trap_oid, *varbinds,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=agent.env,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()


async def test_link_down_then_up_one_alert_across_a_restart(
    snmpd_factory: SnmpdFactory,
    tree: MibTree,
    tmp_path: Path,
    traps: tuple[TrapReceiver, asyncio.Queue[TrapEvent]],
) -> None:
    receiver, queue = traps
    port = receiver.addresses[0][1]
    agent = snmpd_factory()  # the device: its ifOperStatus answers the confirm poll
    config = load_config_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[snmp]\ntimeout = "500ms"\n'
        f'[[devices]]\nname = "sw1"\naddress = "{agent.address}"\n' + TRAP_RULES,
        source=tmp_path / "config.toml",
    )
    engine = Alerting(config, tree, SqliteAlertStore(open_database(config.agent.state_dir)))

    async def send(trap_oid: str, varbinds: list[str]) -> list[Transition]:
        await snmptrap(agent, port, trap_oid, varbinds)
        event = await asyncio.wait_for(queue.get(), 5)
        assert event.device == "sw1"
        return engine.on_trap(event, time.time())

    fired = await send(LINK_DOWN, link(3, 2))
    assert sorted(told(fired)) == ["firing:LinkDown", "firing:LinkDownConfirmed"]
    down = next(c for c in fired if c.rule == "LinkDown")
    assert down.annotations["summary"] == "sw1 interface 3 is down"
    assert down.labels["ifIndex"] == "3"
    assert {vb.name for vb in down.alert.varbinds} >= {"IF-MIB::ifIndex", "IF-MIB::ifOperStatus"}
    assert await send(LINK_DOWN, link(3, 2)) == []  # a repeat folds into the same alerts

    engine.stage.store._db.close()  # type: ignore[attr-defined]  # restart
    engine = Alerting(config, tree, SqliteAlertStore(open_database(config.agent.state_dir)))
    assert {a.rule: a.count for a in engine.table.active()} == {
        "LinkDown": 2,
        "LinkDownConfirmed": 2,
    }
    assert await send(LINK_UP, link(4, 1)) == []  # another interface: nothing
    assert told(await send(LINK_UP, link(3, 1))) == ["resolved:LinkDown"]
    assert await send(LINK_UP, link(3, 1)) == []  # resolved once

    # confirm: the agent's interface 3 does not exist, interface 1 (lo) is up.
    (plan,) = build_plans(config, tree)

    async def confirm_poll(request: ConfirmRequest) -> list[Transition]:
        # What the service does with a ConfirmRequest: GET the OIDs now, hand back the answer.
        poller = Poller([replace(plan, get=(SYS_UPTIME, *request.oids), walk=())], tree)
        try:
            answer = await poller.poll(request.device)
        finally:
            await poller.stop()
        assert answer.ok, answer.error
        return engine.on_confirm(request, answer, time.time())

    try:
        (request,) = engine.confirm_requests(time.time())
        assert request.names == ("IF-MIB::ifOperStatus.3",)
        assert await confirm_poll(request) == []  # no such row: unknown, keeps firing
        await send(LINK_DOWN, link(1, 2))
        (lo_request,) = [r for r in engine.confirm_requests(time.time()) if r.index == "1"]
        cleared = await confirm_poll(lo_request)
    finally:
        engine.stage.store._db.close()  # type: ignore[attr-defined]
    assert told(cleared) == ["resolved:LinkDownConfirmed"]
    assert cleared[0].value == "confirmed clear: up"
