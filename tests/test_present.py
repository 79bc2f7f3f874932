"""The one value presentation: every SNMP type and value as text and as JSON."""

from __future__ import annotations

import json
import math
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.present import (
    clip,
    hex_text,
    json_value,
    octets_text,
    timeticks_text,
    value_from_json,
    value_text,
)
from netalert.snmp.types import SnmpType as T
from netalert.snmp.types import Value

_FLOAT = b"\x9f\x78\x04" + struct.pack(">f", 2.08)
_DOUBLE = b"\x9f\x79\x08" + struct.pack(">d", -0.5)

# type, value, label, text, JSON
CASES: list[tuple[T | None, Value, str, str, object]] = [
    (T.INTEGER, 2, "down", "down(2)", 2),
    (T.INTEGER, 7, "", "7", 7),
    (T.INTEGER, -3, "", "-3", -3),
    (T.INTEGER, 1234, "12.34", "12.34(1234)", 1234),  # DISPLAY-HINT d-2
    (T.INTEGER, 5, "5", "5", 5),  # a label that says nothing more
    (T.COUNTER32, 4_294_967_295, "", "4294967295", 4_294_967_295),
    (T.COUNTER64, 2**64 - 1, "", str(2**64 - 1), 2**64 - 1),
    (T.GAUGE32, 1200, "", "1200", 1200),
    (T.TIMETICKS, 8_640_000, "", "1d 00:00:00.00(8640000)", 8_640_000),
    (T.TIMETICKS, 198_854, "00:33:08.54", "00:33:08.54(198854)", 198_854),
    (T.OCTET_STRING, b"eth0", "", "eth0", {"hex": "65746830"}),
    (T.OCTET_STRING, b"Gi0/1\x00\x00", "", "Gi0/1", {"hex": "4769302f310000"}),
    (
        T.OCTET_STRING,
        b"two\r\nlines\tok\r\n",
        "",
        "two\r\nlines\tok",
        {"hex": "74776f0d0a6c696e6573096f6b0d0a"},
    ),
    (T.OCTET_STRING, "é".encode(), "", "é", {"hex": "c3a9"}),
    (T.OCTET_STRING, b"\x00\x1a\x2b\x3c\x4d\x5e", "", "00:1a:2b:3c:4d:5e", {"hex": "001a2b3c4d5e"}),
    (T.OCTET_STRING, b"\x00\x1a\x2b", "00:1a:2b", "00:1a:2b", {"hex": "001a2b"}),  # MacAddress hint
    (T.OCTET_STRING, b"\x00\x00", "", "00:00", {"hex": "0000"}),  # padding only is not text
    (T.OCTET_STRING, b"", "", "", {"hex": ""}),
    (T.OCTET_STRING, b"\x07\xea\x0b\x1b", "2026-11-27", "2026-11-27", {"hex": "07ea0b1b"}),
    (T.OID, "1.3.6.1.6.3.1.1.5.3", "IF-MIB::linkDown", "IF-MIB::linkDown", "1.3.6.1.6.3.1.1.5.3"),
    (T.OID, "1.3.6.1.4.1.99999", "", "1.3.6.1.4.1.99999", "1.3.6.1.4.1.99999"),
    (T.IP_ADDRESS, "192.0.2.1", "", "192.0.2.1", "192.0.2.1"),
    (T.OPAQUE, 2.08, "2.08", "2.08", 2.08),
    (T.OPAQUE, 0.1, "", "0.1", 0.1),
    (T.OPAQUE, _FLOAT, "", "2.08", {"hex": _FLOAT.hex()}),
    (T.OPAQUE, _DOUBLE, "", "-0.5", {"hex": _DOUBLE.hex()}),
    (T.OPAQUE, b"\x9f\x78\x04\x00", "", "9f:78:04:00", {"hex": "9f780400"}),  # not a whole float
    (T.OPAQUE, math.inf, "", "inf", {"float": "inf"}),
    (T.OPAQUE, -math.inf, "", "-inf", {"float": "-inf"}),
    (T.NULL, None, "", "NULL", None),
    (T.NO_SUCH_INSTANCE, None, "", "noSuchInstance", None),
    (T.NO_SUCH_OBJECT, None, "", "noSuchObject", None),
    (T.END_OF_MIB_VIEW, None, "", "endOfMibView", None),
    (None, None, "", "NULL", None),
    (None, b"\xff\xfe", "", "ff:fe", {"hex": "fffe"}),
]


@pytest.mark.parametrize(("kind", "value", "label", "text", "encoded"), CASES)
def test_each_type_and_value(
    kind: T | None, value: Value, label: str, text: str, encoded: object
) -> None:
    assert value_text(kind, value, label) == text
    assert json_value(value) == encoded
    # the JSON is JSON, and reads back as the value (given its type)
    data = json.loads(json.dumps(json_value(value), allow_nan=False))
    assert value_from_json(data) == value


