"""The MIB layer against a real agent: every OID net-snmp's snmpd serves gets a name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from netalert.config.models import MibsConfig
from netalert.mib import MibTree, load_mibs
from tests.support.snmpd import PassScript, Snmpd, SnmpdFactory


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> MibTree:
    return load_mibs(MibsConfig(paths=[]), tmp_path_factory.mktemp("state"))


def walk(agent: Snmpd, *args: str) -> list[tuple[str, str]]:
    """(numeric OID, value text) pairs from net-snmp's snmpbulkwalk."""
    result = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Oe", "-Cr50", agent.address, *args],
        env=agent.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pairs = []
    for line in result.stdout.splitlines():
        oid, sep, value = line.partition(" = ")
        if sep:
            pairs.append((oid.lstrip("."), value))
    return pairs


def test_every_oid_of_a_whole_tree_walk_is_named_and_its_index_decodes(
    tree: MibTree, snmpd: Snmpd
) -> None:
    pairs = walk(snmpd, ".")
    assert len(pairs) > 1000, "the agent's tree looks too small"
    modules = set()
    for oid, _ in pairs:
        node, suffix = tree.lookup(oid)
        assert node is not None, oid
        assert node.kind in ("scalar", "column"), f"{oid} named {tree.name(oid)}"
        modules.add(node.module)
        assert tree.oid(tree.name(oid)) == tuple(int(x) for x in oid.split("."))
        if node.kind == "scalar":
            assert suffix == "0", oid
        else:
            assert tree.decode_index(node, suffix), oid
    assert {
        "SNMPv2-MIB",
        "IF-MIB",
        "HOST-RESOURCES-MIB",
        "IP-MIB",
        "UCD-SNMP-MIB",
        "NET-SNMP-AGENT-MIB",
    } <= modules


def test_values_of_the_agent_get_their_labels(tree: MibTree, snmpd: Snmpd) -> None:
    values = dict(walk(snmpd, "1.3.6.1.2.1.2.2.1"))  # ifTable
    loopbacks = [
        oid.rsplit(".", 1)[1]
        for oid, value in values.items()
        if oid.startswith("1.3.6.1.2.1.2.2.1.3.") and value == "INTEGER: 24"
    ]
    assert loopbacks, "no softwareLoopback interface in ifTable"
    index = loopbacks[0]
    if_type = tree.node("IF-MIB::ifType")
    assert tree.label(if_type, 24) == "softwareLoopback"
    oper = values[f"1.3.6.1.2.1.2.2.1.8.{index}"]
    assert tree.label(tree.node("ifOperStatus"), int(oper.split(": ")[1])) == "up"
    assert tree.decode_index(tree.node("ifDescr"), index) == {"ifIndex": int(index)}

    # hrSystemDate is a DateAndTime the agent fills from its clock
    (date_value,) = [v for _, v in walk(snmpd, "1.3.6.1.2.1.25.1.2")]
    octets = bytes.fromhex(date_value.split(": ", 1)[1].replace(" ", ""))
    text = tree.label(tree.node("HOST-RESOURCES-MIB::hrSystemDate"), octets)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d( [+-]\d\d:\d\d)?", text), text


def test_the_project_mib_names_a_pass_through_subtree(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    """snmpd serving the demo MIB's enterprise arc through a pass script."""
    script = "\n".join(
        [
            "#!/bin/sh",
            'if [ "$1" = "-g" ] && [ "$2" = ".1.3.6.1.4.1.32473.1.1.1.1.0" ]; then',
            "  echo .1.3.6.1.4.1.32473.1.1.1.1.0; echo gauge; echo 41; exit 0; fi",
            'if [ "$1" = "-g" ] && [ "$2" = ".1.3.6.1.4.1.32473.1.1.2.1.2.3" ]; then',
            "  echo .1.3.6.1.4.1.32473.1.1.2.1.2.3; echo integer; echo 4; exit 0; fi",
            "exit 0",
        ]
    )
    agent = snmpd_factory(community="public", passes=[PassScript(".1.3.6.1.4.1.32473.1", script)])
    tree = load_mibs(MibsConfig(paths=[Path(__file__).resolve().parent.parent / "mibs"]), tmp_path)
    get = subprocess.run(
        [
            "snmpget",
            "-v2c",
            "-c",
            "public",
            "-On",
            "-Oe",
            agent.address,
            tree.oid_str("NETALERT-DEMO-MIB::demoChassisTemperature.0"),
            tree.oid_str("NETALERT-DEMO-MIB::demoPortPoeState.3"),
        ],
        env=agent.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    named = {tree.name(line.split(" = ")[0]): line.split(": ")[-1] for line in get}
    assert named == {
        "NETALERT-DEMO-MIB::demoChassisTemperature.0": "41",
        "NETALERT-DEMO-MIB::demoPortPoeState.3": "4",
    }
    poe = tree.node("demoPortPoeState")
    assert tree.label(poe, int(named["NETALERT-DEMO-MIB::demoPortPoeState.3"])) == "fault"
