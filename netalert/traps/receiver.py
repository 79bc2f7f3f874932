"""The trap and inform receiver: UDP sockets → access control → decode → storm control → events.

The common v2c Trap is read in one pass, its varbinds named from a cache
(:mod:`netalert.traps.v2c`); other v1 and v2c messages take the general decoder
(:mod:`netalert.snmp.wire.ber`), ordinary v3 traps a fast path of their own, and
informs and the unusual go through pysnmp's engine (:mod:`netalert.traps.v3`).
Each accepted trap becomes a named :class:`TrapEvent` handed to the ``sink`` given
at construction: a callable or an ``asyncio.Queue`` (never awaited: a full queue
drops and counts). A readable
socket is drained at most ``batch`` datagrams at a time, so a flood never
stalls the loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from netalert.config.models import Device, TrapsConfig
from netalert.logs import RateLimiter
from netalert.logs import event as log_event
from netalert.snmp.types import TrapEvent, VarBind
from netalert.snmp.wire.ber import MAX_MESSAGE, DecodeError, RawVarBind, decode_message
from netalert.snmp.wire.berenc import encode_inform_response
from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.traps.access import AccessPolicy, plain_address
from netalert.traps.convert import v1_to_v2, v1_trap_oid, v2_trap_oid
from netalert.traps.listen import kernel_drops, open_udp_socket, share_udp_socket
from netalert.traps.names import TrapNamer, TrapTree
from netalert.traps.pcap import PcapRecorder, open_recording, start_recording
from netalert.traps.reportlimit import ReportLimiter
from netalert.traps.stats import RejectReason, TrapStats
from netalert.traps.storm import StormControl, StormLimits, fold_sample
from netalert.traps.v2c import V2cReader, V2cTrap
from netalert.traps.v3 import V3Engine, V3Notification, load_engine_id, random_engine_id

__all__ = ["EngineSource", "TrapReceiver", "TrapSink"]

log = logging.getLogger("netalert.traps")

TrapSink = Callable[[TrapEvent], None] | asyncio.Queue[TrapEvent]
_TRAP_PDUS = frozenset({0xA4, 0xA6, 0xA7})
_VERSIONS = ("1", "2c")
_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # snmpTrapAddress.0 (RFC 3584): set by relays
_VERSION_3 = b"\x02\x01\x03"  # INTEGER 3 after the outer SEQUENCE's header: SNMPv3
# Decoder reasons that have a rejection reason of their own.
_DECODE_REASONS = {
    "bad_community": RejectReason.BAD_COMMUNITY,
    "too_many_varbinds": RejectReason.TOO_MANY_VARBINDS,
}


class EngineSource(Protocol):
    """What the receiver needs of the poller's EngineIdRegistry."""

    def engine_ids(self) -> list[bytes]: ...

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...

    def get_by_engine(self, engine_id: bytes) -> Any: ...


@dataclass(slots=True)
class _Listener:
    sock: socket.socket
    host: str
    port: int
    rcvbuf: int
    wanted: str = ""  # the [traps].listen entry, as text


