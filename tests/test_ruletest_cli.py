"""``netalert test rules``: a real `netalert` process runs rule test files against a config.

The user's loop end to end: a rule test that fails prints a readable diff and
exits 1; the rule is fixed in the config; the same test passes (exit 0). A
broken test file exits 2 with ``FILE: path: message`` lines like check-config.
Traps go through the receiver's decoding and access control, silences and
routes through the dispatcher, mails through the renderer: only the clock is
virtual.

The user's loop and one broken file run ``netalert`` as a process; the other cases run
the same command line in this process (``tests/support/cli.py``): a process start and
the MIB tree's load cost a second of CPU each.
"""

from __future__ import annotations

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

[[devices]]
name = "sw1"
address = "192.0.2.10"
collect = ["interfaces"]
labels = { site = "lab" }

[collect.interfaces]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifAdminStatus", "IF-MIB::ifOperStatus"]

[traps]
listen = ["127.0.0.1:10162"]
communities = ["public"]
allow = ["192.0.2.0/24"]

[[rules]]
name = "InterfaceDown"
expr = "ifOperStatus == 'down' and ifAdminStatus == 'up'"
for = "FOR"
severity = "critical"
summary = "{{ device }} {{ ifDescr }} is down"

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
key = ["ifIndex"]
severity = "warning"
summary = "{{ device }} reported linkDown on ifIndex {{ ifIndex }}"

[[routes]]
match = { severity = "critical" }
to = ["noc@example.org"]
group_wait = "30s"

[[routes]]
to = ["netops@example.org"]
group_wait = "10s"
"""

TESTS = """
config = "config.toml"
interval = "30s"

[[tests]]
name = "a port that stays down pages the NOC"

[tests.polls.sw1]
"IF-MIB::ifDescr.3" = "'Gi0/3'x6"
"IF-MIB::ifAdminStatus.3" = "upx6"
"IF-MIB::ifOperStatus.3" = "up up down down down down down"

[[tests.expect]]
at = "1m30s"
alerts = [{ rule = "InterfaceDown", state = "firing", labels = { device = "sw1", ifIndex = "3" } }]

[[tests.expect]]
at = "3m"
alerts = [{ rule = "InterfaceDown", state = "firing", labels = { ifIndex = "3" } }]

[[tests.expect.notifications]]
route = "routes[0]"
to = ["noc@example.org"]
reason = "new"
subject = "[FIRING]*InterfaceDown*sw1*"
body = "sw1 Gi0/3 is down"

[[tests]]
name = "linkDown under a silence is told when the silence ends, linkUp resolves"

[[tests.silences]]
at = "0s"
for = "1m"
match = ["device=sw1"]

[[tests.traps]]
at = "10s"
trap = "IF-MIB::linkDown"
source = "192.0.2.10"

[tests.traps.varbinds]
"IF-MIB::ifIndex.3" = 3
"IF-MIB::ifAdminStatus.3" = "up"
"IF-MIB::ifOperStatus.3" = "down"

[[tests.traps]]
at = "7m"
trap = "IF-MIB::linkUp"
source = "192.0.2.10"

[tests.traps.varbinds]
"IF-MIB::ifIndex.3" = 3
"IF-MIB::ifAdminStatus.3" = "up"
"IF-MIB::ifOperStatus.3" = "up"

[[tests.expect]]
at = "30s"
alerts = [{ rule = "LinkDown", labels = { device = "sw1", ifIndex = "3", severity = "warning" } }]
notifications = []

[[tests.expect]]
at = "6m"

[[tests.expect.notifications]]
route = "routes[1]"
to = ["netops@example.org"]
reason = "new"
body = "sw1 reported linkDown on ifIndex 3"

[[tests.expect]]
at = "7m"
alerts = []

[[tests.expect]]
at = "11m"
notifications = [{ route = "routes[1]", reason = "resolved", subject = "[RESOLVED]*" }]

[[tests]]
name = "a trap with the wrong community raises nothing"

[[tests.traps]]
at = "5s"
trap = "IF-MIB::linkDown"
source = "192.0.2.10"
community = "guess"
varbinds = { "IF-MIB::ifIndex.3" = 3 }

