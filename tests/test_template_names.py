"""A template name that no context provides is a warning (issue 19); valid templates give none.

``{{ ifDesc }}`` (for ``ifDescr``) renders empty in every mail: the rules warn of
it when they compile, with a close match, as ``check-config``, a reload and
``netalert run`` report it. No false alarms: the configs the repository ships
(config.toml, the README's and the docs' examples, the demo's) have none.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.config.models import Config
from netalert.rules import compile_rules
from tests.test_rules_expr import BASE, TREE  # sw1 (site=milano): ifTable columns, sysUpTime

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[1]


def warnings(rule: str, base: str = BASE) -> list[str]:
    return [str(w) for w in compile_rules(load_config_text(base + rule), TREE).warnings]


def poll_rule(**templates: str) -> str:
    lines = "".join(f"{key} = {value!r}\n" for key, value in templates.items())
    return f'[[rules]]\nname = "InterfaceDown"\nexpr = "ifOperStatus == \'down\'"\n{lines}'


def trap_rule(**templates: str) -> str:
    lines = "".join(f"{key} = {value!r}\n" for key, value in templates.items())
    return f'[[rules]]\nname = "LinkDown"\ntrap = "IF-MIB::linkDown"\n{lines}'


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            poll_rule(summary="{{ device }} {{ ifDesc }} is down"),
            "rules[0].summary: rule 'InterfaceDown': {{ ifDesc }} names nothing this rule"
            " provides; it writes nothing (did you mean ifDescr?)",
        ),
        (  # a device label misspelt, as a name and under labels
            poll_rule(description="{{ stie }} / {{ labels.stie }}"),
            "rules[0].description: rule 'InterfaceDown': {{ stie }} names nothing this rule"
            " provides; it writes nothing (did you mean site?)",
        ),
        (  # an object of the MIB that the rule's devices do not collect: not in its rows
            poll_rule(summary="{{ ifAlias }}"),
            "rules[0].summary: rule 'InterfaceDown': {{ ifAlias }} names nothing this rule"
            " provides; it writes nothing (did you mean ifAdminStatus?)",
        ),
        (  # a resolved summary's own names are only there
            poll_rule(summary="down for {{ fired_for }}"),
            "rules[0].summary: rule 'InterfaceDown': {{ fired_for }} names nothing this rule"
            " provides; it writes nothing",
        ),
        (
            trap_rule(summary="{{ device }} {{ ifDesc }} down", resolved_summary="{{ frobz }}"),
            "rules[0].summary: rule 'LinkDown': {{ ifDesc }} names nothing this rule"
            " provides; it writes nothing (did you mean ifDescr?)",
        ),
    ],
)
def test_a_name_no_context_provides_is_warned_of(rule: str, expected: str) -> None:
    assert warnings(rule)[0] == expected


def test_each_unknown_name_is_one_line() -> None:
    rule = poll_rule(
        summary="{{ ifDesc }} {{ ifDesc }} {{ labels.stie }}", resolved_summary="{{ oops }}"
    )
    assert warnings(rule) == [
        "rules[0].summary: rule 'InterfaceDown': {{ ifDesc }} names nothing this rule provides;"
        " it writes nothing (did you mean ifDescr?)",
        "rules[0].summary: rule 'InterfaceDown': labels.stie is no label of this rule's alerts;"
        " it writes nothing (did you mean site?)",
        "rules[0].resolved_summary: rule 'InterfaceDown': {{ oops }} names nothing this rule"
        " provides; it writes nothing",
    ]
    trap = trap_rule(resolved_summary="{{ frobz }}")
    assert warnings(trap) == [
        "rules[0].resolved_summary: rule 'LinkDown': {{ frobz }} names nothing this rule"
        " provides; it writes nothing"
    ]


@pytest.mark.parametrize(
    "rule",
    [
        poll_rule(
            summary="{{ device }} {{ ifDescr }} ({{ ifIndex }}, {{ index }}) at {{ site }}",
            description=(
                "{{ labels.site }} {{ labels['ifIndex'] }} {{ labels.rule }} {{ labels.get('x') }}"
                " {{ alert.state.value }} {{ value }} up {{ sysUpTime | uptime }} {{ sysName }}"
                "{% for k, v in labels.items() %}{{ loop.index }} {{ k }}={{ v }}{% endfor %}"
                "{% set n = namespace(c=0) %}{{ n.c }} {{ range(2) | list }}"
                # guarded by the template itself: the author knows it may be missing
                "{% if ifAlias is defined %}{{ ifAlias }}{% endif %} {{ ifName | default('') }}"
                "{% if labels.team is defined %}{{ labels.team }}{% endif %}"
            ),
            resolved_summary="{{ firing_summary }} after {{ fired_for | duration }}",
        ),
        # a trap may carry any varbind: every MIB object is a name it can have
        trap_rule(
            summary="{{ device }} {{ ifDescr }} {{ ifIndex }} {{ trap }} {{ source }}",
            description="{{ trap_source }} {{ community }} {{ varbinds | length }} {{ labels.x }}",
        ),
        # the default templates, and a rule of a device-less config
        poll_rule(),
        trap_rule(),
    ],
)
def test_valid_templates_give_no_warning(rule: str) -> None:
    assert warnings(rule) == []


# --- every config the repository ships, and the examples of its docs ---


def _shipped_configs() -> list[tuple[str, str]]:
    """(where, TOML) of config.toml and of every whole config in README.md and docs/*.md."""
    found = [("config.toml", (ROOT / "config.toml").read_text(encoding="utf-8"))]
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.DOTALL)):
            if "[[rules]]" in block:
                found.append((f"{page.name} block {n}", block))
    return found


def _with_shipped_devices(block: str) -> Config:
    """A docs fragment's rules and collect groups on the devices of the shipped config.toml."""
    data = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    fragment = tomllib.loads(block)
    data["rules"] = fragment["rules"]
    groups = fragment.get("collect", {})
    data.setdefault("collect", {}).update(groups)
    for device in data.get("devices", []):
        device["collect"] = sorted({*device.get("collect", []), *groups})
    return Config.model_validate(data)


def test_the_configs_the_repository_ships_give_no_warning() -> None:
    from netalert.errors import ConfigError

    shipped = _shipped_configs()
    assert len(shipped) >= 5, shipped  # config.toml, the README's first config, the docs'
    checked = 0
    for where, text in shipped:
        # a docs fragment: its rules, against the devices of the shipped config
        whole = "[[devices]]" in text
        config = load_config_text(text) if whole else _with_shipped_devices(text)
        try:
            rules = compile_rules(config, TREE)
        except ConfigError:
            continue  # a fragment that names a vendor MIB's objects: not a config on its own
        checked += 1
        assert [str(w) for w in rules.warnings] == [], where
    assert checked >= 5
