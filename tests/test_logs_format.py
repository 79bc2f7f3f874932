"""The log formatters with hostile values: one line, no controls, nothing lost but what
the line bound cuts (and that is marked and counted)."""

from __future__ import annotations

import ast
import io
import json
import logging
import pickle
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.config.models import AgentConfig
from netalert.logs import (
    DEFAULT_LINE_MAX,
    JsonFormatter,
    KeyValueFormatter,
    LogStats,
    _event_parts,
    event,
    setup_logging,
)
from netalert.logtext import escape, quote, render_text

ROOT = Path(__file__).resolve().parents[1]
# Anything a terminal or a line reader could act on (the formatter output has no LF at all).
UNSAFE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b]")
FIELD = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def fields(line: str) -> dict[str, str]:
    """The key=value pairs of a text line, quoted values decoded."""
    return {k: json.loads(v) if v.startswith('"') else v for k, v in FIELD.findall(line)}


def record(msg: object, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = sys.exc_info() if exc else None
    return logging.LogRecord("netalert.test", logging.WARNING, "f.py", 1, msg, args, exc_info)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("sw1", "sw1"),
        ("two words", '"two words"'),
        ("", '""'),
        ("a\nlevel=error forged", '"a\\nlevel=error forged"'),
        ("cr\rlf\n", '"cr\\rlf\\n"'),
        ("tab\there", '"tab\\there"'),
        ("\x1b[31mred\x1b[0m", '"\\u001b[31mred\\u001b[0m"'),
        ("\x1b]0;title\x07", '"\\u001b]0;title\\u0007"'),
        ("nul\x00del\x7f", '"nul\\u0000del\\u007f"'),
        ("c1\x85nel\x9bcsi", '"c1\\u0085nel\\u009bcsi"'),
        ("ls\u2028ps\u2029", '"ls\\u2028ps\\u2029"'),
        ("bidi\u202eevil\u2066", '"bidi\\u202eevil\\u2066"'),
        ("zero\u200bwidth\ufeff", '"zero\\u200bwidth\\ufeff"'),
        ("nbsp\u00a0", '"nbsp\\u00a0"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\"', '"\\\\\\""'),
        ("caf\u00e9 \u2603 \U0001f600", '"caf\u00e9 \u2603 \U0001f600"'),  # printable: kept
        ("tag\U000e0001", '"tag\\udb40\\udc01"'),  # an astral format character
        ("lone\udcff", '"lone\\udcff"'),  # a surrogate left by surrogateescape decoding
    ],
)
def test_value_table(value: str, written: str) -> None:
    assert quote(value) == written
    if written != value:
        assert json.loads(written) == value  # a quoted value is a JSON string: nothing lost
    line = KeyValueFormatter().format(record(event("ev", v=value, after="x")))
    assert line == f"level=warning logger=netalert.test event=ev v={written} after=x"
    assert not UNSAFE.search(line)


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters() | st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Zs"])),
    st.integers(1024, 4096),
)
def test_any_text_round_trips_on_one_bounded_line(value: str, line_max: int) -> None:
    written = quote(value)
    assert all(c.isprintable() for c in written)
    assert (json.loads(written) if written.startswith('"') else written) == value
    stats = LogStats()
    ev = event("ev", a=value, b=value * 40)
    for formatter in (KeyValueFormatter(line_max, stats), JsonFormatter(line_max, stats)):
        line = formatter.format(record(ev))
        assert len(line) <= line_max and all(c.isprintable() for c in line)
    data = json.loads(JsonFormatter(line_max, stats).format(record(ev)))
    if len(json.dumps(value)) * 41 < line_max - 200:
        assert data["a"] == value and data["b"] == value * 40 and stats.lines_cut == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(st.characters() | st.sampled_from('"\\\n \x1b')), max_size=4),
    st.integers(0, 300),
)
def test_an_events_own_text_is_the_line_its_fields_render(values: list[str], extra: int) -> None:
    # the formatter writes an event's own text when re-rendering its fields would give the
    # same; around the line bound (cut or not, by one character) the lines must agree
    ev = event("ev", **{f"k{i}": v for i, v in enumerate(values)})
    head = "level=warning logger=netalert.test"
    exact = len(head) + 1 + len(ev)
    for line_max in {exact - 1, exact, exact + 1, exact + extra, max(1, exact - extra)}:
        stats = LogStats()
        line = KeyValueFormatter(line_max, stats).format(record(ev))
        parts = _event_parts(ev.name, ev.fields)
        expected, cut = render_text(head, parts, line_max)
        assert line == expected and stats.lines_cut == cut, line_max