[[tests.expect]]
at = "1m"
alerts = []
notifications = []
"""


def _netalert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=90,
        # no environment of the user's, but the run's MIB facts (seconds of CPU to extract)
        env={"PATH": "/usr/bin:/bin", **sharing_env(), "PYTHONPATH": python_path(ROOT)},
    )


@pytest.fixture
def workdir(tmp_path: Path, mib_cache: Path) -> Path:
    shutil.copytree(mib_cache, tmp_path / "state" / "mibs")
    (tmp_path / "rules_test.toml").write_text(TESTS)
    return tmp_path


def test_a_failing_rule_test_shows_the_diff_then_passes_once_the_rule_is_fixed(
    workdir: Path,
) -> None:
    (workdir / "config.toml").write_text(CONFIG.replace("FOR", "5m"))
    failed = _netalert("test", "rules", "rules_test.toml", cwd=workdir)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    out = failed.stdout
    assert "  FAIL  a port that stays down pages the NOC" in out
    assert "at 1m30s, alerts (- expected, + got):" in out
    assert '- firing  InterfaceDown{device="sw1", ifIndex="3"}' in out
    assert (
        '+ pending InterfaceDown{device="sw1", ifIndex="3", severity="critical", site="lab"}'
        in (out)
    )
    # the notification that never came is shown as expected and missing
    assert "at 3m, notifications" in out
    assert '- route="routes[0]" to="noc@example.org" reason=new' in out
    # the other tests do not depend on that rule
    assert "  PASS  linkDown under a silence is told when the silence ends, linkUp resolves" in out
    assert "  PASS  a trap with the wrong community raises nothing" in out
    assert "rule tests: 2 passed, 1 failed" in out

    (workdir / "config.toml").write_text(CONFIG.replace("FOR", "30s"))
    fixed = _netalert("test", "rules", "rules_test.toml", cwd=workdir)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "  PASS  a port that stays down pages the NOC" in fixed.stdout
    assert "rule tests: 3 passed, 0 failed" in fixed.stdout


def test_a_notification_expectation_that_differs_shows_what_was_sent(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "config.toml").write_text(CONFIG.replace("FOR", "30s"))
    text = TESTS.replace('body = "sw1 Gi0/3 is down"', 'body = "sw1 Gi0/4 is down"')
    (workdir / "rules_test.toml").write_text(text)
    result = netalert_in_process(capsys, "test", "rules", "rules_test.toml", cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '+ at=2m route="routes[0]" to="noc@example.org" reason=new subject="[FIRING]' in (
        result.stdout
    )
    assert 'body lacks "sw1 Gi0/4 is down"' in result.stdout


BROKEN = [
    (('expect]]\nat = "1m30s"', 'expect]]\nat = "soon"'), "tests[0].expect[0].at: invalid"),
    (("[[tests.expect]]", "[[tests.expct]]"), "tests[0].expct: unknown key (did you mean"),
    (
        ('"IF-MIB::ifOperStatus.3" = "up up', '"IF-MIB::ifOperStatu.3" = "up up'),
        "tests[0].polls.sw1.IF-MIB::ifOperStatu.3: unknown MIB name",
    ),
    (
        ("upx6", "upx6 sideways"),
        "tests[0].polls.sw1.IF-MIB::ifAdminStatus.3: 'sideways' is not one of its labels",
    ),
    (("[tests.polls.sw1]", "[tests.polls.sw9]"), "tests[0].polls.sw9: unknown device"),
    (
        ('community = "guess"', 'version = "3"\nuser = "nobody"'),
        "tests[2].traps[0].user: 'nobody' is not a [[traps.users]] user (the config has: none)",
    ),
]


@pytest.mark.parametrize(("edit", "message"), BROKEN)
def test_a_broken_test_file_exits_2_with_path_and_message(
    workdir: Path, edit: tuple[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "config.toml").write_text(CONFIG.replace("FOR", "30s"))
    old, new = edit
    assert old in TESTS
    (workdir / "rules_test.toml").write_text(TESTS.replace(old, new, 1))
    if (edit, message) == BROKEN[0]:  # the exit code of a real process
        result = _netalert("test", "rules", "rules_test.toml", cwd=workdir)
    else:
        result = netalert_in_process(capsys, "test", "rules", "rules_test.toml", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"rules_test.toml: {message}" in result.stderr, result.stderr


def test_the_worked_example_of_the_docs_runs_as_written(
    tmp_path: Path, mib_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/rules.md "A worked example", steps 1 to 4: the config and the test file as
    # the docs show them give the output the docs show, and the fix makes both pass
    import re

    from tests.support.markdown import section

    text = section((ROOT / "docs" / "rules.md").read_text(), "A worked example")
    config, tests = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)[:2]
    shown = re.search(r"\$ netalert test rules linkdown_test.toml\n(.*?)\$ echo", text, re.DOTALL)
    assert shown is not None
    shutil.copytree(mib_cache, tmp_path / "var" / "mibs")
    (tmp_path / "config.toml").write_text(config)
    (tmp_path / "linkdown_test.toml").write_text(tests)
    first = netalert_in_process(capsys, "test", "rules", "linkdown_test.toml", cwd=tmp_path)
    assert (first.returncode, first.stdout) == (1, shown.group(1)), first.stderr

    fixed = config.replace('severity = "warning"\n', 'severity = "warning"\nfor = "1m"\n', 1)
    assert fixed != config
    (tmp_path / "config.toml").write_text(fixed)
    second = netalert_in_process(capsys, "test", "rules", "linkdown_test.toml", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "rule tests: 2 passed, 0 failed" in second.stdout
