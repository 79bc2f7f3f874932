"""The MIB doctor: compiling sources with pysmi into the cache, one verdict per module."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netalert.cli import app
from netalert.config import load_config_text
from netalert.config.models import MibsConfig
from netalert.errors import MibError
from netalert.mib import MibTree, check_config_names, load_mibs

REPO = Path(__file__).resolve().parent.parent
PROJECT_MIBS = REPO / "mibs"
DEMO = "NETALERT-DEMO-MIB"
SYSTEM = [Path("/usr/share/snmp/mibs")]

# A vendor MIB with a syntax error on line 9 (a SYNTAX clause cut short).
BROKEN = """\
BROKEN-VENDOR-MIB DEFINITIONS ::= BEGIN
IMPORTS
    MODULE-IDENTITY, OBJECT-TYPE, enterprises, Integer32 FROM SNMPv2-SMI;
brokenVendor MODULE-IDENTITY
    LAST-UPDATED "202601010000Z" ORGANIZATION "t" CONTACT-INFO "t" DESCRIPTION "t"
    ::= { enterprises 32473 90 }
brokenObject OBJECT-TYPE
    SYNTAX      Integer32
    MAX-ACCESS  read-only (
    STATUS      current
    DESCRIPTION "t"
    ::= { brokenVendor 1 }
END
"""

# A vendor MIB importing a module nobody has, on line 4.
ORPHAN = """\
ORPHAN-VENDOR-MIB DEFINITIONS ::= BEGIN
IMPORTS
    OBJECT-TYPE, Integer32 FROM SNMPv2-SMI
    acmeProducts FROM ACME-SMI;
orphanObject OBJECT-TYPE
    SYNTAX      Integer32
    MAX-ACCESS  read-only
    STATUS      current
    DESCRIPTION "t"
    ::= { acmeProducts 1 }
END
"""

# A module importing the demo MIB's TC and augmenting its sensor table.
IMPORTER = """\
DEMO-EXTRA-MIB DEFINITIONS ::= BEGIN
IMPORTS
    MODULE-IDENTITY, OBJECT-TYPE, enterprises, Unsigned32 FROM SNMPv2-SMI
    DemoSensorState, demoSensorEntry FROM NETALERT-DEMO-MIB;
demoExtra MODULE-IDENTITY
    LAST-UPDATED "202601010000Z" ORGANIZATION "t" CONTACT-INFO "t" DESCRIPTION "t"
    ::= { enterprises 32473 91 }
demoExtraTable OBJECT-TYPE
    SYNTAX SEQUENCE OF DemoExtraEntry MAX-ACCESS not-accessible STATUS current
    DESCRIPTION "t" ::= { demoExtra 1 }
demoExtraEntry OBJECT-TYPE
    SYNTAX DemoExtraEntry MAX-ACCESS not-accessible STATUS current DESCRIPTION "t"
    AUGMENTS { demoSensorEntry } ::= { demoExtraTable 1 }
DemoExtraEntry ::= SEQUENCE { demoExtraWorst DemoSensorState, demoExtraAge Unsigned32 }
demoExtraWorst OBJECT-TYPE
    SYNTAX DemoSensorState MAX-ACCESS read-only STATUS current DESCRIPTION "t"
    ::= { demoExtraEntry 1 }
demoExtraAge OBJECT-TYPE
    SYNTAX Unsigned32 UNITS "seconds" MAX-ACCESS read-only STATUS current DESCRIPTION "t"
    ::= { demoExtraEntry 2 }
END
"""


def mibs_config(*paths: Path, system: list[Path] | None = None) -> MibsConfig:
    return MibsConfig(paths=list(paths), system_paths=SYSTEM if system is None else system)


def verdicts(tree: MibTree) -> dict[str, str]:
    assert tree.report is not None
    return {r.module: r.status for r in tree.report.results}


def test_project_mib_compiles_and_translates(tmp_path: Path) -> None:
    tree = load_mibs(mibs_config(PROJECT_MIBS), tmp_path / "state")
    assert verdicts(tree)[DEMO] == "compiled"
    # table columns, with the row's index
    assert tree.oid_str(f"{DEMO}::demoPortPoeState.7") == "1.3.6.1.4.1.32473.1.1.2.1.2.7"
    assert tree.name("1.3.6.1.4.1.32473.1.1.2.1.2.7") == f"{DEMO}::demoPortPoeState.7"
    column = tree.node("demoPortPoeState")
    assert (column.kind, column.syntax, column.index) == ("column", "INTEGER", ("ifIndex",))
    # enums, in both directions
    assert tree.label(column, 4) == "fault"
    assert tree.enum_value(column, "delivering") == 3
    # an enum that comes from the module's own TEXTUAL-CONVENTION
    state = tree.node(f"{DEMO}::demoSensorState")
    assert (state.tc, tree.label(state, 3)) == ("DemoSensorState", "critical")
    # imported TCs resolved through the stand-ins of SNMPv2-TC
    serial = tree.node("demoChassisSerial")
    assert (serial.syntax, serial.tc, serial.display_hint) == (
        "OCTET STRING",
        "DisplayString",
        "255a",
    )
    mac = tree.node("demoChassisBaseMac")
    assert (mac.tc, mac.fixed_size, tree.label(mac, bytes.fromhex("001a2b3c4d5e"))) == (
        "MacAddress",
        6,
        "00:1a:2b:3c:4d:5e",
    )
    temperature = tree.node("demoChassisTemperature")
    assert (temperature.kind, temperature.syntax, temperature.units) == (
        "scalar",
        "Gauge32",
        "degrees Celsius",
    )
    # notifications and the objects they carry, across modules
    assert tree.notification_objects("1.3.6.1.4.1.32473.1.0.3") == [
        "IF-MIB::ifDescr",
        f"{DEMO}::demoPortPoeState",
    ]
    assert tree.notification_objects(f"{DEMO}::demoTemperatureHigh") == [
        f"{DEMO}::demoChassisTemperature",
        f"{DEMO}::demoChassisTemperatureLimit",
    ]
    assert tree.node("demoTemperatureHigh").kind == "notification"


def test_broken_mib_names_file_and_line_and_the_good_one_still_compiles(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "broken.my").write_text(BROKEN)
    tree = load_mibs(mibs_config(PROJECT_MIBS, vendor), tmp_path / "state")
    assert tree.report is not None
    by_module = {r.module: r for r in tree.report.results}
    broken = by_module["BROKEN-VENDOR-MIB"]
    assert (broken.status, broken.path, broken.line) == ("failed", vendor / "broken.my", 9)
    assert broken.describe().startswith(
        f"BROKEN-VENDOR-MIB: failed: {vendor / 'broken.my'}:9: syntax error"
    )
    assert by_module[DEMO].status == "compiled"
    assert tree.oid_str("demoPortRole") == "1.3.6.1.4.1.32473.1.1.2.1.1"
    assert "BROKEN-VENDOR-MIB" not in tree.modules
    assert not tree.report.ok


def test_unknown_parent_points_at_its_line_and_non_mibs_are_skipped(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "README.txt").write_text("Unpack the vendor MIBs here.\n")
    (vendor / "lost.mib").write_text(
        "LOST-MIB DEFINITIONS ::= BEGIN\n"
        "IMPORTS OBJECT-TYPE, Integer32 FROM SNMPv2-SMI;\n"
        "\n"
        "lostObject OBJECT-TYPE\n"
        '    SYNTAX Integer32 MAX-ACCESS read-only STATUS current DESCRIPTION "t"\n'
        "    ::= { nowhereNode 1 }\n"
        "END\n"
    )
    tree = load_mibs(mibs_config(vendor), tmp_path / "state")
    assert tree.report is not None
    (lost,) = [r for r in tree.report.results if r.module == "LOST-MIB"]
    assert (lost.status, lost.line) == ("failed", 6)
    assert lost.reason == "Unknown parent symbol: nowhereNode"
    assert (
        f"{vendor / 'README.txt'}: skipped: no 'NAME DEFINITIONS ::= BEGIN' in it: not a MIB module"
        in tree.report.lines()
    )


def test_missing_import_names_the_module_and_the_folders_searched(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "ORPHAN-VENDOR-MIB.txt").write_text(ORPHAN)
    tree = load_mibs(mibs_config(vendor), tmp_path / "state")
    assert tree.report is not None
    (orphan,) = [r for r in tree.report.results if r.module == "ORPHAN-VENDOR-MIB"]
    assert orphan.status == "failed"
    assert orphan.line == 4
    assert orphan.reason.startswith(
        f"imports ACME-SMI, which was not found (searched {vendor}, /usr/share/snmp/mibs and "
    )
    assert orphan.reason.endswith(" built-in modules)")
    # adding the missing module fixes it on the next load
    (vendor / "acme.mib").write_text(
        "ACME-SMI DEFINITIONS ::= BEGIN\nIMPORTS enterprises FROM SNMPv2-SMI;\n"
        "acmeProducts OBJECT IDENTIFIER ::= { enterprises 32473 92 }\nEND\n"
    )
    tree = load_mibs(mibs_config(vendor), tmp_path / "state")
    assert verdicts(tree)["ORPHAN-VENDOR-MIB"] == "compiled"
    assert tree.oid_str("ORPHAN-VENDOR-MIB::orphanObject.0") == "1.3.6.1.4.1.32473.92.1.0"


def test_second_load_reuses_the_cache_and_a_change_recompiles_importers(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    shutil.copytree(PROJECT_MIBS, vendor)
    (vendor / "DEMO-EXTRA-MIB.mib").write_text(IMPORTER)
    state = tmp_path / "state"
    first = load_mibs(mibs_config(vendor), state)
    assert verdicts(first)[DEMO] == verdicts(first)["DEMO-EXTRA-MIB"] == "compiled"
    cached = state / "mibs" / "modules" / f"{DEMO}.json"
    stamp = cached.stat().st_mtime_ns

    second = load_mibs(mibs_config(vendor), state)
    assert set(verdicts(second).values()) == {"up to date"}
    assert cached.stat().st_mtime_ns == stamp
    assert second.name("1.3.6.1.4.1.32473.91.1.1.1.2.1.99") == (
        "DEMO-EXTRA-MIB::demoExtraWorst.2.1.99"
    )

    # A TC of the demo MIB changes: both it and its importer are recompiled.
    demo = vendor / "NETALERT-DEMO-MIB.mib"
    demo.write_text(demo.read_text().replace("failed(4)", "failed(4), unknown(5)"))
    third = load_mibs(mibs_config(vendor), state)
    assert verdicts(third)[DEMO] == verdicts(third)["DEMO-EXTRA-MIB"] == "compiled"
    assert tree_label(third, "DEMO-EXTRA-MIB::demoExtraWorst", 5) == "unknown"


def tree_label(tree: MibTree, name: str, value: int) -> str:
    return tree.label(tree.node(name), value)


def test_augments_and_imported_tc_resolve(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "extra.txt").write_text(IMPORTER)
    tree = load_mibs(mibs_config(PROJECT_MIBS, vendor), tmp_path / "state")
    worst = tree.node("demoExtraWorst")
    assert (worst.tc, worst.syntax, tree.label(worst, 2)) == (
        "DemoSensorState",
        "INTEGER",
        "warning",
    )
    assert (worst.index, worst.implied) == (("demoSensorKind", "demoSensorName"), True)
    assert tree.decode_index(worst, "2.102.97.110") == {
        "demoSensorKind": 2,
        "demoSensorName": "fan",
    }
    assert tree.node("demoExtraAge").units == "seconds"


def test_a_failed_source_falls_back_to_the_built_in_module(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    # A damaged copy of IF-MIB (which pysnmp-mibs carries compiled).
    (vendor / "IF-MIB.txt").write_text("IF-MIB DEFINITIONS ::= BEGIN\nifMIB OBJECT-TYPE ((\nEND\n")
    (vendor / "NETALERT-DEMO-MIB.mib").write_text((PROJECT_MIBS / f"{DEMO}.mib").read_text())
    for _ in range(2):  # the second load takes the verdict from the cache
        tree = load_mibs(mibs_config(vendor), tmp_path / "state")
        assert tree.report is not None
        (if_mib,) = [r for r in tree.report.results if r.module == "IF-MIB"]
        assert if_mib.status == "failed"
        assert if_mib.reason.endswith("(using the built-in module)")
        assert verdicts(tree)[DEMO] in ("compiled", "up to date")
        assert tree.oid_str("IF-MIB::ifOperStatus.2") == "1.3.6.1.2.1.2.2.1.8.2"
        assert tree.oid_str("demoPortPoePower") == "1.3.6.1.4.1.32473.1.1.2.1.3"


@pytest.mark.daemon  # reads net-snmp's MIB files (Debian libsnmp-base)
def test_net_snmp_mibs_resolve_and_their_absence_is_explained(tmp_path: Path) -> None:
    tree = load_mibs(mibs_config(), tmp_path / "state")
    assert verdicts(tree)["UCD-SNMP-MIB"] == "compiled"
    assert tree.report is not None and not tree.report.notes
    assert tree.oid_str("UCD-SNMP-MIB::memTotalReal.0") == "1.3.6.1.4.1.2021.4.5.0"
    # a machine without /usr/share/snmp/mibs still names them (pysnmp-mibs carries
    # old compiled copies) and says where the sources would come from
    bare = load_mibs(mibs_config(system=[tmp_path / "nowhere"]), tmp_path / "state2")
    assert bare.report is not None
    assert bare.report.lines()[-1] == (
        f"note: UCD-SNMP-MIB, NET-SNMP-AGENT-MIB: no source in {tmp_path / 'nowhere'}; using the"
        " older compiled copies built in (pysnmp-mibs). For net-snmp's current MIBs install"
        " them (Debian/Ubuntu: apt install libsnmp-base) or copy them into a [mibs].paths folder"
    )
    assert bare.oid_str("UCD-SNMP-MIB::memTotalReal.0") == "1.3.6.1.4.1.2021.4.5.0"


def test_net_snmp_note_when_nothing_provides_them(tmp_path: Path) -> None:
    from netalert.mib.loader import CompileReport, compile_mibs

    facts, report = compile_mibs([], [tmp_path / "nowhere"], tmp_path / "state")
    assert isinstance(report, CompileReport)
    tree = MibTree(f for f in facts if not f.name.startswith(("UCD-", "NET-SNMP-")))
    with pytest.raises(MibError, match="libsnmp-base"):
        tree.node("UCD-SNMP-MIB::memTotalReal")


CONFIG = """
[agent]
state_dir = "{state}"
[mibs]
paths = ["{mibs}"]
load = ["NETALERT-DEMO-MIB", "NO-SUCH-MIB"]
[collect.system]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysNam"]
walk = ["IF-MIB::ifOperStatus", "demoPortPoeState", "UCD-SNMP-MIB::laLoadInt"]
[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::ifOperStatus"
[[rules]]
name = "Demo"
trap = "NETALERT-DEMO-MIB::*"
[[rules]]
name = "Acme"
trap = "ACME-MIB::*"
[[rules]]
name = "Numeric"
trap = "1.3.6.1.4.1.32473.1.0.9"
"""


def test_check_config_names(tmp_path: Path) -> None:
    config = load_config_text(
        CONFIG.format(state=tmp_path / "state", mibs=PROJECT_MIBS), source=tmp_path / "c.toml"
    )
    tree = load_mibs(config.mibs, config.agent.state_dir)
    assert check_config_names(config, tree) == [
        "collect.system.get[1]: unknown MIB name 'SNMPv2-MIB::sysNam'"
        " (did you mean 'SNMPv2-MIB::sysName'?)",
        "rules[0].clear_trap: IF-MIB::ifOperStatus is not a NOTIFICATION-TYPE (it is a column)",
        "rules[2].trap: MIB module 'ACME-MIB' is not loaded"
        " (no source in the MIB folders, not built in)",
        "mibs.load[1]: MIB module 'NO-SUCH-MIB' is not loaded"
        " (no source in the MIB folders, not built in)",
    ]


def test_check_config_cli_exits_2_on_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(f"""
        [agent]
        state_dir = "{tmp_path / "state"}"
        http = ""
        [mibs]
        paths = ["{PROJECT_MIBS}"]
        [collect.ports]
        walk = ["demoPortPoeStat"]
        """)
    )
    result = CliRunner().invoke(app, ["check-config", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "collect.ports.walk[0]: unknown MIB name 'demoPortPoeStat'" in result.output


@pytest.mark.daemon  # reads net-snmp's MIB files (Debian libsnmp-base)
def test_mib_compile_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.toml: defaults and a per-user cache
    vendor = tmp_path / "vendor"
    shutil.copytree(PROJECT_MIBS, vendor)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "NETALERT_CONFIG": ""}
    runner = CliRunner()
    first = runner.invoke(app, ["mib", "compile", "--mibs", str(vendor)], env=env)
    assert first.exit_code == 0, first.output
    assert f"{DEMO}: compiled ({vendor / (DEMO + '.mib')})" in first.output.splitlines()
    assert "UCD-SNMP-MIB: compiled (/usr/share/snmp/mibs/UCD-SNMP-MIB.txt)" in first.output
    second = runner.invoke(app, ["mib", "compile", "--mibs", str(vendor)], env=env)
    assert f"{DEMO}: up to date ({vendor / (DEMO + '.mib')})" in second.output.splitlines()
    assert (tmp_path / "cache" / "netalert" / "mibs" / "modules" / f"{DEMO}.json").is_file()
    (vendor / "broken.my").write_text(BROKEN)
    third = runner.invoke(app, ["mib", "compile", "--mibs", str(vendor)], env=env)
    assert third.exit_code == 1
    assert f"BROKEN-VENDOR-MIB: failed: {vendor / 'broken.my'}:9: syntax error" in third.output


def test_mib_translate_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "NETALERT_CONFIG": ""}
    runner = CliRunner()

    def run(*args: str) -> tuple[int, list[str]]:
        result = runner.invoke(
            app, ["mib", "translate", *args, "--mibs", str(PROJECT_MIBS)], env=env
        )
        return result.exit_code, result.output.splitlines()

    assert run("IF-MIB::ifOperStatus.3", "2") == (
        0,
        ["1.3.6.1.2.1.2.2.1.8.3", "down", "index: ifIndex=3"],
    )
    assert run(".1.3.6.1.2.1.2.2.1.8.3") == (0, ["IF-MIB::ifOperStatus.3", "index: ifIndex=3"])
    assert run("ifOperStatus", "down") == (0, ["1.3.6.1.2.1.2.2.1.8", "2"])
    assert run("1.3.6.1.4.1.32473.1.1.4.1.3.192.0.2.1.0.26.43.60.77.94") == (
        0,
        [
            f"{DEMO}::demoPeerName.192.0.2.1.0.26.43.60.77.94",
            "index: demoPeerAddress=192.0.2.1, demoPeerMac=00:1a:2b:3c:4d:5e",
        ],
    )
    code, lines = run("IF-MIB::ifOperStatus", "9")
    assert code == 1
    assert lines[-1].startswith("9 is not a value of IF-MIB::ifOperStatus (up(1), down(2)")
    assert run("IF-MIB::ifOperStatu") == (
        1,
        ["unknown MIB name 'IF-MIB::ifOperStatu' (did you mean 'IF-MIB::ifOperStatus'?)"],
    )
    assert run("5.1") == (1, ["no loaded MIB module covers OID 5.1"])


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere: make the cache path a file instead of a folder
        blocker = tmp_path / "state"
        blocker.write_text("")
        state = blocker
    else:
        state = tmp_path / "ro"
        state.mkdir(mode=0o500)
    with pytest.raises(OSError):
        load_mibs(mibs_config(PROJECT_MIBS), state)


def test_the_smi_parser_is_built_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building pysmi's LALR tables costs about a third of a second of CPU: every compile
    # after the first reuses the parser (a reload, `mib compile`, the tests' many loads).
    import lark
    from pysmi.parser import lark_parser

    built: list[object] = []

    class Counting(lark.Lark):
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lark_parser, "Lark", Counting)
    from netalert.mib import compiler

    def forget() -> None:  # the parser, and the test run's shared wrapper of it (if any)
        for parser in (compiler._parser, getattr(compiler._parser, "shared_original", None)):
            if parser is not None:
                parser.cache_clear()

    forget()
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "extra.txt").write_text(IMPORTER)
    first = load_mibs(mibs_config(PROJECT_MIBS, vendor, system=[]), tmp_path / "one")
    second = load_mibs(mibs_config(PROJECT_MIBS, vendor, system=[]), tmp_path / "two")
    assert verdicts(first) == verdicts(second) == {DEMO: "compiled", "DEMO-EXTRA-MIB": "compiled"}
    assert len(built) == 1
    forget()  # later tests build their own, unpatched
