"""The gufo-snmp adapter of :class:`~netalert.poll.client.SnmpClient` (the default).

gufo-snmp's Rust core encodes, decodes and does USM crypto; one
:class:`gufo.snmp.aio.client.SnmpSession` is one connected UDP socket with at most
one request outstanding. This adapter keeps one session per target (reused
across polls, so SNMPv3 discovery and key localisation happen once), guards each
with a lock, and adds what gufo leaves to the caller: retries, per-OID
noSuchObject reporting, SNMPv1 noSuchName handling and named v3 errors.

What gufo cannot tell, and how the adapter copes:

* Values arrive untyped (int, bytes, str): the type is inferred here
  (int → INTEGER, bytes → OCTET STRING, "a.b.c.d" → IpAddress, other dotted → OID)
  and the naming stage replaces it by the MIB's syntax (Counter32, TimeTicks...).
* A missing object is simply absent: it is reported as noSuchInstance (gufo does
  not distinguish noSuchObject).
* A refused v3 request is "authentication failed": the adapter asks the pysnmp
  reference engine once to learn the report's name (unknownUserName,
  wrongDigest...). That slow path runs only on failure.
* gufo-snmp 0.13's decoder panics on some malformed answers (a 4-byte datagram that
  claims a longer length, from the device's address); pyo3 raises the panic as
  ``pyo3_runtime.PanicException``, a BaseException that ``except Exception`` lets
  through. The adapter makes it a failed request (:class:`SnmpProtocolError`), drops the
  session (its state is unknown) and counts it in :attr:`GufoClient.faults`
  (``decoder_panic``, in ``netalert_poll_answer_faults_total``).
* An unbounded GETNEXT is not in gufo's API (its iterators stay in a subtree), so
  :meth:`GufoClient.get_next` goes through the shared pysnmp engine; the poll
  path never calls it.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    DesKey,
    Md5Key,
    NoSuchInstance,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpVersion,
    User,
)
from gufo.snmp import SnmpAuthError as GufoAuthError
from gufo.snmp import SnmpError as GufoError
from gufo.snmp.aio.client import SnmpSession

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
from netalert.snmp.types import SnmpType, Value, VarBind, maker

__all__ = ["GufoClient", "gufo_value"]

T = TypeVar("T")

_AUTH_KEYS: dict[str, Any] = {
    "MD5": Md5Key,
    "SHA": Sha1Key,
    "SHA-224": Sha224Key,
    "SHA-256": Sha256Key,
    "SHA-384": Sha384Key,
    "SHA-512": Sha512Key,
}
_PRIV_KEYS: dict[str, Any] = {
    "DES": DesKey,
    "AES-128": Aes128Key,
    "AES-192": Aes192Key,
    "AES-256": Aes256Key,
}
_VERSIONS = {"1": SnmpVersion.v1, "2c": SnmpVersion.v2c, "3": SnmpVersion.v3}
# gufo's docs: refresh the v3 time window when idle longer than 150 s.
_V3_IDLE_REFRESH = 140.0
# OIDs per GET PDU: keeps responses well under a typical 1472-byte MTU-sized reply.
_GET_CHUNK = 32


def gufo_value(value: object) -> tuple[SnmpType, Value]:
    """Infers a wire type for a gufo value (the MIB's syntax overrides it later)."""
    if value is None:
        return SnmpType.NULL, None
    if isinstance(value, bool):
        return SnmpType.INTEGER, int(value)
    if isinstance(value, int):
        return SnmpType.INTEGER, value
    if isinstance(value, bytes):
        return SnmpType.OCTET_STRING, value
    if isinstance(value, float):  # an Opaque-wrapped float gufo decoded itself
        return SnmpType.OPAQUE, value
    text = str(value)
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        return SnmpType.IP_ADDRESS, text
    return SnmpType.OID, text


# The common value types and their wire type, without gufo_value's chain of tests.
_KINDS: dict[type, SnmpType] = {int: SnmpType.INTEGER, bytes: SnmpType.OCTET_STRING}
# VarBind(oid, type, value, name, index, label) through its slots: one per value polled
_varbind = maker(VarBind)
# The arcs of the OIDs walks return, for the check that a walk advances: the same
# instances come back device after device and poll after poll. Bounded, cleared when full.
_ARCS_LIMIT = 100_000
_arcs_seen: dict[str, tuple[int, ...]] = {}


# Descriptors kept free for everything else (the trap and web sockets, the state
# database, SMTP connections, pysnmp's transport): at most this, at most a quarter.
_RESERVE = 1024
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def session_cap(configured: int, *, soft_limit: int | None = None) -> int:
    """How many sessions (one UDP socket each) to keep open: ``configured``, but at
    most the soft descriptor limit (``RLIMIT_NOFILE``) less a reserve, and at least 8.

    Past the cap the least recently used session is dropped; its device opens a new
    one at its next poll (a v3 device is discovered again).
    """
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit < 0:  # RLIM_INFINITY
        return configured
    return max(8, min(configured, soft_limit - min(_RESERVE, soft_limit // 4)))


def _panicked(exc: BaseException) -> bool:
    """True for a Rust panic raised through pyo3 (its type exists once one happened)."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def _out_of_descriptors(exc: OSError) -> bool:
    """EMFILE/ENFILE, also as gufo-snmp raises them (no errno, "... (os error 24)")."""
    return exc.errno in _OUT_OF_DESCRIPTORS or any(
        f"(os error {code})" in str(exc) for code in _OUT_OF_DESCRIPTORS
    )


class _Session:
    __slots__ = ("lock", "session", "used", "worked")

    def __init__(self, session: SnmpSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()
        self.used = time.monotonic()
        self.worked = False


class GufoClient(SnmpClient):
    """gufo-snmp sessions shared by every device; see the module docstring."""

    backend: Backend = "gufo"

    def __init__(
        self, *, on_engine_id: EngineCallback | None = None, max_sessions: int = 50_000
    ) -> None:
        self._sessions: OrderedDict[Target, _Session] = OrderedDict()
        self.max_sessions = session_cap(max_sessions)
        self.stats = SessionStats(lambda: len(self._sessions))
        # answers gufo could not take, by why (netalert_poll_answer_faults_total)
        self.faults = {"decoder_panic": 0}
        self._on_engine_id = on_engine_id
        self._reference: SnmpClient | None = None

    # --- sessions ---------------------------------------------------------------

    async def _open(self, target: Target) -> _Session:
        user = None
        if target.version == "3":
            auth = priv = None
            if target.auth_protocol:
                auth = _AUTH_KEYS[target.auth_protocol](target.auth_password.encode())
                if target.priv_protocol:
                    priv = _PRIV_KEYS[target.priv_protocol](target.priv_password.encode())
            user = User(target.user, auth_key=auth, priv_key=priv)
        session = self._new_session(target, user)
        entry = _Session(session)
        if target.version == "3":
            # Engine discovery and time sync; retried like any request.
            await self._retry(target, session.refresh)
            if self._on_engine_id is not None:
                self._on_engine_id(target, session.get_engine_id())
        return entry

    def _new_session(self, target: Target, user: User | None) -> SnmpSession:
        """A session (its socket); out of descriptors, the idle quarter of the least
        recently used sessions is dropped and the open tried once more.

        Raises:
            SnmpProtocolError: Still out of descriptors.
        """
        for attempt in (0, 1):
            try:
                return SnmpSession(
                    target.host,
                    target.port,
                    community=target.community,
                    user=user,
                    version=_VERSIONS[target.version],
                    timeout=target.timeout,
                    max_repetitions=target.max_repetitions,
                )
            except OSError as exc:
                if not _out_of_descriptors(exc):
                    raise
                if attempt == 0 and self._drop_idle(max(1, len(self._sessions) // 4)):
                    continue
                self.stats.exhausted += 1
                raise SnmpProtocolError(
                    target,
                    "out of file descriptors for a new session: raise LimitNOFILE "
                    "(ulimit -n) or lower [snmp] max_sessions",
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_idle(self, count: int) -> int:
        """Drops up to ``count`` of the least recently used sessions not in use."""
        idle = [t for t, e in self._sessions.items() if not e.lock.locked()][:count]
        for target in idle:
            del self._sessions[target]
        self.stats.evicted += len(idle)
        return len(idle)

    async def _call(self, target: Target, op: Callable[[SnmpSession], Awaitable[T]]) -> T:
        """Runs ``op`` on the target's session with retries and v3 recovery."""
        for attempt in (0, 1):
            entry = self._sessions.get(target)
            if entry is None:
                try:
                    entry = await self._open(target)
                except BaseException as exc:
                    if _panicked(exc):  # a v3 discovery's answer
                        raise self._panic(target, exc) from None
                    raise
                self._remember(target, entry)
            else:
                self._sessions.move_to_end(target)
            async with entry.lock:
                try:
                    if target.version == "3" and time.monotonic() - entry.used > _V3_IDLE_REFRESH:
                        await self._retry(target, entry.session.refresh)
                    # _retry's loop, inline: one coroutine less per request
                    for _ in range(target.retries + 1):
                        try:
                            result = await op(entry.session)
                            break
                        except SnmpTimeoutError:
                            raise  # an inner retry loop already gave up
                        except TimeoutError:
                            continue
                    else:
                        raise SnmpTimeoutError(target)
                    entry.used = time.monotonic()
                    entry.worked = True
                    return result
                except GufoAuthError:
                    # A rebooted agent (new boots) or a replaced one (new engine ID)
                    # refuses the old session: rediscover once before giving up.
                    self._sessions.pop(target, None)
                    if attempt == 0 and entry.worked:
                        continue
                    raise SnmpAuthError(target, await self._diagnose(target)) from None
                except (SnmpTimeoutError, NoSuchInstance):
                    raise
                except GufoError as exc:
                    raise SnmpProtocolError(target, str(exc) or type(exc).__name__) from None
                except BaseException as exc:
                    if _panicked(exc):
                        raise self._panic(target, exc) from None
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _panic(self, target: Target, exc: BaseException) -> SnmpProtocolError:
        """A panic of gufo's decoder as the request's failure (module docstring)."""
        self._sessions.pop(target, None)
        self.faults["decoder_panic"] += 1
        return SnmpProtocolError(target, f"an answer gufo-snmp could not decode ({exc})")

    def _remember(self, target: Target, entry: _Session) -> None:
        self._sessions[target] = entry
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
            self.stats.evicted += 1

    async def _retry(self, target: Target, op: Callable[[], Awaitable[T]]) -> T:
        for _ in range(target.retries + 1):
            try:
                return await op()
            except SnmpTimeoutError:
                raise  # an inner retry loop already gave up
            except TimeoutError:
                continue
        raise SnmpTimeoutError(target)

    def _ref(self) -> SnmpClient:
        if self._reference is None:
            from netalert.poll.client_pysnmp import PysnmpClient

            self._reference = PysnmpClient(on_engine_id=self._on_engine_id)
        return self._reference

    async def _diagnose(self, target: Target) -> str:
        try:
            await self._ref().get(target, ["1.3.6.1.2.1.1.3.0"])
        except SnmpAuthError as exc:
            return exc.reason
        except SnmpTimeoutError:
            return "decryptionError"  # snmpd drops what it cannot decrypt
        except Exception:
            return "authenticationFailed"
        return "authenticationFailed"

    # --- operations -------------------------------------------------------------

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get`."""
        clean = [o.lstrip(".") for o in oids]
        found: dict[str, object] = {}
        for start in range(0, len(clean), _GET_CHUNK):
            chunk = clean[start : start + _GET_CHUNK]
            got: dict[str, object] = await self._call(target, _get_many(chunk))
            if target.version == "1" and len(got) < len(chunk):
                # v1 answers noSuchName for the whole PDU: ask one by one.
                got = {}
                for oid in chunk:
                    try:
                        value = await self._call(target, _get_one(oid))
                    except NoSuchInstance:
                        continue
                    if value is not None:  # gufo hands back NULL for v1's noSuchName
                        got[oid] = value
            found.update(got)
        out = []
        for oid in clean:
            if oid in found:
                value = found[oid]
                kind = _KINDS.get(type(value))
                if kind is None:
                    kind, value = gufo_value(value)
                out.append(_varbind(oid, kind, value, "", "", ""))
            else:
                missing = SnmpType.NO_SUCH_OBJECT if target.version == "1" else None
                out.append(_varbind(oid, missing or SnmpType.NO_SUCH_INSTANCE, None, "", "", ""))
        return out

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        """See :meth:`SnmpClient.get_next` (served by the pysnmp engine, see above)."""
        return await self._ref().get_next(target, oids)

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        """See :meth:`SnmpClient.walk`."""
        root = oid.lstrip(".")
        v1 = target.version == "1"

        async def run(session: SnmpSession) -> list[VarBind]:
            # gufo's iterators send one PDU (a GETBULK of max_repetitions, or a
            # GETNEXT for v1) and hand out its varbinds before sending the next;
            # after a timeout the same iterator sends the same request again.
            items = session.getnext(root) if v1 else session.getbulk(root, target.max_repetitions)
            out: list[VarBind] = []
            # Each OID's arcs must be greater than the previous one's (whole OIDs: in
            # the subtree they compare as the arcs below the root would).
            last: tuple[int, ...] | None = None
            timeouts = 0
            prefix = root + "."
            seen = _arcs_seen
            while max_varbinds > 0:
                try:
                    async for item in items:
                        if item is None:
                            return out
                        name, raw = item
                        # The walk must advance, or a broken agent would loop us forever.
                        key = seen.get(name)
                        if key is None:
                            key = _arcs(name)
                            if len(seen) >= _ARCS_LIMIT:
                                seen.clear()
                            seen[name] = key
                        if not (name.startswith(prefix) or name == root):
                            # past the subtree: the walk ends, if it still advanced
                            if last is not None and key <= last:
                                raise SnmpProtocolError(target, "OIDs not increasing", name)
                            return out
                        if last is not None and key <= last:
                            raise SnmpProtocolError(target, "OIDs not increasing", name)
                        last = key
                        kind = _KINDS.get(type(raw))
                        if kind is None:
                            kind, raw = gufo_value(raw)
                        out.append(_varbind(name, kind, raw, "", "", ""))
                        if len(out) >= max_varbinds:
                            return out
                        timeouts = 0
                    return out  # gufo: nothing left in the subtree
                except TimeoutError:
                    timeouts += 1
                    if timeouts > target.retries:
                        raise SnmpTimeoutError(target) from None
            return out

        # The session lock is held for the whole walk: one request at a time.
        out = await self._call(target, run)
        if not out:
            # Like snmpwalk: a walk of an instance returns that instance.
            got = await self.get(target, [root])
            out = [vb for vb in got if vb.type not in _ABSENT]
        return out

    async def close(self) -> None:
        """Drops every session (their sockets close) and the reference engine."""
        self._sessions.clear()
        if self._reference is not None:
            await self._reference.close()
            self._reference = None


def _get_many(oids: list[str]) -> Callable[[SnmpSession], Awaitable[dict[str, Any]]]:
    async def op(session: SnmpSession) -> dict[str, Any]:
        return await session.get_many(oids)

    return op


def _get_one(oid: str) -> Callable[[SnmpSession], Awaitable[Any]]:
    async def op(session: SnmpSession) -> Any:
        return await session.get(oid)

    return op


def _arcs(oid: str) -> tuple[int, ...]:
    return tuple(map(int, oid.split(".")))


_ABSENT = frozenset({SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW})
