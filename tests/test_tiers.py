"""The test tiers of tests/support/tiers.py: classification, marks, and the process guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.tiers import TierError, TierViolation, classify, needed_tier, spawn_guard

PY = sys.executable


@pytest.mark.parametrize(
    ("explicit", "fixtures", "tier"),
    [
        ((), (), "unit"),
        ((), ("daemon",), "daemon"),
        ((), ("daemon", "e2e", "daemon"), "e2e"),
        (("e2e",), (), "e2e"),
        (("unit",), ("daemon",), "unit"),  # an explicit mark wins (the guard still checks it)
        (("daemon", "daemon"), (), "daemon"),  # the same mark twice (module and function)
    ],
)
def test_classify(explicit: tuple[str, ...], fixtures: tuple[str, ...], tier: str) -> None:
    assert classify(explicit, fixtures) == tier


def test_two_tiers_on_one_test_are_an_error() -> None:
    with pytest.raises(TierError, match=r"^t.py::x: marked unit and e2e; a test has exactly one"):
        classify(("e2e", "unit"), (), name="t.py::x")


@pytest.mark.parametrize(
    ("args", "tier"),
    [
        (["snmptrap", "-v", "2c", "-c", "public", "127.0.0.1:162", "0", "linkDown"], "daemon"),
        ([PY, "-m", "netalert", "check-config", "-c", "x.toml"], "daemon"),
        ([PY, "-m", "netalert", "run", "-c", "x.toml"], "e2e"),
        ([PY, "-m", "netalert", "demo", "--duration", "20"], "e2e"),
        (["/venv/bin/netalert", "--version"], "daemon"),
        (["/venv/bin/netalert", "run", "-c", "x.toml"], "e2e"),
        (f"{PY} -m netalert run -c x.toml", "e2e"),  # shell=True
        (["unshare", "-r", "sh", "-c", f"{PY} -m netalert run -c 'a b.toml'"], "e2e"),
        (["/usr/bin/chromedriver", "--port=4444"], "e2e"),
        ([b"/usr/sbin/snmpd", b"-f"], "daemon"),
        (["sh", "-c", "echo 'unbalanced"], "daemon"),
        ([], "daemon"),
    ],
)
def test_needed_tier(args: object, tier: str) -> None:
    assert needed_tier(args) == tier  # type: ignore[arg-type]


def test_the_guard_refuses_a_process_to_a_unit_test_and_names_the_mark() -> None:
    seen: list[str] = []
    with spawn_guard("unit", seen.append), pytest.raises(TierViolation) as caught:
        subprocess.run(["true"], check=True)
    assert str(caught.value).startswith(
        "a unit test started a process (true): mark it @pytest.mark.daemon (daemon: "
    )
    assert seen == [str(caught.value)]


def test_the_guard_refuses_a_whole_agent_to_a_daemon_test() -> None:
    seen: list[str] = []
    with spawn_guard("daemon", seen.append), pytest.raises(TierViolation, match=r"mark it @pyt"):
        subprocess.run([PY, "-m", "netalert", "run", "-c", "nowhere.toml"], check=False)
    assert len(seen) == 1 and "@pytest.mark.e2e" in seen[0]


def test_the_guard_restores_what_it_patched() -> None:
    import os

    before = (subprocess.Popen._execute_child, os.fork, os.posix_spawn)  # type: ignore[attr-defined]
    with spawn_guard("unit", lambda _: None):
        assert os.fork is not before[1]
    assert (subprocess.Popen._execute_child, os.fork, os.posix_spawn) == before  # type: ignore[attr-defined]


CONFTEST = 'pytest_plugins = ["tests.support.tiers", "tests.support.smtp"]\n'
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_a_session_classifies_and_checks_every_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_sample=textwrap.dedent(
            """
            import subprocess
            import pytest

            def test_pure():
                assert 1 + 1 == 2

            def test_uses_the_smtp_ca(smtp_ca):
                assert smtp_ca is not None

            def test_starts_a_process_unmarked():
                subprocess.run(["true"], check=True)

            def test_swallows_the_refusal():
                try:
                    subprocess.run(["true"], check=True)
                except Exception:
                    pass

            @pytest.mark.daemon
            def test_starts_a_process_marked():
                subprocess.run(["true"], check=True)
            """
        )
    )
    unit = pytester.runpytest_inprocess("-m", "unit", "-p", "no:cacheprovider")
    unit.assert_outcomes(passed=1, failed=2, deselected=2)
    unit.stdout.fnmatch_lines(
        ["*a unit test started a process (true): mark it @pytest.mark.daemon*"]
    )
    # (collected only: running them would start a process from this unit test)
    daemon = pytester.runpytest_inprocess("-m", "daemon", "-q", "--collect-only")
    daemon.stdout.fnmatch_lines(
        [
            "test_sample.py::test_uses_the_smtp_ca",
            "test_sample.py::test_starts_a_process_marked",
            "2/5 tests collected (3 deselected)*",
        ]
    )


def test_a_test_with_two_tiers_stops_the_collection(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_sample=textwrap.dedent(
            """
            import pytest

            pytestmark = pytest.mark.e2e

            @pytest.mark.unit
            def test_confused():
                pass
            """
        )
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_confused: marked unit and e2e; a test has exactly one tier"]
    )


def test_every_collected_test_of_this_suite_has_exactly_one_tier(
    request: pytest.FixtureRequest,
) -> None:
    for item in request.session.items:
        tiers = {m.name for m in item.iter_markers() if m.name in ("unit", "daemon", "e2e")}
        assert len(tiers) == 1, (item.nodeid, tiers)
