"""Poller throughput: netalert's poll path vs the net-snmp C library vs the pysnmp hlapi.

An snmpd (on 0.0.0.0:PORT, communities limited to 127.0.0.0/8, so every
127.x.y.z is a distinct "device" answering from the address asked) serves all
three clients of a round. One *poll* = GET sysUpTime.0 + sysName.0, then
GETBULK walks (max-repetitions 25) of ifDescr, ifOperStatus and ifHCInOctets.

* netalert: Poller(scheduler → gufo client → named Samples, rows, rates), every
  device due at once, ``max_in_flight`` 50, distinct 127.0.x.y per device;
* C: bench/nsbench.c (net-snmp library, async API, 50 sessions), built here
  when a C compiler and libsnmp-dev are present;
* pysnmp: hlapi v3arch asyncio, one SnmpEngine, 50 tasks, lookupMib=False.

Every round starts a fresh snmpd (for v2c and for v3 alike): the v3 ratio used to
swing between full runs because its rounds came after thousands of v2c and
pysnmp polls had gone through the same snmpd. In a round netalert and the C
library go first in turn (odd rounds netalert first, even rounds C first), then
pysnmp; the ratios printed are medians of per-round ratios, with their spread.
Besides polls/s: values (varbinds)/s per core of the client's CPU, and the
snmpd's CPU per poll while each client ran (on a 2-core machine the fastest
client is bound by the snmpd's core).
``--scale`` adds the sizing run: N devices on their real schedule (interval,
jitter, spread) for a while, reporting overruns, CPU and RSS.

Run: .venv/bin/python -m bench.bench_poll [--rounds 3] [--polls 2000] [--scale 10000]
(``--rounds 0 --scale N``: the sizing run alone, so max RSS is that of the poller
only; ``--json FILE`` writes the figures for ``python -m bench``.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.window import Window  # noqa: E402
from netalert.poll.client import Target  # noqa: E402
from netalert.poll.plan import DevicePlan  # noqa: E402
from netalert.poll.poller import Poller  # noqa: E402
from tests.support.snmpd import DEFAULT_USER, Snmpd  # noqa: E402

GETS = ("1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0")
WALKS = ("1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.31.1.1.1.6")
CONCURRENCY = 50


def host_for(i: int) -> str:
    """Device ``i``'s own loopback address (62,500 per /16, then the next /16)."""
    return f"127.{i // 62_500}.{(i // 250) % 250}.{i % 250 + 2}"


STARTUP_CONFIG = """
[agent]
state_dir = "{state}"
http = ""

[mibs]
paths = []

[traps]
enabled = false

[collect.bench]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysName.0"]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifOperStatus", "IF-MIB::ifHCInOctets"]
"""


def startup_config(devices: int, port: int, state: Path) -> str:
    """A config with ``devices`` v2c devices polling the bench's groups every 60 s."""
    parts = [STARTUP_CONFIG.format(state=state)]
    for i in range(devices):
        parts.append(
            f'[[devices]]\nname = "d{i}"\naddress = "{host_for(i)}:{port}"\n'
            'community = "public"\ninterval = "60s"\ncollect = ["bench"]\n'
        )
    return "\n".join(parts)


def startup_child(path: Path) -> None:
    """``--startup-child``: netalert's start-up work for a config, in a fresh process:
    imports, reading and validating the config, the MIB tree (compiled cache), the
    poll plans (what ``netalert run`` does before its first poll). Prints JSON."""
    began = time.perf_counter()
    from netalert.config import load_config
    from netalert.prepare import prepare

    prepared = prepare(load_config(path))
    seconds = time.perf_counter() - began
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec (the bench's own RSS)
    peak = _status_mb("VmHWM:")
    print(json.dumps({"seconds": seconds, "plans": len(prepared.plans), "rss_mb": peak}))


def measure_startup(devices: int, port: int, work: Path) -> dict[str, float]:
    """Seconds from a fresh process to poll plans for ``devices`` devices (best of two)."""
    path = work / f"startup-{devices}.toml"
    (work / "state").mkdir(exist_ok=True)
    path.write_text(startup_config(devices, port, work / "state"))
    runs = []
    for _ in range(2):  # the first also fills the MIB cache if it was empty
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_poll", "--startup-child", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=600,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    print(
        f"start-up: {devices} devices: {best['seconds']:.1f} s to {best['plans']} poll plans, "
        f"max RSS {best['rss_mb']:.0f} MB"
    )
    return {"startup_seconds": best["seconds"], "startup_rss_mb": best["rss_mb"]}