def test_free_text_is_escaped_without_quotes() -> None:
    assert escape("a\nb \x1b[2K\u2028") == "a\\nb \\u001b[2K\\u2028"
    assert escape('keeps "quotes" and \\') == 'keeps "quotes" and \\'


@pytest.mark.parametrize(
    "msg",
    [
        "event=trap_rejected source=%s detail=%s",  # a stray printf-style call
        "%s",
    ],
)
def test_a_message_that_is_not_an_event_stays_one_line(msg: str) -> None:
    hostile = "x\nlevel=error logger=netalert.service event=alert state=resolved\x1b[2K\r\u2028"
    args = ("10.0.0.1", hostile) if msg.count("%s") == 2 else (hostile,)
    line = KeyValueFormatter().format(record(msg, *args))
    assert "\n" not in line and not UNSAFE.search(line)
    assert line.startswith("level=warning logger=netalert.test ")
    assert "x\\nlevel=error" in line and "\\u001b[2K\\r\\u2028" in line


def test_bad_printf_arguments_keep_the_line() -> None:
    line = KeyValueFormatter().format(record("%d items\n", "not a number"))
    assert line.startswith("level=warning logger=netalert.test unformattable log message")
    assert not UNSAFE.search(line)


def test_exception_text_is_one_quoted_value() -> None:
    try:
        raise ValueError("bad\nlevel=error forged \x1b[31m")
    except ValueError:
        rec = record(event("crashed", device="sw1"), exc=True)
    line = KeyValueFormatter().format(rec)
    assert line.startswith("level=warning logger=netalert.test event=crashed device=sw1 exc=")
    assert not UNSAFE.search(line)
    exc = json.loads(line.split(" exc=", 1)[1])
    assert exc.startswith("Traceback") and exc.endswith("bad\nlevel=error forged \x1b[31m")
    data = json.loads(JsonFormatter().format(rec))
    assert data["exc"] == exc and data["event"] == "crashed"


def test_long_values_are_cut_to_the_line_bound_and_counted() -> None:
    stats = LogStats()
    huge = "\x1b" * 50_000  # six characters each once escaped
    ev = event("trap_rejected", source="10.0.0.1", detail=huge, other="A" * 3000, n=5)
    line = KeyValueFormatter(1024, stats).format(record(ev))
    assert len(line) <= 1024 and not UNSAFE.search(line)
    assert stats.lines_cut == 1
    # the short values are whole; the long ones share the rest and say what they lost
    assert " source=10.0.0.1 " in line and line.endswith(" n=5")
    got = fields(line)
    detail = re.fullmatch(r"(\x1b+)\.\.\.\[\+(\d+)\]", got["detail"])
    other = re.fullmatch(r"(A+)\.\.\.\[\+(\d+)\]", got["other"])
    assert detail is not None and other is not None, got
    assert len(detail.group(1)) + int(detail.group(2)) == 50_000
    assert len(other.group(1)) + int(other.group(2)) == 3000
    assert len(detail.group(1)) > 50 and len(other.group(1)) > 300  # both kept a fair share
    data = json.loads(JsonFormatter(1024, stats).format(record(ev)))
    assert stats.lines_cut == 2
    assert data["n"] == 5 and data["source"] == "10.0.0.1"
    assert data["detail"].endswith("]") and len(data["detail"]) < 1024 // 6


def test_a_long_traceback_keeps_its_end() -> None:
    try:
        raise RuntimeError("x" * 5000 + " the end")
    except RuntimeError:
        rec = record(event("crashed"), exc=True)
    line = KeyValueFormatter(1024, LogStats()).format(rec)
    assert len(line) <= 1024 and line.endswith(' the end"')
    assert json.loads(line.split(" exc=", 1)[1]).startswith("...[+")


def test_the_bound_holds_with_very_many_values() -> None:
    stats = LogStats()
    many = event("many", **{f"field{i}": "\x1b" * 100 for i in range(200)})
    line = KeyValueFormatter(1024, stats).format(record(many))
    assert len(line) <= 1024 and line.startswith("level=warning logger=netalert.test event=many ")
    assert re.search(r"\.\.\.\[\+\d+\]$", line) and not UNSAFE.search(line)
    data = json.loads(JsonFormatter(1024, stats).format(record(many)))
    assert data["event"] == "many" and data["truncated"] > 1024 and "field0" not in data
    assert stats.lines_cut == 2


