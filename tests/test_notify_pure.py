"""Pure notify decisions: dedup, matchers, maintenance windows, silences."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from netalert.config.models import Maintenance, Route
from netalert.errors import NetalertError
from netalert.matchers import Matcher, matches_all, parse_matcher
from netalert.notify.maintenance import in_maintenance, window_active
from netalert.notify.model import Reason
from netalert.notify.nflog import NflogEntry, NotificationLog, decide
from netalert.notify.routes import compile_routes, group_key
from netalert.notify.silences import SilenceStore, is_silenced
from netalert.state import open_database
from tests.support.cli import netalert_in_process

F = frozenset
HOUR = 3600.0


@pytest.mark.parametrize(
    ("prev", "firing", "resolved", "send_resolved", "now", "expected"),
    [
        (None, F(), F(), True, 0, None),
        (None, F({"a"}), F(), True, 0, Reason.NEW),
        (None, F(), F({"a"}), True, 0, None),  # resolved before anyone was told
        (NflogEntry(F({"a"}), F(), 0), F({"a"}), F(), True, 60, None),  # unchanged: dedup
        (NflogEntry(F({"a"}), F(), 0), F({"a", "b"}), F(), True, 60, Reason.CHANGED),
        (NflogEntry(F({"a"}), F(), 0), F(), F({"a"}), True, 60, Reason.RESOLVED),
        (NflogEntry(F({"a"}), F(), 0), F(), F({"a"}), False, 60, None),
        (NflogEntry(F({"a", "b"}), F(), 0), F({"b"}), F({"a"}), True, 60, Reason.CHANGED),
        (NflogEntry(F({"a"}), F(), 0), F({"a"}), F(), True, 4 * HOUR, Reason.REPEAT),
        (NflogEntry(F({"a"}), F(), 0), F({"a"}), F(), True, 4 * HOUR - 1, None),
        (NflogEntry(F(), F({"a"}), 0), F({"a"}), F(), True, 60, Reason.NEW),  # fired again
        (NflogEntry(F({"a"}), F(), 0), F(), F({"x"}), True, 60, None),  # never told about x
        (NflogEntry(F({"a", "b"}), F(), 0), F({"b"}), F(), False, 60, None),  # a silenced
    ],
)
def test_decide(
    prev: NflogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    send_resolved: bool,
    now: float,
    expected: Reason | None,
) -> None:
    got = decide(
        prev, firing, resolved, send_resolved=send_resolved, repeat_interval=4 * HOUR, now=now
    )
    assert got == expected


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("device=sw1", {"device": "sw1"}, True),
        ("device=sw1", {"device": "sw2"}, False),
        ("device!=sw1", {"device": "sw2"}, True),
        ("device=~sw[0-9]+", {"device": "sw12"}, True),
        ("device=~sw", {"device": "sw12"}, False),  # anchored, as in Alertmanager
        ("device!~core-.*", {"device": "edge-1"}, True),
        ("site=", {}, True),  # a missing label is the empty string
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device", "invalid matcher 'device': use name=value, name!=value, name=~regex"),
        ("1x=a", "invalid matcher '1x=a': bad label name '1x'"),
        ("a=~(", "invalid matcher 'a=~(': missing ), unterminated subpattern at position 0"),
    ],
)
def test_bad_matchers(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_matcher(text)
    assert str(info.value) == message


def test_matches_all() -> None:
    ms = [Matcher("a", "=", "1"), Matcher("b", "!=", "2")]
    assert matches_all(ms, {"a": "1", "b": "3"})
    assert not matches_all(ms, {"a": "1", "b": "2"})
    assert matches_all([], {})


def _ts(text: str, zone: str = "Europe/Rome") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


NIGHTLY = Maintenance(
    name="nightly",
    days=["sat"],
    start="22:00",
    end="02:00",
    timezone="Europe/Rome",
    match=["site=milano"],
)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-11-28 21:59", False),  # Saturday before the window
        ("2026-11-28 22:00", True),
        ("2026-11-28 23:59", True),
        ("2026-11-29 01:59", True),  # Sunday morning: the Saturday window continues
        ("2026-11-29 02:00", False),
        ("2026-11-29 22:30", False),  # Sunday night is not in the window
        ("2026-11-27 23:00", False),  # Friday
    ],
)
def test_window_crossing_midnight(when: str, expected: bool) -> None:
    assert window_active(NIGHTLY, _ts(when)) is expected


def test_window_daytime_and_zone() -> None:
    window = Maintenance(name="d", start="09:00", end="10:00", timezone="America/New_York")
    assert window_active(window, _ts("2026-11-27 09:30", "America/New_York"))
    assert not window_active(window, _ts("2026-11-27 09:30", "Europe/Rome"))
    whole = Maintenance(name="w", days=["sun"], start="00:00", end="00:00")
    assert window_active(whole, _ts("2026-11-29 13:00", "UTC"))
    assert not window_active(whole, _ts("2026-11-30 13:00", "UTC"))


def test_in_maintenance_matchers() -> None:
    now = _ts("2026-11-28 23:00")
    assert in_maintenance([NIGHTLY], {"site": "milano"}, now) == "nightly"
    assert in_maintenance([NIGHTLY], {"site": "roma"}, now) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": "25:00"}, "invalid time '25:00': use HH:MM, e.g. 22:00"),
        ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base', e.g. Europe/Rome or UTC"),
        ({"days": ["sunday"]}, None),
    ],
)
def test_maintenance_config_errors(fields: dict[str, object], message: str | None) -> None:
    from netalert.config import load_config_text
    from netalert.errors import ConfigError

    base: dict[str, object] = {"name": "m", "start": "01:00", "end": "02:00"}
    base.update(fields)
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in base.items())
    with pytest.raises(ConfigError) as info:
        load_config_text("[[maintenance]]\n" + body + "\n", env={})
    line = info.value.problems[0]
    assert line.startswith("maintenance[0].")
    if message:
        assert line.endswith(message)


def test_routes_first_match_and_group_key() -> None:
    routes = [
        Route(match={"severity": "critical"}, to=["noc@example.org"]),
        Route(to=["all@example.org"]),
    ]
    tree = compile_routes(routes)
    assert [r.path for r in tree.match({"severity": "critical"})] == ["routes[0]"]
    assert [r.path for r in tree.match({"severity": "info"})] == ["routes[1]"]
    assert compile_routes(routes[:1]).match({"severity": "info"}) == ()
    a = group_key("r", ["device"], {"device": "sw1", "rule": "x"})
    b = group_key("r", ["device"], {"device": "sw1", "rule": "y"})
    c = group_key("r", ["device"], {"device": "sw2", "rule": "x"})
    assert a == b != c
    assert group_key("r", ["..."], {"a": "1"}) != group_key("r", ["..."], {"a": "2"})


def test_silence_store_round_trip(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    store = SilenceStore(db)
    s = store.add(
        ["device=sw1", "rule=~Link.*"], starts_at=100, ends_at=200, comment="swap", author="ops"
    )
    assert [x.id for x in store.list(150)] == [s.id]
    assert is_silenced(store.list(150), {"device": "sw1", "rule": "LinkDown"}, 150) == s.id
    assert is_silenced(store.list(150), {"device": "sw2", "rule": "LinkDown"}, 150) is None
    assert is_silenced(store.list(150), {"device": "sw1", "rule": "LinkDown"}, 250) is None
    assert store.expire(s.id, 160)
    assert not store.expire(s.id, 170)
    assert store.list(170) == []
    assert len(store.list(170, include_expired=True)) == 1
    # A second handle on the same file sees it (the CLI and the agent share it).
    assert len(SilenceStore(open_database(tmp_path)).list(0, include_expired=True)) == 1


@pytest.mark.parametrize(
    ("matchers", "comment", "message"),
    [
        ([], "x", "a silence needs at least one --match NAME=VALUE"),
        (["device"], "x", "invalid matcher 'device': use name=value, name!=value, name=~regex"),
        (["a=b"], " ", "a silence needs a --comment saying why"),
    ],
)
def test_silence_errors(tmp_path: Path, matchers: list[str], comment: str, message: str) -> None:
    store = SilenceStore(open_database(tmp_path))
    with pytest.raises(NetalertError) as info:
        store.add(matchers, starts_at=0, ends_at=10, comment=comment, author="me")
    assert str(info.value) == message


def test_nflog_persists(tmp_path: Path) -> None:
    log = NotificationLog(open_database(tmp_path))
    with log._db.transaction() as conn:
        NotificationLog.record(conn, "r", "k", F({"a"}), F(), 10.0)
    again = NotificationLog(open_database(tmp_path))
    assert again.get("r", "k") == NflogEntry(F({"a"}), F(), 10.0)
    assert again.get("r", "other") is None


@pytest.mark.daemon
def test_silence_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Adding, expiring and a refused matcher as processes; the rest in this process
    (``tests/support/cli.py``), which spares a Python start each."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[agent]\nstate_dir = 'state'\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "netalert", "silence", *args, "-c", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return netalert_in_process(capsys, "silence", *args, "-c", str(cfg))

    added = cli(
        "add", "--match", "device=sw1", "--for", "2h", "--comment", "card swap", "--author", "ops"
    )
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    listed = here("list")
    assert sid in listed.stdout and "device=sw1" in listed.stdout and "card swap" in listed.stdout
    assert cli("expire", sid).returncode == 0
    assert sid not in here("list").stdout
    assert here("expire", sid).returncode == 1
    bad = cli("add", "--match", "device", "--for", "1h", "--comment", "x")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "invalid matcher 'device': use name=value, name!=value, name=~regex"
    )
    assert here("add", "--match", "a=b", "--for", "soon", "--comment", "x").returncode == 2
