"""rules/ evaluates and observes; alerts/ owns the alerts. rules/ may use only the
public types of netalert.alerts (its ``__all__``), never a module inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import netalert.alerts
import netalert.rules

RULES = Path(netalert.rules.__file__).parent


def _imports_of_alerts(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netalert.alerts"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.startswith("netalert.alerts")]
    return found


def test_rules_import_only_the_public_types_of_alerts() -> None:
    public = set(netalert.alerts.__all__)
    wrong = [
        f"{path.name}: {module} {name}".strip()
        for path in sorted(RULES.glob("*.py"))
        for module, name in _imports_of_alerts(path)
        if module != "netalert.alerts" or name not in public
    ]
    assert wrong == []


def test_the_check_sees_a_submodule_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "from netalert.alerts.table import AlertRecord\nimport netalert.alerts.step\n"
    )
    assert _imports_of_alerts(sample) == [
        ("netalert.alerts.table", "AlertRecord"),
        ("netalert.alerts.step", ""),
    ]
