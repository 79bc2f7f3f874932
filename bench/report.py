"""The one table of `python -m bench`: rows from each step's figures, with targets.

Each ``rows_<step>`` turns the JSON a step wrote into rows of (measurement,
netalert figure, reference figure(s), ratio, target, verdict). A verdict is
PASS or FAIL against the target, or "info" where the issues set no target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "NOTES",
    "ROWS",
    "Row",
    "exit_status",
    "format_markdown",
    "format_table",
    "rows_for",
]


@dataclass(frozen=True, slots=True)
class Row:
    measurement: str
    netalert: str
    reference: str
    ratio: str
    target: str
    verdict: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "FAIL")


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _rate(r: dict[str, float]) -> float:
    return r["polls"] / r["seconds"]


def _per_core(r: dict[str, float]) -> float:
    """Values (varbinds) per second of the client's CPU: what one core would carry."""
    return r["samples"] / r["cpu"] if r["cpu"] > 0 else 0.0


def rows_poll(fig: dict[str, Any]) -> list[Row]:
    out = []
    # the default backend (gufo) against wave one's 0.6x; the native backend (issue 20 item 4,
    # one GETBULK per poll where the C reference sends a GET and a walk per column) 0.8x
    native = fig.get("backend") == "native"
    want = 0.8 if native else 0.6
    for version, label in (("v2c", "v2c"), ("v3", "v3 authPriv")):
        if native:
            label += " native"
        data = fig.get(version)
        if not data:
            continue
        ours = _median([_rate(r["netalert"]) for r in data["rounds"]])
        cpu = _median(
            [r["netalert"]["cpu"] / r["netalert"]["polls"] * 1000 for r in data["rounds"]]
        )
        core = _median([_per_core(r["netalert"]) for r in data["rounds"]])
        what = f"poll {label}, polls/s,"
        if data.get("ratio_c") is not None:
            ref = _median([_rate(r["net-snmp"]) for r in data["rounds"]])
            ref_core = _median([_per_core(r["net-snmp"]) for r in data["rounds"]])
            spread = data.get("ratio_c_spread")
            ratio = f"{data['ratio_c']:.2f}x"
            if spread:
                ratio += f" ({spread[0]:.2f}-{spread[1]:.2f})"
            out.append(
                Row(
                    f"{what} vs net-snmp C",
                    f"{_n(ours)} ({cpu:.2f} ms CPU/poll, {_n(core)} values/s per core)",
                    f"C {_n(ref)} ({_n(ref_core)} values/s per core)",
                    ratio,
                    f">= {want}x C",
                    _verdict(data["ratio_c"] >= want),
                )
            )
        else:
            out.append(
                Row(f"{what} vs net-snmp C", _n(ours), "not built", "-", f">= {want}x C", "FAIL")
            )
        ref = _median([_rate(r["pysnmp"]) for r in data["rounds"]])
        out.append(
            Row(
                f"{what} vs pysnmp hlapi",
                _n(ours),
                f"pysnmp {_n(ref)}",
                f"{data['ratio_pysnmp']:.1f}x",
                ">= 10x pysnmp",
                _verdict(data["ratio_pysnmp"] >= 10),
            )
        )
    return out


