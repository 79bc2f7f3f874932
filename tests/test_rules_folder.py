"""tests/rules/: the rule tests of the shipped config.toml and of the docs' worked examples.

``make test`` runs them here through the real command, ``netalert test rules``;
a second test keeps tests/rules/configs/readme_examples.toml the same as the
examples of docs/rules.md ("Worked examples"), so the examples the docs show
are the ones tested. (The files keep their names from when the examples were
in the README.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.markdown import section

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "tests" / "rules"
EXAMPLES = ROOT / "docs" / "rules.md"


@pytest.mark.daemon
def test_every_rule_test_in_tests_rules_passes() -> None:
    files = sorted(RULES.glob("*.toml"))
    assert {f.name for f in files} >= {"shipped_config.toml", "readme_examples.toml"}
    count = sum(len(tomllib.loads(f.read_text())["tests"]) for f in files)
    result = subprocess.run(
        [sys.executable, "-m", "netalert", "test", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rule tests: {count} passed, 0 failed" in result.stdout, result.stdout


def _readme_rules() -> list[dict[str, object]]:
    examples = section(EXAMPLES.read_text(), "Worked examples")
    rules: list[dict[str, object]] = []
    for block in re.findall(r"```toml\n(.*?)```", examples, re.DOTALL):
        rules += tomllib.loads(block).get("rules", [])
    return rules


def test_the_tested_config_holds_every_readme_example_rule_unchanged() -> None:
    readme = _readme_rules()
    assert len(readme) >= 5
    tested = tomllib.loads((RULES / "configs" / "readme_examples.toml").read_text())["rules"]
    by_name = {rule["name"]: rule for rule in tested}
    for rule in readme:
        assert by_name.get(str(rule["name"])) == rule, f"docs rule {rule['name']} differs"
    tests = (RULES / "readme_examples.toml").read_text()
    for rule in readme:
        assert f'rule = "{rule["name"]}"' in tests, f"no test expects {rule['name']}"
