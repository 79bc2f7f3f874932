"""Rule expressions: compile-time errors (exact text), evaluation, safety, value helpers."""

from __future__ import annotations

from typing import Any

import pytest

from netalert.config import load_config_text
from netalert.errors import ConfigError
from netalert.rules import check_rules, compile_rules
from netalert.rules.expr import ExprError, NameInfo, Scope, compile_expr
from netalert.rules.history import NO_HISTORY, DeviceHistory, RowHistory, Unknown
from netalert.rules.scope import NodeCache
from netalert.rules.values import converter_for, enum_class, render_value
from tests.support.trees import builtin_tree

TREE = builtin_tree()

BASE = """
[[devices]]
name = "sw1"
address = "192.0.2.1"
collect = ["if", "sys"]
labels = { site = "milano" }

[collect.sys]
get = ["SNMPv2-MIB::sysUpTime.0", "SNMPv2-MIB::sysName.0"]

[collect.if]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus",
        "IF-MIB::ifHCInOctets", "IF-MIB::ifHighSpeed"]
"""


def problems(rules_toml: str) -> list[str]:
    config = load_config_text(BASE + rules_toml)
    return check_rules(config, TREE)


def rule(expr: str, extra: str = "") -> str:
    return f'[[rules]]\nname = "R"\nexpr = """{expr}"""\n{extra}\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            rule("ifOperStatu == 'down'"),
            "rules[0].expr: unknown name 'ifOperStatu' at column 1 (did you mean 'ifOperStatus'?)",
        ),
        (
            rule("ifOperStatus == 'dwon'"),
            "rules[0].expr: ifOperStatus has no value 'dwon' at column 17 (did you mean 'down'?)",
        ),
        (
            rule("ifAdminStatus == 'sideways'"),
            "rules[0].expr: ifAdminStatus has no value 'sideways' at column 18"
            " (one of: up, down, testing)",
        ),
        (
            rule("ifOperStatus =="),
            "rules[0].expr: syntax error: unexpected end of expression at column 16",
        ),
        (
            rule("ifOperStatus = 'down'"),
            "rules[0].expr: syntax error: invalid syntax at column 14 (use '==' to compare)",
        ),
        (
            rule("ifDescr.lower() == 'x'"),
            "rules[0].expr: attribute access ('.') is not allowed at column 1",
        ),
        (rule("ifDescr[0] == 'x'"), "rules[0].expr: indexing ('[...]') is not allowed at column 1"),
        (
            rule("__import__('os')"),
            "rules[0].expr: unknown function '__import__' (use rate, delta, changed, prev, abs,"
            " min, max, value) at column 1",
        ),
        (
            rule("value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1') > 200"),
            "rules[0].expr: '1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1' is not collected by any device"
            " (add it, or a subtree holding it, as a numeric OID to a [collect.*] group)"
            " at column 7",
        ),
        (
            rule("value('1.3.6.1.2.1.1.5.0') == 'sw1'"),
            "rules[0].expr: 1.3.6.1.2.1.1.5.0 is SNMPv2-MIB::sysName.0: use sysName at column 7",
        ),
        (
            rule("value(sysName) == 'sw1'"),
            "rules[0].expr: value() takes one numeric OID in quotes, e.g."
            " value('1.3.6.1.4.1.9.2.1.58.0') at column 1",
        ),
        (
            rule("value('sysName.0') == 'sw1'"),
            "rules[0].expr: value() takes a numeric OID, not 'sysName.0' at column 7",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDown"\n'
            "where = \"value('1.3.6.1.4.1.9.9.1.0') > 1\"\n",
            "rules[0].where: value('...') reads polled instances: use it in poll rules at column 7",
        ),
        (rule("2 ** 64 > 1"), "rules[0].expr: '**' is not allowed at column 1"),
        (rule("[x for x in ifDescr]"), "rules[0].expr: a comprehension is not allowed at column 1"),
        (rule("(lambda: 1)() > 0"), "rules[0].expr: lambda is not allowed at column 2"),
        (rule("ifOperStatus is 2"), "rules[0].expr: 'is' (use '==') is not allowed at column 1"),
        (rule("ifDescr == b'x'"), "rules[0].expr: the constant b'x' is not allowed at column 12"),
        (
            rule("rate(device) > 1"),
            "rules[0].expr: rate() needs a polled MIB object, not 'device' at column 6",
        ),
        (
            rule("rate(1) > 1"),
            "rules[0].expr: rate() takes one MIB object name, e.g. rate(x) at column 1",
        ),
        (
            rule("ifAlias == 'uplink'"),
            "rules[0].expr: 'ifAlias' is not collected by any device (add it to a [collect.*]"
            " group) at column 1",
        ),
        (rule("ifTable == 1"), "rules[0].expr: 'ifTable' is a MIB table, not a value at column 1"),
        (
            rule("ifOperStatus == 'down' and\n   ifAdminStatux == 'up'"),
            "rules[0].expr: unknown name 'ifAdminStatux' at line 2, column 4"
            " (did you mean 'ifAdminStatus'?)",
        ),
        (
            rule("ifOperStatus == 'down' and sysName == 'x'", "clear_expr = 'ifOperStatos == 1'"),
            "rules[0].clear_expr: unknown name 'ifOperStatos' at column 1"
            " (did you mean 'ifOperStatus'?)",
        ),
        (
            rule("ifOperStatus == 'down'", "summary = '{{ ifDescr '"),
            "rules[0].summary: template error at line 1: unexpected end of template, expected"
            " 'end of print statement'.",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDwn"\n',
            "rules[0].trap: unknown trap 'IF-MIB::linkDwn' (load its MIB, or give the OID)",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDown"\n'
            "where = \"ifAdminStatus == 'upp'\"\n",
            "rules[0].where: ifAdminStatus has no value 'upp' at column 18 (did you mean 'up'?)",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDown"\nwhere = "ifIndx == 3"\n',
            "rules[0].where: unknown name 'ifIndx' at column 1 (did you mean 'ifIndex'?)",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDown"\nkey = ["ifIndex", "slot"]\n',
            "rules[0].key[1]: unknown name 'slot'",
        ),
        (
            '[[rules]]\nname = "T"\ntrap = "IF-MIB::linkDown"\nconfirm = "ifOperStatus != \'up\'"\n'
            'summary = "{% if %}"\n',
            "rules[0].summary: template error at line 1: Expected an expression, got 'end of"
            " statement block'",
        ),
    ],
)
def test_config_errors_name_rule_and_position(toml: str, expected: str) -> None:
    assert problems(toml) == [expected]