def rows_traps(fig: dict[str, Any]) -> list[Row]:
    cpu = fig["cpu_ms_per_1000"]
    s = fig["settings"]
    out = [
        Row(
            f"trap v2c, CPU ms/1000 traps, vs snmptrapd ({_n(s['count'])} at {_n(s['rate'])}/s)",
            f"{cpu['netalert']:.1f} (decode, name, rule engine: 50 trap rules)",
            f"snmptrapd {cpu['snmptrapd']:.1f} (decode, one log line)",
            f"{fig['cpu_ratio_vs_snmptrapd']:.2f}x",
            "<= 0.8x",  # issue 20, item 3
            _verdict(fig["cpu_ratio_vs_snmptrapd"] <= 0.8),
        ),
        Row(
            f"trap v2c, CPU ms/1000 traps, vs pysnmp ntfrcv ({_n(s['py_count'])} at "
            f"{_n(s['py_rate'])}/s)",
            f"{cpu['netalert']:.1f}",
            f"pysnmp {cpu['pysnmp']:.1f}",
            f"{fig['pysnmp_cpu_over_netalert']:.1f}x less CPU",
            "-",
            "info",
        ),
    ]
    loss = fig["loss"]
    out.append(
        Row(
            f"trap loss, {_n(loss['count'])} v2c at {_n(loss['rate'])}/s, defaults",
            f"{_n(loss['count'] - loss['received'])} lost ({loss['loss_pct']:.3f}%)",
            "-",
            "-",
            "0 lost",
            _verdict(loss["received"] >= loss["count"]),
        )
    )
    v3 = fig["v3"]
    ref = fig.get("v3_pysnmp")
    out.append(
        Row(
            "trap v3 authPriv, traps/s per core",
            f"{_n(v3['per_core'])} ({v3['loss_pct']:.2f}% lost at {_n(v3['rate'])}/s)",
            f"via pysnmp engine {_n(ref['per_core'])}" if ref else "-",
            f"{v3['per_core'] / ref['per_core']:.1f}x" if ref else "-",
            ">= 1,500/s",
            _verdict(v3["per_core"] >= 1500),
        )
    )
    informs = fig.get("informs")
    if informs:
        ours, slow, ref = informs["netalert"], informs["pysnmp"], informs["snmptrapd"]
        out.append(
            Row(
                "inform v3 authPriv, answered, informs/s per core",
                f"{_n(ours['per_core'])} ({ours['loss_pct']:.2f}% lost at {_n(informs['rate'])}/s)",
                f"via pysnmp engine {_n(slow['per_core'])}; snmptrapd {_n(ref['per_core'])}",
                f"{ours['per_core'] / slow['per_core']:.1f}x; "
                f"{ours['per_core'] / ref['per_core']:.2f}x",
                ">= 8,000/s",
                _verdict(ours["per_core"] >= 8000),
            )
        )
    return out


def rows_trap_workers(fig: dict[str, Any]) -> list[Row]:
    s = fig["settings"]
    n = s["workers"]
    many, one, ref = fig[f"workers_{n}"], fig["workers_1"], fig["snmptrapd"]
    what = f"trap v2c, sustained rate at 0 loss ({s['sources']} sources, storms off)"
    loss = fig["loss"]
    rows: list[Row] = []
    if "sender_ceiling" in fig:  # the sender must not be what limits the levels
        top = max(fig["settings"]["levels"])

        def agent_cpu(run: dict[str, Any]) -> str:
            best = run.get("best") or {}
            agent = _n(best.get("agent_cpu_ms_per_1000", 0.0), 1)
            total = best.get("cpu_ms_per_1000", 0.0)
            if total > best.get("agent_cpu_ms_per_1000", 0.0) + 0.05:
                return f"{agent} of {_n(total, 1)} in all"  # the workers' too
            return agent

        rows.append(
            Row(
                f"trap workers: the sender alone, traps/s ({s['sources']} sources); "
                "agent CPU ms/1000 traps at the best level",
                f"{_n(fig['sender_ceiling'])}/s; {n} workers: agent {agent_cpu(many)}",
                f"top level {_n(top)}/s; 1 worker: agent {agent_cpu(one)}",
                "-",
                "-",
                "info",
            )
        )
    rows += [
        Row(
            f"{what}, {n} workers vs 1",
            f"{_n(many['sustained'])}/s",
            f"1 worker {_n(one['sustained'])}/s",
            f"{fig['ratio_vs_1']:.2f}x",
            ">= 1.5x",
            _verdict(fig["ratio_vs_1"] >= 1.5),
        ),
        Row(
            f"{what}, {n} workers vs snmptrapd",
            f"{_n(many['sustained'])}/s",
            f"snmptrapd {_n(ref['sustained'])}/s",
            f"{fig['ratio_vs_snmptrapd']:.2f}x",
            ">= 2x",
            _verdict(fig["ratio_vs_snmptrapd"] >= 2.0),
        ),
        Row(
            f"trap loss, {_n(loss['sent'])} v2c at {_n(loss['rate'])}/s, {n} workers",
            f"{_n(loss['lost'])} lost",
            "-",
            "-",
            "0 lost",
            _verdict(loss["lost"] == 0),
        ),
    ]
    return rows


