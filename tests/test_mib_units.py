"""Pure parts of the MIB layer: hints, index codec, source headers, stand-ins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.errors import MibError
from netalert.mib.hints import (
    render_date_and_time,
    render_inet_address,
    render_int,
    render_octets,
)
from netalert.mib.indexes import IndexPart, decode_index, encode_index
from netalert.mib.loader import builtin_facts
from netalert.mib.sources import parse_header
from netalert.mib.standins import MACRO_MODULES, macro_module_text, standin_text


@pytest.mark.parametrize(
    ("hint", "value", "text"),
    [
        ("d", 42, "42"),
        ("d-2", 2150, "21.50"),
        ("d-2", 5, "0.05"),
        ("d-1", -15, "-1.5"),
        ("d-3", 1, "0.001"),
        ("x", 255, "ff"),
        ("o", 8, "10"),
        ("b", 5, "101"),
        ("q", 5, ""),
    ],
)
def test_render_int(hint: str, value: int, text: str) -> None:
    assert render_int(hint, value) == text


@pytest.mark.parametrize(
    ("hint", "data", "text"),
    [
        ("255a", b"edge-1", "edge-1"),
        ("255t", "Zürich".encode(), "Zürich"),
        ("1x:", bytes.fromhex("001a2b3c4d5e"), "00:1a:2b:3c:4d:5e"),
        ("1x:", b"\x0a", "0a"),
        ("1d.1d.1d.1d", bytes([192, 0, 2, 1]), "192.0.2.1"),
        ("2x:2x", bytes.fromhex("fe800001"), "fe80:0001"),
        ("1d.1d.1d.1d%4d", bytes([10, 0, 0, 1, 0, 0, 0, 7]), "10.0.0.1%7"),
        (
            "2d-1d-1d,1d:1d:1d.1d,1a1d:1d",
            bytes([7, 234, 11, 27, 13, 37, 5, 0]),
            "2026-11-27,13:37:5.0",
        ),
        ("*1x:/1a", bytes([2, 0xAB, 0xCD]) + b"Z", "ab:cd/Z"),  # repeat count and terminator
        ("4d", bytes([0, 0, 1, 0]), "256"),
        ("1x", b"", ""),
        ("bogus", b"abc", ""),
    ],
)
def test_render_octets(hint: str, data: bytes, text: str) -> None:
    assert render_octets(hint, data) == text


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (bytes([7, 234, 11, 27, 13, 37, 5, 4, ord("-"), 5, 30]), "2026-11-27 13:37:05.4 -05:30"),
        (bytes([7, 234, 2, 29, 0, 0, 0, 0]), "2026-02-29 00:00:00.0"),  # no calendar check
        (bytes([7, 234, 13, 1, 0, 0, 0, 0]), ""),  # month 13
        (b"\x07\xea", ""),
    ],
)
def test_render_date_and_time(data: bytes, text: str) -> None:
    assert render_date_and_time(data) == text


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (bytes([198, 51, 100, 7]), "198.51.100.7"),
        (bytes.fromhex("fe80" + "00" * 13 + "01"), "fe80::1"),
        (bytes.fromhex("fe80" + "00" * 13 + "01") + b"\x00\x00\x00\x02", "fe80::1%2"),
        (b"ns1.example.org", "ns1.example.org"),  # DNS; a 16-octet name would read as IPv6
        (b"", ""),
        (b"\x00\x01\x02", ""),
    ],
)
def test_render_inet_address(data: bytes, text: str) -> None:
    assert render_inet_address(data) == text


PARTS = (
    IndexPart("kind", "INTEGER"),
    IndexPart("addr", "IpAddress"),
    IndexPart("mac", "OCTET STRING", fixed_size=6),
    IndexPart("name", "OCTET STRING", text=True),
    IndexPart("oid", "OBJECT IDENTIFIER"),
    IndexPart("blob", "OCTET STRING"),
)


@pytest.mark.parametrize(
    ("parts", "implied", "subids", "values"),
    [
        (PARTS[:1], False, [7], {"kind": 7}),
        (PARTS[1:2], False, [10, 0, 0, 1], {"addr": "10.0.0.1"}),
        (PARTS[2:3], False, [0, 1, 2, 3, 4, 5], {"mac": bytes(range(6))}),
        (PARTS[3:4], False, [2, 104, 105], {"name": "hi"}),
        (PARTS[3:4], True, [104, 105], {"name": "hi"}),
        (PARTS[3:4], False, [1, 255], {"name": b"\xff"}),  # not UTF-8: bytes
        (PARTS[4:5], False, [3, 1, 3, 6], {"oid": "1.3.6"}),
        (PARTS[4:5], True, [1, 3, 6], {"oid": "1.3.6"}),
        (PARTS[5:6], False, [0], {"blob": b""}),
        (
            (IndexPart("at", "IpAddress", network_address=True),),
            False,
            [1, 192, 0, 2, 7],
            {"at": "192.0.2.7"},
        ),
    ],
)
def test_index_codec_table(
    parts: tuple[IndexPart, ...], implied: bool, subids: list[int], values: dict[str, object]
) -> None:
    assert decode_index(parts, subids, implied) == values
    assert encode_index(parts, values, implied) == tuple(subids)  # type: ignore[arg-type]


def test_index_codec_errors() -> None:
    with pytest.raises(MibError, match="needs 6 octets"):
        encode_index(PARTS[2:3], {"mac": b"\x00"})
    with pytest.raises(MibError, match="no value for index object kind"):
        encode_index(PARTS[:1], {})
    with pytest.raises(MibError, match="not an internet NetworkAddress"):
        decode_index((IndexPart("at", "IpAddress", network_address=True),), [2, 1, 2, 3, 4])
    with pytest.raises(MibError, match="syntax 'Opaque-ish'"):
        decode_index((IndexPart("x", "Opaque-ish"),), [1])


octets = st.binary(max_size=20)
row = st.fixed_dictionaries(
    {
        "kind": st.integers(min_value=0, max_value=2**32 - 1),
        "addr": st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
        "mac": st.binary(min_size=6, max_size=6),
        "name": st.text(max_size=10).filter(lambda s: "\x00" not in s),
        "oid": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8).map(
            lambda xs: ".".join(map(str, xs))
        ),
        "blob": octets,
    }
)


@settings(max_examples=300, deadline=None)
@given(values=row, implied=st.booleans())
def test_hypothesis_index_round_trip(values: dict[str, object], implied: bool) -> None:
    encoded = encode_index(PARTS, values, implied)  # type: ignore[arg-type]
    assert decode_index(PARTS, encoded, implied) == values


def test_parse_header_ignores_comments_and_strings() -> None:
    text = (
        "-- FAKE-MIB DEFINITIONS ::= BEGIN (a comment)\n"
        "REAL-MIB DEFINITIONS ::= BEGIN\n"
        "IMPORTS\n"
        "    a FROM SNMPv2-SMI -- b FROM NOT-IMPORTED\n"
        "    c FROM IF-MIB;\n"
        'x OBJECT IDENTIFIER ::= { a 1 } -- "FROM QUOTED" --\n'
        "END\n"
        "SECOND-MIB DEFINITIONS ::= BEGIN\nIMPORTS d FROM REAL-MIB;\nEND\n"
    )
    assert parse_header(text) == [
        ("REAL-MIB", ("SNMPv2-SMI", "IF-MIB"), 2),
        ("SECOND-MIB", ("REAL-MIB",), 8),
    ]
    assert parse_header("not a MIB") == []


def test_every_builtin_stand_in_parses_with_pysmi() -> None:
    """A stand-in pysmi cannot parse would fail every MIB importing that module."""
    from pysmi.codegen.symtable import SymtableCodeGen

    from netalert.mib.compiler import _parser

    parser = _parser()  # the compiler's own (built once per process)
    facts, _ = builtin_facts(None)
    texts = [standin_text(f) for f in facts] + [macro_module_text(m) for m in MACRO_MODULES]
    for text in texts:
        for ast in parser.parse(text):
            SymtableCodeGen().gen_code(ast, {})
    smi = standin_text(next(f for f in facts if f.name == "SNMPv2-SMI"))
    assert "enterprises OBJECT IDENTIFIER ::= { iso 3 6 1 4 1 }" in smi
    assert "Counter64 ::= [APPLICATION 6] IMPLICIT INTEGER (0..18446744073709551615)" in smi
    tc = standin_text(next(f for f in facts if f.name == "SNMPv2-TC"))
    assert 'DisplayString ::= TEXTUAL-CONVENTION\n    DISPLAY-HINT "255a"' in tc