def test_mixed_index_tables_are_refused() -> None:
    config = load_config_text(
        BASE.replace('collect = ["if", "sys"]', 'collect = ["if", "sys", "hr"]')
        + '[collect.hr]\nwalk = ["HOST-RESOURCES-MIB::hrStorageTable"]\n'
        + rule("ifOperStatus == 'down' and hrStorageUsed > 1")
    )
    assert check_rules(config, TREE) == [
        "rules[0].expr: reads tables with different indexes: hrStorageUsed (index"
        " hrStorageIndex) and ifOperStatus (index ifIndex)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    config = load_config_text(
        BASE + rule("ifOperStatu == 1") + rule("nope > 1").replace('"R"', '"S"')
    )
    with pytest.raises(ConfigError) as info:
        compile_rules(config, TREE)
    assert [p.split(":")[0] for p in info.value.problems] == ["rules[0].expr", "rules[1].expr"]


def test_valid_rules_compile() -> None:
    config = load_config_text(
        BASE
        + rule(
            "rate(ifHCInOctets) * 8 / (ifHighSpeed * 1e6) * 100 > 90",
            "clear_expr = 'rate(ifHCInOctets) * 8 / (ifHighSpeed * 1e6) * 100 < 80'",
        )
        + rule("ifOperStatus in ('down', 'lowerLayerDown') and site == 'milano'").replace(
            '"R"', '"S"'
        )
        + rule("sysUpTime < 30000 and device == 'sw1'").replace('"R"', '"U"')
        + '[[rules]]\nname = "LinkDown"\ntrap = "IF-MIB::linkDown"\nclear_trap = "IF-MIB::linkUp"\n'
        + "where = \"ifAdminStatus == 'up'\"\nconfirm = \"ifOperStatus != 'up'\"\n"
        + '[[rules]]\nname = "Vendor"\ntrap = "1.3.6.1.4.1.99999.0.*"\nkey = ["source"]\n'
    )
    rules = compile_rules(config, TREE)
    assert [r.name for r in rules.poll] == ["R", "S", "U"]
    assert rules.poll[0].columns == {"ifHCInOctets", "ifHighSpeed"}
    assert rules.poll[2].columns == frozenset()
    assert rules.poll[0].expr.history == {"ifHCInOctets"}
    assert [n.name for n in rules.trap[0].confirm_nodes] == ["ifOperStatus"]
    assert rules.trap[1].trap.matches("1.3.6.1.4.1.99999.0.7", "")
    assert not rules.trap[1].trap.matches("1.3.6.1.4.1.99998.0.7", "")