def rows_latency(fig: list[dict[str, Any]]) -> list[Row]:
    out = []
    for run in fig:
        rate = run["rate"]
        if "p99_ms" not in run:
            out.append(
                Row(f"trap -> SMTP accepted at {rate:g}/s", "no mail", "-", "-", "-", "FAIL")
            )
            continue
        target = "p99 <= 20 ms" if rate <= 100 else "-"
        ok = run["p99_ms"] <= 20 and run["lost"] == 0 if rate <= 100 else None
        lag = f", loop lag {_ms(run['loop_lag_ms'])} ms" if "loop_lag_ms" in run else ""
        out.append(
            Row(
                f"trap -> mail accepted, {rate:g} traps/s for {run['traps'] / rate:g} s",
                f"p50 {_ms(run['p50_ms'])} / p99 {_ms(run['p99_ms'])} ms, "
                f"{run['mails']}/{run['traps']} mails, {run['mails_per_s']:.0f}/s{lag}",
                "anchor survey: p99 ~6.4 ms (not this run)"
                if rate <= 100
                else "before the perf work: 131-217 mails/s",
                "-",
                target,
                _verdict(ok),
            )
        )
    return out


def rows_cluster(fig: dict[str, Any]) -> list[Row]:
    """Cluster mode (3 nodes): trap -> mail p99 beside the single node of the same run,
    failover after kill -9 against 1.5x the lease, mails lost or sent twice over the
    kills, and the nodes' CPU per trap beside the single node's."""
    lat, single, fail, flow = fig["latency"], fig["single"], fig["failover"], fig["flow"]
    nodes, lease = fig["nodes"], fig["lease_s"]
    what = f"cluster ({nodes} nodes)"
    out = []
    if "p99_ms" in lat:
        ref = single.get("p99_ms")
        out.append(
            Row(
                f"{what}: trap -> mail accepted, {lat['rate']:g} traps/s for "
                f"{lat['traps'] / lat['rate']:g} s",
                f"p50 {_ms(lat['p50_ms'])} / p99 {_ms(lat['p99_ms'])} ms, "
                f"{lat['mails']}/{lat['traps']} mails",
                f"single node p99 {_ms(ref)} ms" if ref is not None else "single node: no mail",
                f"{lat['p99_ms'] / ref:.1f}x" if ref else "-",
                "p99 <= 50 ms",
                _verdict(lat["p99_ms"] <= 50 and lat["lost"] == 0),
            )
        )
    else:
        out.append(Row(f"{what}: trap -> mail accepted", "no mail", "-", "-", "-", "FAIL"))
    limit = 1.5 * lease
    worst = fail["max_s"]
    out.append(
        Row(
            f"{what}: failover, kill -9 of a shard's owner -> first mail (lease {lease:g} s, "
            f"{fail['kills']} kills)",
            f"median {fail['median_s']:.2f} / max {worst:.2f} s, {fail['probes_lost']} lost"
            if worst is not None
            else "no mail",
            "-",
            "-",
            f"<= {limit:g} s (1.5x lease)",
            _verdict(worst is not None and worst <= limit and fail["probes_lost"] == 0),
        )
    )
    out.append(
        Row(
            f"{what}: alerts across {fail['kills']} kill -9 ({flow['rate']:g} traps/s)",
            f"{flow['duplicates']} mailed twice, {flow['lost']} lost of {flow['alerts']:,}",
            "-",
            "-",
            "0 twice, 0 lost",
            _verdict(flow["duplicates"] == 0 and flow["lost"] == 0),
        )
    )
    ours, alone = lat["cpu_ms_per_trap"], single["agent_cpu_ms_per_trap"]
    out.append(
        Row(
            f"{what}: CPU per trap -> mail, all nodes, {lat['rate']:g} traps/s",
            f"{ours:.2f} ms",
            f"single node {alone:.2f} ms",
            f"{ours / alone:.1f}x" if alone else "-",
            "-",
            "info",
        )
    )
    return out


# The figure before the perf work: CPU per trap that became a mail, SMTP included.
_BEFORE_ITEM8 = "before the perf work: 3.8 ms/trap -> mail"


def rows_pipeline(fig: dict[str, Any]) -> list[Row]:
    per, grouped = fig["per_trap"], fig["grouped"]
    return [
        Row(
            f"CPU per trap -> committed outbox row, one mail each (in process, {per['traps']:,})",
            f"{per['cpu_ms_per_trap']:.3f} ms",
            _BEFORE_ITEM8,
            f"{3.8 / per['cpu_ms_per_trap']:.1f}x less",
            "<= 1 ms",
            _verdict(per["cpu_ms_per_trap"] <= 1.0 and per["mails"] == per["traps"]),
        ),
        Row(
            f"CPU per trap -> committed new alert, grouped (in process, {grouped['traps']:,})",
            f"{grouped['cpu_ms_per_trap']:.3f} ms",
            "-",
            "-",
            "-",
            "info",
        ),
    ]