def test_short_lines_are_not_counted() -> None:
    stats = LogStats()
    for formatter in (KeyValueFormatter(1024, stats), JsonFormatter(1024, stats)):
        formatter.format(record(event("ok", v="x" * 500)))
    assert stats.lines_cut == 0


def test_json_lines() -> None:
    ev = event(
        "trap_rejected",
        source="10.0.0.1",
        detail="ops\n\x1b[2K\u2028\x85",
        count=3,
        ok=True,
        none=None,
        ratio=0.5,
        bad=float("nan"),
        level="x",
        polls={"ok": 1},
    )
    line = JsonFormatter().format(record(ev))
    assert line.isascii() and not UNSAFE.search(line)
    data = json.loads(line)
    assert data["level"] == "warning" and data["logger"] == "netalert.test"
    assert data["event"] == "trap_rejected" and "message" not in data
    assert data["detail"] == "ops\n\x1b[2K\u2028\x85"
    assert (data["count"], data["ok"], data["none"], data["ratio"]) == (3, True, None, 0.5)
    assert data["bad"] == "nan" and data["field_level"] == "x" and data["polls"] == "{'ok': 1}"
    stray = json.loads(JsonFormatter().format(record("raw %s", "a\nb\u2028")))
    assert stray["message"] == "raw a\nb\u2028" and "event" not in stray


def test_event_is_its_text() -> None:
    ev = event("alert", state="firing", summary="two words")
    assert ev == 'event=alert state=firing summary="two words"'
    assert (ev.name, ev.fields) == ("alert", {"state": "firing", "summary": "two words"})
    assert event("x", name="a").fields == {"name": "a"}  # "name" may be a field
    again = pickle.loads(pickle.dumps(ev))
    assert (again, again.name, again.fields) == (ev, ev.name, ev.fields)


def test_line_max_default_and_bounds() -> None:
    assert AgentConfig().log_line_max == DEFAULT_LINE_MAX
    with pytest.raises(ValueError, match="greater than or equal to 1024"):
        AgentConfig(log_line_max=100)


_QUIETED = ("aiosmtpd", "mail.log", "apscheduler", "asyncio", "aiohttp.access")


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """A buffer for the log; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quieted = {n: logging.getLogger(n).level for n in _QUIETED}
    yield io.StringIO()
    logging.captureWarnings(False)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in quieted.items():
        logging.getLogger(name).setLevel(level)


def test_library_lines_and_warnings_go_through_the_formatter(stderr: io.StringIO) -> None:
    setup_logging("info", "text", line_max=2048)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stderr)
    logging.getLogger("aiohttp.server").error("Error handling request\n\x1b[31mforged")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("two\nlines \x1b[2K", UserWarning, stacklevel=1)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == (
        "level=error logger=aiohttp.server Error handling request\\n\\u001b[31mforged"
    )
    assert lines[1].startswith("level=warning logger=py.warnings ")
    assert not any(UNSAFE.search(line) for line in lines)


_LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _not_events(source: str) -> list[int]:
    """Line numbers of logger calls whose message is not one ``event(...)`` call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _LEVELS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"log", "logger", "logging"}
        ):
            continue
        args = node.args[1:] if node.func.attr == "log" else node.args
        if not (
            len(args) == 1
            and isinstance(args[0], ast.Call)
            and isinstance(args[0].func, ast.Name)
            and args[0].func.id in {"event", "log_event"}
        ):
            found.append(node.lineno)
    return found


def test_every_log_call_in_netalert_logs_an_event() -> None:
    files = sorted((ROOT / "netalert").rglob("*.py"))
    assert len(files) > 50
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files for n in _not_events(p.read_text())]
    assert hits == []


def test_the_guard_finds_printf_calls() -> None:
    source = (
        'log.warning("event=x source=%s", host)\n'
        'log.info(event("ok"), exc_info=True)\n'
        'logging.error("plain")\n'
        'log.log(logging.INFO, event("ok"))\n'
        'log.debug(f"{x}")\n'
    )
    assert _not_events(source) == [1, 3, 5]