# Hostile octets: never text with controls, never a raise, always hex-exact in JSON.
HOSTILE = [
    (b"line\x07bell", "6c:69:6e:65:07:62:65:6c:6c"),
    (b"\x1b[2Jcleared", "1b:5b:32:4a:63:6c:65:61:72:65:64"),
    (b"\xc3\x28", "c3:28"),  # invalid UTF-8
    (b"ok\xff", "6f:6b:ff"),
    (b"\xed\xa0\x80", "ed:a0:80"),  # an encoded surrogate is not UTF-8
    ("\u202eevil".encode(), "e2:80:ae:65:76:69:6c"),  # a bidi override is not printable
    (b"a\x00b", "61:00:62"),  # a NUL inside is content, not padding
    (b"\x9bcsi", "9b:63:73:69"),
]


@pytest.mark.parametrize(("raw", "text"), HOSTILE)
def test_hostile_octets_are_hex(raw: bytes, text: str) -> None:
    assert octets_text(raw) == text == value_text(T.OCTET_STRING, raw)
    assert octets_text(raw, limit=1000) == text
    assert json_value(raw) == {"hex": raw.hex()} and value_from_json(json_value(raw)) == raw


@pytest.mark.parametrize(
    ("raw", "limit", "text"),
    [
        (b"x" * 50, 10, "xxxxxxxxx…"),
        (b"x" * 10, 10, "x" * 10),
        ("é".encode() * 10, 5, "éé…"),  # the cut falls inside a character: it is left out
        (b"\x00\x01" * 10, 10, "00:01:00:…"),
        (b"ab\x00\x00\x00", 2, "ab"),  # padding does not count
    ],
)
def test_limit_cuts_and_marks(raw: bytes, limit: int, text: str) -> None:
    assert octets_text(raw, limit=limit) == text
    assert len(text) <= limit


def test_huge_values_cost_what_is_shown() -> None:
    huge_text, huge_binary = b"a" * 20_000_000, b"\x01" * 20_000_000
    start = time.process_time()
    for _ in range(200):
        assert len(value_text(T.OCTET_STRING, huge_text, limit=80)) == 80
        assert len(value_text(T.OCTET_STRING, huge_binary, limit=80, mark=" [cut]")) <= 80
    # 200 renderings of 20 MB each: bounded work is milliseconds, unbounded tens of seconds
    assert time.process_time() - start < 5
    assert value_text(T.OCTET_STRING, huge_binary, limit=80, mark=" [cut]").endswith(" [cut]")
    assert value_text(T.OCTET_STRING, b"x", "L" * 500, limit=40).endswith("…")
    assert len(value_text(T.OCTET_STRING, b"x", "L" * 500, limit=40)) == 40


def test_unbounded_values_are_whole() -> None:
    raw = bytes(range(256)) * 4
    assert hex_text(raw) == raw.hex(":")
    assert octets_text(b"y" * 100_000) == "y" * 100_000


def test_clip() -> None:
    assert clip("abc", None) == "abc"
    assert clip("abc", 3) == "abc"
    assert clip("abc", 3, cut=True) == "ab…"
    assert clip("ab   cdef", 6) == "ab…"  # no white space before the mark
    assert clip("abcdef", 2, mark=" [truncated]") == " [truncated]"


@pytest.mark.parametrize(
    ("ticks", "text"),
    [(0, "00:00:00.00"), (8_640_000, "1d 00:00:00.00"), (-1, "-1")],
)
def test_timeticks_text(ticks: int, text: str) -> None:
    assert timeticks_text(ticks) == text


@given(st.integers(0, 2**64))
def test_timeticks_text_counts_days_hours_minutes_seconds(ticks: int) -> None:
    days, rest = divmod(ticks, 8_640_000)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest // 100)) + f".{rest % 100:02d}"
    assert timeticks_text(ticks) == (f"{days}d {clock}" if days else clock)


def test_value_from_json_reads_old_records_and_refuses_junk() -> None:
    assert value_from_json({"b64": "AAE="}) == b"\x00\x01"
    for junk in ({"b64": "!!"}, {"hex": "xyz"}, {"float": "1e999x"}, {"other": 1}, [1], True):
        assert value_from_json(junk) is None
    assert value_from_json("00ff") == "00ff"  # a text is a text, hex or not
    nan = value_from_json(json_value(math.nan))
    assert isinstance(nan, float) and math.isnan(nan)


_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**64), 2**64),
    st.floats(),
    st.binary(max_size=64),
    st.text(max_size=32),
)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, kind=st.sampled_from([*T, None]), label=st.text(max_size=8))
def test_any_value_round_trips_and_renders(value: Value, kind: T | None, label: str) -> None:
    data = json.loads(json.dumps(json_value(value), allow_nan=False))
    back = value_from_json(data)
    assert back == value or (isinstance(value, float) and math.isnan(value) and back != back)
    text = value_text(kind, value, label, limit=50)
    assert isinstance(text, str) and len(text) <= 50