# --- evaluation ----------------------------------------------------------------------

STATUS = converter_for("ifOperStatus", "INTEGER", {1: "up", 2: "down", 7: "lowerLayerDown"}, False)
OBJECTS: dict[str, NameInfo] = {
    "ifOperStatus": NameInfo("object", {1: "up", 2: "down", 7: "lowerLayerDown"}),
    "ifDescr": NameInfo("object"),
    "x": NameInfo("object"),
    "y": NameInfo("object"),
    "device": NameInfo("special"),
}
SCOPE = Scope(lambda n: OBJECTS.get(n, f"unknown name {n!r}"), OBJECTS)


def run(source: str, **values: Any) -> Any:
    return compile_expr(source, SCOPE).fn(values, NO_HISTORY)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("ifOperStatus == 'down'", {"ifOperStatus": STATUS(2, "")}, True),
        ("ifOperStatus == 2", {"ifOperStatus": STATUS(2, "")}, True),
        ("'down' == ifOperStatus", {"ifOperStatus": STATUS(2, "")}, True),
        ("ifOperStatus != 'down'", {"ifOperStatus": STATUS(2, "")}, False),
        ("ifOperStatus != 'up'", {"ifOperStatus": STATUS(2, "")}, True),
        ("ifOperStatus in ('down', 'lowerLayerDown')", {"ifOperStatus": STATUS(7, "")}, True),
        ("ifOperStatus in {'down', 'lowerLayerDown'}", {"ifOperStatus": STATUS(7, "")}, True),
        ("ifOperStatus in ['up']", {"ifOperStatus": STATUS(7, "")}, False),
        ("ifOperStatus > 1", {"ifOperStatus": STATUS(2, "")}, True),
        ("'eth' in ifDescr", {"ifDescr": "eth0"}, True),
        ("x / y * 100 > 90", {"x": 95, "y": 100}, True),
        ("80 < x < 90", {"x": 85}, True),
        ("x // 2 + x % 3 - -1", {"x": 7}, 5),
        ("abs(x - y) + min(x, y) + max(x, y, 0)", {"x": -3, "y": 2}, 4),
        ("x if x > y else y", {"x": 1, "y": 2}, 2),
        ("not (x > 1) or y", {"x": 5, "y": 0}, 0),
        ("device == 'sw1'", {"device": "sw1"}, True),
        ("x == True", {"x": 1}, True),
    ],
)
def test_evaluation(source: str, values: dict[str, Any], expected: Any) -> None:
    assert run(source, **values) == expected


