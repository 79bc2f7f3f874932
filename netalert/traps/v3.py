"""SNMPv3 traps and informs: the fast path for the ordinary ones, pysnmp's engine for the rest.

A datagram first meets :class:`netalert.snmp.wire.usm.UsmFast`, which accepts
an ordinary authenticated trap itself (7-14 times cheaper) or refuses a wrong
digest or a missing authentication, and accepts and answers an authentic
inform inside the time window. Everything it leaves goes to pysnmp, which owns
the rest of the security work: engine-ID discovery and time-window Reports,
informs it cannot take, unusual levels and every other failure. This module feeds pysnmp
datagrams without pysnmp's own transport, hands accepted notifications back
as plain varbinds, and turns pysnmp's failure indications into rejection
reasons.

A v3 trap is keyed by the sender's engine ID: every configured user is
registered for each engine ID in ``[[traps.users]].engine_ids`` and for each
one the poller learns (:meth:`V3Engine.add_engine_id`, no restart needed).
An inform is keyed by this receiver's own engine ID, which senders discover.

Replay protection (:mod:`netalert.snmp.wire.timeliness`) covers authenticated traps
on both paths with one table: the fast path checks the traps it takes, and a
trap pysnmp accepts is checked after pysnmp authenticated it, with the engine
ID, boots and time of the header the receiver already decoded (they are the
ones pysnmp verified: the digest covers them). Informs name this receiver's
engine ID: it is the authoritative engine for them, and both paths check them
against the one clock, pysnmp's snmpEngineBoots and snmpEngineTime (the ones
its Reports tell senders).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netalert.config.models import TrapUser
from netalert.config.types import parse_engine_id
from netalert.logs import event
from netalert.snmp.nomibcompiler import refuse_mib_compiler
from netalert.snmp.types import maker
from netalert.snmp.wire.ber import DecodeError, RawVarBind
from netalert.snmp.wire.berv3 import (
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    V3Header,
    decode_scoped_pdu,
)
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.traps.reportlimit import ReportLimiter
from netalert.traps.stats import RejectReason

if TYPE_CHECKING:
    from netalert.snmp.wire.usm import FastTrap

__all__ = [
    "V3Engine",
    "V3Notification",
    "load_engine_id",
    "random_engine_id",
    "user_level",
]

log = logging.getLogger("netalert.traps")

# pysnmp's error indications (by class name) → our rejection reasons.
_REASONS = {
    "UnknownSecurityName": RejectReason.UNKNOWN_USER,
    "UnknownUserName": RejectReason.UNKNOWN_USER,
    "UnknownEngineID": RejectReason.UNKNOWN_ENGINE_ID,
    "AuthenticationFailure": RejectReason.BAD_DIGEST,
    "AuthenticationError": RejectReason.BAD_DIGEST,
    "WrongDigest": RejectReason.BAD_DIGEST,
    "DecryptionError": RejectReason.DECRYPT_ERROR,
    "NotInTimeWindow": RejectReason.NOT_IN_TIME_WINDOW,
    "UnsupportedSecurityLevel": RejectReason.BAD_SECURITY_LEVEL,
}


def random_engine_id() -> bytes:
    """A new RFC 3411 engine ID: format 5 (octets) with 12 random bytes.

    Random rather than derived from the host name, which would tell every
    sender (and anyone probing for discovery Reports) what the host is called.
    """
    # 0x80 | enterprise 8072 (net-snmp's, the common choice for generated IDs), format 5.
    return b"\x80\x00\x1f\x88\x05" + secrets.token_bytes(12)


def load_engine_id(state_dir: Path) -> bytes:
    """This receiver's engine ID, kept in ``state_dir/engine_id`` (hex), made on first use.

    Stable across restarts, so inform senders keep what they discovered.

    Raises:
        OSError: the file cannot be read or written.
        ValueError: the file does not hold a 5 to 32 byte hexadecimal engine ID.
    """
    path = state_dir / "engine_id"
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        engine_id = random_engine_id()
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(engine_id.hex() + "\n")
        return engine_id
    try:
        return parse_engine_id(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def user_level(user: TrapUser) -> int:
    """The msgFlags security bits a user must send with: exactly these, no fewer, no more."""
    if user.auth_protocol is None:
        return 0
    return FLAG_AUTH if user.priv_protocol is None else FLAG_AUTH | FLAG_PRIV


_PROBE_MAX_BYTES = 512  # a discovery probe is an empty GetRequest: ~60 bytes
_GET = 0xA0


def _is_probe(data: bytes, header: V3Header) -> bool:
    """An inform sender's engine-ID discovery (RFC 3414 section 4): the only message
    with an empty user name that pysnmp is shown. Unauthenticated, no engine ID,
    reportable, small, and a GetRequest with at most one variable binding."""
    if header.engine_id or header.flags & (FLAG_AUTH | FLAG_PRIV):
        return False
    if not header.flags & FLAG_REPORTABLE or len(data) > _PROBE_MAX_BYTES:
        return False
    scoped = decode_scoped_pdu(data, header.data_at, max_varbinds=1)
    return not isinstance(scoped, DecodeError) and scoped.pdu_type == _GET


# msgFlags security bits → pysnmp's securityLevel (1 noAuthNoPriv, 2 authNoPriv, 3 authPriv).
_PYSNMP_LEVELS = {0: 1, FLAG_AUTH: 2, FLAG_AUTH | FLAG_PRIV: 3}
_NOTIFICATION_PDUS = frozenset({0xA6, 0xA7})


@dataclass(frozen=True, slots=True)
class V3Notification:
    """An accepted v3 trap or inform, in plain values."""

    source: tuple[Any, ...]
    user: str
    engine_id: bytes
    varbinds: tuple[RawVarBind, ...]
    inform: bool
    fast: bool = False  # accepted by the fast path (for counting only)
    security_engine_id: bytes = b""  # msgAuthoritativeEngineID: the sender's for a trap
    authenticated: bool = False  # authNoPriv or authPriv: the engine IDs are vouched for


_notification = maker(V3Notification)  # the fast path makes one per notification


class V3Engine:
    """One pysnmp SnmpEngine receiving v3 notifications for the configured users."""

    def __init__(
        self,
        users: Iterable[TrapUser],
        engine_id: bytes,
        *,
        on_notification: Callable[[V3Notification], None],
        send: Callable[[bytes, tuple[Any, ...]], None],
        fast: bool = True,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = 8192,
        max_varbinds: int = 256,
        reports: ReportLimiter | None = None,
        relaxed_window: bool = False,
        defer_window: bool = False,
        started: int | None = None,
        clocks: EngineClocks | None = None,
    ) -> None:
        """Creates the engine and registers every user for informs.

        With ``fast`` False every datagram passing the security-level check
        goes through pysnmp (the reference path, for the bench and the tests).
        ``clock`` (monotonic seconds) times the senders' clocks for the time window
        and the Report rate limit. ``max_bytes`` bounds what pysnmp is handed,
        ``max_varbinds`` every notification; ``reports`` limits the Reports sent
        per source (None: no limit). ``clocks`` is the senders' clock table to use
        (a cluster node's, shared with the other nodes and kept across reloads);
        None makes a private one (with ``defer_window``, a trap worker's, which
        leaves the time window of traps to the agent: see EngineClocks).
        ``started`` is the wall-clock second this engine's snmpEngineTime counts
        from (a trap worker takes the agent's, so that every worker tells inform
        senders the same time; default now).

        Raises:
            ValueError: a user names a protocol pysnmp does not know.
        """
        # pysnmp and the fast path's ciphers (cryptography) are imported here, by the
        # agent with SNMPv3 users only: tens of milliseconds every other process saves.
        from netalert.snmp.wire.usm import FastTrap, UsmFast
        from netalert.traps import v3pysnmp as ps

        self._fast_trap: type[FastTrap] = FastTrap
        users = list(users)
        self.engine_id = engine_id
        if clocks is None:
            clocks = EngineClocks(clock=clock, relaxed=relaxed_window, defer=defer_window)
        self.clocks = clocks
        self._boots, self._started = 1, int(time.time())  # pysnmp's, read below
        self._usm = UsmFast(
            users,
            engine_id,
            enabled=fast,
            clocks=self.clocks,
            max_varbinds=max_varbinds,
            engine_time=self.engine_time,
        )
        self._on_notification = on_notification
        self._clock = clock
        self._max_bytes = max_bytes
        self._max_varbinds = max_varbinds
        self._reports = reports
        self._send = send
        self._responding = False
        self._probe = False
        self._refused: RejectReason | None = None
        self.reports_limited = 0
        # The security level each user must use: the one check every path shares.
        self._levels = {user.user.encode(): user_level(user) for user in users}
        # Not SnmpEngine(snmpEngineID=...): that persists engine boots under /tmp
        # and leaks the file handle. snmpEngineBoots stays 1; inform senders that
        # cached an older time are resynchronised by a notInTimeWindow Report.
        self._engine = ps.pengine.SnmpEngine()
        refuse_mib_compiler(self._engine)  # no pysmi parser, no MIB downloads
        (mib_engine_id,) = self._engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineID"
        )
        mib_engine_id.syntax = mib_engine_id.syntax.clone(engine_id)
        self._engine.snmpEngineID = mib_engine_id.syntax
        boots, engine_time = self._engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime"
        )
        # snmpEngineTime's value is the wall-clock second pysnmp's engine started; pysnmp
        # answers with (now - that) seconds, so does engine_time().
        if started is not None:
            engine_time.syntax = engine_time.syntax.clone(started)
        self._boots, self._started = int(boots.syntax), int(engine_time.syntax)
        self._dispatcher = ps.Dispatcher(self._send_out)
        self._engine.register_transport_dispatcher(self._dispatcher)
        self._users: dict[bytes, tuple[Any, Any, Any, Any]] = {}
        self._engine_ids: set[bytes] = set()
        self._failure: str | None = None
        self._accepted = False
        self._stale = False
        self._source: tuple[Any, ...] = ()
        self._header: V3Header | None = None
        self._engine.message_dispatcher.register_context_engine_id(
            b"",  # any contextEngineID
            (ps.v2c.SNMPv2TrapPDU.tagSet, ps.v2c.InformRequestPDU.tagSet),
            self._process_pdu,
        )
        self._engine.observer.register_observer(
            self._on_failure, "rfc3412.prepareDataElements:sm-failure"
        )
        for user in users:
            self._add_user(user)
        self.add_engine_id(engine_id)  # informs: the sender uses our engine ID

    def _add_user(self, user: TrapUser) -> None:
        from netalert.traps import v3pysnmp as ps

        pconfig = ps.pconfig
        auth = (
            ps.AUTH_PROTOCOLS[user.auth_protocol] if user.auth_protocol else pconfig.USM_AUTH_NONE
        )
        priv = (
            ps.PRIV_PROTOCOLS[user.priv_protocol] if user.priv_protocol else pconfig.USM_PRIV_NONE
        )
        # The 1 MB password hashes are done once per user, by the fast path (the master
        # keys pysnmp would compute, twice as fast); each engine ID then only localizes.
        # A noAuthNoPriv user has none.
        auth_key, priv_key = self._usm.master_keys(user.user.encode()) or (None, None)
        name = user.user.encode()
        self._users[name] = (auth, auth_key, priv, priv_key)
        for engine_id in self._engine_ids:
            self._register(name, engine_id)
        for text in user.engine_ids:
            self.add_engine_id(bytes.fromhex(text))

    def add_engine_id(self, engine_id: bytes) -> None:
        """Registers every user for traps from ``engine_id``; idempotent, no restart."""
        if engine_id in self._engine_ids:
            return
        self._engine_ids.add(engine_id)
        self._usm.add_engine_id(engine_id)
        for name in self._users:
            self._register(name, engine_id)

    def _register(self, name: bytes, engine_id: bytes) -> None:
        from netalert.traps import v3pysnmp as ps

        pconfig = ps.pconfig
        auth, auth_key, priv, priv_key = self._users[name]
        pconfig.add_v3_user(
            self._engine,
            name.decode(),
            auth,
            auth_key,
            priv,
            priv_key,
            securityEngineId=ps.v2c.OctetString(engine_id),
            authKeyType=pconfig.USM_KEY_TYPE_MASTER,
            privKeyType=pconfig.USM_KEY_TYPE_MASTER,
        )

    def engine_time(self) -> tuple[int, int]:
        """This receiver's snmpEngineBoots and snmpEngineTime, as pysnmp's engine tells them."""
        return self._boots, int(time.time() - self._started)

    def knows_user(self, user: bytes) -> bool:
        """True when ``user`` is configured."""
        return user in self._users

    def knows_engine(self, engine_id: bytes) -> bool:
        """True when users are registered for ``engine_id``."""
        return engine_id in self._engine_ids

    def handle(self, data: bytes, source: tuple[Any, ...], header: V3Header) -> RejectReason | None:
        """Runs one v3 datagram through pysnmp; returns why it was rejected, or None.

        Accepted notifications reach ``on_notification`` before this returns.
        Engine-ID discovery probes (empty user and engine ID, no authentication,
        reportable) are answered by pysnmp (rate-limited) and are not rejections;
        they never create a notification.
        """
        refused = self._gate(data, header)
        if refused is not None:
            return refused
        if not header.user:  # a discovery probe: its Report is rate-limited before pysnmp works
            if self._reports is not None and not self._reports.allow(str(source[0]), self._clock()):
                self.reports_limited += 1
                return None
            self._probe = True
            try:
                return self._pysnmp(data, source, header)
            finally:
                self._probe = False
        outcome = self._usm.receive(data, header)
        if isinstance(outcome, self._fast_trap):
            if outcome.response:  # an inform: answered first, never rate-limited (a Response)
                self._send(outcome.response, source)
            self._on_notification(
                _notification(
                    source,
                    outcome.user,
                    outcome.context_engine_id,
                    outcome.varbinds,
                    bool(outcome.response),
                    True,
                    header.engine_id,
                    True,
                )
            )
            return None
        if isinstance(outcome, RejectReason):
            return outcome
        return self._pysnmp(data, source, header)

    def _pysnmp(
        self, data: bytes, source: tuple[Any, ...], header: V3Header
    ) -> RejectReason | None:
        """Runs one datagram through pysnmp's engine; the reason it was refused, or None."""
        from netalert.traps import v3pysnmp as ps

        if len(data) > self._max_bytes:
            return RejectReason.TOO_LARGE  # bounded before pyasn1 spends on it
        self._failure = None
        self._refused = None
        self._accepted = self._stale = False
        self._source = source
        self._header = header
        domain = ps.UDP6 if ":" in str(source[0]) else ps.UDP
        try:
            self._engine.message_dispatcher.receive_message(self._engine, domain, source, data)
        except Exception:  # pysnmp bug or odd input: one datagram lost, counted, logged
            log.debug(event("trap_v3_engine_error", source=source[0]), exc_info=True)
            return RejectReason.MALFORMED
        if self._accepted:
            return None
        if self._refused is not None:
            return self._refused
        if self._stale:
            return RejectReason.NOT_IN_TIME_WINDOW
        if self._failure is not None:
            if self._failure == "UnknownEngineID" and not header.engine_id:
                return None  # discovery probe of an inform sender: pysnmp sent the Report
            if self._failure == "NotInTimeWindow" and header.flags & FLAG_AUTH and header.time == 0:
                return None  # second discovery step (time synchronisation)
            if self._failure == "UnknownSecurityName" and not self.knows_engine(header.engine_id):
                return RejectReason.UNKNOWN_ENGINE_ID
            return _REASONS.get(self._failure, RejectReason.MALFORMED)
        return RejectReason.UNEXPECTED_PDU if header.flags else RejectReason.MALFORMED

    def _gate(self, data: bytes, header: V3Header) -> RejectReason | None:
        """Who may reach either path: a configured user at exactly its level.

        The empty user name is only ever an engine-ID discovery probe; a
        noAuthNoPriv message must carry a notification (its PDU is readable).
        """
        level = header.flags & (FLAG_AUTH | FLAG_PRIV)
        if not header.user:
            if _is_probe(data, header):
                return None
            return RejectReason.UNKNOWN_USER
        required = self._levels.get(header.user)
        if required is None:
            return RejectReason.UNKNOWN_USER
        if level != required:
            return RejectReason.BAD_SECURITY_LEVEL
        engine_id = header.engine_id
        if engine_id != self.engine_id and engine_id not in self._engine_ids:
            # Refused here, not by pysnmp: its unknown-engine path is costly (it formats
            # the whole message into an error text) and answers with a Report.
            return RejectReason.UNKNOWN_ENGINE_ID
        if not level:
            scoped = decode_scoped_pdu(data, header.data_at, max_varbinds=self._max_varbinds)
            if isinstance(scoped, DecodeError):
                if scoped.reason == "too_many_varbinds":
                    return RejectReason.TOO_MANY_VARBINDS
                return RejectReason.MALFORMED
            if scoped.pdu_type not in _NOTIFICATION_PDUS:
                return RejectReason.UNEXPECTED_PDU
        return None

    def _send_out(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """pysnmp's outgoing messages: inform Responses, and Reports (rate-limited)."""
        limited = (
            not self._responding
            and not self._probe  # the probe took its token before pysnmp saw it
            and self._reports is not None
            and not self._reports.allow(str(addr[0]), self._clock())
        )
        if limited:
            self.reports_limited += 1
            return
        self._send(data, addr)

    def detail(self, header: V3Header, reason: RejectReason) -> str:
        """The log detail of a rejected message: its user, and its clock if stale."""
        user = header.user.decode("utf-8", "replace")
        if reason is not RejectReason.NOT_IN_TIME_WINDOW:
            return user
        return f"{user} {self.clocks.describe(header.engine_id, header.boots, header.time)}"

    def tick(self, now: float) -> None:
        """Lets pysnmp expire its caches; call about once a second."""
        self._dispatcher.handle_timer_tick(now)

    def _on_failure(self, engine: Any, point: str, variables: Any, ctx: Any) -> None:
        info = variables.get("statusInformation") or {}
        indication = info.get("errorIndication") if hasattr(info, "get") else None
        self._failure = type(indication).__name__ if indication is not None else "unknown"

    def _process_pdu(
        self,
        snmpEngine: Any,
        messageProcessingModel: Any,
        securityModel: Any,
        securityName: Any,
        securityLevel: Any,
        contextEngineId: Any,
        contextName: Any,
        pduVersion: Any,
        PDU: Any,
        maxSizeResponseScopedPDU: Any,
        stateReference: Any,
    ) -> None:
        from netalert.traps import v3pysnmp as ps

        header = self._header
        # Defence in depth behind _gate: whatever pysnmp decided, only a configured
        # user at exactly its level creates a notification.
        required = self._levels.get(str(securityName).encode())
        if required is None:
            self._refused = RejectReason.UNKNOWN_USER
            return
        if _PYSNMP_LEVELS[required] != int(securityLevel):
            self._refused = RejectReason.BAD_SECURITY_LEVEL
            return
        if (
            header is not None
            and int(securityLevel) > 1  # authenticated: only then may the reference move
            and header.engine_id != self.engine_id  # the sender is authoritative
            and not self.clocks.admit(
                header.engine_id, header.boots, header.time, header.auth_params
            )
        ):
            self._stale = True
            return
        varbinds = ps.v2c.apiPDU.get_varbinds(PDU)
        if len(varbinds) > self._max_varbinds:
            self._refused = RejectReason.TOO_MANY_VARBINDS
            return
        inform = PDU.tagSet in ps.CONFIRMED
        if inform:
            response = ps.v2c.apiPDU.get_response(PDU)
            ps.v2c.apiPDU.set_error_status(response, 0)
            ps.v2c.apiPDU.set_error_index(response, 0)
            ps.v2c.apiPDU.set_varbinds(response, varbinds)
            self._responding = True
            try:
                snmpEngine.message_dispatcher.return_response_pdu(
                    snmpEngine,
                    messageProcessingModel,
                    securityModel,
                    securityName,
                    securityLevel,
                    contextEngineId,
                    contextName,
                    pduVersion,
                    response,
                    maxSizeResponseScopedPDU,
                    stateReference,
                    {},
                )
            except Exception:  # the sender will retry; the inform itself is still good
                log.debug(event("trap_v3_response_failed"), exc_info=True)
            finally:
                self._responding = False
        self._accepted = True
        self._on_notification(
            V3Notification(
                source=self._source,
                user=str(securityName),
                engine_id=bytes(contextEngineId),
                varbinds=tuple(ps.plain(oid, value) for oid, value in varbinds),
                inform=inform,
                security_engine_id=header.engine_id if header is not None else b"",
                authenticated=int(securityLevel) > 1,
            )
        )