def rows_commit(fig: dict[str, Any]) -> list[Row]:
    commit, grouped = fig["commit"], fig["grouped"]
    out = []
    if "p99_ms" in commit:
        out.append(
            Row(
                f"trap -> committed outbox row, {commit['rate']:g} traps/s, one mail each",
                f"p50 {_ms(commit['p50_ms'])} / p99 {_ms(commit['p99_ms'])} ms, "
                f"{commit['committed']}/{commit['traps']}, "
                f"{commit['agent_cpu_ms_per_trap']:.2f} ms CPU/trap, "
                f"loop lag {_ms(commit['loop_lag_ms'])} ms",
                _BEFORE_ITEM8,
                "-",
                "p99 <= 50 ms",
                _verdict(commit["p99_ms"] <= 50 and commit["lost"] == 0),
            )
        )
    else:
        out.append(Row("trap -> committed outbox row", "nothing committed", "-", "-", "-", "FAIL"))
    out.append(
        Row(
            f"new alerts accepted and committed/s, grouped ({grouped['rate']:g}/s offered)",
            f"{grouped['alerts_per_s']:,.0f}/s, {grouped['committed']}/{grouped['traps']}, "
            f"p99 {_ms(grouped.get('p99_ms', 0.0))} ms, "
            f"{grouped['agent_cpu_ms_per_trap']:.2f} ms CPU/trap",
            "-",
            "-",
            ">= 1,000/s",
            _verdict(grouped["alerts_per_s"] >= 1000 and grouped["lost"] == 0),
        )
    )
    return out


def rows_mail(fig: dict[str, Any]) -> list[Row]:
    bare = fig["bare"]["median"]
    out = []
    for name, label in (
        ("outbox", "enqueue, then drain"),
        ("outbox-live", "enqueue while sending"),
    ):
        med = fig[name]["median"]
        out.append(
            Row(
                f"outbox msgs/s, {label}",
                _n(med),
                f"bare aiosmtplib {_n(bare)}",
                f"{med / bare:.2f}x",
                ">= 400/s",
                _verdict(med >= 400),
            )
        )
    return out


def rows_rules(fig: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "rule evaluations/s, typical rule",
            _n(fig["compiled"]),
            f"lambda {_n(fig['python'])}; eval {_n(fig['eval'])}",
            f"{fig['compiled_over_python']:.2f}x; {fig['compiled_over_eval']:.0f}x",
            ">= 200,000/s",
            _verdict(fig["compiled"] >= 200_000),
        ),
        Row(
            "rule engine, row evaluations/s (on_poll)",
            _n(fig["on_poll"]),
            "-",
            "-",
            "-",
            "info",
        ),
        *_rows_trap_rules(fig),
    ]


def _rows_trap_rules(fig: dict[str, Any]) -> list[Row]:
    """Per-trap cost of the trap rules, 5 vs 500 of them, beside the linear scan (before the
    index); figures of a bench without it give no row."""
    if "trap_500" not in fig:
        return []
    us = {k: 1e6 / fig[k] for k in ("trap_5", "trap_500", "trap_5_linear", "trap_500_linear")}
    ratio = fig["trap_500_over_5"]
    return [
        Row(
            "trap rules, us per trap (on_trap, 2 match), 5 -> 500 rules",
            f"{us['trap_5']:.1f} -> {us['trap_500']:.1f} us",
            f"linear scan {us['trap_5_linear']:.1f} -> {us['trap_500_linear']:.1f} us",
            f"{ratio:.2f}x; linear {fig['trap_500_over_5_linear']:.1f}x",
            "500 <= 1.2x 5",
            _verdict(ratio <= 1.2),
        )
    ]