@pytest.mark.parametrize(
    ("source", "values", "error"),
    [
        ("x > 1", {}, KeyError),  # missing value: the engine treats it as unknown
        ("ifDescr * 1000000000 == 'x'", {"ifDescr": "eth0"}, TypeError),  # no text bombs
        ("ifDescr % x == 'x'", {"ifDescr": "%s", "x": 1}, TypeError),
        ("x / y > 1", {"x": 1, "y": 0}, ZeroDivisionError),
        ("ifDescr > 1", {"ifDescr": "eth0"}, TypeError),
    ],
)
def test_evaluation_errors(source: str, values: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        run(source, **values)


def test_history_functions_without_history_are_unknown() -> None:
    with pytest.raises(Unknown):
        run("rate(x) > 1", x=5)


def test_names_never_reach_python_namespaces() -> None:
    # 'abs' as a name is a row value lookup, not the builtin; the code has no builtins at all.
    scope = Scope(lambda n: NameInfo("object"), ())
    fn = compile_expr("x", scope).fn
    assert fn.__globals__["__builtins" + "__"] == {}
    with pytest.raises(KeyError):
        compile_expr("open", scope).fn({}, NO_HISTORY)


def test_value_is_the_operand_that_decided() -> None:
    expr = compile_expr("not (x / y * 100 > 90) and ifDescr == 'a'", SCOPE)
    assert expr.value_fn({"x": 95, "y": 100}, NO_HISTORY) == 95.0
    assert compile_expr("90 < x", SCOPE).value_fn({"x": 93}, NO_HISTORY) == 93


class Rates:
    """rate() of the table below: what the poller measured."""

    def __init__(self, **rates: float) -> None:
        self.rates = rates

    def rate(self, name: str) -> float:
        return self.rates[name]

    def changed(self, name: str) -> bool:
        return True


DECIDING = Scope(lambda n: NameInfo("object", ENUMS.get(n, {})), ())
ENUMS = {
    "ifOperStatus": {1: "up", 2: "down"},
    "ifAdminStatus": {1: "up", 2: "down"},
    "fanStatus": {1: "ok", 2: "failed"},
}
FAN = converter_for("fanStatus", "INTEGER", ENUMS["fanStatus"], False)
TICKS = converter_for("sysUpTime", "TimeTicks", {}, False)
DISK = "hrStorageSize > 0 and hrStorageUsed * 100 / hrStorageSize > 90"
PORT = "ifOperStatus == 'down' and ifAdminStatus == 'up'"
HOT = "temperature > 70 or fanStatus == 'failed'"


# The table of docs/rules.md, "The value an alert shows".
@pytest.mark.parametrize(
    ("source", "values", "rates", "shown"),
    [
        (DISK, {"hrStorageSize": 1952447, "hrStorageUsed": 1900000}, {}, "97.31"),
        (DISK, {"hrStorageSize": 1952447, "hrStorageUsed": 976000}, {}, "49.99"),
        (DISK, {"hrStorageSize": 0, "hrStorageUsed": 0}, {}, "0"),  # the guard decided
        (
            "ifHighSpeed > 0 and rate(ifHCInOctets) * 8 / (ifHighSpeed * 1e6) * 100 > 90",
            {"ifHighSpeed": 1000, "ifHCInOctets": 0},
            {"ifHCInOctets": 118_750_000},
            "95",
        ),
        (PORT, {"ifOperStatus": STATUS(2, ""), "ifAdminStatus": STATUS(1, "")}, {}, "down"),
        (PORT, {"ifOperStatus": STATUS(1, ""), "ifAdminStatus": STATUS(1, "")}, {}, "up"),
        (HOT, {"temperature": 75, "fanStatus": FAN(1, "")}, {}, "75"),
        (HOT, {"temperature": 40, "fanStatus": FAN(2, "")}, {}, "failed"),
        (HOT, {"temperature": 40, "fanStatus": FAN(1, "")}, {}, "40"),  # all false: first
        ("sysUpTime < 90000", {"sysUpTime": TICKS(4312, "")}, {}, "43s"),
        ("x > 0 and (y > 5 or z == 1)", {"x": 1, "y": 9, "z": 0}, {}, "9"),
        ("x > 0 and (y > 5 or z == 1)", {"x": 1, "y": 2, "z": 1}, {}, "1"),
        (
            "ifOperStatus != 'up' and changed(ifOperStatus)",
            {"ifOperStatus": STATUS(2, "")},
            {},
            "down",
        ),
        ("x if x > 1 else y", {"x": 3, "y": 0}, {}, "3"),  # no comparison decided: its value
    ],
)
def test_shown_value_table(
    source: str, values: dict[str, Any], rates: dict[str, float], shown: str
) -> None:
    expr = compile_expr(source, DECIDING)
    history = Rates(**rates)
    assert render_value(expr.value_fn(values, history)) == shown


def test_shown_value_short_circuits_like_the_expression() -> None:
    # the guard is false: the division by zero behind it is never evaluated
    expr = compile_expr("y > 0 and x / y > 1", DECIDING)
    assert expr.value_fn({"x": 5, "y": 0}, NO_HISTORY) == 0
    with pytest.raises(ZeroDivisionError):  # unknown, as the expression itself
        compile_expr("x / y > 1 or y > 0", DECIDING).value_fn({"x": 5, "y": 0}, NO_HISTORY)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'value = "ifOperStatu"',
            "rules[0].value: unknown name 'ifOperStatu' at column 1 (did you mean 'ifOperStatus'?)",
        ),
        (
            'value = "rate(ifDescr) +"',
            "rules[0].value: syntax error: unexpected end of expression at column 16",
        ),
        (
            'resolved_summary = "{{ x"',
            "rules[0].resolved_summary: template error at line 1: unexpected end of template,"
            " expected 'end of print statement'.",
        ),
    ],
)
def test_value_and_resolved_summary_errors(extra: str, expected: str) -> None:
    assert problems(rule("ifOperStatus == 'down'", extra)) == [expected]


