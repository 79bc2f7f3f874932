"""The runtime tree: name ⇄ OID, enums, row indexes, DISPLAY-HINTs, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.config.models import MibsConfig
from netalert.errors import MibError
from netalert.mib import MibNode, MibTree, load_mibs

REPO = Path(__file__).resolve().parent.parent
OUT_OF_THE_BOX = (
    "SNMPv2-MIB",
    "IF-MIB",
    "IANAifType-MIB",
    "HOST-RESOURCES-MIB",
    "ENTITY-MIB",
    "IP-MIB",
    "UCD-SNMP-MIB",
    "NET-SNMP-AGENT-MIB",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> MibTree:
    # Out of the box: an empty mibs/ folder, the system folders, the built-ins.
    empty = tmp_path_factory.mktemp("mibs")
    state = tmp_path_factory.mktemp("state")
    return load_mibs(MibsConfig(paths=[empty]), state)


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory: pytest.TempPathFactory) -> MibTree:
    state = tmp_path_factory.mktemp("state")
    return load_mibs(MibsConfig(paths=[REPO / "mibs"]), state)


@pytest.mark.parametrize("module", OUT_OF_THE_BOX)
def test_every_name_of_the_out_of_the_box_modules_round_trips(tree: MibTree, module: str) -> None:
    nodes = [n for n in tree.nodes().values() if n.module == module]
    assert nodes, f"{module} is not loaded"
    for node in nodes:
        dotted = tree.oid_str(node.full_name)
        assert dotted == ".".join(map(str, node.oid))
        assert tree.name(dotted) == node.full_name
        if node.kind in ("scalar", "column"):
            assert tree.name(dotted + ".0") == node.full_name + ".0"
        assert tree.oid(f"{node.full_name}.7.1") == (*node.oid, 7, 1)


@pytest.mark.parametrize(
    ("name", "oid"),
    [
        ("SNMPv2-MIB::sysUpTime.0", "1.3.6.1.2.1.1.3.0"),
        ("SNMPv2-SMI::zeroDotZero", "0.0"),
        ("SNMPv2-SMI::enterprises", "1.3.6.1.4.1"),
        ("SNMPv2-MIB::sysName.0", "1.3.6.1.2.1.1.5.0"),
        ("SNMPv2-MIB::snmpTrapOID.0", "1.3.6.1.6.3.1.1.4.1.0"),
        ("SNMPv2-MIB::coldStart", "1.3.6.1.6.3.1.1.5.1"),
        ("IF-MIB::ifOperStatus.3", "1.3.6.1.2.1.2.2.1.8.3"),
        ("IF-MIB::ifHCInOctets.12", "1.3.6.1.2.1.31.1.1.1.6.12"),
        ("IF-MIB::linkDown", "1.3.6.1.6.3.1.1.5.3"),
        ("HOST-RESOURCES-MIB::hrStorageUsed.31", "1.3.6.1.2.1.25.2.3.1.6.31"),
        ("HOST-RESOURCES-MIB::hrProcessorLoad.196608", "1.3.6.1.2.1.25.3.3.1.2.196608"),
        ("ENTITY-MIB::entPhysicalClass.1", "1.3.6.1.2.1.47.1.1.1.1.5.1"),
        ("IP-MIB::ipAdEntIfIndex.192.0.2.1", "1.3.6.1.2.1.4.20.1.2.192.0.2.1"),
        ("UCD-SNMP-MIB::laLoadInt.1", "1.3.6.1.4.1.2021.10.1.5.1"),
        ("UCD-SNMP-MIB::memAvailReal.0", "1.3.6.1.4.1.2021.4.6.0"),
        ("NET-SNMP-AGENT-MIB::nsCacheEnabled.0", "1.3.6.1.4.1.8072.1.5.2.0"),
        ("NET-SNMP-AGENT-MIB::nsCacheTimeout.1.3.6", "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6"),
    ],
)
def test_known_translations(tree: MibTree, name: str, oid: str) -> None:
    assert tree.oid_str(name) == oid
    assert tree.oid_str("." + oid) == oid
    assert tree.name(oid) == name
    assert tree.name("." + oid) == name
    assert tree.name(tuple(int(x) for x in oid.split("."))) == name


@pytest.mark.daemon  # reads net-snmp's MIB files (Debian libsnmp-base)
def test_short_names_and_their_failures(tree: MibTree) -> None:
    assert tree.oid_str("ifOperStatus.3") == "1.3.6.1.2.1.2.2.1.8.3"
    assert tree.node("sysDescr").full_name == "SNMPv2-MIB::sysDescr"  # not RFC1213-MIB's twin
    with pytest.raises(MibError, match=r"^ambiguous MIB name 'linux': defined in "):
        tree.oid("linux")
    with pytest.raises(MibError, match=r"^unknown MIB name 'ifOperStatos' \(did you mean"):
        tree.oid("ifOperStatos")
    with pytest.raises(MibError, match="index after the name must be numeric"):
        tree.oid("IF-MIB::ifDescr.eth0")
    with pytest.raises(MibError, match=r"module ACME-MIB is not loaded"):
        tree.oid("ACME-MIB::acmeThing")
    with pytest.raises(MibError, match="not a numeric OID"):
        tree.lookup("1.3.six")


def test_lookup_gives_longest_prefix_and_suffix(tree: MibTree) -> None:
    node, suffix = tree.lookup("1.3.6.1.2.1.2.2.1.8.3")
    assert node is not None and (node.full_name, suffix) == ("IF-MIB::ifOperStatus", "3")
    node, suffix = tree.lookup((1, 3, 6, 1, 2, 1, 2, 2, 1, 8))
    assert node is not None and (node.name, suffix) == ("ifOperStatus", "")
    # an enterprise nobody loaded: named from the deepest known node
    assert tree.name("1.3.6.1.4.1.99998.1.2") == "SNMPv2-SMI::enterprises.99998.1.2"
    assert tree.lookup("5.1") == (None, "5.1")
    assert tree.name("1.3.06.1.2.1.2.2.1.8.03") == "IF-MIB::ifOperStatus.3"  # leading zeros
    for bad in ("", ".", "1..3", "1.3.", " 1.3", "1.3.6_1"):
        with pytest.raises(MibError, match="not a numeric OID"):
            tree.lookup(bad)
    assert tree.name("5.1") == "5.1"
    # an OBJECT IDENTIFIER value below a scalar does not rename its instance
    assert tree.name("1.3.6.1.2.1.1.3.0") == "SNMPv2-MIB::sysUpTime.0"


@pytest.mark.parametrize(
    ("name", "value", "label"),
    [
        ("IF-MIB::ifOperStatus", 1, "up"),
        ("IF-MIB::ifOperStatus", 2, "down"),
        ("IF-MIB::ifOperStatus", 7, "lowerLayerDown"),
        ("IF-MIB::ifOperStatus", 99, ""),
        ("IF-MIB::ifAdminStatus", 3, "testing"),
        ("IF-MIB::ifType", 6, "ethernetCsmacd"),  # IANAifType TC from IANAifType-MIB
        ("IF-MIB::ifType", 24, "softwareLoopback"),
        ("IF-MIB::ifLinkUpDownTrapEnable", 2, "disabled"),
        ("HOST-RESOURCES-MIB::hrDeviceStatus", 5, "down"),
        ("HOST-RESOURCES-MIB::hrSWRunType", 4, "application"),
        ("ENTITY-MIB::entPhysicalClass", 10, "port"),
        ("ENTITY-MIB::entPhysicalIsFRU", 1, "true"),  # TruthValue from SNMPv2-TC
        ("IP-MIB::ipForwarding", 2, "notForwarding"),
        ("UCD-SNMP-MIB::dskErrorFlag", 1, "error"),  # UCDErrorFlag, compiled from source
        ("NET-SNMP-AGENT-MIB::nsCacheEnabled", 1, "true"),
        ("NET-SNMP-AGENT-MIB::nsModuleModes", 0, ""),  # BITS: an integer is no label
        ("SNMPv2-MIB::snmpEnableAuthenTraps", 1, "enabled"),
    ],
)
def test_enum_labels(tree: MibTree, name: str, value: int, label: str) -> None:
    node = tree.node(name)
    assert tree.label(node, value) == label
    if label:
        assert tree.enum_value(node, label) == value
    assert tree.enum_value(node, "no-such-label") is None


@pytest.mark.parametrize(
    ("name", "index", "expected"),
    [
        ("IF-MIB::ifDescr", "3", {"ifIndex": 3}),
        ("IF-MIB::ifHCInOctets", "12", {"ifIndex": 12}),  # AUGMENTS ifEntry
        ("IF-MIB::ifStackStatus", "0.5", {"ifStackHigherLayer": 0, "ifStackLowerLayer": 5}),
        ("IP-MIB::ipAdEntIfIndex", "192.0.2.1", {"ipAdEntAddr": "192.0.2.1"}),  # IpAddress
        (
            "IP-MIB::ipNetToMediaPhysAddress",
            "2.198.51.100.7",
            {"ipNetToMediaIfIndex": 2, "ipNetToMediaNetAddress": "198.51.100.7"},
        ),
        (
            "IP-MIB::ipAddressIfIndex",  # InetAddressType + variable-length InetAddress
            "1.4.192.0.2.9",
            {"ipAddressAddrType": 1, "ipAddressAddr": bytes([192, 0, 2, 9])},
        ),
        (
            "IP-MIB::ipNetToPhysicalPhysAddress",
            "3.2.16.254.128.0.0.0.0.0.0.0.0.0.0.0.0.0.1",
            {
                "ipNetToPhysicalIfIndex": 3,
                "ipNetToPhysicalNetAddressType": 2,
                "ipNetToPhysicalNetAddress": bytes.fromhex("fe800000000000000000000000000001"),
            },
        ),
        (
            "NET-SNMP-AGENT-MIB::nsModuleName",  # two variable strings, then an integer
            "0.3.1.3.6.127",
            {"nsmContextName": "", "nsmRegistrationPoint": "1.3.6", "nsmRegistrationPriority": 127},
        ),
        (
            "SNMP-VIEW-BASED-ACM-MIB::vacmViewTreeFamilyMask",
            "3.97.108.108.3.1.3.6",
            {"vacmViewTreeFamilyViewName": "all", "vacmViewTreeFamilySubtree": "1.3.6"},
        ),
        ("SNMP-TARGET-MIB::snmpTargetAddrTDomain", "110.109.115", {"snmpTargetAddrName": "nms"}),
        ("UCD-SNMP-MIB::laLoadInt", "1", {"laIndex": 1}),
    ],
)
def test_index_decoding(tree: MibTree, name: str, index: str, expected: dict[str, object]) -> None:
    assert tree.decode_index(tree.node(name), index) == expected


def test_index_decoding_of_the_demo_tables(demo_tree: MibTree) -> None:
    tree = demo_tree
    peer = tree.node("NETALERT-DEMO-MIB::demoPeerName")  # IpAddress, fixed-size MacAddress
    assert tree.decode_index(peer, "192.0.2.1.0.26.43.60.77.94") == {
        "demoPeerAddress": "192.0.2.1",
        "demoPeerMac": bytes.fromhex("001a2b3c4d5e"),
    }
    sensor = tree.node("demoSensorValue")  # enum, then IMPLIED DisplayString
    assert tree.decode_index(sensor, "2.99.112.117") == {
        "demoSensorKind": 2,
        "demoSensorName": "cpu",
    }
    port = tree.node("demoPortErrors")  # INDEX imported from IF-MIB
    assert tree.decode_index(port, "17") == {"ifIndex": 17}
    assert tree.decode_index(tree.node("demoPortTable"), "17") == {"ifIndex": 17}


@pytest.mark.parametrize(
    ("name", "index", "message"),
    [
        ("IF-MIB::ifDescr", "", "index too short for index object ifIndex"),
        ("IF-MIB::ifDescr", "3.4", "1 sub-identifier(s) more than its INDEX takes"),
        ("IP-MIB::ipAdEntIfIndex", "192.0.2", "index too short"),
        ("IP-MIB::ipAdEntIfIndex", "192.0.2.300", "not an octet"),
        ("SNMP-TARGET-MIB::snmpTargetAddrTDomain", "110.1000", "not an octet"),
        ("IF-MIB::ifNumber", "0", "has no INDEX"),
        ("IF-MIB::ifDescr", "3.x", "not a numeric index"),
    ],
)
def test_index_decoding_errors(tree: MibTree, name: str, index: str, message: str) -> None:
    with pytest.raises(MibError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tree.decode_index(tree.node(name), index)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("SNMPv2-MIB::sysDescr", b"Linux edge-1 6.1.0", "Linux edge-1 6.1.0"),  # DisplayString
        ("IF-MIB::ifAlias", b"uplink to core\x00\x00", "uplink to core"),
        ("IF-MIB::ifPhysAddress", bytes.fromhex("001a2b3c4d5e"), "00:1a:2b:3c:4d:5e"),
        ("IF-MIB::ifPhysAddress", b"", ""),
        (
            "HOST-RESOURCES-MIB::hrSystemDate",  # DateAndTime, 11 octets
            bytes([0x07, 0xEA, 11, 27, 13, 37, 5, 4, ord("+"), 1, 0]),
            "2026-11-27 13:37:05.4 +01:00",
        ),
        (
            "HOST-RESOURCES-MIB::hrSystemDate",  # 8 octets: no zone
            bytes([0x07, 0xEA, 1, 2, 3, 4, 5, 0]),
            "2026-01-02 03:04:05.0",
        ),
        ("IP-MIB::ipAddressAddr", bytes([192, 0, 2, 9]), "192.0.2.9"),  # InetAddress
        ("IP-MIB::ipAddressAddr", bytes.fromhex("20010db8" + "00" * 11 + "01"), "2001:db8::1"),
        ("IP-MIB::ipAddressAddr", bytes([192, 0, 2, 9, 0, 0, 0, 3]), "192.0.2.9%3"),
        ("IP-MIB::ipAddressAddr", b"\x01\x02\x03", ""),
        ("UCD-SNMP-MIB::dskPath", b"/var", "/var"),
    ],
)
def test_display_hint_rendering(tree: MibTree, name: str, value: bytes, text: str) -> None:
    assert tree.label(tree.node(name), value) == text


def test_label_of_other_values(tree: MibTree, demo_tree: MibTree) -> None:
    descr = tree.node("SNMPv2-MIB::sysDescr")
    assert tree.label(descr, None) == ""
    assert tree.label(tree.node("IP-MIB::ipAdEntAddr"), "192.0.2.1") == ""  # already text
    assert tree.label(tree.node("IF-MIB::ifIndex"), 3) == ""  # "d" hint adds nothing
    assert tree.label(tree.node("IF-MIB::ifInOctets"), 3) == ""
    when = demo_tree.node("demoChassisLastChange")
    assert demo_tree.label(when, bytes([0x07, 0xEA, 11, 27, 0, 0, 0, 0])) == "2026-11-27 00:00:00.0"
    # a hand-made node: integer hints and BITS
    temp = MibNode("T", "t", (1, 9), "scalar", syntax="Integer32", display_hint="d-2")
    assert tree.label(temp, 2150) == "21.50"
    assert tree.label(temp, -5) == "-0.05"
    bits = MibNode(
        "T", "b", (1, 9, 1), "scalar", syntax="BITS", enums={0: "red", 1: "green", 9: "blue"}
    )
    assert tree.label(bits, bytes([0b11000000, 0b01000000])) == "red green blue"
    modes = tree.node("NET-SNMP-AGENT-MIB::nsModuleModes")
    assert tree.label(modes, bytes([0b10100000])) == "getAndGetNext getBulk"


def test_notification_objects(tree: MibTree) -> None:
    # pysnmp-mibs' compiled IF-MIB lists ifDescr too; the tree reports what it has.
    assert tree.notification_objects("1.3.6.1.6.3.1.1.5.3")[:3] == [
        "IF-MIB::ifIndex",
        "IF-MIB::ifAdminStatus",
        "IF-MIB::ifOperStatus",
    ]
    assert tree.notification_objects("IF-MIB::linkUp")[:3] == [
        "IF-MIB::ifIndex",
        "IF-MIB::ifAdminStatus",
        "IF-MIB::ifOperStatus",
    ]
    assert tree.notification_objects("SNMPv2-MIB::coldStart") == []
    assert tree.notification_objects("IF-MIB::ifDescr") == []  # not a notification
    assert tree.notification_objects("1.3.6.1.4.1.99998.0.1") == []


def test_builtin_tree_has_the_standard_modules() -> None:
    builtin = MibTree.builtin()
    assert {"SNMPv2-MIB", "IF-MIB", "HOST-RESOURCES-MIB", "ENTITY-MIB"} <= set(builtin.modules)
    assert builtin.oid_str("IF-MIB::ifOperStatus.3") == "1.3.6.1.2.1.2.2.1.8.3"


def _known_nodes(tree: MibTree) -> list[MibNode]:
    return sorted(
        (n for n in tree.nodes().values() if n.module in OUT_OF_THE_BOX),
        key=lambda n: n.oid,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_hypothesis_oid_round_trip(tree: MibTree, data: st.DataObject) -> None:
    """Any OID under a known node names and parses back to itself."""
    node = data.draw(st.sampled_from(_known_nodes(tree)))
    suffix = data.draw(st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=12))
    oid = (*node.oid, *suffix)
    name = tree.name(oid)
    assert tree.oid(name) == oid
    looked, rest = tree.lookup(".".join(map(str, oid)))
    assert looked is not None
    assert (*looked.oid, *(int(x) for x in rest.split(".") if x)) == oid


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=20))
def test_hypothesis_any_numeric_oid(tree: MibTree, parts: list[int]) -> None:
    """Arbitrary numeric OIDs never crash naming and always parse back."""
    oid = tuple(parts)
    assert tree.oid(tree.name(oid)) == oid


def test_a_tree_from_its_state_makes_only_the_nodes_asked_for(
    tree: MibTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every start loads the tree from its snapshot; most of its ~23,000 nodes are never
    # asked for, and making them all was a tenth of the start's CPU.
    made: list[str] = []
    real = MibNode.__init__

    def counting(self: MibNode, *args: object, **kwargs: object) -> None:
        made.append(str(args[1]) if len(args) > 1 else "")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    state = tree.state()
    monkeypatch.setattr(MibNode, "__init__", counting)
    loaded = MibTree.from_state(state)
    assert made == []
    node = loaded.node("IF-MIB::ifOperStatus")
    assert loaded.node("ifOperStatus") is node and loaded.lookup("1.3.6.1.2.1.2.2.1.8.4")[0] is node
    assert loaded.name((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 4)) == "IF-MIB::ifOperStatus.4"
    assert made == ["ifOperStatus"]
    assert loaded.decode_index(node, "4") == tree.decode_index(tree.node("ifOperStatus"), "4")
    monkeypatch.undo()
    # and it is the same tree: every node, every OID's name, the state again
    assert len(loaded) == len(tree) and loaded.modules == tree.modules
    assert dict(loaded.nodes()) == dict(tree.nodes())
    for full, one in tree.nodes().items():
        assert loaded.name(one.oid) == tree.name(one.oid), full
    assert loaded.state() == state
    assert MibTree.from_state(loaded.state()).state() == state