def rows_mib(fig: dict[str, Any]) -> list[Row]:
    return [
        Row(
            f"MIB start, {fig['modules']} cached modules",
            f"{fig['start_s']:.2f} s",
            f"empty cache {fig['first_start_s']:.1f} s",
            "-",
            "< 2 s",
            _verdict(fig["start_s"] < 2.0),
        ),
        Row(
            "OID -> name lookups/s (cold)",
            _n(fig["lookup_cold"]),
            f"pysnmp {_n(fig['pysnmp_per_s'])}",
            f"{fig['lookup_cold'] / fig['pysnmp_per_s']:.1f}x",
            ">= 200,000/s",
            _verdict(fig["lookup_cold"] >= 200_000),
        ),
    ]


def _scale(fig: dict[str, Any], big: bool, rss_max: int = 300) -> list[Row]:
    s = fig["scale"]
    what = f"poller {s['devices'] // 1000}k devices @{s['interval']:g}s"
    if fig.get("backend", "gufo") != "gufo":
        what += f" ({fig['backend']})"
    rss = Row(
        f"{what}: max RSS",
        f"{s['rss_mb']:.0f} MB (now {s.get('rss_now_after_mb', 0):.0f} MB)",
        f"{s.get('rss_now_before_mb', 0):.0f} MB before start",
        "-",
        f"<= {rss_max:,} MB" if big else "-",
        _verdict(s["rss_mb"] <= rss_max) if big else "info",
    )
    if not big:
        return [rss]
    startup = []
    if "startup_seconds" in s:  # a fresh process: config, MIB tree, poll plans
        startup.append(
            Row(
                f"{what}: start-up to poll plans",
                f"{s['startup_seconds']:.1f} s (max RSS {s['startup_rss_mb']:.0f} MB)",
                "-",
                "-",
                "<= 10 s",
                _verdict(s["startup_seconds"] <= 10),
            )
        )
    return [
        rss,
        *startup,
        Row(
            f"{what}: overruns, missed, CPU",
            f"{s['overruns']} overruns, {s.get('missed', 0)} missed, start late p99 "
            f"<= {s.get('late_p99', 0):g} s, {s['cpu_cores']:.2f} core, {s['failed']} failed",
            "-",
            "-",
            "0, 0, p99 late <= 10% of interval, <= 1 core",
            _verdict(
                s["overruns"] == 0
                and s.get("missed", 0) == 0
                and s.get("late_p99", 0) <= s["interval"] / 10
                and s["cpu_cores"] <= 1.0
            ),
        ),
    ]


def rows_instructions(fig: dict[str, Any]) -> list[Row]:
    """Instructions per trap / poll: stable where time ratios move with the load."""
    tool = f"{fig['tool']} {fig['event']}"
    out = []
    labels = {
        "traps": ("trap v2c, instructions per trap", "snmptrapd", "trap"),
        "v3_traps": ("trap v3 authPriv, instructions per trap", "snmptrapd", "trap"),
        "poll_v2c": ("poll v2c, instructions per poll", "net-snmp", "poll"),
        "poll_v3": ("poll v3 authPriv, instructions per poll", "net-snmp", "poll"),
        "informs": ("inform v3 authPriv, instructions per inform", "snmptrapd", "inform"),
    }
    for key, (what, ref_key, _) in labels.items():
        data = fig.get(key)
        if not data:
            continue
        ref = data.get(ref_key)
        name = "net-snmp C" if ref_key == "net-snmp" else ref_key
        out.append(
            Row(
                f"{what} ({tool}, {_n(data['count'])})",
                _n(data["netalert"]),
                f"{name} {_n(ref)}" if ref else "-",
                f"{data['ratio']:.2f}x" if ref else "-",
                "-",
                "info",
            )
        )
    return out


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


ROWS: dict[str, Callable[[Any], list[Row]]] = {
    "poll": rows_poll,
    "traps": rows_traps,
    "trap_workers": rows_trap_workers,
    "latency": rows_latency,
    "pipeline": rows_pipeline,
    "commit": rows_commit,
    "cluster": rows_cluster,
    "mail": rows_mail,
    "rules": rows_rules,
    "mib": rows_mib,
    "scale_1k": lambda fig: _scale(fig, big=False),
    "scale_10k": lambda fig: _scale(fig, big=True),
    "scale_100k": lambda fig: _scale(fig, big=True, rss_max=1024),
    "poll_native": rows_poll,
    "scale_100k_native": lambda fig: _scale(fig, big=True, rss_max=1024),
    "instructions": rows_instructions,
}


