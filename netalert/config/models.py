"""Pydantic models of config.toml (SPEC.md). Defaults live here.

Every model forbids unknown keys and is frozen: a loaded config is a value the
service swaps atomically on reload, never edits.
"""

from __future__ import annotations

import ipaddress
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netalert.config.types import (
    Address,
    AuthProtocol,
    Duration,
    HostPort,
    PrivProtocol,
    SnmpVersion,
    is_loopback_host,
    mail_address,
    parse_engine_id,
)
from netalert.logs import DEFAULT_LINE_MAX

__all__ = [
    "AgentConfig",
    "CollectGroup",
    "Config",
    "Credentials",
    "Device",
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
]

Severity = Literal["critical", "warning", "info"]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class AgentConfig(Model):
    state_dir: Path = Path("var")
    http: Address | None = HostPort("127.0.0.1", 9162)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # longest log line in characters; the longest values are cut to fit (journald splits at 48K)
    log_line_max: Annotated[int, Field(ge=1024, le=1_048_576)] = DEFAULT_LINE_MAX
    # rules issue: raise the built-in DeviceUnreachable alert when a device stops answering
    device_unreachable: bool = True
    # on SIGTERM: how long the outbox gets to deliver before what is left waits for the next start
    drain_timeout: Duration = timedelta(seconds=5)
    # HTTP server bounds (web/guard.py): a request's line and headers must arrive within
    # http_header_timeout of its first byte (of the accept on a new connection); the rest of
    # the exchange (handler, response write) gets http_body_timeout; a keep-alive connection
    # waits http_idle_timeout for its next request; past http_max_connections open
    # connections a new one gets a 503 and is closed at once.
    http_header_timeout: Duration = timedelta(seconds=5)
    http_body_timeout: Duration = timedelta(seconds=10)
    http_idle_timeout: Duration = timedelta(seconds=15)
    http_max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256
    # accept() failures (EMFILE: out of descriptors) and refusals: one log line per interval
    http_log_interval: Duration = timedelta(seconds=60)
    # SQLite's write-ahead log (state/checkpoint.py): a worker thread copies it back into
    # the database every wal_checkpoint_interval; past wal_max_pages pages (4 KiB each)
    # the commit on the event loop checkpoints the rest itself (SQLite's default: 1,000)
    wal_checkpoint_interval: Duration = timedelta(milliseconds=200)
    wal_max_pages: Annotated[int, Field(ge=1_000, le=1_000_000)] = 10_000
    # heap.py: every gc_freeze_interval the objects made since the last time are collected
    # and frozen, so the collector's full passes walk only what is new; "0s": never
    gc_freeze_interval: Duration = timedelta(seconds=1)

    @field_validator("http", mode="before")
    @classmethod
    def _empty_disables(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator(
        "http_header_timeout",
        "http_body_timeout",
        "http_idle_timeout",
        "http_log_interval",
        "wal_checkpoint_interval",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value


class MibsConfig(Model):
    """``[mibs]``: where MIB sources are and which modules must be loaded.

    ``paths`` are searched first, then ``system_paths``, then the modules built
    into pysnmp and pysnmp-mibs; ``load`` names modules check-config insists on.
    """

    paths: list[Path] = [Path("mibs")]
    load: list[str] = []
    system_paths: list[Path] = [
        Path("/usr/share/snmp/mibs"),
        Path("/usr/share/mibs/ietf"),
        Path("/usr/share/mibs/iana"),
    ]


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

    version: SnmpVersion = "2c"
    community: SecretStr = SecretStr("public")
    port: Port = 161
    timeout: Duration = timedelta(seconds=2)
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    interval: Duration = timedelta(seconds=60)
    jitter: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    max_repetitions: Annotated[int, Field(ge=1, le=1000)] = 25
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 256
    backend: Literal["gufo", "pysnmp"] = "gufo"


class Credentials(Model):
    """``[credentials.NAME]``: named credentials a device refers to."""

    version: SnmpVersion = "3"
    community: SecretStr | None = None
    user: str = ""
    auth_protocol: AuthProtocol | None = None
    auth_password: SecretStr | None = None
    priv_protocol: PrivProtocol | None = None
    priv_password: SecretStr | None = None
    context: str = ""

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

    name: Name
    address: Address
    credentials: str | None = None
    version: SnmpVersion | None = None
    community: SecretStr | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    max_repetitions: Annotated[int, Field(ge=1, le=1000)] | None = None
    backend: Literal["gufo", "pysnmp"] | None = None
    collect: list[str] = []
    labels: dict[str, str] = {}
    enabled: bool = True
    # The device's SNMPv3 engine ID (hex), when known: its v3 traps are credited to it
    # whatever address they come from. The poller learns it too for v3 devices.
    engine_id: str = ""

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

    get: list[str] = []
    walk: list[str] = []


class TrapUser(Model):
    """``[[traps.users]]``: an SNMPv3 user allowed to send traps and informs."""

    user: Name
    auth_protocol: AuthProtocol | None = None
    auth_password: SecretStr | None = None
    priv_protocol: PrivProtocol | None = None
    priv_password: SecretStr | None = None
    engine_ids: list[str] = []

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

    enabled: bool = True
    listen: list[Address] = [HostPort("0.0.0.0", 162)]
    communities: list[SecretStr] = [SecretStr("public")]
    allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        ipaddress.IPv4Network("0.0.0.0/0"),
        ipaddress.IPv6Network("::/0"),
    ]
    users: list[TrapUser] = []
    rcvbuf: Annotated[int, Field(ge=65536)] = 8 * 1024 * 1024
    # Storm control: a token bucket per source (storm_rate/s, storm_burst) and
    # one per source and trap OID (storm_trap_rate/s, storm_trap_burst); traps
    # past either are counted and folded into one event per storm_interval.
    storm_rate: Annotated[float, Field(gt=0)] = 50.0
    storm_burst: Annotated[int, Field(ge=1)] = 200
    storm_trap_rate: Annotated[float, Field(gt=0)] = 10.0
    storm_trap_burst: Annotated[int, Field(ge=1)] = 50
    storm_interval: Duration = timedelta(seconds=60)
    # Memory of storm control: at most storm_max_keys buckets of each kind and open
    # folds (one per source and trap OID); a fold keeps a counter and a sample of the
    # trap's first varbinds of about storm_fold_bytes. Traps past the key cap are shed.
    storm_max_keys: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000
    storm_fold_bytes: Annotated[int, Field(ge=128, le=65_536)] = 1024
    # This receiver's SNMPv3 engine ID (hex); senders of v3 informs discover it.
    # Empty: a random one, generated once and kept in state_dir (file engine_id).
    engine_id: str = ""
    # Hostile-input bounds. A trap with more variable bindings is refused
    # (too_many_varbinds); a v3 message the fast path cannot take (informs,
    # noAuthNoPriv, discovery) larger than slow_path_max_bytes is refused
    # (too_large) before the pysnmp engine sees it.
    max_varbinds: Annotated[int, Field(ge=8, le=1024)] = 256
    slow_path_max_bytes: Annotated[int, Field(ge=484, le=65535)] = 8192
    # SNMPv3 discovery Reports: at most report_rate per second per source
    # (report_burst at once); the rest go unanswered and are counted.
    report_rate: Annotated[float, Field(gt=0)] = 2.0
    report_burst: Annotated[int, Field(ge=1)] = 10
    # Trap relays (forwarders such as snmptrapd or a load balancer): a trap
    # from these networks is credited to the device named by its
    # snmpTrapAddress.0 (v2c/v3) or agent-addr (v1), not to the relay.
    relays: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

    @field_validator("engine_id")
    @classmethod
    def _engine_hex(cls, value: str) -> str:
        if not value:
            return value
        return TrapUser._hex([value])[0]

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


class Rule(Model):
    """``[[rules]]``: a poll rule (``expr``) or a trap rule (``trap``)."""

    name: Name
    expr: str | None = None
    trap: str | None = None
    where: str | None = None
    clear_expr: str | None = None
    clear_trap: str | None = None
    key: list[str] | None = None
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    resolve_after: Duration | None = None
    confirm: str | None = None
    severity: Severity = "warning"
    summary: str = ""
    description: str = ""
    labels: dict[str, str] = {}
    devices: list[str] = []
    match: dict[str, str] = {}
    # rules issue: how often a trap alert with 'confirm' is polled again while it fires
    confirm_every: Duration = timedelta(seconds=60)
    # flap detection (Nagios/Icinga style): weighted % of state changes over the last 21 results
    flap_detection: bool = True
    flap_start: Annotated[float, Field(gt=0, le=100)] = 30.0
    flap_stop: Annotated[float, Field(ge=0, le=100)] = 25.0

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

    host: Annotated[str, Field(min_length=1)]
    port: Port = 25
    security: Literal["none", "starttls", "tls"] = "none"
    # AUTH over a connection without TLS (security = "none"); loopback hosts never need it
    allow_plaintext_auth: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    ca_file: Path | None = None
    verify: bool = True
    timeout: Duration = timedelta(seconds=30)

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_none(cls, value: Any) -> Any:
        return None if value == "" else value

    _username = field_validator("username")(_no_auth_in_clear)


class SmtpConfig(Model):
    """``[smtp]``: the mail server netalert submits to, the outbox and the mail look."""

    host: str = "localhost"
    port: Port = 25
    security: Literal["none", "starttls", "tls"] = "none"
    # AUTH over a connection without TLS (security = "none"); loopback hosts never need it
    allow_plaintext_auth: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    from_: str = Field(default="netalert <netalert@localhost>", alias="from")
    ca_file: Path | None = None
    verify: bool = True
    timeout: Duration = timedelta(seconds=30)
    # mail look: files subject.txt.j2 / body.txt.j2 / body.html.j2 here replace the defaults
    templates_dir: Path | None = None
    status_url: str = ""  # link in every mail; "" derives it from [agent].http
    # outbox: retries back off exponentially up to retry_max; older messages are reported
    retry_max: Duration = timedelta(seconds=60)
    max_age: Duration = timedelta(hours=1)
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    fallback: SmtpRelay | None = None
    # mail-path canary: a test message every canary_interval ("0s" disables) to canary_to;
    # mail failing longer than canary_threshold raises the mail-path flag
    canary_interval: Duration = timedelta(0)
    canary_to: list[str] = []
    canary_threshold: Duration = timedelta(minutes=10)

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


class Route(Model):
    """``[[routes]]``: who gets which alerts; first match wins."""

    name: str = ""
    match: dict[str, str] = {}
    to: Annotated[list[str], Field(min_length=1)]
    group_by: list[str] = ["device"]
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True

    @field_validator("to")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        return [mail_address(value, "recipient") for value in values]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Maintenance(Model):
    """``[[maintenance]]``: a recurring window during which matching alerts send nothing."""

    name: Name
    days: list[Weekday] = []
    start: str
    end: str
    timezone: str = "UTC"
    match: list[str] = []

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

    @field_validator("match")
    @classmethod
    def _matchers(cls, values: list[str]) -> list[str]:
        from netalert.notify.matchers import parse_matcher

        for value in values:
            parse_matcher(value)
        return values


class LimitsConfig(Model):
    """``[limits]``: bounds past which netalert summarizes and counts (README: Limits)."""

    # a group's mail lists this many alerts in full, the most important first; the rest as counts
    max_alerts_per_mail: Annotated[int, Field(ge=0, le=100_000)] = 50
    # a mail's size in bytes, as sent: varbinds and long values are cut to fit, then alerts
    max_mail_bytes: Annotated[int, Field(ge=16_384, le=64 * 1024 * 1024)] = 262_144


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
    limits: LimitsConfig = LimitsConfig()