def test_empty_expression() -> None:
    with pytest.raises(ExprError, match="empty expression"):
        compile_expr("  ", SCOPE)


# --- values --------------------------------------------------------------------------


def test_enum_value_equals_label_and_number() -> None:
    cls = enum_class("ifOperStatus", {1: "up", 2: "down"})
    down = cls(2)
    assert down == "down" and down == 2 and down != "up"
    assert "down" == down  # noqa: SIM300 - the reflected comparison is the point
    assert down != "2"  # text is compared with the label only
    assert str(down) == "down" and repr(down) == "down(2)" and hash(down) == hash(2)
    assert cls(9).label == "9"


def test_converters() -> None:
    hinted = converter_for("ifPhysAddress", "OCTET STRING", {}, True)
    plain = converter_for("ifDescr", "OCTET STRING", {}, False)
    assert hinted(b"AB", "41:42") == "41:42"
    assert plain(b"AB", "41:42") == "AB"
    assert converter_for("x", "Counter64", {}, False)(5, "") == 5
    assert STATUS(2, "down") == "down"
    assert STATUS(2, "") is STATUS(2, "")  # cached: no allocation per value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (93.456, "93.46"),
        (90.0, "90"),
        (12345.6, "12346"),
        (0.000123, "0.000123"),
        (True, "true"),
        (7, "7"),
        (enum_class("s", {2: "down"})(2), "down"),
        (b"eth0", "eth0"),
        (None, ""),
    ],
)
def test_render_value(value: Any, text: str) -> None:
    assert render_value(value) == text


# --- counters ------------------------------------------------------------------------


def _history(raw: dict[str, int], rates: dict[str, float], deltas: dict[str, int]) -> RowHistory:
    last = DeviceHistory(0.0, {("1", "ifInOctets"): 100, ("1", "hrStorageUsed"): 100})
    bits = {"ifInOctets": 32, "hrStorageUsed": None}
    return RowHistory("1", raw, {}, last, 10.0, bits, {}, rates, deltas)


def test_counters_are_the_pollers_and_gauges_the_engines() -> None:
    ctx = _history({"ifInOctets": 5, "hrStorageUsed": 50}, {"ifInOctets": 1.5}, {"ifInOctets": 15})
    # the poller's figures for a counter (it saw the wrap), never the raw difference
    assert (ctx.delta("ifInOctets"), ctx.rate("ifInOctets")) == (15, 1.5)
    # a gauge's change comes from the previous poll, and may be negative
    assert (ctx.delta("hrStorageUsed"), ctx.rate("hrStorageUsed")) == (-50, -5.0)
    # no figure from the poller (first poll, restart, discontinuity): unknown
    unknown = _history({"ifInOctets": 5}, {}, {})
    with pytest.raises(Unknown):
        unknown.delta("ifInOctets")
    with pytest.raises(Unknown):
        unknown.rate("ifInOctets")


