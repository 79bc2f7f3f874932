"""Every output shows a value as netalert.present does: mail, web, commands, log."""

from __future__ import annotations

import json
import logging

import pytest

from netalert.alerts.model import Alert, AlertState
from netalert.alerts.show import alert_json, alert_table
from netalert.cli.poll import format_lines, result_json
from netalert.cli.traps import format_event, format_json
from netalert.logs import JsonFormatter, KeyValueFormatter, event
from netalert.mail.headers import body_text, header_text
from netalert.mail.views import format_varbind_value, line
from netalert.poll.rows import PollResult
from netalert.present import json_value, value_text
from netalert.snmp.types import Sample, SnmpType, TrapEvent, VarBind
from netalert.web.live import format_varbind

T = SnmpType
VARBINDS = (
    VarBind("1.3.6.1.2.1.2.2.1.8.3", T.INTEGER, 2, "IF-MIB::ifOperStatus", "3", "down"),
    VarBind("1.3.6.1.2.1.2.2.1.2.3", T.OCTET_STRING, b"eth0", "IF-MIB::ifDescr", "3"),
    VarBind("1.3.6.1.4.1.9.9.1", T.OCTET_STRING, b"\x00\xff\x10"),
    VarBind("1.3.6.1.4.1.9.9.2", T.OCTET_STRING, b"bad\x1b[2J\xff"),
    VarBind("1.3.6.1.2.1.1.3.0", T.TIMETICKS, 8_640_000, "SNMPv2-MIB::sysUpTime", "0"),
    VarBind("1.3.6.1.6.3.1.1.4.1.0", T.OID, "1.3.6.1.6.3.1.1.5.3", label="IF-MIB::linkDown"),
    VarBind("1.3.6.1.2.1.4.20.1.1.1", T.IP_ADDRESS, "192.0.2.1"),
    VarBind("1.3.6.1.4.1.2021.10.1.6.1", T.OPAQUE, 2.08, label="2.08"),
    VarBind("1.3.6.1.4.1.9.9.3", T.NO_SUCH_INSTANCE, None),
)
TEXTS = [
    "down(2)",
    "eth0",
    "00:ff:10",
    "62:61:64:1b:5b:32:4a:ff",
    "1d 00:00:00.00(8640000)",
    "IF-MIB::linkDown",
    "192.0.2.1",
    "2.08",
    "noSuchInstance",
]


def test_the_table_of_texts() -> None:
    assert [value_text(vb.type, vb.value, vb.label) for vb in VARBINDS] == TEXTS


@pytest.mark.parametrize(("vb", "text"), list(zip(VARBINDS, TEXTS, strict=True)))
def test_mail_and_web_show_the_same_text(vb: VarBind, text: str) -> None:
    assert format_varbind_value(vb) == text
    assert format_varbind(vb).endswith(f" = {text}")


def test_netalert_poll_prints_the_same_text_and_json() -> None:
    samples = tuple(
        Sample("sw1", vb.oid, vb.name, vb.index, vb.type, vb.value, vb.label, 0.0)
        for vb in VARBINDS
    )
    result = PollResult("sw1", "192.0.2.9:161", "ok", 0.0, 0.1, samples=samples)
    assert [line.partition(" = ")[2] for line in format_lines(result)] == TEXTS
    data = json.loads(json.dumps(result_json(result)))
    assert [s["value"] for s in data["samples"]] == [json_value(vb.value) for vb in VARBINDS]
    assert data["samples"][2]["value"] == {"hex": "00ff10"}


def test_netalert_traps_prints_the_same_text_and_json() -> None:
    trap = TrapEvent("192.0.2.9", 162, "2c", "1.3.6.1.6.3.1.1.5.3", "", VARBINDS, None, 0.0)
    _, body = format_event(trap, str).split("\n")
    shown = [part.partition(" = ")[2] for part in body.split("\t")]
    assert shown == [
        "INTEGER: down(2)",
        'STRING: "eth0"',
        "Hex-STRING: 00:ff:10",
        "Hex-STRING: 62:61:64:1b:5b:32:4a:ff",
        "Timeticks: 1d 00:00:00.00(8640000)",
        "OID: IF-MIB::linkDown",
        "IpAddress: 192.0.2.1",
        "Opaque: 2.08",
        "noSuchInstance",
    ]
    values = [vb["value"] for vb in json.loads(format_json(trap))["varbinds"]]
    assert values == [json_value(vb.value) for vb in VARBINDS]


def test_netalert_alerts_json_encodes_bytes_the_same_way() -> None:
    alert = Alert(
        "fp", "R", "warning", "sw1", {}, {}, AlertState.FIRING, 0.0, None, 0.0, "down", 1,
        False, False, "trap", VARBINDS,
    )  # fmt: skip
    data = json.loads(json.dumps(alert_json(alert)))
    assert [vb["value"] for vb in data["varbinds"]] == [json_value(vb.value) for vb in VARBINDS]


def test_the_log_writes_bytes_as_text_or_hex_and_as_json() -> None:
    def line(formatter: logging.Formatter, value: bytes) -> str:
        record = logging.LogRecord("netalert.x", logging.INFO, "", 0, "", None, None)
        record.msg = event("seen", value=value)
        return formatter.format(record)

    assert line(KeyValueFormatter(1000), b"eth0").endswith("seen value=eth0")
    assert line(KeyValueFormatter(1000), b"\x00\xff").endswith("seen value=00:ff")
    assert json.loads(line(JsonFormatter(1000), b"\x00\xff"))["value"] == {"hex": "00ff"}


def test_the_alerts_table_escapes_like_every_terminal_output() -> None:
    alert = Alert(
        "fp", "R", "warning", "sw1", {}, {}, AlertState.FIRING, 0.0, None, 0.0,
        "a\x1b[2Jb" + "x" * 60, 1, False, False, "poll",
    )  # fmt: skip
    row = alert_table([alert]).splitlines()[1]
    assert "a\\u001b[2Jb" + "x" * 33 + "…" in row  # escaped as in the log, cut at 40


def test_mail_text_reads_octets_as_the_one_renderer() -> None:
    assert header_text(b"\x00\xff") == body_text(b"\x00\xff") == line(b"\x00\xff") == "00:ff"
    assert header_text(b"eth0\r\n") == line(b"eth0") == "eth0"


def test_the_alerts_table_ids_are_the_shortest_unambiguous_prefix() -> None:
    def alert(fp: str) -> Alert:
        return Alert(
            fp, "R", "warning", "sw1", {}, {}, AlertState.FIRING, 0.0, None, 0.0,
            "v", 1, False, False, "poll",
        )  # fmt: skip

    # 8 characters, longer only where two fingerprints share them (`ack` refuses ambiguity)
    rows = alert_table([alert("0123456789abcdef"), alert("fedcba9876543210")]).splitlines()
    assert [r.split()[0] for r in rows] == ["ID", "01234567", "fedcba98"]
    rows = alert_table([alert("0123456789abcdef"), alert("0123456780abcdef")]).splitlines()
    assert [r.split()[0] for r in rows] == ["ID", "0123456789", "0123456780"]