def target(port: int, i: int, v3: bool) -> Target:
    if v3:
        return Target(
            host_for(i),
            port,
            "3",
            user=DEFAULT_USER.name,
            auth_protocol="SHA-256",
            auth_password=DEFAULT_USER.auth_password,
            priv_protocol="AES-128",
            priv_password=DEFAULT_USER.priv_password,
        )
    return Target(host_for(i), port, "2c", community="public")


async def run_netalert(
    tree: object,
    port: int,
    polls: int,
    v3: bool,
    window: Window | None = None,
    agent_pid: int | None = None,
    backend: str = "gufo",
) -> dict[str, float]:
    """``window``: counts the instructions of the polls only (:mod:`bench.window`);
    ``agent_pid``: the snmpd whose CPU over the timed polls is reported too."""
    plans = [
        DevicePlan(f"d{i}", target(port, i, v3), backend, 3600.0, 0.0, GETS, WALKS)  # type: ignore[arg-type]
        for i in range(polls)
    ]
    done = asyncio.Event()
    count = [0, 0]

    def on_result(result: object) -> None:
        count[0] += 1
        count[1] += len(result.samples)  # type: ignore[attr-defined]
        if count[0] == polls:
            done.set()

    poller = Poller(plans, tree, on_result=on_result, max_in_flight=CONCURRENCY)  # type: ignore[arg-type]
    if v3:  # engine discovery once per device is set-up, not the steady state
        await asyncio.gather(*(poller.poll(p.name) for p in plans))
        count[:] = [0, 0]
        done.clear()
    if window is not None:
        window.start()
    agent0 = process_cpu(agent_pid) if agent_pid else 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    poller.start(spread=False)
    await asyncio.wait_for(done.wait(), 600)
    secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    agent_cpu = process_cpu(agent_pid) - agent0 if agent_pid else None
    if window is not None:
        window.stop()
    await poller.stop()
    bad = sum(v for k, v in poller.stats.polls.items() if k != "ok")
    out = {"polls": count[0], "seconds": secs, "cpu": cpu, "samples": count[1], "failed": bad}
    return out if agent_cpu is None else out | {"agent_cpu": agent_cpu}


async def run_pysnmp(
    port: int, polls: int, v3: bool, agent_pid: int | None = None
) -> dict[str, float]:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        bulk_cmd,
        get_cmd,
    )
    from pysnmp.hlapi.v3arch.asyncio import auth as hlauth

    engine = SnmpEngine()
    if v3:
        creds = UsmUserData(
            DEFAULT_USER.name,
            DEFAULT_USER.auth_password,
            DEFAULT_USER.priv_password,
            authProtocol=hlauth.usmHMAC192SHA256AuthProtocol,
            privProtocol=hlauth.usmAesCfb128Protocol,
        )
    else:
        creds = CommunityData("public")
    transports = [
        await UdpTransportTarget.create((host_for(i), port), timeout=2, retries=1)
        for i in range(CONCURRENCY)
    ]
    context = ContextData()
    left = [polls]
    varbinds = [0]

    async def worker(transport: object) -> None:
        while left[0] > 0:
            left[0] -= 1
            err, status, _, vbs = await get_cmd(
                engine,
                creds,
                transport,
                context,
                *[ObjectType(ObjectIdentity(o)) for o in GETS],
                lookupMib=False,
            )
            assert not err and not status, err
            varbinds[0] += len(vbs)
            for root in WALKS:
                cursor = root
                while True:
                    err, status, _, vbs = await bulk_cmd(
                        engine,
                        creds,
                        transport,
                        context,
                        0,
                        25,
                        ObjectType(ObjectIdentity(cursor)),
                        lookupMib=False,
                    )
                    assert not err and not status, err
                    inside = [(str(n), v) for n, v in vbs if str(n).startswith(root + ".")]
                    varbinds[0] += len(inside)
                    if len(inside) < len(vbs) or not inside:
                        break
                    cursor = inside[-1][0]

    await asyncio.gather(*(worker(t) for t in transports[:1]))  # warm-up: discovery
    left[0], varbinds[0] = polls, 0
    agent0 = process_cpu(agent_pid) if agent_pid else 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(t) for t in transports))
    secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    agent_cpu = process_cpu(agent_pid) - agent0 if agent_pid else None
    engine.close_dispatcher()
    out = {"polls": polls, "seconds": secs, "cpu": cpu, "samples": varbinds[0], "failed": 0}
    return out if agent_cpu is None else out | {"agent_cpu": agent_cpu}