class TrapReceiver:
    """Receives traps and informs on every ``[traps].listen`` address."""

    def __init__(
        self,
        config: TrapsConfig,
        *,
        sink: TrapSink,
        tree: TrapTree,
        devices: Iterable[Device] = (),
        engines: EngineSource | None = None,
        batch: int = 64,
        clock: Callable[[], float] = time.time,
        v3_fast: bool = True,
        state_dir: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        relaxed_window: bool = False,
        message_ids: bool = False,
        engine_id: bytes | None = None,
        engine_started: int | None = None,
        defer_window: bool = False,
        clocks: EngineClocks | None = None,
    ) -> None:
        """Prepares the receiver; :meth:`start` opens the sockets (``v3_fast``: see V3Engine).

        ``state_dir`` keeps the generated engine ID (file ``engine_id``) when
        ``[traps].engine_id`` is empty; without it a random one lives as long
        as the receiver. ``monotonic`` times the SNMPv3 senders' clocks;
        ``relaxed_window`` accepts authenticated v3 traps outside the time
        window, counting them (``netalert replay`` only: a recording is old
        by nature). ``message_ids`` ([cluster]) gives each trap the ID its copy
        on the trap stream is stored under
        (:func:`netalert.cluster.codec.message_id`). ``clocks`` ([cluster]) is the
        SNMPv3 senders' clock table the node shares with the others
        (:mod:`netalert.cluster.usm`); None: the receiver's own. A trap worker
        (:mod:`netalert.traps.worker`) is given the agent's ``engine_id`` and
        ``engine_started`` (the second its snmpEngineTime counts from), and
        ``defer_window`` leaves the SNMPv3 time window of traps to the agent.
        """
        self.config = config
        self.stats = TrapStats()
        self._sink = sink
        self._put = sink.put_nowait if isinstance(sink, asyncio.Queue) else sink
        self._namer = TrapNamer(tree, cache_size=config.name_cache_entries, stats=self.stats)
        self._access = AccessPolicy(
            config.allow, (c.get_secret_value().encode() for c in config.communities)
        )
        self._v2c = V2cReader(
            self._namer,
            self._access.communities,
            max_varbinds=config.max_varbinds,
            entries=config.varbind_cache_entries,
            stats=self.stats,
        )
        self._devices_cfg = list(devices)
        self._devices: dict[str, str] = {}
        self._shared: dict[str, tuple[str, ...]] = {}  # address -> every device that has it
        self._engine_devices = {
            bytes.fromhex(d.engine_id): d.name for d in self._devices_cfg if d.engine_id
        }
        self._relays: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = tuple(config.relays)
        self._state_dir = state_dir
        self._storm = StormControl(StormLimits.from_config(config))
        self._engines = engines
        self._message_id: Callable[[str, bytes, bytes], str] | None = None
        if message_ids:
            from netalert.cluster.codec import message_id

            self._message_id = message_id
        self._unsubscribe: Callable[[], None] | None = None
        self._v3: V3Engine | None = None
        self._v3_fast = v3_fast
        self._listeners: list[_Listener] = []
        self._current: _Listener | None = None
        self._log_limit = RateLimiter(60.0)
        self._batch = batch
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._ticks = 0
        self._monotonic = monotonic
        self._relaxed_window = relaxed_window
        self._engine_id = engine_id
        self._engine_started = engine_started
        self._defer_window = defer_window
        self._clocks = clocks
        self.recorder: PcapRecorder | None = None
        self._record_pending = False

    # --- lifecycle ------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each listener (ports resolved when 0 was asked)."""
        return [(item.host, item.port) for item in self._listeners]

    @property
    def sockets(self) -> dict[str, socket.socket]:
        """The bound socket of each ``[traps].listen`` entry, by its text (for :meth:`open`)."""
        return {item.wanted: item.sock for item in self._listeners}

    async def start(self, *, listen: bool = True) -> None:
        """Opens every listen address and starts receiving (:meth:`open`, then :meth:`begin`).

        With ``listen`` False nothing is bound and no timer runs: datagrams
        are fed with :meth:`handle` and time with :meth:`tick` (replay, rule tests).

        Raises:
            BindError: an address cannot be bound (the message names the fix).
        """
        await self.open(listen=listen)
        if listen:
            self.begin()

    def begin(self) -> None:
        """Starts reading the sockets :meth:`open` bound, and the housekeeping timer.

        A recording :meth:`open` left for later starts now; if its file cannot
        be opened, that is logged and the receiver runs without it.
        """
        if self._record_pending:
            self._record_pending = False
            self.recorder = start_recording(self.config, self.stats.record)
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            loop.add_reader(listener.sock.fileno(), self._on_readable, listener)
        self._timer = loop.call_later(1.0, self._housekeeping)

    async def open(
        self,
        *,
        listen: bool = True,
        inherit: Mapping[str, socket.socket] | None = None,
        record_later: bool = False,
    ) -> None:
        """Prepares receiving: devices, the SNMPv3 engine, the recorder, every socket bound.

        Nothing is read until :meth:`begin`. A listen entry found in ``inherit``
        (another receiver's :attr:`sockets`, a reload) shares that bound socket
        instead of binding again: no moment without a socket, no datagram lost,
        and no SO_REUSEPORT that would let another process share the port.
        :meth:`stop` closes only this receiver's own descriptor. With
        ``record_later`` the ``[traps].record`` file is opened by :meth:`begin`
        (a reload: the running receiver still writes it until then).

        Raises:
            BindError: an address cannot be bound (the message names the fix);
                what was bound is closed again.
        """
        loop = asyncio.get_running_loop()
        await self._resolve_devices(loop)
        if self.config.users:
            config = self.config
            if self._engine_id is not None:
                engine_id = self._engine_id
            elif config.engine_id:
                engine_id = bytes.fromhex(config.engine_id)
            elif self._state_dir is not None:
                engine_id = load_engine_id(self._state_dir)
            else:
                engine_id = random_engine_id()
            self._v3 = V3Engine(
                config.users,
                engine_id,
                on_notification=self._on_v3,
                send=self._send_current,
                fast=self._v3_fast,
                max_bytes=config.slow_path_max_bytes,
                max_varbinds=config.max_varbinds,
                reports=ReportLimiter(config.report_rate, config.report_burst),
                clock=self._monotonic,
                relaxed_window=self._relaxed_window,
                defer_window=self._defer_window,
                started=self._engine_started,
                clocks=self._clocks,
            )
            for engine_id in self._engine_devices:  # [[devices]].engine_id
                self._v3.add_engine_id(engine_id)
            if self._engines is not None:
                for engine_id in self._engines.engine_ids():
                    self._v3.add_engine_id(engine_id)
                self._unsubscribe = self._engines.subscribe(self._on_engine)
        if not listen:
            return
        if self.config.record is not None and not record_later:
            self.recorder = open_recording(self.config, self.stats.record)
        self._record_pending = record_later and self.config.record is not None
        inherit = inherit or {}
        try:
            for address in self.config.listen:
                hostport = address.with_default(162)
                wanted = str(hostport)
                if wanted in inherit:
                    sock, granted = share_udp_socket(inherit[wanted], self.config.rcvbuf)
                else:
                    sock, granted = open_udp_socket(
                        hostport.host, hostport.port or 162, self.config.rcvbuf
                    )
                bound = sock.getsockname()
                listener = _Listener(sock, hostport.host, int(bound[1]), granted, wanted)
                self._listeners.append(listener)
                log.info(
                    log_event(
                        "traps_listening",
                        address=f"[{listener.host}]:{listener.port}"
                        if ":" in listener.host
                        else f"{listener.host}:{listener.port}",
                        rcvbuf_requested=self.config.rcvbuf,
                        rcvbuf_granted=granted,
                    )
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stops receiving, emits pending storm events, closes the sockets."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            if listener.sock.fileno() >= 0:
                loop.remove_reader(listener.sock.fileno())
            listener.sock.close()
        self._listeners.clear()
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        self._emit_storms(self._clock(), all_=True)
        log.info(log_event("traps_stopped", **self.stats.as_dict()))

    async def _resolve_devices(self, loop: asyncio.AbstractEventLoop) -> None:
        owners: dict[str, list[str]] = {}
        for device in self._devices_cfg:
            host = device.address.host
            try:
                ipaddress.ip_address(host)
                addresses = [host]
            except ValueError:
                try:
                    infos = await asyncio.wait_for(loop.getaddrinfo(host, None), 2.0)
                except (OSError, TimeoutError):
                    log.warning(log_event("traps_device_unresolved", device=device.name, host=host))
                    continue
                addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            for address in addresses:
                names = owners.setdefault(address, [])
                if device.name not in names:
                    names.append(device.name)
        for address, names in owners.items():
            self._devices[address] = names[0]
            if len(names) > 1:
                self._shared[address] = tuple(names)
                # Traps carry no device name: the first device in the config gets them.
                log.warning(
                    log_event(
                        "traps_shared_source",
                        address=address,
                        devices=",".join(names),
                        credited=names[0],
                    )
                )

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the listening sockets (receive buffer full)."""
        return kernel_drops(listener.sock for listener in self._listeners)

    # --- receiving -------------------------------------------------------------

    def _on_readable(self, listener: _Listener) -> None:
        sock = listener.sock
        handle = self.handle
        recorder = self.recorder
        for _ in range(self._batch):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors surfacing on the socket
                log.debug(log_event("traps_recv_error", error=exc))
                return
            if recorder is not None:
                recorder.write(data, addr[:2], (listener.host, listener.port), self._clock())
            try:
                handle(data, addr, listener)
            except Exception as exc:  # one datagram must not stop the socket
                self._handle_failed(exc, addr)

    def _handle_failed(self, exc: Exception, addr: tuple[Any, ...]) -> None:
        # An exception escaping a reader callback lands in asyncio's "Exception in
        # callback" with a traceback per datagram: count it, say it once a minute.
        self.stats.errors += 1
        if self._log_limit.allow(("handle_failed", type(exc).__name__), self._clock()):
            log.error(
                log_event(
                    "trap_handling_failed",
                    source=addr[0] if addr else "?",
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.stats.errors,
                )
            )

    def handle(self, data: bytes, addr: tuple[Any, ...], listener: Any = None) -> None:
        """Processes one datagram from ``addr`` (public for the bench and tests)."""
        stats = self.stats
        stats.datagrams += 1
        host = addr[0]
        if ":" in host:
            host = plain_address(host)
        if not self._access.allowed(host):
            self._reject(RejectReason.NOT_ALLOWED, host, "")
            return
        # The common v2c Trap in one pass (netalert.traps.v2c); anything else, and a trap
        # without snmpTrapOID.0, the general way below, which decides and says why.
        fast = self._v2c.read(data)
        if fast is not None and self._fast_v2c(fast, data, addr, host):
            return
        # SNMPv3 straight to its branch, without the v1/v2c decoder failing on its version
        # (an exception and an error object per datagram): a peek where the version is after
        # a one-, two- or three-byte outer header. A header that decodes is one the decoder
        # would have refused as bad_version; any other datagram takes the decoder's way.
        v3 = data[3:6] == _VERSION_3 or data[4:7] == _VERSION_3 or data[2:5] == _VERSION_3
        if v3 and len(data) <= MAX_MESSAGE:
            header = decode_v3_header(data)
            if isinstance(header, V3Header):
                self._v3_message(data, addr, host, listener, header)
                return
        msg = decode_message(
            data, max_varbinds=self.config.max_varbinds, communities=self._access.communities
        )
        if isinstance(msg, DecodeError):
            if msg.reason == "bad_version":
                self._other_version(data, addr, host, listener)
                return
            reason = _DECODE_REASONS.get(msg.reason)
            if reason is not None:
                self._reject(reason, host, "")
                return
            stats.malformed_detail[msg.reason] += 1
            self._reject(RejectReason.MALFORMED, host, msg.reason)
            return
        pdu_type = msg.pdu_type
        if pdu_type not in _TRAP_PDUS:
            self._reject(RejectReason.UNEXPECTED_PDU, host, hex(pdu_type))
            return
        raw: tuple[RawVarBind, ...] | list[RawVarBind]
        uptime: int | None
        agent = ""
        if msg.v1_trap is not None:
            trap = msg.v1_trap
            raw = v1_to_v2(trap, msg.community, msg.varbinds)
            trap_oid, uptime = v1_trap_oid(trap), trap.timestamp
            agent = trap.agent_addr
        else:
            raw = msg.varbinds
            trap_oid, uptime = v2_trap_oid(raw)
            if not trap_oid:
                stats.malformed_detail["no_trap_oid"] += 1
                self._reject(RejectReason.MALFORMED, host, "no_trap_oid")
                return
        inform = pdu_type == 0xA6
        if inform and listener is not None:
            try:
                listener.sock.sendto(encode_inform_response(data, msg), addr)
                stats.informs_answered += 1
            except OSError as exc:  # buffer full: the sender retries the inform
                log.debug(log_event("traps_inform_reply_failed", source=host, error=exc))
        version = _VERSIONS[msg.version]
        community = msg.community.decode("utf-8", "replace")
        device = self._credit(host, raw, agent, b"")
        self._accept(
            host, addr[1], version, trap_oid, raw, uptime, community, "", inform, device, data
        )

    def _fast_v2c(self, fast: V2cTrap, data: bytes, addr: tuple[Any, ...], host: str) -> bool:
        """Takes a trap the v2c fast path read; False when it has no snmpTrapOID.0."""
        community, raw, named = fast
        trap_oid, uptime = v2_trap_oid(raw)
        if not trap_oid:
            return False
        device = self._credit(host, raw, "", b"")
        self._accept(
            host, addr[1], "2c", trap_oid, raw, uptime, community, "", False, device, data,
            named=named,
        )  # fmt: skip
        return True

    def _credit(
        self,
        host: str,
        raw: Sequence[RawVarBind],
        agent: str,
        engine_id: bytes,
    ) -> str:
        """The device a trap is credited to: by authenticated engine ID, by relay, by source.

        ``engine_id`` is an authenticated v3 sender's (b"" otherwise); ``agent``
        the v1 agent-addr. A relay's trap names its origin in snmpTrapAddress.0
        (or agent-addr); from any other source those claims are ignored.
        """
        if engine_id:
            name = self._engine_devices.get(engine_id)
            if name is None and self._engines is not None:
                record = self._engines.get_by_engine(engine_id)
                name = record.device if record is not None else None
            if name:
                return name
        if self._relays and self._is_relay(host):
            origin = agent
            for oid, _, value in raw:
                if oid == _TRAP_ADDRESS and isinstance(value, str):
                    origin = value
                    break
            name = self._devices.get(origin) if origin else None
            if name:
                return name
        if host in self._shared:
            self.stats.shared_source += 1
        return self._devices.get(host, "")

    def _is_relay(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        return any(address in net for net in self._relays if net.version == address.version)

    def _accept(
        self,
        host: str,
        port: int,
        version: str,
        trap_oid: str,
        raw: tuple[RawVarBind, ...] | list[RawVarBind],
        uptime: int | None,
        community: str,
        user: str,
        inform: bool,
        device: str,
        pdu: bytes,
        engine_id: bytes = b"",
        *,
        named: tuple[VarBind, ...] | None = None,
    ) -> None:
        """``pdu``: the datagram (v1, v2c) or what stands for the scoped PDU (v3),
        and ``engine_id`` the v3 sender's: the trap's ID with ``message_ids``;
        ``named``: ``raw`` already named (the v2c fast path)."""
        stats = self.stats
        stats.received[version] += 1
        now = self._clock()

        def make(varbinds: Sequence[RawVarBind], named: tuple[VarBind, ...] | None) -> TrapEvent:
            return self._namer.event(
                source=host,
                port=port,
                version=version,
                trap_oid=trap_oid,
                raw=varbinds,
                uptime=uptime,
                received=now,
                device=device,
                community=community,
                user=user,
                inform=inform,
                named=named,
            )

        storm = self._storm
        if not storm.admit(host, trap_oid, now):
            stats.storm_folded += 1
            # The fold outlives this call: it keeps a small sample, never the datagram.
            sample = fold_sample(raw, storm.limits.fold_bytes)
            if not storm.fold(host, trap_oid, partial(make, sample, None), now):
                stats.storm_shed += 1
                stats.dropped += 1
            stats.storm_keys = storm.keys()
            return
        event = make(raw, named)
        if self._message_id is not None:
            event = replace(event, message_id=self._message_id(host, engine_id, pdu))
        self._deliver(event)

    def _deliver(self, event: TrapEvent) -> None:
        try:
            self._put(event)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            if self._log_limit.allow("queue_full", self._clock()):
                log.warning(log_event("traps_queue_full", dropped_total=self.stats.dropped))

    def _reject(self, reason: RejectReason, host: str, detail: str) -> None:
        self.stats.rejected[reason.value] += 1
        # Per source and reason: a source refused for one reason (a wrong community)
        # must not hide that it is also refused for another (malformed datagrams).
        if self._log_limit.allow((host, reason), self._clock()):
            log.warning(
                log_event("trap_rejected", source=host, reason=reason.value, detail=detail or "-")
            )

    # --- SNMPv3 ----------------------------------------------------------------

    def _other_version(self, data: bytes, addr: tuple[Any, ...], host: str, listener: Any) -> None:
        header = decode_v3_header(data)
        if isinstance(header, DecodeError):
            if header.reason == "bad_version":
                self._reject(RejectReason.BAD_VERSION, host, "")
            else:
                self.stats.malformed_detail["v3:" + header.reason] += 1
                self._reject(RejectReason.MALFORMED, host, "v3:" + header.reason)
            return
        self._v3_message(data, addr, host, listener, header)

    def _v3_message(
        self, data: bytes, addr: tuple[Any, ...], host: str, listener: Any, header: V3Header
    ) -> None:
        if self._v3 is None:
            self._reject(RejectReason.UNKNOWN_USER, host, "no [[traps.users]] configured")
            return
        self._current = listener
        try:
            reason = self._v3.handle(data, addr, header)
        finally:
            self._current = None
            self.stats.reports_limited = self._v3.reports_limited
        if reason is not None:
            self._reject(reason, host, self._v3.detail(header, reason))

    def _send_current(self, data: bytes, addr: tuple[Any, ...]) -> None:
        listener = self._current
        if listener is None:
            return
        try:
            listener.sock.sendto(data, addr)
            self.stats.v3_replies += 1
        except OSError as exc:
            log.debug(log_event("traps_v3_reply_failed", error=exc))

    def _on_v3(self, note: V3Notification) -> None:
        host = plain_address(str(note.source[0]))
        trap_oid, uptime = v2_trap_oid(note.varbinds)
        if not trap_oid:
            self.stats.malformed_detail["no_trap_oid"] += 1
            self._reject(RejectReason.MALFORMED, host, "no_trap_oid")
            return
        self.stats.v3_fast += note.fast
        engine_id = b""
        if note.authenticated:
            # A trap's keys are localized to the sender's engine ID; an inform names ours
            # in the header and the sender's as its (authenticated) contextEngineID.
            own = self._v3.engine_id if self._v3 is not None else b""
            engine_id = note.security_engine_id
            if not engine_id or engine_id == own:
                engine_id = note.engine_id
        self._accept(
            host,
            int(note.source[1]),
            "3",
            trap_oid,
            note.varbinds,
            uptime,
            "",
            note.user,
            note.inform,
            self._credit(host, note.varbinds, "", engine_id),
            # each receiver decrypts its own copy: the decoded varbinds stand for the PDU
            repr(note.varbinds).encode() if self._message_id is not None else b"",
            engine_id or note.engine_id,
        )

    def _on_engine(self, record: Any) -> None:
        if self._v3 is not None:
            self._v3.add_engine_id(bytes(record.engine_id))

    # --- housekeeping -------------------------------------------------------------

    def _emit_storms(self, now: float, *, all_: bool = False) -> None:
        events = self._storm.due(now, all_=all_)
        self.stats.storm_keys = self._storm.keys()
        for event in events:
            self.stats.storm_events += 1
            # One event stands for storm_count traps that found a bucket empty.
            self._deliver(event)
        # One line per storm interval, however many keys stormed (the rest is counted in it).
        line = self._storm.log_line(events, now)
        if line is not None:
            log.warning(log_event(line.name, **line.fields))

    def _housekeeping(self) -> None:
        try:
            self.tick(self._clock())
        finally:
            self._timer = asyncio.get_running_loop().call_later(1.0, self._housekeeping)

    def tick(self, now: float) -> None:
        """The once-a-second chores: storm summaries due, bucket clean-up, v3 engine time,
        the recording put on disk."""
        self._emit_storms(now)
        if self.recorder is not None:
            self.recorder.flush()
        self._ticks += 1
        if self._ticks % 10 == 0:
            self._storm.housekeeping(now)
        if self._v3 is not None:
            self._v3.tick(now)

    def deliver_v3(self, note: V3Notification) -> None:
        """Takes ``note`` as if the v3 engine had accepted it (rule tests: no keys, no crypto)."""
        self._on_v3(note)

    @property
    def window_relaxed(self) -> int:
        """Authenticated v3 traps accepted outside the time window (``relaxed_window``)."""
        return self._v3.clocks.relaxed if self._v3 is not None else 0

    def name(self, oid: str) -> str:
        """``IF-MIB::linkDown`` for an OID (numeric when no MIB knows it)."""
        return self._namer.trap_name(oid)

    def device_map(self) -> Mapping[str, str]:
        """Source address → device name, as resolved at start."""
        return dict(self._devices)
