"""Logging: one event per line with key=value context (or JSON lines), no secrets.

The one way to log in netalert is ``log.<level>(event("name", key=value, ...))``.
:func:`event` returns an :class:`Event`: a ``str`` (``event=name key=value``,
every value quoted and escaped) that also keeps its name and fields, so the
JSON format writes them as real keys. The formatters escape whatever else
reaches them (a stray printf-style call, a library's message, exception
text), so no log line can hold a line break or a terminal control sequence.

journald stamps the time, so the text format carries none; run in a terminal
it is still readable. Storm-prone events go through :class:`RateLimiter`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

from netalert.logtext import Part, escape, fit, json_cost, quote, render_measured, render_text
from netalert.present import json_value, octets_text

__all__ = [
    "DEFAULT_LINE_MAX",
    "STATS",
    "Event",
    "JsonFormatter",
    "KeyValueFormatter",
    "LogStats",
    "RateLimiter",
    "event",
    "setup_logging",
]

DEFAULT_LINE_MAX = 16384  # characters; [agent] log_line_max (journald splits at 48K)

# Keys of a JSON line that an event's fields may not take over.
_RESERVED = frozenset({"time", "level", "logger", "event", "message", "exc"})


@dataclass(slots=True)
class LogStats:
    """Counters of the log formatters (exported in /metrics)."""

    lines_cut: int = 0  # lines whose longest values were cut to fit log_line_max


STATS = LogStats()


def _text(value: object) -> str:
    if isinstance(value, bytes):  # device data: its text, or hex when binary
        return octets_text(value)
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # a broken __str__ must not lose the log line
        return f"<unprintable {type(value).__name__}>"


@functools.lru_cache(maxsize=1024)  # keys come from code: a few hundred names
def _prefix(key: str) -> str:
    # Keys come from code, but a key with a space or "=" would still confuse a reader.
    return (key if key and all(c.isalnum() or c == "_" for c in key) else quote(key)) + "="


def _event_parts(name: str, fields: dict[str, object]) -> list[Part]:
    parts = [Part("event=", name)]
    for key, value in fields.items():
        parts.append(Part(_prefix(key), _text(value)))
    return parts


class Event(str):
    """A log message made by :func:`event`: its text, plus its name and fields."""

    name: str
    fields: dict[str, object]
    # what its parts need of a line (see render_measured); None when its text was cut
    need: int | None

    def __new__(cls, name: str, fields: dict[str, object]) -> Event:
        text, cut, need = render_measured("", _event_parts(name, fields), DEFAULT_LINE_MAX)
        self = super().__new__(cls, text[1:])  # no head: drop the joining space
        self.name = name
        self.fields = fields
        self.need = None if cut else need
        return self

    def __reduce__(self) -> tuple[type[Event], tuple[str, dict[str, object]]]:
        # A record sent to another process (QueueHandler) keeps its fields.
        return (Event, (self.name, self.fields))


def event(name: str, /, **fields: object) -> Event:
    """Builds a log message ``event=name key=value key="two words"`` (fields in order).

    A value is ``str()`` of what is passed, written bare when it holds only
    letters, digits and ``_-.:/@[]+,``; otherwise as a JSON string literal with
    every control, format and separator character escaped
    (:func:`netalert.logtext.escape`). The formatters render it again from its
    fields, fitting the line to ``[agent] log_line_max``. Never raises.
    """
    return Event(name, fields)


class _Formatter(logging.Formatter):
    def __init__(self, line_max: int = DEFAULT_LINE_MAX, stats: LogStats = STATS) -> None:
        super().__init__()
        self.line_max = line_max
        self.stats = stats

    @staticmethod
    def _event(record: logging.LogRecord) -> Event | None:
        msg = record.msg
        return msg if isinstance(msg, Event) and not record.args else None

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        try:
            return record.getMessage()
        except Exception:  # bad printf arguments in a library: keep the line
            return f"unformattable log message {_text(record.msg)!r} args={_text(record.args)}"

    def _exception(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) if parts else None


class KeyValueFormatter(_Formatter):
    """``level=info logger=netalert.traps event=name key=value ...``, one line per record.

    Events are rendered from their fields; any other message is escaped
    (:func:`netalert.logtext.escape`) and exception text is quoted, so a record
    never makes two lines or a terminal escape. The longest values are cut so
    a line stays within ``line_max`` characters.
    """

    def format(self, record: logging.LogRecord) -> str:
        ev = self._event(record)
        exc = self._exception(record)
        head = f"level={escape(record.levelname.lower())} logger={escape(record.name)}"
        # the event's own text, when rendering its fields again would give it unchanged:
        # nothing cut at this line length (see render_measured)
        if (
            ev is not None
            and exc is None
            and ev.need is not None
            and len(head) + ev.need <= self.line_max
            and len(head) + 1 + len(ev) <= self.line_max
        ):
            return f"{head} {ev}"
        if ev is not None:
            parts = _event_parts(ev.name, ev.fields)
        else:
            parts = [Part("", self._message(record), "free")]
        if exc is not None:
            parts.append(Part("exc=", exc, "tail"))
        line, cut = render_text(head, parts, self.line_max)
        self.stats.lines_cut += cut
        return line


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, then ``event`` and its fields as
    keys (``message`` for a record that is not an event), and ``exc``.

    Output is ASCII (``ensure_ascii``): every control, separator and non-ASCII
    character is a ``\\u`` escape. Numbers, booleans and None stay JSON values,
    anything else becomes its ``str()``; a field named like a fixed key gets a
    ``field_`` prefix. The longest strings are cut to keep a line within
    ``line_max`` characters.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        ev = self._event(record)
        if ev is not None:
            data["event"] = ev.name
            for key, value in ev.fields.items():
                data[f"field_{key}" if key in _RESERVED else key] = _json_value(value)
        else:
            data["message"] = self._message(record)
        exc = self._exception(record)
        if exc is not None:
            data["exc"] = exc
        strings = [k for k, v in data.items() if isinstance(v, str)]
        fixed = len(json.dumps({k: "" if k in strings else v for k, v in data.items()}))
        texts, cut = fit(
            [data[k] for k in strings],
            self.line_max - fixed,
            [json_cost] * len(strings),
            [k == "exc" for k in strings],
        )
        data.update(zip(strings, texts, strict=True))
        line = json.dumps(data, ensure_ascii=True)
        if len(line) > self.line_max:  # only with very many values: keep the head
            cut = True
            kept = {k: data[k] for k in ("time", "level", "logger", "event") if k in data}
            line = json.dumps({**kept, "truncated": len(line)}, ensure_ascii=True)
        self.stats.lines_cut += cut
        return line


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, bytes):
        return json_value(value)
    return _text(value)


def setup_logging(
    level: str = "info", fmt: str = "text", *, line_max: int = DEFAULT_LINE_MAX
) -> None:
    """Sends every log record (netalert's, the libraries', Python warnings) to stderr
    in the chosen format, one line of at most ``line_max`` characters each."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter if fmt == "json" else KeyValueFormatter
    handler.setFormatter(formatter(line_max))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python warnings are multi-line on stderr; through logging they are escaped too.
    logging.captureWarnings(True)
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
