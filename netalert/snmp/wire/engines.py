"""SNMPv3 engine IDs learned while polling, for the trap receiver to read at run time.

The poller records each v3 device's authoritative engine ID as soon as a request
reveals it (discovery). The trap receiver needs the sender's engine ID to check
a v3 trap's keys; with this registry, v3 traps from polled devices need no
configured ``engine_ids``. Usage from the receiver::

    registry.get_by_engine(engine_id)   # -> EngineRecord | None (who sent it)
    registry.engine_ids()               # every engine ID known now
    unsubscribe = registry.subscribe(callback)   # called with each new/changed record

Everything runs on the event loop's thread; callbacks must not block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from netalert.logs import event

__all__ = ["EngineIdRegistry", "EngineRecord"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """One v3 agent's engine ID as last learned."""

    device: str
    host: str
    port: int
    engine_id: bytes
    user: str
    learned: float  # wall-clock time

    @property
    def engine_id_hex(self) -> str:
        """The engine ID as lowercase hex without prefix (the config's form)."""
        return self.engine_id.hex()


EngineListener = Callable[[EngineRecord], None]


class EngineIdRegistry:
    """Engine IDs by device, by engine ID and by address; notifies on change."""

    def __init__(self) -> None:
        self._by_device: dict[str, EngineRecord] = {}
        self._by_engine: dict[bytes, EngineRecord] = {}
        self._by_address: dict[tuple[str, int], EngineRecord] = {}
        self._listeners: list[EngineListener] = []

    def add(
        self,
        device: str,
        host: str,
        port: int,
        engine_id: bytes,
        user: str = "",
        now: float | None = None,
    ) -> bool:
        """Records ``engine_id`` for ``device``; returns True when it is new or changed.

        Listeners hear only about new or changed records, so calling this on every
        response is cheap.
        """
        old = self._by_device.get(device)
        if old is not None and old.engine_id == engine_id and (old.host, old.port) == (host, port):
            return False
        record = EngineRecord(
            device, host, port, engine_id, user, time.time() if now is None else now
        )
        if old is not None:
            self._by_engine.pop(old.engine_id, None)
            self._by_address.pop((old.host, old.port), None)
            log.info(
                event(
                    "engine_id_changed",
                    device=device,
                    old=old.engine_id_hex,
                    new=record.engine_id_hex,
                )
            )
        self._by_device[device] = record
        self._by_engine[engine_id] = record
        self._by_address[(host, port)] = record
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:  # one bad listener must not stop polling
                log.exception(event("engine_listener_failed", device=device))
        return True

    def get(self, device: str) -> EngineRecord | None:
        """The record of ``device``, if its engine ID is known."""
        return self._by_device.get(device)

    def get_by_engine(self, engine_id: bytes) -> EngineRecord | None:
        """The device that uses ``engine_id``, if any."""
        return self._by_engine.get(engine_id)

    def get_by_address(self, host: str, port: int = 161) -> EngineRecord | None:
        """The record learned from ``host:port``, if any."""
        return self._by_address.get((host, port))

    def engine_ids(self) -> list[bytes]:
        """Every engine ID known now."""
        return list(self._by_engine)

    def records(self) -> list[EngineRecord]:
        """Every record, one per device."""
        return list(self._by_device.values())

    def subscribe(self, listener: EngineListener) -> Callable[[], None]:
        """Calls ``listener`` with each new or changed record; returns an unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._by_device)
