"""Pydantic models of config.toml (docs/configuration.md is made from them). Defaults here.

Every model forbids unknown keys and is frozen: a loaded config is a value the
service swaps atomically on reload, never edits. Every key carries its
``Field(description=...)``: docs/configuration.md is generated from these
models (:mod:`netalert.config.docs`), and a test fails when the two differ.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netalert.config.ack import AckConfig  # [ack] (issue 17)
from netalert.config.types import (
    Address,
    AuthProtocol,
    Duration,
    HostPort,
    PrivProtocol,
    SnmpVersion,
    format_duration,
    is_loopback_host,
    mail_address,
    parse_engine_id,
)
from netalert.logs import DEFAULT_LINE_MAX
from netalert.matchers import Matcher, compile_matchers

__all__ = [
    "DOC_DEFAULT",
    "AgentConfig",
    "ClusterConfig",
    "CollectGroup",
    "Config",
    "Credentials",
    "Device",
    "Inhibit",
    "LimitsConfig",
    "Maintenance",
    "MibsConfig",
    "Route",
    "Rule",
    "SmtpConfig",
    "SmtpRelay",
    "SnmpDefaults",
    "TrapUser",
    "TrapsConfig",
    "shown_default",
]

Severity = Literal["critical", "warning", "info"]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1, max_length=128)]

# The default the reference shows when the value in the model is not what a
# reader needs (an unset per-device key means "the [snmp] value").
DOC_DEFAULT = "doc_default"


def shown_default(text: str) -> dict[str, Any]:
    """``json_schema_extra`` that makes docs/configuration.md show ``text`` as the default."""
    return {DOC_DEFAULT: text}


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


def _empty_disables(value: Any) -> Any:
    """``""`` for an optional setting: off (None)."""
    return None if value == "" else value


class AgentConfig(Model):
    """``[agent]``: state, the web port, logs and the agent's own bounds."""

    state_dir: Path = Field(
        Path("var"),
        description="SQLite state (alerts, outbox, silences) and the compiled MIB cache",
    )
    http: Address | None = Field(
        HostPort("127.0.0.1", 9162),
        description='status page, `/metrics`, `/healthz`, `/api`; `""` disables',
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the least severe log lines written"
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text` (key=value) or `json` (one JSON object per line); "
        "see [Logs](operations.md#logs)",
    )
    log_line_max: Annotated[int, Field(ge=1024, le=1_048_576)] = Field(
        DEFAULT_LINE_MAX,
        description="longest log line in characters; the longest values are cut to fit "
        "(journald splits lines at 48K)",
    )
    device_unreachable: bool = Field(
        True,
        description="raise the built-in `DeviceUnreachable` alert when a device stops answering",
    )
    unreachable_after: Annotated[int, Field(ge=1, le=1000)] = Field(
        2,
        description="consecutive polls without an answer before `DeviceUnreachable` fires; "
        "one lost poll pages nobody",
    )
    unreachable_severity: Severity = Field(
        "critical", description="the severity of `DeviceUnreachable`"
    )
    drain_timeout: Duration = Field(
        timedelta(seconds=5),
        description="on stop, how long the outbox may deliver before the rest waits for "
        "the next start",
    )
    # HTTP server bounds: web/guard.py.
    http_header_timeout: Duration = Field(
        timedelta(seconds=5),
        description="a request's line and headers must arrive within this time of its first "
        "byte (of the connect, on a new connection), or the connection is closed",
    )
    http_body_timeout: Duration = Field(
        timedelta(seconds=10),
        description="from a complete request head until its answer is written; a client too "
        "slow to read the answer is cut off. Request bodies are never read",
    )
    http_idle_timeout: Duration = Field(
        timedelta(seconds=15),
        description="how long a keep-alive connection may wait for its next request",
    )
    http_max_connections: Annotated[int, Field(ge=1, le=100_000)] = Field(
        256,
        description="open connections to the web port; past it a new one is answered `503` "
        "and closed at once",
    )
    http_log_interval: Duration = Field(
        timedelta(seconds=60),
        description="refused connections and failed `accept()` calls (out of file "
        "descriptors) are logged at most once per interval, with the count of what was left out",
    )
    state_hold_max: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        2000,
        description="state writes (alert changes, mails, delivery results) kept in memory "
        "while the state database cannot be written (disk full); past it the oldest is "
        "dropped and counted",
    )
    state_retry_max: Duration = Field(
        timedelta(seconds=5),
        description="longest wait between two attempts to write what is held (the wait "
        "doubles from 0.5 s)",
    )
    task_retry_max: Duration = Field(
        timedelta(seconds=60),
        description="longest wait before a background task that failed is started again "
        "(the wait doubles from 1 s)",
    )

    wal_checkpoint_interval: Duration = Field(
        timedelta(milliseconds=200),
        description="how often a worker thread copies the state database's write-ahead log "
        "back into the database (a passive checkpoint), so commits on the event loop never do",
    )
    wal_max_pages: Annotated[int, Field(ge=1_000, le=1_000_000)] = Field(
        10_000,
        description="pages (4 KiB each) the write-ahead log may hold before a commit on the "
        "event loop checkpoints what the worker thread has not copied yet",
    )
    mail_render_on_loop_max_alerts: Annotated[int, Field(ge=0, le=1000)] = Field(
        10,
        description="a notification mail listing at most this many alerts is rendered on the "
        "event loop (a hand-off to a worker thread costs more than the render); bigger groups "
        "render in a thread; `0`: every mail in a thread",
    )
    mail_render_slice: Duration = Field(
        timedelta(milliseconds=5),
        description="longest run of mails rendered and queued on the event loop before it "
        "lets other work (traps, the web page) run",
    )
    gc_freeze_interval: Duration = Field(
        timedelta(seconds=1),
        description="every interval the objects made since the last one are collected and "
        "frozen, so the garbage collector's full passes walk only what is new; `0s`: never",
    )

    _empty_http = field_validator("http", mode="before")(_empty_disables)

    @field_validator(
        "http_header_timeout",
        "http_body_timeout",
        "http_idle_timeout",
        "http_log_interval",
        "wal_checkpoint_interval",
        "mail_render_slice",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("state_retry_max", "task_retry_max")
    @classmethod
    def _at_least_100ms(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 0.1:
            raise ValueError("must be at least 100ms")
        return value


SHARED_CACHE_ENV = "NETALERT_MIB_SHARED_CACHE"


def default_shared_cache() -> Path | None:
    """``[mibs].shared_cache`` when the config leaves it out: ``$NETALERT_MIB_SHARED_CACHE``
    (empty: none), else the user's cache folder (``$XDG_CACHE_HOME``, ``~/.cache``)."""
    if SHARED_CACHE_ENV in os.environ:
        value = os.environ[SHARED_CACHE_ENV]
        return Path(value) if value else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home folder (a system user): no shared cache
            return None
    return Path(base) / "netalert" / "mib-trees"


class MibsConfig(Model):
    """``[mibs]``: where MIB sources are and which modules must be loaded.

    ``paths`` are searched first, then ``system_paths``, then the modules built
    into pysnmp and pysnmp-mibs; ``load`` names modules check-config insists on.
    """

    paths: list[Path] = Field(
        [Path("mibs")],
        description="folders of MIB sources (vendor MIBs), searched first, sub-folders too; "
        "see [Adding vendor MIBs](mibs.md#adding-vendor-mibs)",
    )
    load: list[str] = Field(
        [],
        description="modules that must load: `check-config`, `run` and a reload refuse the "
        "config when one is missing or failed to compile. Modules the config's names need "
        "load by themselves",
    )
    system_paths: list[Path] = Field(
        [
            Path("/usr/share/snmp/mibs"),
            Path("/usr/share/mibs/ietf"),
            Path("/usr/share/mibs/iana"),
        ],
        description="folders of MIB sources searched after `paths`, before the built-in "
        "compiled modules",
    )
    cache_max_bytes: Annotated[int, Field(ge=1_048_576, le=1 << 40)] = Field(
        256 * 1024 * 1024,
        description="the most bytes read of one file of the MIB cache under `state_dir/mibs` "
        "(the tree's snapshot, a module's facts): a larger one is not read, and the tree is "
        "built from the sources instead (logged as `event=mib_snapshot_untrusted`)",
    )
    shared_cache: Annotated[Path | None, BeforeValidator(_empty_disables)] = Field(
        default_factory=default_shared_cache,
        description="a folder of loaded MIB trees shared by every state folder of this user: "
        "a state folder without its own tree takes one built from the same MIB files from "
        'there instead of compiling; `""` disables; see '
        "[The cache on disk](mibs.md#the-cache-on-disk)",
        json_schema_extra=shown_default(
            f"`${SHARED_CACHE_ENV}`, else `$XDG_CACHE_HOME/netalert/mib-trees` "
            "(`~/.cache/netalert/mib-trees`)"
        ),
    )
    shared_cache_trees: Annotated[int, Field(ge=1, le=1000)] = Field(
        8,
        description="trees the shared cache keeps, one per set of MIB files; past it the "
        "least recently used is removed",
    )


def _check_v3(
    version: str,
    user: str,
    auth_protocol: str | None,
    auth_password: SecretStr | None,
    priv_protocol: str | None,
    priv_password: SecretStr | None,
) -> None:
    if version == "3" and not user:
        raise ValueError("SNMPv3 needs 'user'")
    if auth_protocol and not auth_password:
        raise ValueError("'auth_protocol' is set but 'auth_password' is missing")
    if auth_password and not auth_protocol:
        raise ValueError("'auth_password' is set but 'auth_protocol' is missing")
    if priv_protocol and not priv_password:
        raise ValueError("'priv_protocol' is set but 'priv_password' is missing")
    if priv_password and not priv_protocol:
        raise ValueError("'priv_password' is set but 'priv_protocol' is missing")
    if priv_protocol and not auth_protocol:
        raise ValueError("privacy needs authentication: set 'auth_protocol' too")
    for secret in (auth_password, priv_password):
        if secret is not None and len(secret.get_secret_value()) < 8:
            raise ValueError("SNMPv3 passwords must be at least 8 characters (RFC 3414)")


class SnmpDefaults(Model):
    """``[snmp]``: defaults for every device."""

    version: SnmpVersion = Field("2c", description="SNMP version")
    community: SecretStr = Field(SecretStr("public"), description="v1/v2c community")
    port: Port = Field(161, description="agent UDP port")
    timeout: Duration = Field(timedelta(seconds=2), description="per request attempt")
    retries: Annotated[int, Field(ge=0, le=10)] = Field(
        1, description="retries after the first attempt"
    )
    interval: Duration = Field(timedelta(seconds=60), description="poll interval")
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.1,
        description="random extra delay of the first poll, as a fraction of the interval; "
        "each device's first poll also falls at a fixed point of its interval (from its "
        "name), so 10,000 devices do not start at once: the first poll of a device comes "
        "up to one interval after start. Later polls keep the interval exactly",
    )
    max_repetitions: Annotated[int, Field(ge=1, le=1000)] = Field(
        25, description="GETBULK max-repetitions for walks"
    )
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = Field(
        256, description="requests in flight across all devices"
    )
    max_sessions: Annotated[int, Field(ge=8, le=10_000_000)] = Field(
        50_000,
        description="targets the native backend keeps state for (address, v3 engine and keys), "
        "and gufo sessions kept open (one UDP socket each, at most the descriptor limit "
        "`LimitNOFILE` less a reserve of up to 1,024): past it the least recently used is "
        "dropped and made again at its next poll (`netalert_poll_session_evictions_total`)",
    )
    backend: Literal["gufo", "native", "pysnmp"] = Field(
        "native",
        description="`native` (netalert's own SNMP, one shared socket), `gufo` (gufo-snmp, "
        "a socket per device) or `pysnmp` (the reference); see [Backends](polling.md#backends)",
    )


class Credentials(Model):
    """``[credentials.NAME]``: named credentials a device refers to."""

    version: SnmpVersion = Field("3", description="SNMP version")
    community: SecretStr | None = Field(None, description="for v1/v2c credentials")
    user: str = Field("", description="SNMPv3 user (required for v3)")
    auth_protocol: AuthProtocol | None = Field(None, description="SNMPv3 authentication")
    auth_password: SecretStr | None = Field(None, description="at least 8 characters")
    priv_protocol: PrivProtocol | None = Field(
        None,
        description="SNMPv3 privacy (needs auth); AES-192 and AES-256 with Blumenthal keys, "
        "as net-snmp",
    )
    priv_password: SecretStr | None = Field(None, description="at least 8 characters")
    context: str = Field("", description="SNMPv3 context name")

    @model_validator(mode="after")
    def _consistent(self) -> Credentials:
        _check_v3(
            self.version,
            self.user,
            self.auth_protocol,
            self.auth_password,
            self.priv_protocol,
            self.priv_password,
        )
        if self.version != "3" and self.community is None:
            raise ValueError(f"SNMPv{self.version} credentials need 'community'")
        return self


class Device(Model):
    """``[[devices]]``: one polled device."""

    name: Name = Field(description="unique device name, used in alerts and mail")
    address: Address = Field(description="`host`, `host:port`, `[v6]:port`")
    credentials: str | None = Field(
        None,
        description="name of a `[credentials.NAME]` table",
        json_schema_extra=shown_default("`[snmp]`"),
    )
    version: SnmpVersion | None = Field(
        None,
        description="inline v1/v2c setting instead of `credentials` (v3 needs `credentials`)",
        json_schema_extra=shown_default("`[snmp]`"),
    )
    community: SecretStr | None = Field(
        None,
        description="inline v1/v2c setting instead of `credentials`",
        json_schema_extra=shown_default("`[snmp]`"),
    )
    interval: Duration | None = Field(
        None, description="per-device override", json_schema_extra=shown_default("`[snmp]`")
    )
    timeout: Duration | None = Field(
        None, description="per-device override", json_schema_extra=shown_default("`[snmp]`")
    )
    retries: Annotated[int, Field(ge=0, le=10)] | None = Field(
        None, description="per-device override", json_schema_extra=shown_default("`[snmp]`")
    )
    max_repetitions: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None, description="per-device override", json_schema_extra=shown_default("`[snmp]`")
    )
    backend: Literal["gufo", "native", "pysnmp"] | None = Field(
        None, description="per-device override", json_schema_extra=shown_default("`[snmp]`")
    )
    collect: list[str] = Field([], description="names of `[collect.NAME]` groups to poll")
    labels: dict[str, str] = Field({}, description="extra labels carried by the device's alerts")
    enabled: bool = Field(True, description="`false` keeps the device configured but unpolled")
    engine_id: str = Field(
        "",
        description="the device's SNMPv3 engine ID (hex), when known: its authenticated v3 "
        "traps are credited to it from any address, and its traps are accepted for every "
        "`[[traps.users]]` user (v3 devices that are polled have it learned)",
    )

    @field_validator("engine_id")
    @classmethod
    def _engine_hex(cls, value: str) -> str:
        return TrapUser._hex([value])[0] if value else value

    @model_validator(mode="after")
    def _not_both(self) -> Device:
        if self.credentials is not None and (
            self.version is not None or self.community is not None
        ):
            raise ValueError("give either 'credentials' or inline 'version'/'community', not both")
        if self.version == "3":
            raise ValueError(
                "SNMPv3 needs named credentials: set 'credentials' to a [credentials.NAME]"
            )
        return self


class CollectGroup(Model):
    """``[collect.NAME]``: the OIDs a device group reads."""

    get: list[str] = Field(
        [], description='instances read with GET, e.g. `"SNMPv2-MIB::sysUpTime.0"`'
    )
    walk: list[str] = Field(
        [],
        description="columns or subtrees walked with GETBULK (GETNEXT for v1), e.g. "
        '`"IF-MIB::ifOperStatus"`',
    )


class TrapUser(Model):
    """``[[traps.users]]``: an SNMPv3 user allowed to send traps and informs."""

    user: Name = Field(description="SNMPv3 user name")
    auth_protocol: AuthProtocol | None = Field(None, description="as for credentials")
    auth_password: SecretStr | None = Field(None, description="at least 8 characters")
    priv_protocol: PrivProtocol | None = Field(None, description="as for credentials")
    priv_password: SecretStr | None = Field(None, description="at least 8 characters")
    engine_ids: list[str] = Field(
        [],
        description="engine IDs (hex, `0x` optional) of the senders of v3 traps (informs "
        "need none; polled v3 devices are learned)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrapUser:
        _check_v3(
            "3",
            self.user,
            self.auth_protocol,
            self.auth_password,
            self.priv_protocol,
            self.priv_password,
        )
        return self

    @field_validator("engine_ids")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        return [parse_engine_id(value).hex() for value in values]


class TrapsConfig(Model):
    """``[traps]``: the trap and inform receiver."""

    enabled: bool = Field(True, description="run the trap and inform receiver")
    listen: Annotated[list[Address], Field(max_length=252)] = Field(
        [HostPort("0.0.0.0", 162)],
        description="addresses to listen on (IPv4 and IPv6); IPv6 sockets are IPv6-only; at "
        "most 252 (a trap worker gets a socket of each in one message)",
    )
    communities: list[SecretStr] = Field(
        [SecretStr("public")], description="accepted v1/v2c communities (secrets)"
    )
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        [ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0")],
        description="accepted source networks: set it to your devices' networks. While any "
        "entry has prefix length 0 (as the default does), `check-config` prints a warning "
        "and `run` logs `config_warning path=traps.allow` at start and after each reload",
    )
    users: list[TrapUser] = Field(
        [], description="SNMPv3 users allowed to send traps and informs: `[[traps.users]]`"
    )
    rcvbuf: Annotated[int, Field(ge=65536)] = Field(
        8 * 1024 * 1024,
        description="socket receive buffer requested, bytes (with workers: for each worker's "
        "socket)",
    )
    workers: Annotated[int, Field(ge=0, le=256)] = Field(
        0,
        description="processes receiving traps on each listen address (SO_REUSEPORT, steered "
        "by source address): each decodes, authenticates, applies `allow` and folds storms, "
        "and hands the events to the agent (each worker takes about 100 MB). 0: one per core, "
        "at most 16; 1: the agent receives them "
        "itself. Changing it needs a restart: a reload that changes it is rejected (see "
        "[Traps](traps.md#trap-workers))",
        json_schema_extra=shown_default("0 (one per core)"),
    )
    worker_queue: Annotated[int, Field(ge=64, le=10_000_000)] = Field(
        10_000,
        description="per worker: events waiting for the agent to take them; past it a trap "
        "is dropped (`netalert_traps_dropped_total`)",
    )
    worker_restart_max: Duration = Field(
        timedelta(seconds=10),
        description="a trap worker that exits is started again after 0.2 s, twice as long "
        "each time it exits again within a minute of its start, up to this (0.2s to 1h; "
        "`netalert_trap_worker_restart_delay_seconds`)",
    )
    worker_queue_bytes: Annotated[int, Field(ge=65_536, le=1 << 34)] = Field(
        16 * 1024 * 1024,
        description="per worker: bytes of events and datagrams to record waiting for the "
        "agent to take them (16 MiB; large traps reach it before `worker_queue`); past it a "
        'trap is dropped (`netalert_trap_worker_queue_full_total{bound="bytes"}`)',
    )
    worker_flush_interval: Duration = Field(
        timedelta(milliseconds=2),
        description="how long a trap worker gathers events before it hands them to the "
        "agent as one batch (or sooner, at 256): fewer, larger batches cost the agent less "
        "per trap, at the price of this much delay; 0: at once (0 to 100ms)",
    )
    worker_stall_timeout: Duration = Field(
        timedelta(seconds=10),
        description="a trap worker the agent has not heard from for this long (each says "
        "something at least every second) is stuck: it is killed and started again on "
        "the same socket (`netalert_trap_worker_stalls_total`); 2s to 1h",
    )
    # Storm control: a token bucket per source and one per source and trap OID;
    # traps past either are counted and folded into one event per storm_interval.
    storm_rate: Annotated[float, Field(gt=0)] = Field(
        50.0, description="per source: sustained traps/s before folding"
    )
    storm_burst: Annotated[int, Field(ge=1)] = Field(
        200, description="per source: burst before folding"
    )
    storm_trap_rate: Annotated[float, Field(gt=0)] = Field(
        10.0, description="the same, per source and trap OID: sustained traps/s"
    )
    storm_trap_burst: Annotated[int, Field(ge=1)] = Field(
        50, description="the same, per source and trap OID: burst"
    )
    storm_interval: Duration = Field(
        timedelta(seconds=60), description="how often a storm summary event is emitted"
    )
    storm_max_keys: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        10_000,
        description="open folds (one per source and trap OID) and token buckets of each kind; "
        "past it traps are shed (see [Limits](limits.md))",
    )
    storm_fold_bytes: Annotated[int, Field(ge=128, le=65_536)] = Field(
        1024,
        description="about how many bytes of the trap's first varbinds a fold keeps for its "
        "storm event",
    )
    engine_id: str = Field(
        "",
        description="this receiver's SNMPv3 engine ID (hex), which inform senders discover",
        json_schema_extra=shown_default("random, kept in `state_dir/engine_id`"),
    )
    # Hostile-input bounds, checked before the values are decoded.
    max_varbinds: Annotated[int, Field(ge=8, le=1024)] = Field(
        256,
        description="a trap or inform with more variable bindings is refused "
        "(`too_many_varbinds`) before its values are decoded",
    )
    varbind_cache_entries: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        8192,
        description="varbinds, and runs of varbinds after a trap's first, that the v2c fast "
        "path keeps decoded and named by their encoding (a device sends the same "
        "`ifIndex.3 = 3` trap after trap), in each of its two tables, so that one seen before "
        "is not decoded and named again; with `workers` above 1 also the bound of each "
        "worker's varbinds kept encoded for the agent, and of the agent's kept checked; a "
        "full table is emptied and starts over (`netalert_trap_varbind_cache_evictions_total`)",
    )
    name_cache_entries: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        50_000,
        description="OIDs whose naming through the MIB (object, `MODULE::name`, index) the "
        "receiver keeps, each named once: varbind OIDs, trap OIDs and OID values; with "
        "`workers` above 1 in each worker; a full table is emptied and starts over "
        "(`netalert_trap_name_cache_evictions_total`)",
    )
    slow_path_max_bytes: Annotated[int, Field(ge=484, le=65535)] = Field(
        8192,
        description="a v3 message the fast path cannot take (an inform it cannot answer, "
        "unusual messages) "
        "larger than this is refused (`too_large`) before pysnmp's engine sees it",
    )
    report_rate: Annotated[float, Field(gt=0)] = Field(
        2.0,
        description="SNMPv3 discovery Reports per second per source; past it no Report is "
        "sent (`netalert_trap_reports_limited_total`)",
    )
    report_burst: Annotated[int, Field(ge=1)] = Field(
        10, description="SNMPv3 discovery Reports at once per source"
    )
    relays: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        [],
        description="networks of trap forwarders (snmptrapd, a load balancer): their traps are "
        "credited to the device named by `snmpTrapAddress.0` (v1: agent-addr)",
    )
    record: Path | None = Field(
        None,
        description="a pcap file that receives every datagram the trap sockets get, accepted "
        "or refused, with its source, destination and time (tcpdump, tshark and Wireshark "
        "open it; `netalert replay` replays it). **Sensitive**: v1/v2c communities travel in "
        "clear and are in the file (created mode 0600). An existing file is rotated, not "
        "overwritten. The destination of a datagram received on a wildcard address "
        "(`0.0.0.0`) is recorded as that address",
        json_schema_extra=shown_default('`""` (off)'),
    )
    record_max_bytes: Annotated[int, Field(ge=65536, le=1 << 40)] = Field(
        100 * 1024 * 1024,
        description="past this size (100 MiB by default) the file rotates: `record` → "
        "`record.1` → … (`netalert_trap_record_rotations_total`)",
    )
    record_files: Annotated[int, Field(ge=1, le=1000)] = Field(
        5,
        description="files kept, the current one included; the oldest is deleted. A file "
        "that cannot be written stops the recording (logged, "
        "`netalert_trap_record_errors_total`), never the traps",
    )

    @field_validator("worker_restart_max")
    @classmethod
    def _restart_max(cls, value: timedelta) -> timedelta:
        if not 0.2 <= value.total_seconds() <= 3600:
            raise ValueError("must be from 0.2s (the first wait) to 1h")
        return value

    @field_validator("engine_id")
    @classmethod
    def _engine_hex(cls, value: str) -> str:
        if not value:
            return value
        return TrapUser._hex([value])[0]

    @field_validator("record", mode="before")
    @classmethod
    def _empty_off(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("allow", "relays", mode="before")
    @classmethod
    def _networks(cls, values: Any) -> Any:
        if not isinstance(values, list):
            return values
        out: list[Any] = []
        for value in values:
            try:
                out.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ValueError(f"invalid network {value!r}: use e.g. 192.0.2.0/24") from None
        return out

    @field_validator("worker_flush_interval")
    @classmethod
    def _flush_range(cls, value: timedelta) -> timedelta:
        if value > timedelta(milliseconds=100):
            raise ValueError("must be from 0 to 100ms")
        return value

    @field_validator("worker_stall_timeout")
    @classmethod
    def _stall_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=2) <= value <= timedelta(hours=1):
            raise ValueError("must be between 2s and 1h")
        return value


class Rule(Model):
    """``[[rules]]``: a poll rule (``expr``) or a trap rule (``trap``)."""

    name: Name = Field(description="unique; `DeviceUnreachable` is reserved")
    expr: str | None = Field(
        None, description="poll rule expression (exactly one of `expr`, `trap`)"
    )
    trap: str | None = Field(
        None, description="trap rule: trap name, numeric OID or glob (`IF-MIB::*`)"
    )
    where: str | None = Field(None, description="trap rules: condition over the trap's varbinds")
    clear_expr: str | None = Field(
        None, description="poll rules: resolve only when this is true (hysteresis)"
    )
    clear_trap: str | None = Field(
        None, description="trap rules: this trap with the same key resolves the alert"
    )
    key: list[str] | None = Field(
        None,
        description="trap rules: varbinds that identify one alert",
        json_schema_extra=shown_default("device, trap, index"),
    )
    for_: Duration = Field(
        default=timedelta(0),
        alias="for",
        description="how long the condition must hold before firing",
    )
    keep_firing_for: Duration = Field(
        timedelta(0), description="keep firing this long after the condition clears"
    )
    resolve_after: Duration | None = Field(
        None,
        description='trap rules: resolve when no new trap came for this long; `"0s"` never',
        json_schema_extra=shown_default(
            '`[limits].trap_resolve_after` (`"1h"`) without `clear_trap`, else never'
        ),
    )
    confirm: str | None = Field(
        None,
        description="trap rules: expression polled at once on the trap; the alert resolves "
        "when it is false",
    )
    severity: Severity = Field("warning", description="the alert's severity")
    summary: str = Field(
        "",
        description="Jinja2 template, one line; see [Templates](rules.md#templates)",
    )
    description: str = Field("", description="Jinja2 template")
    value: str | None = Field(
        None,
        description="an expression over the same names as `expr` (or the trap's): what mails, "
        "the web and `netalert alerts` show as the alert's value (see "
        "[The value an alert shows](rules.md#the-value-an-alert-shows))",
        json_schema_extra=shown_default("the deciding operand"),
    )
    resolved_summary: str = Field(
        "",
        description="Jinja2 template of a resolved alert's summary (see "
        "[Templates](rules.md#templates))",
        json_schema_extra=shown_default('`"resolved after ...; was: ..."`'),
    )
    labels: dict[str, str] = Field({}, description="extra labels")
    devices: list[str] = Field(
        [],
        description="restrict the rule to these devices",
        json_schema_extra=shown_default("all"),
    )
    match: dict[str, str] = Field({}, description="restrict the rule to devices with these labels")
    confirm_every: Duration = Field(
        timedelta(seconds=60),
        description="how often a confirmed trap alert is polled again while it fires",
    )
    flap_detection: bool = Field(
        True,
        description="hold notifications of an alert that flaps (Nagios-style weighted state "
        "changes over the last 21 results); see [Flapping](rules.md#flapping)",
    )
    flap_start: Annotated[float, Field(gt=0, le=100)] = Field(
        30.0, description="percent of weighted state changes that starts flapping"
    )
    flap_stop: Annotated[float, Field(ge=0, le=100)] = Field(
        25.0, description="percent of weighted state changes that ends flapping"
    )

    @model_validator(mode="after")
    def _kind(self) -> Rule:
        if (self.expr is None) == (self.trap is None):
            raise ValueError("a rule needs exactly one of 'expr' (poll rule) or 'trap' (trap rule)")
        if self.trap is None:
            for key in ("where", "clear_trap", "key", "resolve_after", "confirm"):
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' belongs to trap rules (rules with 'trap')")
        elif self.clear_expr is not None:
            raise ValueError("'clear_expr' belongs to poll rules (rules with 'expr')")
        if self.flap_stop > self.flap_start:
            raise ValueError("'flap_stop' must not be above 'flap_start'")
        for label in ("rule", "severity", "device"):
            if label in self.labels:
                raise ValueError(f"labels: {label!r} is set by netalert, choose another name")
        return self

    @property
    def is_trap_rule(self) -> bool:
        """True for a rule matching traps rather than polled values."""
        return self.trap is not None


def _no_auth_in_clear(username: str, info: ValidationInfo) -> str:
    """Refuses a ``username`` that AUTH would send unencrypted to another host.

    Runs after ``host``, ``security`` and ``allow_plaintext_auth`` (declared
    before ``username``); a host that failed its own check is not judged here.
    """
    data = info.data
    if (
        username
        and data.get("security") == "none"
        and not data.get("allow_plaintext_auth", False)
        and "host" in data
        and not is_loopback_host(data["host"])
    ):
        raise ValueError(
            f'AUTH with security = "none" would send the password in clear to {data["host"]!r}; '
            'use security = "starttls" or "tls", or set allow_plaintext_auth = true'
        )
    return username


class SmtpRelay(Model):
    """``[smtp.fallback]``: a second smarthost used while the first cannot be reached."""

    host: Annotated[str, Field(min_length=1)] = Field(description="mail server")
    port: Port = Field(25, description="25, 587 (`starttls`), 465 (`tls`)")
    security: Literal["none", "starttls", "tls"] = Field("none", description="as in `[smtp]`")
    allow_plaintext_auth: bool = Field(
        False, description="its own, as in `[smtp]`: loopback hosts never need it"
    )
    username: str = Field("", description="AUTH user, as in `[smtp]`")
    password: SecretStr = Field(SecretStr(""), description="AUTH password")
    ca_file: Path | None = Field(None, description="extra CA bundle to trust")
    verify: bool = Field(True, description="certificate verification")
    timeout: Duration = Field(timedelta(seconds=30), description="per SMTP operation")

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_none(cls, value: Any) -> Any:
        return None if value == "" else value

    _username = field_validator("username")(_no_auth_in_clear)


class SmtpConfig(Model):
    """``[smtp]``: the mail server netalert submits to, the outbox and the mail look."""

    host: str = Field("localhost", description="mail server")
    port: Port = Field(25, description="25, 587 (`starttls`), 465 (`tls`)")
    security: Literal["none", "starttls", "tls"] = Field(
        "none",
        description="`none` (plain, no STARTTLS attempted), `starttls` (required), `tls` "
        "(implicit TLS); see [Choosing port and security](email.md#choosing-port-and-security)",
    )
    allow_plaintext_auth: bool = Field(
        False,
        description="allow AUTH over a connection without TLS to a host that is not loopback "
        "(`localhost`, 127.0.0.0/8, `::1` never need it); the password then crosses the "
        "network in clear",
    )
    username: str = Field(
        "",
        description='AUTH user; with `security = "none"` a config error unless the host is '
        "loopback or `allow_plaintext_auth = true`",
    )
    password: SecretStr = Field(SecretStr(""), description="AUTH password (secret)")
    from_: str = Field(
        default="netalert <netalert@localhost>",
        alias="from",
        description="sender; one line: control characters (CR, LF) are a config error, as in "
        "`to` and `canary_to`",
    )
    ca_file: Path | None = Field(None, description="extra CA bundle to trust")
    verify: bool = Field(
        True, description="certificate verification; `false` logs a warning at start"
    )
    timeout: Duration = Field(timedelta(seconds=30), description="per SMTP operation")
    templates_dir: Path | None = Field(
        None,
        description="folder with `subject.txt.j2`, `body.txt.j2`, `body.html.j2` overriding "
        "the defaults; see [Templates](email.md#templates)",
    )
    status_url: str = Field(
        "",
        description="link to the status page put in every mail",
        json_schema_extra=shown_default("from `[agent].http`"),
    )
    retry_max: Duration = Field(
        timedelta(seconds=60), description="cap of the exponential retry backoff"
    )
    max_age: Duration = Field(
        timedelta(hours=1),
        description="a message waiting longer is reported loudly (log, status page, metrics), "
        "never dropped",
    )
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        100, description="messages sent over one connection before it is recycled"
    )
    fallback: SmtpRelay | None = Field(
        None,
        description="a second smarthost used while the first cannot be reached: `[smtp.fallback]`",
    )
    canary_interval: Duration = Field(
        timedelta(0),
        description='periodic test mail to `canary_to`; `"0s"` is off',
    )
    canary_to: list[str] = Field([], description="recipients of the test mail")
    canary_threshold: Duration = Field(
        timedelta(minutes=10),
        description="mail failing longer than this raises an alarm (status page, metrics, a "
        "`MailPathDown` notice through the fallback)",
    )

    @field_validator("ca_file", "templates_dir", mode="before")
    @classmethod
    def _empty_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("canary_to")
    @classmethod
    def _canary_addresses(cls, values: list[str]) -> list[str]:
        return [mail_address(value, "recipient") for value in values]

    _username = field_validator("username")(_no_auth_in_clear)

    @model_validator(mode="after")
    def _canary_needs_recipients(self) -> SmtpConfig:
        if self.canary_interval.total_seconds() > 0 and not self.canary_to:
            raise ValueError("canary_interval is set but canary_to is empty")
        return self

    @field_validator("from_")
    @classmethod
    def _address(cls, value: str) -> str:
        return mail_address(value, "sender")


def _match_shape(value: Any) -> Any:
    if not isinstance(value, dict | list):
        raise ValueError(
            'expected a table of labels ({ severity = "critical" }) or a list of matchers '
            '(["severity=~critical|warning"])'
        )
    return value


def _match_syntax(value: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
    compile_matchers(value)
    return value


class _Matching(Model):
    """A model with matcher keys, compiled when the model is made (and again for a
    ``model_copy`` that changed one)."""

    _match_keys: ClassVar[tuple[str, ...]] = ("match",)
    _compiled: dict[str, tuple[object, tuple[Matcher, ...]]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for key in self._match_keys:
            self.compiled(key)

    def compiled(self, key: str) -> tuple[Matcher, ...]:
        """The matchers of the key ``key``."""
        value = getattr(self, key)
        cached = self._compiled.get(key)
        if cached is None or cached[0] is not value:
            cached = (value, compile_matchers(value))
            # a new dict, never changed in place: a model_copy shares the old one
            self._compiled = {**self._compiled, key: cached}
        return cached[1]


class Route(_Matching):
    """``[[routes]]``: who gets which alerts; first match wins, children before their parent."""

    name: str = Field(
        "",
        description="name in logs and the notification log",
        json_schema_extra=shown_default("`routes[N]`, `routes[N].routes[M]`"),
    )
    match: dict[str, str] | list[str] = Field(
        {},
        description="which alerts the route takes: a table of labels an alert must carry "
        'with these values (`{ severity = "critical" }`; `severity`, `rule`, `device`, any '
        "label), or a list of matchers `name=value`, `name!=value`, `name=~regex`, "
        "`name!~regex` that must all hold; `{}` matches all",
    )
    to: list[str] = Field(
        [],
        description="recipients",
        json_schema_extra=shown_default("the parent route's; required on `[[routes]]`"),
    )
    group_by: list[str] = Field(
        ["device"],
        description='labels that split alerts into one e-mail per group; `["..."]` makes '
        "every alert its own group",
        json_schema_extra=shown_default('`["device"]`, or the parent route\'s'),
    )
    group_wait: Duration = Field(
        timedelta(seconds=30),
        description="wait before the first mail of a new group",
        json_schema_extra=shown_default('`"30s"`, or the parent route\'s'),
    )
    group_interval: Duration = Field(
        timedelta(minutes=5),
        description="wait before mailing changes of a group",
        json_schema_extra=shown_default('`"5m"`, or the parent route\'s'),
    )
    repeat_interval: Duration = Field(
        timedelta(hours=4),
        description="re-send a still-firing group",
        json_schema_extra=shown_default('`"4h"`, or the parent route\'s'),
    )
    send_resolved: bool = Field(
        True,
        description="mail when alerts resolve",
        json_schema_extra=shown_default("`true`, or the parent route's"),
    )
    routes: list[Route] = Field(
        [],
        description="child routes (the same keys): an alert the route takes goes to its first "
        "matching child instead, or stays with the route when none matches; a child inherits "
        "`to`, `group_by` and the timers it does not set (see [Routing](email.md#routing))",
    )
    continue_: bool = Field(
        False,
        alias="continue",
        description="after this route took an alert, keep looking at its next siblings: "
        "the alert may go to several routes",
    )

    @field_validator("to")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        return [mail_address(value, "recipient") for value in values]

    _shape = field_validator("match", mode="before")(_match_shape)
    _syntax = field_validator("match")(_match_syntax)

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        """``match`` compiled."""
        return self.compiled("match")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Maintenance(_Matching):
    """``[[maintenance]]``: a recurring window during which matching alerts send nothing."""

    name: Name = Field(description="shown on the status page")
    days: list[Weekday] = Field(
        [],
        description="the days the window starts on",
        json_schema_extra=shown_default("every day"),
    )
    start: str = Field(description='`"HH:MM"`')
    end: str = Field(
        description='`"HH:MM"`; an end before the start crosses midnight; equal means the whole day'
    )
    timezone: str = Field("UTC", description='IANA zone, e.g. `"Europe/Rome"`')
    match: list[str] = Field(
        [],
        description="matchers `name=value`, `name!=value`, `name=~regex`, `name!~regex`",
        json_schema_extra=shown_default("all alerts"),
    )

    _syntax = field_validator("match")(_match_syntax)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"invalid time {value!r}: use HH:MM, e.g. 22:00") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Rome or UTC") from None
        return value

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        """``match`` compiled."""
        return self.compiled("match")


class Inhibit(_Matching):
    """``[[inhibit]]``: while a source alert fires, matching target alerts send nothing."""

    name: str = Field(
        "",
        description="shown as the reason an alert is muted",
        json_schema_extra=shown_default("`inhibit[N]`"),
    )
    source_match: dict[str, str] | list[str] = Field(
        description="which firing alerts inhibit: a table of labels or a list of matchers, "
        "as a route's `match`"
    )
    target_match: dict[str, str] | list[str] = Field(
        description="which alerts they inhibit (never the source alert itself): a table of "
        "labels or a list of matchers"
    )
    equal: list[str] = Field(
        [],
        description="labels that must have the same value in the source and the target "
        '(`["device"]`: only the source\'s own device); a label neither has counts as equal',
    )
    _match_keys: ClassVar[tuple[str, ...]] = ("source_match", "target_match")

    _shape = field_validator("source_match", "target_match", mode="before")(_match_shape)
    _syntax = field_validator("source_match", "target_match")(_match_syntax)

    @property
    def source(self) -> tuple[Matcher, ...]:
        """``source_match`` compiled."""
        return self.compiled("source_match")

    @property
    def target(self) -> tuple[Matcher, ...]:
        """``target_match`` compiled."""
        return self.compiled("target_match")


class LimitsConfig(Model):
    """``[limits]``: bounds past which netalert summarizes and counts (docs/limits.md)."""

    max_alerts_per_mail: Annotated[int, Field(ge=0, le=100_000)] = Field(
        50,
        description="alerts a group's mail lists in full, the most important first (firing, "
        "then by severity, then the oldest); the rest are counted: `and 1,150 more: 1,100 "
        "firing, 50 resolved`. `0` lists none",
    )
    max_mail_bytes: Annotated[int, Field(ge=16_384, le=64 * 1024 * 1024)] = Field(
        262_144,
        description="size of one mail as sent (text, HTML and headers): long values and "
        "varbind lists are cut and marked `[truncated]`, then fewer alerts are listed",
    )
    max_active_alerts: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        10_000,
        description="active (pending or firing) alerts of all rules together; past it no new "
        "alert is made (see [Caps](rules.md#caps))",
    )
    max_active_alerts_per_rule: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        1000,
        description="active alerts of one rule; past it no new alert of that rule is made "
        '(the rule gets one summary alert, label `suppressed="true"`)',
    )
    max_label_chars: Annotated[int, Field(ge=16, le=65_536)] = Field(
        256,
        description="characters of an alert's label or value made from device text (an "
        "`ifAlias`, a trap's varbind) after escaping; a longer one is cut and ends in `…`. "
        "The cut text is part of the alert's identity: a change regroups such alerts",
    )
    trap_cache_entries: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        4096,
        description="entries of each of the trap rules' four caches (the rules a trap OID "
        "matches and the names they read; varbind names and indexes decoded through the MIB; "
        "alert labels, fingerprints and keys; which varbind gives each name, per list of "
        "varbind names and indexes), so that a "
        "trap like one seen before is not worked out again; past it the least recently used "
        "entry is dropped (`netalert_trap_cache_evictions_total`)",
    )
    suppressed_resolve_after: Duration = Field(
        timedelta(minutes=5),
        description="a rule's summary alert resolves once the rule is under its caps and "
        "nothing was suppressed for this long",
    )
    trap_resolve_after: Duration = Field(
        timedelta(hours=1),
        description='`resolve_after` of trap rules that set none and have no `clear_trap`; `"0s"`: '
        "such alerts never end by time",
    )
    retention: Duration = Field(
        timedelta(days=7),
        description="longest a resolved alert (at most an hour anyway), a notification log "
        "entry or a mail thread root is kept once no live group needs it",
    )
    prune_interval: Duration = Field(
        timedelta(minutes=5),
        description="how often the notification log and mail threads are pruned",
    )
    prune_batch: Annotated[int, Field(ge=1, le=100_000)] = Field(
        500,
        description="rows per pruning transaction (between two, the agent does its other "
        "work); also resolved alerts dropped per second at most",
    )

    @field_validator("retention", "prune_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _host_name() -> str:
    """The default node name: the host name up to its first dot, if it is a valid name."""
    name = socket.gethostname().split(".")[0]
    return name if _NODE_NAME.fullmatch(name) else "node"


class ClusterConfig(Model):
    """``[cluster]``: nodes sharing PostgreSQL (state, leases) and NATS JetStream (traps).

    Without the section netalert runs alone on its SQLite state (docs/cluster.md).
    """

    postgres: SecretStr = Field(
        description="the shared PostgreSQL database, a URI `postgresql://USER@HOST:PORT/DB` "
        "(a secret: it may hold a password; `${ENV}` and `postgres_file` work as for other "
        "secrets)"
    )
    nats: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server(s) with JetStream: `nats://HOST:PORT` (`tls://` for TLS), "
        "several separated by commas",
    )
    node: str = Field(
        default_factory=_host_name,
        description="this node's name, unique in the cluster: letters, digits, `.`, `_`, `-` "
        "(at most 63)",
        json_schema_extra=shown_default("the host name (up to its first dot)"),
    )
    shards: Annotated[int, Field(ge=1, le=1024)] = Field(
        64,
        description="devices and traps hash to this many shards, the unit a node owns; "
        "every node must use the same number",
    )
    lease: Duration = Field(
        timedelta(seconds=10),
        description="a shard's lease: its owner renews it every third of this, and a node "
        "that stops renewing loses its shards to the others within it (1s to 10m)",
    )
    ack_wait: Duration = Field(
        timedelta(seconds=30),
        description="a trap taken from the stream and not acknowledged within this (its node "
        "died, or could not commit it) is delivered again, to the shard's owner of the moment "
        "(1s to 1h)",
    )
    stream_max_messages: Annotated[int, Field(ge=1000, le=1_000_000_000)] = Field(
        1_000_000,
        description="traps the stream holds at most (received, not yet processed by their "
        "shard's owner); past it a trap is refused and counted, never silently dropped",
    )
    stream_max_bytes: Annotated[int, Field(ge=1_048_576, le=1 << 40)] = Field(
        1 << 30,
        description="bytes the stream holds at most (1 GiB by default); past it a trap is "
        "refused and counted",
    )
    stream_max_age: Duration = Field(
        timedelta(days=1),
        description="a trap no node processed for this long is dropped by the stream (1m to 30d)",
    )
    duplicate_window: Duration = Field(
        timedelta(minutes=2),
        description="the same trap received by several nodes within this is stored once "
        "(1s to `stream_max_age`)",
    )
    max_deliver: Annotated[int, Field(ge=1, le=1000)] = Field(
        5,
        description="a trap taken from the stream whose processing fails at its this-many-th "
        "delivery or later (each `ack_wait` apart) is given up: terminated, counted "
        '(`netalert_cluster_traps_rejected_total{reason="undeliverable"}`) and logged',
    )
    publish_hold_max: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10_000,
        description="traps received while NATS cannot store them, kept in memory in order and "
        "published once it can; past it a trap is dropped and counted",
    )
    mail_claim: Duration = Field(
        timedelta(seconds=60),
        description="how long a node's sender holds a queued mail it took to send (1s to "
        "1h): a mail it has not marked sent by then (the node died or hangs) is sent by "
        "another node; longer than any one SMTP attempt, or a slow attempt's mail may come "
        "twice",
    )
    silence_refresh: Duration = Field(
        timedelta(seconds=2),
        description="how often a node reads the shared silences from PostgreSQL: a silence "
        "added or expired on any node (CLI, reply by mail) counts on every node within this "
        "(100ms to 1m)",
    )
    retention: Duration = Field(
        timedelta(days=7),
        description="sent mails, the notification-log rows of groups told resolved and the "
        "thread roots of ended episodes are deleted from PostgreSQL this long after (1h to "
        "365d); every `[limits] prune_interval`, `[limits] prune_batch` rows per transaction, "
        "by whichever node holds the clean-up lock",
    )

    usm_retention: Duration = Field(
        timedelta(days=30),
        description="an SNMPv3 sender's clock reference no trap moved, and the engine ID of "
        "a device no longer in the config, are deleted from PostgreSQL once unchanged this "
        "long (1h to 3650d; the sender's next trap is then believed, as after a restart); "
        "with the clean-up of `retention`",
    )
    usm_sync: Duration = Field(
        timedelta(seconds=1),
        description="how often a node writes the SNMPv3 senders' clocks and engine IDs it "
        "learned to PostgreSQL and reads the other nodes' (100ms to 1m): a trap replayed to "
        "another node within this may be judged by what that node knew before",
    )

    @field_validator("postgres")
    @classmethod
    def _postgres_uri(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the value: it may carry a password.
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a URI starting with postgresql://")
        return value

    @field_validator("nats")
    @classmethod
    def _nats_urls(cls, value: str) -> str:
        for url in value.split(","):
            scheme, _, rest = url.strip().partition("://")
            if scheme not in ("nats", "tls") or not rest or "/" in rest:
                raise ValueError(
                    f"{url.strip()!r} is not a URL nats://HOST:PORT or tls://HOST:PORT"
                )
        return value

    @field_validator("node")
    @classmethod
    def _node_name(cls, value: str) -> str:
        if not _NODE_NAME.fullmatch(value):
            raise ValueError(
                "letters, digits, '.', '_' and '-' only, at most 63, "
                "starting with a letter or digit"
            )
        return value

    @field_validator("lease")
    @classmethod
    def _lease_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("must be between 1s and 10m")
        return value

    @field_validator("ack_wait", "mail_claim")
    @classmethod
    def _ack_wait_range(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("must be between 1s and 1h")
        return value

    @field_validator("usm_sync", "silence_refresh")
    @classmethod
    def _usm_sync_range(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(minutes=1):
            raise ValueError("must be between 100ms and 1m")
        return value

    @field_validator("retention")
    @classmethod
    def _retention_range(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=365):
            raise ValueError("must be between 1h and 365d")
        return value

    @field_validator("usm_retention")
    @classmethod
    def _usm_retention_range(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=3650):
            raise ValueError("must be between 1h and 3650d")
        return value

    @field_validator("stream_max_age")
    @classmethod
    def _max_age_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=30):
            raise ValueError("must be between 1m and 30d")
        return value

    @field_validator("duplicate_window")
    @classmethod
    def _window_range(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _window_within_age(self) -> ClusterConfig:
        # JetStream refuses a duplicate window longer than the stream keeps messages.
        if self.duplicate_window > self.stream_max_age:
            raise ValueError(
                f"duplicate_window ({format_duration(self.duplicate_window)}) must not be "
                f"longer than stream_max_age ({format_duration(self.stream_max_age)})"
            )
        return self

    def nats_servers(self) -> list[str]:
        """The NATS URLs, one per server."""
        return [url.strip() for url in self.nats.split(",")]


class Config(Model):
    """The whole config.toml."""

    agent: AgentConfig = AgentConfig()
    mibs: MibsConfig = MibsConfig()
    snmp: SnmpDefaults = SnmpDefaults()
    credentials: dict[str, Credentials] = {}
    devices: list[Device] = []
    collect: dict[str, CollectGroup] = {}
    traps: TrapsConfig = TrapsConfig()
    rules: list[Rule] = []
    smtp: SmtpConfig = SmtpConfig()
    routes: list[Route] = []
    maintenance: list[Maintenance] = []
    inhibit: list[Inhibit] = []
    limits: LimitsConfig = LimitsConfig()
    cluster: ClusterConfig | None = None
    ack: AckConfig | None = None  # [ack] (issue 17): replying to an alert mail acts on it
