"""The native adapter of :class:`~netalert.poll.client.SnmpClient`: netalert's own SNMP.

Requests are encoded by :mod:`netalert.snmp.wire.request`, answers decoded by the
trap receiver's strict decoders (:mod:`netalert.snmp.wire.ber`, ``berv3``), SNMPv3
secured by :mod:`netalert.snmp.wire.usmclient`, and every device shares one UDP
socket per address family (:class:`netalert.poll.udp.Exchanges`): a request is a
datagram out, a future and a timer; answers are matched to requests by
request-id (msgID for v3) and source address in the socket's reader callback.
No socket, lock or session object per device: what is kept per target is its
resolved address and, for v3, its engine (ID, boots, time, localized keys),
bounded like gufo's sessions by ``[snmp] max_sessions``.

Beyond what the other adapters do: values keep their wire types (Counter64,
TimeTicks, noSuchObject vs noSuchInstance), a v3 context name is sent, a
``tooBig`` answer is split (GET) or asked again with half the repetitions
(GETBULK) instead of failing the request.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from netalert.metrics import NATIVE_ANSWER_FAULTS
from netalert.poll.client import (
    Backend,
    EngineCallback,
    SessionStats,
    SnmpAuthError,
    SnmpClient,
    SnmpProtocolError,
    SnmpTimeoutError,
    Target,
)
from netalert.poll.columns import ColumnError, Columns, encoded
from netalert.poll.udp import TIMED_OUT, Address, Exchanges
from netalert.snmp.types import SnmpType, VarBind, maker
from netalert.snmp.wire.ber import Message, RawVarBind, decode_message
from netalert.snmp.wire.berv3 import ScopedPdu
from netalert.snmp.wire.request import ERROR_STATUS, community_message, pdu
from netalert.snmp.wire.usmclient import Refusal, UsmPeer, UsmUser

__all__ = ["FAULTS", "NativeClient"]

_GET, _GET_NEXT, _GET_BULK, _RESPONSE = 0xA0, 0xA1, 0xA5, 0xA2
_TOO_BIG, _NO_SUCH_NAME = 1, 2
_GET_CHUNK = 32  # OIDs per GET PDU, as the gufo adapter
_END = SnmpType.END_OF_MIB_VIEW
_ABSENT = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, _END})
_varbind = maker(VarBind)
# (error-status, error-index, varbinds) of an answer
_Answer = tuple[int, int, tuple[RawVarBind, ...]]
# Answers the client could not take as they were, by why (netalert_poll_answer_faults_total)
FAULTS = NATIVE_ANSWER_FAULTS


class _Peer:
    __slots__ = ("address", "community", "usm", "version")

    def __init__(self, target: Target, address: Address) -> None:
        self.address = address
        self.version = 0 if target.version == "1" else 1
        self.community = target.community.encode()
        self.usm: UsmPeer | None = None
        if target.version == "3":
            self.usm = UsmPeer(
                UsmUser(
                    target.user,
                    target.auth_protocol,
                    target.auth_password,
                    target.priv_protocol if target.auth_protocol else None,
                    target.priv_password,
                )
            )


def _accept_community(
    version: int,
    community: bytes,
    request_id: int,
    subtrees: tuple[bytes, ...],
    skip: int,
    data: bytes,
) -> Message | None:
    """The answer to a v1/v2c request: a Response of the same version, community and
    request-id; None for any other datagram."""
    message = decode_message(data, communities=(community,), subtrees=subtrees, skip=skip)
    if (
        not isinstance(message, Message)
        or message.pdu_type != _RESPONSE
        or message.version != version
        or message.request_id != request_id
    ):
        return None
    return message


class NativeClient(SnmpClient):
    """netalert's own SNMP client over shared sockets; see the module docstring."""

    backend: Backend = "native"

    def __init__(
        self, *, on_engine_id: EngineCallback | None = None, max_sessions: int = 50_000
    ) -> None:
        self._peers: OrderedDict[Target, _Peer] = OrderedDict()
        self.max_sessions = max_sessions
        self.stats = SessionStats(lambda: len(self._peers))
        self.exchanges = Exchanges()
        self.faults = dict.fromkeys(FAULTS, 0)
        self._on_engine_id = on_engine_id

    # --- peers ----------------------------------------------------------------------

    def _known(self, target: Target) -> _Peer | None:
        """The target's peer when known (the usual case: no coroutine for it)."""
        peer = self._peers.get(target)
        if peer is not None:
            self._peers.move_to_end(target)
        return peer

    async def _peer(self, target: Target) -> _Peer:
        peer = _Peer(target, await self._resolve(target))
        self._peers[target] = peer
        while len(self._peers) > self.max_sessions:
            self._peers.popitem(last=False)
            self.stats.evicted += 1
        return peer

    @staticmethod
    async def _resolve(target: Target) -> Address:
        """The target's IP address (a host name resolved once, IPv4 preferred).

        Raises:
            SnmpProtocolError: The name does not resolve.
        """
        try:
            return str(ipaddress.ip_address(target.host)), target.port
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise SnmpProtocolError(target, f"cannot resolve {target.host!r}: {exc}") from None
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        return str(infos[0][4][0]), target.port

    # --- one request ----------------------------------------------------------------

    async def _send(
        self,
        target: Target,
        peer: _Peer,
        pdu_type: int,
        oids: Sequence[str],
        a: int = 0,
        b: int = 0,
        subtrees: tuple[bytes, ...] = (),
    ) -> _Answer:
        """One request and its answer, retried ``target.retries`` times. With
        ``subtrees``, the answer's variable bindings end with the first row under none.

        Raises:
            SnmpTimeoutError: No answer.
            SnmpAuthError: An SNMPv3 Report refused the request.
        """
        if peer.usm is not None:
            return await self._send_v3(target, peer, peer.usm, pdu_type, oids, a, b, subtrees)
        exchanges = self.exchanges
        key = exchanges.new_key()
        data = community_message(peer.version, peer.community, pdu(pdu_type, key, oids, a, b))
        skip = a if pdu_type == _GET_BULK else 0  # non-repeaters come before the rows
        accept = functools.partial(
            _accept_community, peer.version, peer.community, key, subtrees, skip
        )
        message: Message = await self._attempts(target, peer, key, data, accept)
        return message.error_status, message.error_index, message.varbinds

    async def _attempts(
        self, target: Target, peer: _Peer, key: int, data: bytes, accept: Callable[[bytes], Any]
    ) -> Any:
        """``data`` sent under ``key`` until ``accept`` takes an answer, at most
        ``target.retries + 1`` times.

        Raises:
            SnmpTimeoutError: No answer.
            SnmpProtocolError: The datagram could not be sent.
        """
        exchanges = self.exchanges
        try:
            for _ in range(target.retries + 1):
                got = await exchanges.attempt(key, peer.address, data, accept, target.timeout)
                if got is not TIMED_OUT:
                    return got
        except OSError as exc:  # (SnmpTimeoutError is one: raised below)
            raise SnmpProtocolError(target, f"cannot send: {exc}") from None
        finally:
            exchanges.forget(key)
        raise SnmpTimeoutError(target)

    async def _send_v3(
        self,
        target: Target,
        peer: _Peer,
        usm: UsmPeer,
        pdu_type: int,
        oids: Sequence[str],
        a: int,
        b: int,
        subtrees: tuple[bytes, ...],
    ) -> _Answer:
        exchanges = self.exchanges
        context = target.context.encode()
        rediscovered = False
        for attempt in range(3):
            if not usm.discovered:
                await self._discover(target, peer, usm)
            key = exchanges.new_key()
            data = usm.request(key, pdu(pdu_type, key, oids, a, b), context)
            skip = a if pdu_type == _GET_BULK else 0  # non-repeaters come before the rows
            accept = functools.partial(usm.open, key, key, subtrees, skip)
            got: ScopedPdu | Refusal = await self._attempts(target, peer, key, data, accept)
            if isinstance(got, ScopedPdu):
                return got.error_status, got.error_index, got.varbinds
            if got.reason == "notInTimeWindow" and got.authentic and attempt == 0:
                continue  # the Report carried the agent's clock: once more with it
            if got.reason in ("unknownEngineID", "notInTimeWindow") and not rediscovered:
                # a rebooted or replaced agent: discover it again, once
                rediscovered = True
                usm.engine_id = b""
                continue
            raise SnmpAuthError(target, got.reason)
        raise SnmpAuthError(target, "notInTimeWindow")

    async def _discover(self, target: Target, peer: _Peer, usm: UsmPeer) -> None:
        key = self.exchanges.new_key()
        accept = functools.partial(UsmPeer.open_discovery, msg_id=key)
        found = await self._attempts(target, peer, key, usm.discovery(key, key), accept)
        usm.learn(found)
        if self._on_engine_id is not None:
            self._on_engine_id(target, found.engine_id)

    def _failed(
        self, target: Target, status: int, index: int, oids: Sequence[str]
    ) -> SnmpProtocolError:
        self.faults["error_status"] += 1
        name = ERROR_STATUS[status] if 0 <= status < len(ERROR_STATUS) else f"error {status}"
        oid = oids[index - 1] if 0 < index <= len(oids) else ""
        return SnmpProtocolError(target, name, oid)

    # --- operations -----------------------------------------------------------------

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get`."""
        clean = [o.lstrip(".") for o in oids]
        peer = self._known(target) or await self._peer(target)
        out: list[VarBind] = []
        for start in range(0, len(clean), _GET_CHUNK):
            out += await self._get(target, peer, clean[start : start + _GET_CHUNK])
        return out

    async def _get(self, target: Target, peer: _Peer, oids: list[str]) -> list[VarBind]:
        status, index, varbinds = await self._send(target, peer, _GET, oids)
        if status == 0:
            if len(varbinds) != len(oids):
                self.faults["wrong_count"] += 1
                raise SnmpProtocolError(target, f"{len(varbinds)} values for {len(oids)} OIDs")
            if any(name != oid for oid, (name, _, _) in zip(oids, varbinds, strict=True)):
                varbinds = self._by_name(target, oids, varbinds)
            return [
                _varbind(oid, kind, value, "", "", "")
                for oid, (_, kind, value) in zip(oids, varbinds, strict=True)
            ]
        if len(oids) > 1 and (
            status == _TOO_BIG or (status == _NO_SUCH_NAME and target.version == "1")
        ):
            # too big: halves; v1's noSuchName names one OID for the whole PDU: one by one
            if status == _TOO_BIG:
                self.faults["too_big"] += 1
                half = len(oids) // 2
                return await self._get(target, peer, oids[:half]) + await self._get(
                    target, peer, oids[half:]
                )
            out: list[VarBind] = []
            for oid in oids:
                out += await self._get(target, peer, [oid])
            return out
        if status == _NO_SUCH_NAME and target.version == "1":
            return [_varbind(oids[0], SnmpType.NO_SUCH_OBJECT, None, "", "", "")]
        raise self._failed(target, status, index, oids)

    def _by_name(
        self, target: Target, oids: list[str], varbinds: Sequence[RawVarBind]
    ) -> tuple[RawVarBind, ...]:
        """A GET answer's values in the order asked, when the agent sent them in another
        order; values of other OIDs (or twice the same) are no answer to this GET.

        Raises:
            SnmpProtocolError: The answer names other OIDs than asked.
        """
        named = {vb[0]: vb for vb in varbinds}
        if named.keys() != set(oids):
            self.faults["wrong_oids"] += 1
            stranger = [name for name in named if name not in oids]
            wrong = stranger[0] if stranger else next(oid for oid in oids if oid not in named)
            raise SnmpProtocolError(target, "an answer for other OIDs than asked", wrong)
        return tuple(named[oid] for oid in oids)

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get_next`."""
        clean = [o.lstrip(".") for o in oids]
        peer = self._known(target) or await self._peer(target)
        status, index, varbinds = await self._send(target, peer, _GET_NEXT, clean)
        if status == _NO_SUCH_NAME and target.version == "1":
            if len(clean) == 1:
                return [_varbind(clean[0], _END, None, "", "", "")]
            out: list[VarBind] = []
            for oid in clean:
                out += await self.get_next(target, [oid])
            return out
        if status:
            raise self._failed(target, status, index, clean)
        return [_varbind(oid, kind, value, "", "", "") for oid, kind, value in varbinds]

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        """See :meth:`SnmpClient.walk`."""
        root = oid.lstrip(".")
        peer = self._known(target) or await self._peer(target)
        subtree = (encoded(root),)
        v1 = target.version == "1"
        repetitions = max(1, target.max_repetitions)
        columns = Columns([root], max_varbinds)
        while columns.active:
            asked = columns.asked()
            if v1:
                status, index, varbinds = await self._send(
                    target, peer, _GET_NEXT, asked, subtrees=subtree
                )
            else:
                status, index, varbinds = await self._send(
                    target, peer, _GET_BULK, asked, 0, repetitions, subtree
                )
            if status:
                if v1 and status == _NO_SUCH_NAME:
                    break  # v1's end of the MIB view
                if status == _TOO_BIG and repetitions > 1:
                    self.faults["too_big"] += 1
                    repetitions //= 2
                    continue
                raise self._failed(target, status, index, asked)
            self._take(columns, varbinds, target)
        out = columns.outs[0]
        if not out:
            # Like snmpwalk: a walk of an instance returns that instance.
            got = await self.get(target, [root])
            out = [vb for vb in got if vb.type not in _ABSENT]
        return out

    async def walk_many(
        self, target: Target, oids: Sequence[str], *, max_varbinds: int = 100_000
    ) -> list[list[VarBind]]:
        """The walks of several columns at once; see :meth:`get_and_walk`.

        Raises:
            SnmpTimeoutError: No answer within timeout x (retries + 1) for one PDU.
            SnmpAuthError: An SNMPv3 report refused the request.
            SnmpProtocolError: An error status, OIDs of a column that do not
                increase, or an answer that advances no column.
        """
        return (await self.get_and_walk(target, (), oids, max_varbinds=max_varbinds))[1]

    async def get_and_walk(
        self,
        target: Target,
        gets: Sequence[str],
        walks: Sequence[str],
        *,
        max_varbinds: int = 100_000,
    ) -> tuple[list[VarBind], list[list[VarBind]]]:
        """What :meth:`get` of ``gets`` and :meth:`walk` of each of ``walks`` return, in
        as few round trips as the agent allows: one GETBULK carries every column not yet
        finished (its variable bindings take them in turn, row by row; max-repetitions
        ``target.max_repetitions`` divided among them, rounded up), and the first one also
        the scalar instances of ``gets`` (``X.0``) as non-repeaters: the successor of
        ``X`` is ``X.0`` when the agent has it. What does not come back so (another
        instance, an OID that is not a scalar's) is read by one GET after. A poll of a
        few scalars and a small table is one round trip. SNMPv1 gets and walks one by one.

        Raises:
            SnmpTimeoutError: No answer within timeout x (retries + 1) for one PDU.
            SnmpAuthError: An SNMPv3 report refused the request.
            SnmpProtocolError: An error status, OIDs of a column that do not
                increase, or an answer that advances no column.
        """
        wanted = [o.lstrip(".") for o in gets]
        roots = [o.lstrip(".") for o in walks]
        if target.version == "1" or not roots:
            got = await self.get(target, wanted) if wanted else []
            return got, [await self.walk(target, r, max_varbinds=max_varbinds) for r in roots]
        peer = self._known(target) or await self._peer(target)
        # scalar instances ride along as non-repeaters (GETNEXT of their object)
        scalars = [oid for oid in wanted if oid.endswith(".0")][:_GET_CHUNK]
        found: dict[str, VarBind] = {}
        columns = Columns(roots, max_varbinds)
        # An answer carries about max_repetitions values in all, as one column's would:
        # the columns share them (a table of that many cells is one round trip).
        size = max(1, target.max_repetitions)
        while columns.active:
            repetitions = -(-size // len(columns.active))
            asked = [oid[:-2] for oid in scalars] + columns.asked()
            status, index, varbinds = await self._send(
                target, peer, _GET_BULK, asked, len(scalars), repetitions, columns.subtrees()
            )
            if status:
                if status == _TOO_BIG and repetitions > 1:
                    self.faults["too_big"] += 1
                    size = max(1, size // 2)
                    continue
                raise self._failed(target, status, index, asked)
            for oid, (name, kind, value) in zip(scalars, varbinds, strict=False):
                if name == oid and kind not in _ABSENT:
                    found[oid] = _varbind(oid, kind, value, "", "", "")
            varbinds = varbinds[len(scalars) :]
            scalars = []
            self._take(columns, varbinds, target)
        outs = columns.outs
        # Like snmpwalk, a walk of an instance returns that instance: with the rest
        missing = [oid for oid in wanted if oid not in found]
        instances = [roots[i] for i, out in enumerate(outs) if not out]
        if missing or instances:
            more = await self.get(target, missing + instances)
            found.update(zip(missing, more[: len(missing)], strict=True))
            extra = iter(more[len(missing) :])
            for i, out in enumerate(outs):
                if not out:
                    vb = next(extra)
                    outs[i] = [] if vb.type in _ABSENT else [vb]
        return [found[oid] for oid in wanted], outs

    async def close(self) -> None:
        """Closes the shared sockets and forgets every peer."""
        self._peers.clear()
        self.exchanges.close()

    def _take(self, columns: Columns, varbinds: Sequence[RawVarBind], target: Target) -> None:
        """Hands a response's varbinds to the walked ``columns``; a fault is the agent's."""
        try:
            skipped = columns.take(varbinds)
        except ColumnError as exc:
            self.faults[exc.fault] += 1
            raise SnmpProtocolError(target, exc.reason, exc.oid) from None
        if skipped:
            self.faults["exception_in_walk"] += skipped