def test_object_identifier_values_compare_by_name_or_number() -> None:
    cache = NodeCache(TREE)
    disk = cache.converter("hrStorageType")("1.3.6.1.2.1.25.2.1.4", "")
    assert disk == "hrStorageFixedDisk"
    assert disk == "HOST-RESOURCES-TYPES::hrStorageFixedDisk"
    assert disk == ".1.3.6.1.2.1.25.2.1.4" and disk == "1.3.6.1.2.1.25.2.1.4"
    assert disk != "hrStorageRam" and disk in ("hrStorageRam", "hrStorageFixedDisk")
    assert render_value(disk) == "HOST-RESOURCES-TYPES::hrStorageFixedDisk"
    assert cache.converter("hrStorageType")("1.3.6.1.2.1.25.2.1.4", "") is disk  # cached


UCD = BASE.replace('collect = ["if", "sys"]', 'collect = ["if", "sys", "ucd", "apc"]') + (
    '[collect.ucd]\nwalk = ["UCD-SNMP-MIB::laLoad", "UCD-SNMP-MIB::laLoadFloat",'
    ' "HOST-RESOURCES-MIB::hrStorageType"]\n'
    '[collect.apc]\nwalk = ["1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"]\n'
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "laLoad > 4",
            "laLoad (text, DisplayString) is compared with the number 4 at column 1:"
            " that is never true",
        ),
        (
            "'1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1' > 250",
            "the text '1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1' is compared with the number 250"
            " at column 1: that is never true (to read a polled instance by its OID, use"
            " value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1'))",
        ),
        (
            "ifDescr != 5",
            "ifDescr (text, DisplayString) is compared with the number 5 at column 1:"
            " that is always true",
        ),
        (
            "ifHighSpeed == 'fast'",
            "ifHighSpeed (a number, Gauge32) is compared with the text 'fast' at column 1:"
            " that is never true",
        ),
        (
            "10 < sysName < 20",
            "the number 10 is compared with sysName (text, DisplayString) at column 1:"
            " that is never true",
        ),
        (
            "laLoad in (1, 2, 3)",
            "laLoad (text, DisplayString) is compared with the number 1 at column 1:"
            " that is never true",
        ),
        (
            "site == 3",
            "site (text, a device label) is compared with the number 3 at column 1:"
            " that is never true",
        ),
        (
            "laLoad * 2 > 8",
            "'*' needs numbers, not laLoad (text, DisplayString) at column 1"
            " (the result would never be known)",
        ),
        (
            "rate(ifHCInOctets) > '10'",
            "rate(ifHCInOctets) (a number) is compared with the text '10' at column 1:"
            " that is never true",
        ),
    ],
)
def test_text_compared_with_a_number_is_refused(expr: str, expected: str) -> None:
    config = load_config_text(UCD + rule(expr))
    assert check_rules(config, TREE) == [f"rules[0].expr: {expected}"]


@pytest.mark.parametrize(
    "expr",
    [
        "laLoadFloat > 4",  # an Opaque float is a number
        "laLoad == '4.00'",
        "ifOperStatus == 2 or ifOperStatus == 'down'",  # an enum equals both
        "hrStorageType == 'hrStorageFixedDisk'",
        "value('1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1') > 250",
        "ifDescr + '-x' == 'eth0-x' and 'eth' in ifDescr",
        "(ifHighSpeed if ifHighSpeed > 0 else 1) * 2 > 10",
        "max(ifHighSpeed, 1) > 5 and abs(-ifHighSpeed) >= 0",
        "ifOperStatus in ('down', 3)",
    ],
)
def test_comparisons_of_matching_kinds_compile(expr: str) -> None:
    assert check_rules(load_config_text(UCD + rule(expr)), TREE) == []
