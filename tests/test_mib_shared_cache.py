"""The shared MIB tree cache (``[mibs].shared_cache``): a new state folder takes the tree
another state folder of this user compiled from the same MIB files, instead of compiling.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.config.models import SHARED_CACHE_ENV, MibsConfig
from netalert.mib import MibTree, load_mibs
from netalert.mib.snapshot import read_snapshot, snapshot_path, used_snapshot, write_snapshot
from tests.test_mib_snapshot import DEMO, REPO, key_of, verdicts

pytestmark = pytest.mark.unit


def shared_config(folder: Path, shared: Path | None) -> MibsConfig:
    return MibsConfig(paths=[folder], system_paths=[], shared_cache=shared)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MibTree]:
    """A shared folder once a first state folder compiled the project's MIB folder."""
    top = tmp_path_factory.mktemp("shared")
    return top / "trees", load_mibs(shared_config(REPO / "mibs", top / "trees"), top / "first")


@pytest.fixture
def shared(built: tuple[Path, MibTree], tmp_path: Path) -> Path:
    folder = tmp_path / "trees"
    shutil.copytree(built[0], folder)
    return folder


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    folder = tmp_path / "vendor"  # the same files elsewhere: the same tree
    shutil.copytree(REPO / "mibs", folder)
    return folder


def test_a_new_state_folder_loads_the_tree_another_one_compiled(
    built: tuple[Path, MibTree], shared: Path, vendor: Path, tmp_path: Path
) -> None:
    first = built[1]
    assert verdicts(first) == {DEMO: "compiled"}
    assert snapshot_path(shared, key_of(vendor)).is_file()
    state = tmp_path / "second"
    tree = load_mibs(shared_config(vendor, shared), state)
    assert tree.state() == first.state()
    assert verdicts(tree) == {DEMO: "up to date"}
    assert tree.report is not None and [r.path for r in tree.report.results] == [
        vendor / f"{DEMO}.mib"
    ]
    assert not (state / "mibs" / "modules").exists()  # nothing compiled
    # It keeps its own copy, one file of one name (a hard link to the shared file
    # would be refused as a planted one), and reads it at its next start:
    own = snapshot_path(state / "mibs", key_of(vendor))
    assert own.stat().st_nlink == 1
    assert read_snapshot(state / "mibs", key_of(vendor)) is not None
    # and needs the shared folder no more.
    shutil.rmtree(shared)
    again = load_mibs(shared_config(vendor, None), state)
    assert again.state() == first.state()
    assert verdicts(again) == {DEMO: "up to date"}


def test_a_shared_folder_that_cannot_be_made_is_no_error_and_no_warning(
    vendor: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A system service without a home folder to write: the state folder compiles.
    (tmp_path / "home").write_text("a file, not a folder\n")
    tree = load_mibs(shared_config(vendor, tmp_path / "home" / "trees"), tmp_path / "alone")
    assert verdicts(tree) == {DEMO: "compiled"}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert snapshot_path(tmp_path / "alone" / "mibs", key_of(vendor)).is_file()


def _tamper(shared: Path, vendor: Path) -> None:
    """The shared tree rewritten, checksum and all, with ifOperStatus renamed."""
    key = key_of(vendor)
    stored_key, (modules, rows, *rest), *report = read_snapshot(shared, key)
    rows = tuple(
        (row[0], "tampered", *row[2:]) if row[:2] == ("IF-MIB", "ifOperStatus") else row
        for row in rows
    )
    write_snapshot(shared, key, (stored_key, (modules, rows, *rest), *report), keep=8)


def test_a_shared_folder_others_can_write_to_is_never_read(
    shared: Path, vendor: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _tamper(shared, vendor)
    # The control: a folder and a file of this user are trusted as they are.
    trusted = load_mibs(shared_config(vendor, shared), tmp_path / "a")
    assert trusted.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::tampered.3"
    shared.chmod(0o777)
    tree = load_mibs(shared_config(vendor, shared), tmp_path / "b")
    assert tree.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert verdicts(tree) == {DEMO: "compiled"}
    assert "event=mib_shared_cache_untrusted" in caplog.text
    assert "writable by group or others" in caplog.text


def test_a_shared_file_others_can_write_to_is_never_read(
    shared: Path, vendor: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _tamper(shared, vendor)
    snapshot_path(shared, key_of(vendor)).chmod(0o666)
    tree = load_mibs(shared_config(vendor, shared), tmp_path / "b")
    assert tree.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert "event=mib_snapshot_untrusted" in caplog.text


def test_the_shared_folder_keeps_the_most_recently_used_trees(tmp_path: Path) -> None:
    folder = tmp_path / "trees"
    for age, key in enumerate(("c" * 64, "b" * 64, "a" * 64)):
        path = write_snapshot(folder, key, ("body", key), keep=3)
        assert path is not None
        os.utime(path, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    used_snapshot(folder, "a" * 64)  # the oldest, used now
    write_snapshot(folder, "d" * 64, ("body", "d"), keep=3)
    left = {p.name for p in folder.glob("tree-*.bin")}
    assert left == {snapshot_path(folder, k * 64).name for k in "acd"}  # b: least recent


def test_the_shared_cache_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "etc" / "config.toml"
    text = '[mibs]\nshared_cache = "{}"\n'

    def setting(value: str) -> Path | None:
        return load_config_text(text.format(value), source=source).mibs.shared_cache

    assert setting("") is None
    assert setting("trees") == source.parent / "trees"
    assert setting("/var/cache/trees") == Path("/var/cache/trees")
    monkeypatch.setenv(SHARED_CACHE_ENV, str(tmp_path / "env"))
    assert MibsConfig().shared_cache == tmp_path / "env"
    monkeypatch.setenv(SHARED_CACHE_ENV, "")
    assert MibsConfig().shared_cache is None
    monkeypatch.delenv(SHARED_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert MibsConfig().shared_cache == tmp_path / "xdg" / "netalert" / "mib-trees"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert MibsConfig().shared_cache == tmp_path / "home" / ".cache" / "netalert" / "mib-trees"
