"""One version, written once (netalert/__init__.py), read by everything that shows it.

tests/test_wheel.py checks the built wheel, the installed ``netalert --version`` and a
running agent's status page against each other; these are the in-process checks.
"""

from __future__ import annotations

import re
import time
import tomllib

from typer.testing import CliRunner

import netalert
from netalert.cli import app
from netalert.metrics import Metrics
from netalert.web.live import LiveStatus
from tests.support.faults import ROOT


def test_version_is_the_one_written_in_the_package() -> None:
    assert netalert.version() == netalert.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", netalert.version())


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]  # no second copy to forget
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "netalert.__version__"}


def test_cli_prints_the_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"netalert {netalert.version()}\n"


def test_status_page_and_metrics_show_the_version() -> None:
    live = LiveStatus(started=time.time(), devices=list, alerts=list)
    assert live.snapshot(time.time()).version == netalert.version()
    body, _ = Metrics().render()
    assert f'version="{netalert.version()}"' in body.decode()


def test_changelog_has_an_entry_for_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    assert entries and entries[0] == netalert.version(), entries