def build_c(workdir: Path) -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not Path("/usr/include/net-snmp").is_dir():
        return None
    exe = workdir / "nsbench"
    source = Path(__file__).with_name("nsbench.c")
    subprocess.run([cc, "-O2", "-o", str(exe), str(source), "-lnetsnmp"], check=True)
    return exe


def run_c(
    exe: Path, agent: Snmpd, polls: int, v3: bool, wrap: Sequence[str] = ()
) -> dict[str, float]:
    """``wrap``: a command nsbench runs under (perf stat, valgrind)."""
    args = [*wrap, str(exe), "-p", f"127.0.0.1:{agent.port}", "-n", str(polls)]
    args += ["-c", str(CONCURRENCY)]
    args += [x for o in GETS for x in ("-g", o)] + [x for o in WALKS for x in ("-w", o)]
    if v3:
        args += ["-v", "3", "-u", DEFAULT_USER.name, "-A", DEFAULT_USER.auth_password]
        args += ["-X", DEFAULT_USER.priv_password]
    else:
        args += ["-C", "public"]
    out = subprocess.run(
        args, capture_output=True, text=True, env=agent.env, check=True, timeout=600
    )
    data = json.loads(out.stdout)
    return {
        "polls": data["polls"],
        "seconds": data["seconds"],
        "cpu": data["cpu"],
        "samples": data["varbinds"],
        "failed": 0,
    }


def rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: ru_maxrss would carry its parent's
    peak over exec)."""
    return _status_mb("VmHWM:")


def rss_now_mb() -> float:
    """Resident memory now (VmRSS): the peak alone may still be the MIB load's."""
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_scale(
    tree: object, port: int, devices: int, interval: float, duration: float, backend: str = "gufo"
) -> dict[str, float]:
    rss_before, now_before = rss_mb(), rss_now_mb()
    plans = [
        DevicePlan(f"d{i}", target(port, i, False), backend, interval, 0.1, GETS, WALKS)  # type: ignore[arg-type]
        for i in range(devices)
    ]
    results = [0]
    poller = Poller(plans, tree, on_result=lambda r: results.__setitem__(0, results[0] + 1))  # type: ignore[arg-type]
    cpu0, t0 = time.process_time(), time.perf_counter()
    poller.start()
    # as netalert run does once started (service.freeze_heap): 100,000 plans, device states
    # and scheduler jobs stay out of the collector's full passes
    gc.collect()
    gc.freeze()
    await asyncio.sleep(duration)
    secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    now_after = rss_now_mb()
    await poller.stop()
    late_p99 = poller.stats.lateness.quantile(0.99)
    failed = sum(v for k, v in poller.stats.polls.items() if k != "ok")
    print(
        f"scale: {devices} devices every {interval:g}s for {secs:.0f}s: {results[0]} polls "
        f"(expected ~{devices * secs / interval:.0f}), overruns {poller.stats.overruns}, "
        f"missed {poller.stats.missed}, start late p99 <= {late_p99:g} s, "
        f"failed {failed}, CPU {cpu / secs:.2f} core avg, max RSS {rss_mb():.0f} MB, "
        f"RSS {now_before:.0f} MB before start, {now_after:.0f} MB at the end"
    )
    return {
        "devices": devices,
        "interval": interval,
        "seconds": secs,
        "polls": results[0],
        "expected": devices * secs / interval,
        "overruns": poller.stats.overruns,
        "missed": poller.stats.missed,
        "late_p99": late_p99,
        "failed": failed,
        "cpu_cores": cpu / secs,
        "rss_mb": rss_mb(),
        "rss_before_mb": rss_before,
        "rss_now_before_mb": now_before,
        "rss_now_after_mb": now_after,
    }


