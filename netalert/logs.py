"""Logging: one event per line with key=value context (or JSON lines), no secrets.

journald stamps the time, so the text format carries none; run in a terminal
it is still readable. Storm-prone events go through :class:`RateLimiter`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = ["JsonFormatter", "KeyValueFormatter", "RateLimiter", "event", "setup_logging"]

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/@[]+,")


def _quote(value: object) -> str:
    text = str(value)
    if text and all(c in _SAFE for c in text):
        return text
    # Device data is untrusted: escape quotes, backslashes and newlines so one
    # event stays one line and cannot forge another.
    return json.dumps(text, ensure_ascii=False)


def event(name: str, **fields: object) -> str:
    """Formats an event as ``name key=value key="two words"`` (fields in order)."""
    parts = [name]
    parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
    return " ".join(parts)


class KeyValueFormatter(logging.Formatter):
    """``level=info logger=netalert.traps <event ...>``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Sends netalert's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries are chatty at INFO (aiosmtpd logs every session); keep them at WARNING.
    for name in ("aiosmtpd", "mail.log", "apscheduler", "asyncio", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class RateLimiter:
    """Lets one log line per key through per interval; counts what it suppressed."""

    def __init__(self, interval: float = 60.0, max_keys: int = 10_000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[object, float] = {}
        self.suppressed = 0

    def allow(self, key: object, now: float) -> bool:
        """True when a line for ``key`` may be logged at ``now``."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        if len(self._last) >= self.max_keys:
            # A spoofed-source flood must not grow memory without bound.
            cutoff = now - self.interval
            self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            if len(self._last) >= self.max_keys:
                self.suppressed += 1
                return False
        self._last[key] = now
        return True