def rows_for(step: str, figures: Any) -> list[Row]:
    """The step's rows; a step that failed or wrote nothing gives one ERROR row."""
    if not isinstance(figures, dict | list) or (isinstance(figures, dict) and "error" in figures):
        error = figures.get("error") if isinstance(figures, dict) else "no figures"
        return [Row(step, "ERROR", str(error)[:80], "-", "-", "ERROR")]
    try:
        return ROWS[step](figures)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        return [Row(step, "ERROR", f"figures incomplete: {exc!r}"[:80], "-", "-", "ERROR")]


NOTES = (
    "poll: GET sysUpTime.0 + sysName.0, then GETBULK (25) walks of ifDescr, ifOperStatus, "
    "ifHCInOctets; 50 in flight, one snmpd answering each device on its own 127.0.x.y; "
    "a fresh snmpd per round, netalert and C first in turn; ratio = median of per-round "
    "ratios (their range in brackets); values/s per core = varbinds / client CPU seconds.",
    "trap CPU: /proc/<pid>/task/*/schedstat of each receiver process over the burst, divided "
    "by traps received; snmptrapd logs one line per trap to a file; netalert decodes, names "
    "and runs the rule engine's on_trap (50 trap rules from a config, 2 match); v3 per core "
    "= 1000 / CPU ms per trap at 2,000/s offered.",
    "trap workers: a fresh receiver per kind; the offered rate climbs (5,000/s up, 4 s "
    "each) from 64 loopback source addresses; sustained = the highest rate with every trap "
    "received; each socket (snmptrapd's, and each worker's) has an 8 MiB receive buffer.",
    "trap -> mail: `netalert run` as a subprocess, one rule matching every trap (a new alert "
    "each), group_wait 0, one mail per trap; latency = the sink's 250 after DATA minus the "
    "blaster's send time (CLOCK_MONOTONIC); the sink is aiosmtpd in its own process.",
    "cluster: 3 `netalert run` nodes on one private PostgreSQL and nats-server -js, every "
    "trap sent to one node and evaluated by its shard's owner; lease 3 s; failover = a "
    "node's kill -9 to the first mail of a trap sent right after it; CPU = the nodes' CPU "
    "over the burst / traps (PostgreSQL and NATS not counted); single node = bench.latency "
    "in the same run.",
    "perf: CPU per trap -> committed outbox row = process CPU of the agent's real objects "
    "driven in one process (sender stopped), best of the runs; through `netalert run`, the "
    "SMTP server accepts and never answers, so the mails stay queued: latency = the outbox "
    "row's created (its transaction's start) minus the send time; grouped = alerts table "
    "polled every 20 ms. 3.8 ms/trap -> mail is the figure before the perf work.",
    "outbox: every message committed to SQLite, then sent over one reused connection to "
    "an aiosmtpd Sink in its own process; the reference sends the same messages directly.",
    "poller @60s: devices on their real schedule (spread, jitter), each poll as above "
    "against the loopback snmpd; RSS = the poller process's max RSS, MIB tree included; "
    "CPU = the process's CPU time / wall time.",
)


def exit_status(rows: list[Row]) -> tuple[int, str]:
    """The exit status of ``python -m bench`` for ``rows`` and its summary line.

    1 when a row missed its target (FAIL), a step produced no figures (ERROR) or
    there is no row at all, so a regression cannot pass unnoticed; else 0.
    """
    if not rows:
        return 1, "bench: FAILED: no rows (no step produced figures)"
    bad = [r for r in rows if r.verdict in ("FAIL", "ERROR")]
    if not bad:
        return 0, f"bench: every target met ({len(rows)} rows)"
    named = "; ".join(f"{r.measurement} [{r.verdict}]" for r in bad)
    return 1, f"bench: FAILED {len(bad)} of {len(rows)} rows: {named}"


def format_markdown(rows: list[Row]) -> str:
    """The same table as Markdown (for the README's Performance section)."""
    head = "| measurement | netalert | reference | ratio | target | result |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [c.replace("|", "\\|") for c in asdict(r).values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(rows: list[Row]) -> str:
    """Plain text, one line per row, columns padded; the widest column is the measurement."""
    head = Row("measurement", "netalert", "reference", "ratio", "target", "result")
    cells = [list(asdict(r).values()) for r in [head, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    lines = []
    for n, cell in enumerate(cells):
        lines.append(" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)