def line(name: str, r: dict[str, float]) -> str:
    polls, values = r["polls"] / r["seconds"], r["samples"] / r["seconds"]
    per_core = r["samples"] / r["cpu"] if r["cpu"] > 0 else 0.0
    agent = f"  snmpd {r['agent_cpu'] / r['polls'] * 1000:6.3f} ms/poll" if "agent_cpu" in r else ""
    return (
        f"  {name:<9} {polls:8.0f} polls/s  {values:9.0f} values/s  {per_core:9.0f} values/s"
        f" per core  client CPU {r['cpu'] / r['polls'] * 1000:6.3f} ms/poll{agent}"
        f"  failed {r['failed']:.0f}"
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(
    tree: object, work: Path, exe: Path | None, args: argparse.Namespace, v3: bool, rnd: int
) -> dict[str, dict[str, float]]:
    """One round on a fresh snmpd: netalert and C (first in turn), then pysnmp."""
    agent = Snmpd(directory=work / f"snmpd-{'v3' if v3 else 'v2c'}-{rnd}", users=[DEFAULT_USER])
    agent.start(listen_host="0.0.0.0")
    try:
        out: dict[str, dict[str, float]] = {}
        order = ["netalert", "net-snmp"] if rnd % 2 == 0 else ["net-snmp", "netalert"]
        for name in order:
            if name == "netalert":
                out[name] = await run_netalert(
                    tree, agent.port, args.polls, v3, agent_pid=agent.pid, backend=args.backend
                )
            elif exe is not None:  # its snmpd CPU includes its set-up (sessions, v3 discovery)
                before = process_cpu(agent.pid)
                c = run_c(exe, agent, args.polls, v3)
                out[name] = c | {"agent_cpu": process_cpu(agent.pid) - before}
        out["pysnmp"] = await run_pysnmp(agent.port, args.pysnmp_polls, v3, agent_pid=agent.pid)
        return out
    finally:
        agent.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--pysnmp-polls", type=int, default=300)
    parser.add_argument(
        "--backend", choices=("gufo", "native"), default="gufo", help="netalert's poll backend"
    )
    parser.add_argument("--scale", type=int, default=0, help="devices for the sizing run")
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--startup", action="store_true", help="also time start-up (--scale)")
    parser.add_argument("--startup-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.startup_child:
        startup_child(args.startup_child)
        return
    figures: dict[str, object] = {}

    warnings.simplefilter("ignore", DeprecationWarning)  # pysnmp_mibs, read by the MIB layer
    from netalert.mib import MibTree

    tree = MibTree.builtin()
    # as netalert run does after start (service.freeze_heap): keep the MIB tree out of GC passes
    gc.collect()
    gc.freeze()
    work = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    exe = build_c(work)
    agent: Snmpd | None = None
    try:
        for v3 in (False, True) if args.rounds else ():
            ratios_c, ratios_py = [], []
            rounds: list[dict[str, dict[str, float]]] = []
            print(
                f"{'SNMPv3 authPriv SHA-256/AES-128' if v3 else 'SNMPv2c'}: {args.polls} polls "
                f"(pysnmp {args.pysnmp_polls}), concurrency {CONCURRENCY}, a fresh snmpd per round"
            )
            for rnd in range(args.rounds):
                got = await one_round(tree, work, exe, args, v3, rnd)
                ours, ref = got["netalert"], got["pysnmp"]
                rate = ours["polls"] / ours["seconds"]
                ratios_py.append(rate / (ref["polls"] / ref["seconds"]))
                rounds.append(got)
                print(f" round {rnd + 1} (in this order: {', '.join(got)})")
                print(line("netalert", ours))
                print(line("pysnmp", ref))
                if "net-snmp" in got:
                    c = got["net-snmp"]
                    ratios_c.append(rate / (c["polls"] / c["seconds"]))
                    print(line("net-snmp", c))
            print(f" median ratio netalert/pysnmp: {statistics.median(ratios_py):.1f}x")
            if ratios_c:
                print(
                    f" median ratio netalert/net-snmp C: {statistics.median(ratios_c):.2f}x"
                    f" (rounds {min(ratios_c):.2f}-{max(ratios_c):.2f}x)"
                )
            else:
                print(" net-snmp C reference skipped: needs cc and libsnmp-dev")
            figures["v3" if v3 else "v2c"] = {
                "rounds": rounds,
                "ratio_pysnmp": statistics.median(ratios_py),
                "ratio_c": statistics.median(ratios_c) if ratios_c else None,
                "ratio_c_spread": [min(ratios_c), max(ratios_c)] if ratios_c else None,
            }
        if args.scale:
            agent = Snmpd(directory=work / "snmpd", users=[DEFAULT_USER])
            agent.start(listen_host="0.0.0.0")
        if args.scale:
            figures["scale"] = await run_scale(
                tree, agent.port, args.scale, args.interval, args.duration, args.backend
            )
            if args.startup:
                figures["scale"] |= measure_startup(args.scale, agent.port, work)
        if args.json:
            figures["backend"] = args.backend
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
