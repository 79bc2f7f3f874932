"""Names for every value, against a real snmpd: OID values by name, Opaque floats decoded,
vendor OIDs without a MIB read by number in rules.

snmpd serves HOST-RESOURCES-MIB's hrStorageType (OBJECT IDENTIFIER values from
HOST-RESOURCES-TYPES) and UCD-SNMP-MIB's laLoadFloat natively: an Opaque
wrapping a float (tag 0x9f78, as net-snmp encodes it). The APC PDU load
(``1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1``, PowerNet-MIB, which netalert does not
ship) comes from a ``pass`` script.
"""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netalert.cli.poll import PollOptions, run_poll
from netalert.snmp.wire.opaque import decode_opaque, render_opaque
from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import PassScript, Snmpd, SnmpdFactory

pytestmark = [
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]

PDU_LOAD = ".1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"
PDU_SCRIPT = f"""#!{sys.executable}
import sys

mode, oid = sys.argv[1], sys.argv[2]
wanted = [int(x) for x in oid.strip(".").split(".")]
full = [int(x) for x in "{PDU_LOAD}.1".strip(".").split(".")]
if (mode == "-g" and wanted == full) or (mode == "-n" and wanted < full):
    print("{PDU_LOAD}.1")
    print("gauge")
    print(250)
"""


def poll(device: Snmpd, *walks: str, as_json: bool = False) -> str:
    out, err = io.StringIO(), io.StringIO()
    options = PollOptions(device.address, community="public", walk=walks, json=as_json)
    code = run_poll(options, out, err)
    assert (code, err.getvalue()) == (0, "")
    return out.getvalue()


def values(text: str, name: str) -> dict[str, str]:
    """``{index: value}`` of the ``name.INDEX = value`` lines."""
    pattern = rf"^{re.escape(name)}\.(\S+) = (.*)$"
    return dict(re.findall(pattern, text, re.MULTILINE))


def test_poll_shows_oid_values_by_name_and_opaque_floats_as_numbers(
    snmpd_factory: SnmpdFactory,
) -> None:
    device = snmpd_factory()
    text = poll(
        device,
        "HOST-RESOURCES-MIB::hrStorageType",
        "UCD-SNMP-MIB::laLoad",
        "UCD-SNMP-MIB::laLoadFloat",
    )
    types = values(text, "HOST-RESOURCES-MIB::hrStorageType")
    assert types and all(
        re.fullmatch(r"HOST-RESOURCES-TYPES::hrStorage\w+", v) for v in types.values()
    ), types
    assert "HOST-RESOURCES-TYPES::hrStorageRam" in types.values()
    loads, floats = values(text, "UCD-SNMP-MIB::laLoad"), values(text, "UCD-SNMP-MIB::laLoadFloat")
    assert sorted(floats) == sorted(loads) == ["1", "2", "3"], text
    for index, shown in floats.items():
        # "2.08", not the Opaque's bytes "9f:78:04:40:05:1e:b8"
        assert re.fullmatch(r"\d+(\.\d+)?", shown), shown
        assert abs(float(shown) - float(loads[index])) < 0.5, (shown, loads[index])

    data = json.loads(poll(device, "UCD-SNMP-MIB::laLoadFloat", as_json=True))
    sample = next(s for s in data["samples"] if s["name"] == "UCD-SNMP-MIB::laLoadFloat")
    assert sample["type"] == "Opaque" and isinstance(sample["value"], float), sample
    # the same text as the table shows for a float (the load average itself moves
    # between the two polls, so the label is checked against this poll's value)
    assert re.fullmatch(r"\d+(\.\d+)?", sample["label"]), sample
    assert abs(float(sample["label"]) - sample["value"]) < 1e-3, sample


@pytest.mark.parametrize(
    ("raw", "value", "shown"),
    [
        # the shortest decimal that is the same float32, not 2.0799999237060547
        (bytes.fromhex("9f7804") + struct.pack(">f", 2.08), 2.08, "2.08"),
        (bytes.fromhex("9f7804") + struct.pack(">f", 1234.5), 1234.5, "1234.5"),
        (bytes.fromhex("9f7904") + struct.pack(">f", 1.5)[:4], None, ""),  # double tag, 4 bytes
        (bytes.fromhex("9f7908") + struct.pack(">d", -0.125), -0.125, "-0.125"),
        (bytes.fromhex("9f7808") + struct.pack(">d", 1.0), None, ""),  # float tag, 8 bytes
        (bytes.fromhex("9f780400000000ff"), None, ""),  # trailing byte
        (bytes.fromhex("9f7804") + struct.pack(">f", float("nan")), float("nan"), "nan"),
        (b"\x04\x02hi", None, ""),  # an Opaque holding something else: left as bytes
        (b"", None, ""),
    ],
)
def test_opaque_float_and_double_decoding(raw: bytes, value: float | None, shown: str) -> None:
    decoded = decode_opaque(raw)
    if value is None:
        assert decoded is None
    elif value != value:
        assert decoded is not None and decoded != decoded
    else:
        assert decoded == value
    assert render_opaque(raw) == shown


CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
device_unreachable = false

[snmp]
timeout = "1s"
retries = 0
interval = "1s"
jitter = 0.0

[[devices]]
name = "pdu"
address = "{device}"
collect = ["load", "apc"]

[collect.load]
walk = ["UCD-SNMP-MIB::laLoadFloat"]

[collect.apc]
walk = ["1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"]   # PowerNet-MIB::rPDULoadStatusLoad, no MIB

[traps]
enabled = false

[[rules]]
name = "LoadKnown"
expr = "laLoadFloat >= 0"
summary = "load {{{{ laIndex }}}} is {{{{ value }}}}"

[[rules]]
name = "PduLoad"
expr = 'value("1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1") > 200'
summary = "{{{{ device }}}} draws {{{{ value }}}} (0.1 A)"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
"""


@pytest.fixture
def agent(
    tmp_path: Path, snmpd_factory: SnmpdFactory, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[AgentProcess]:
    device = snmpd_factory(passes=[PassScript(PDU_LOAD, PDU_SCRIPT)])
    http = free_tcp_port()
    text = CONFIG.format(http=http, device=device.address, smtp=smtp_server.port)
    proc = AgentProcess(tmp_path, text, http, mib_cache)
    yield proc
    proc.cleanup()


def firing(agent: AgentProcess) -> list[dict[str, Any]]:
    status, body = agent.get("/api/alerts")
    assert status == 200, body
    return [a for a in json.loads(body)["alerts"] if a["state"] == "firing"]


def test_rules_read_opaque_floats_and_vendor_oids_by_number(agent: AgentProcess) -> None:
    agent.start()
    deadline = time.monotonic() + 20
    while len(found := firing(agent)) < 4:
        assert time.monotonic() < deadline, (found, agent.log()[-3000:])
        time.sleep(0.1)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for alert in found:
        by_rule.setdefault(alert["rule"], []).append(alert)
    loads = sorted(by_rule["LoadKnown"], key=lambda a: a["labels"]["laIndex"])
    assert [a["labels"]["laIndex"] for a in loads] == ["1", "2", "3"]
    for alert in loads:
        assert re.fullmatch(r"\d+(\.\d+)?", alert["value"]), alert
        assert alert["summary"] == f"load {alert['labels']['laIndex']} is {alert['value']}"
    (pdu,) = by_rule["PduLoad"]
    assert (pdu["value"], pdu["summary"]) == ("250", "pdu draws 250 (0.1 A)")
