"""``netalert routes test LABEL=VALUE...``: the route an alert takes, its receivers,
what mutes it now and its group, from a real `netalert` process over a real state database
(the silence is added with ``netalert silence add``, as an operator would).

The first test's commands are processes; the other cases run the same command line in
this process (``tests/support/cli.py``): a process start and the MIB tree's load cost
about a second of CPU each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import netalert_in_process
from tests.support.shared import python_path, sharing_env

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[agent]
state_dir = "state"
http = ""

[[routes]]
name = "pager"
match = { severity = "critical", site = "milano" }
to = ["pager@example.org"]
group_by = ["device", "rule"]

[[routes]]
match = { severity = "critical" }
to = ["noc@example.org", "oncall@example.org"]
group_by = ["device"]
group_wait = "45s"

[[routes]]
to = ["netops@example.org"]

[[maintenance]]
name = "always"
start = "00:00"
end = "00:00"
match = ["site=lab"]

[[maintenance]]
name = "never-for-lab"
start = "00:00"
end = "00:00"
match = ["site=elsewhere"]
"""


def _netalert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        # no environment of the user's, but the run's MIB facts (seconds of CPU to extract)
        env={
            "PATH": "/usr/bin:/bin",
            **sharing_env(),
            "PYTHONPATH": python_path(ROOT),
            "USER": "tester",
        },
    )


def _in_process(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return netalert_in_process(capsys, *args, cwd=cwd)


@pytest.fixture
def workdir(tmp_path: Path, mib_cache: Path) -> Path:
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def test_the_path_receivers_mutes_and_group_of_an_alert(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    added = _netalert(
        "silence",
        "add",
        "--match",
        "device=sw1",
        "--for",
        "1h",
        "--comment",
        "card swap",
        cwd=workdir,
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    result = _netalert(
        "routes",
        "test",
        "severity=critical",
        "device=sw1",
        "site=lab",
        "rule=InterfaceDown",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pager: no match (site='lab', wants 'milano')" in out
    assert "routes[1]: MATCH" in out
    assert "routes[2]: not reached" in out
    assert "receivers: noc@example.org, oncall@example.org" in out
    assert f"silence {silence_id} (device=sw1) by tester: card swap" in out
    assert "maintenance always (site=lab)" in out
    assert "never-for-lab" not in out
    assert "group: routes[1]{device='sw1'}" in out
    assert "group_wait 45s, group_interval 5m, repeat_interval 4h" in out

    as_json = _in_process(
        capsys,
        "routes",
        "test",
        "severity=critical",
        "device=sw2",
        "site=milano",
        "--json",
        cwd=workdir,
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["route"] == "pager"
    assert data["receivers"] == ["pager@example.org"]
    assert [step["route"] for step in data["path"]] == ["pager"]
    assert data["muted_by"] == []
    assert data["group"]["key"] == "pager{device='sw2',rule=''}"


def test_no_route_and_bad_labels(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "config.toml").write_text(
        CONFIG.replace('[[routes]]\nto = ["netops@example.org"]\n', "")
    )
    result = _in_process(capsys, "routes", "test", "severity=info", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "no route matches: this alert is not mailed" in result.stdout
    bad = _in_process(capsys, "routes", "test", "severity", cwd=workdir)
    assert bad.returncode == 2
    assert "LABEL=VALUE" in bad.stderr


TREE = """
[agent]
state_dir = "state"
http = ""

[[routes]]
name = "noc"
match = ["severity=~critical|warning"]
to = ["noc@example.org"]

  [[routes.routes]]
  name = "pager"
  match = ["device=~core-.*"]
  to = ["pager@example.org"]
  continue = true

  [[routes.routes]]
  match = ["site!=lab"]
  group_wait = "5s"

[[routes]]
name = "rest"
to = ["rest@example.org"]
"""


def test_the_tree_path_of_nested_routes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "config.toml").write_text(TREE)
    result = _in_process(
        capsys, "routes", "test", "severity=critical", "device=core-1", "site=milano", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:10] == [
        "path (first match wins, unless it says continue):",
        "  noc: MATCH",
        "    pager: MATCH, continue",
        "    routes[0].routes[1]: MATCH",
        "  rest: not reached",
        "route: pager (tree path: noc > pager)",
        "receivers: pager@example.org",
        "group: pager{device='core-1'}",
        "  group_wait 30s, group_interval 5m, repeat_interval 4h, send_resolved yes",
    ]
    assert "route: routes[0].routes[1] (tree path: noc > routes[0].routes[1])" in result.stdout
    assert "receivers: noc@example.org" in result.stdout  # inherited
    assert "  group_wait 5s, group_interval 5m" in result.stdout

    lab = _in_process(
        capsys, "routes", "test", "severity=warning", "site=lab", "--json", cwd=workdir
    )
    data = json.loads(lab.stdout)
    assert [(r["route"], r["tree_path"]) for r in data["routes"]] == [("noc", ["noc"])]
    assert data["path"][2]["why"] == "no match (site='lab', wants !='lab')"

    (workdir / "config.toml").write_text(TREE.replace('"site!=lab"', '"site=~(lab"'))
    bad = _in_process(capsys, "routes", "test", "severity=warning", cwd=workdir)
    assert bad.returncode == 2
    assert "routes[0].routes[1].match: invalid matcher 'site=~(lab'" in bad.stderr
