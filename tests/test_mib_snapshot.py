"""The MIB tree's snapshot in the cache: used when nothing changed, rebuilt when in doubt."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netalert.config.models import MibsConfig
from netalert.mib import MibTree, load_mibs, loader
from netalert.mib.loader import inputs_key, scan_inputs
from netalert.mib.node import ModuleFacts
from netalert.mib.snapshot import read_snapshot, snapshot_path, snapshot_salt, write_snapshot

REPO = Path(__file__).resolve().parent.parent
DEMO = "NETALERT-DEMO-MIB"


def config(folder: Path) -> MibsConfig:
    return MibsConfig(paths=[folder], system_paths=[])


def key_of(folder: Path) -> str:
    return inputs_key(scan_inputs([folder], []), snapshot_salt())


# The built-in modules these tests name or the demo MIB imports, and theirs. The snapshot's
# handling does not depend on how many modules the tree holds; with all ~290 of them,
# each load that builds the tree (most tests here) spent ~0.7 s of CPU indexing them,
# turning the tree into rows (twice: the snapshot and the test's comparison) and writing
# the 5 MB of built-in facts' JSON.
FEW = frozenset(
    {"SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMPv2-MIB", "IF-MIB", "IANAifType-MIB"}
)


@pytest.fixture(scope="module", autouse=True)
def few_builtin() -> Iterator[list[ModuleFacts]]:
    """For this module's tests, the built-in set is :data:`FEW`: the loader's memo of the
    built-in facts (keyed by the installed pysnmp set) holds those modules only. Yields
    the whole set (:func:`all_builtin`); the memo is restored after the module."""
    facts, failed = loader.builtin_facts(None)
    few = [f for f in facts if f.name in FEW]
    assert not failed and {f.name for f in few} == FEW, failed
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(loader._BUILTIN_MEMO, loader._builtin_key(), (few, {}))
        yield facts


@pytest.fixture
def all_builtin(few_builtin: list[ModuleFacts], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every built-in module, for one test (a tree of megabytes)."""
    monkeypatch.setitem(loader._BUILTIN_MEMO, loader._builtin_key(), (few_builtin, {}))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MibTree]:
    """A cache of the project's MIB folder and the tree it gave, compiled once (a
    fraction of a second: pysmi compiles the demo MIB)."""
    state = tmp_path_factory.mktemp("compiled")
    return state, load_mibs(config(REPO / "mibs"), state)


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    folder = tmp_path / "vendor"
    shutil.copytree(REPO / "mibs", folder)
    return folder


@pytest.fixture
def warm(compiled: tuple[Path, MibTree], tmp_path: Path) -> tuple[Path, MibTree]:
    """A state folder whose cache holds the vendor folder's modules and their snapshot."""
    state = tmp_path / "state"
    shutil.copytree(compiled[0], state)
    return state, compiled[1]


def verdicts(tree: MibTree) -> dict[str, str]:
    assert tree.report is not None
    return {r.module: r.status for r in tree.report.results}


def test_a_start_with_nothing_changed_reads_the_snapshot_alone(
    warm: tuple[Path, MibTree], vendor: Path
) -> None:
    state, first = warm
    assert verdicts(first) == {DEMO: "compiled"}
    assert load_mibs(config(vendor), state).state() == first.state()
    assert snapshot_path(state / "mibs", key_of(vendor)).is_file()
    # Without the per-module cache, only the snapshot can give the tree back.
    shutil.rmtree(state / "mibs" / "modules")
    for builtin in (state / "mibs").glob("builtin-*.json"):
        builtin.unlink()
    second = load_mibs(config(vendor), state)
    assert not (state / "mibs" / "modules").exists()
    assert second.state() == first.state()
    assert verdicts(second) == {DEMO: "up to date"}
    assert second.report is not None and first.report is not None
    assert second.report.lines()[2:] == first.report.lines()[2:]  # the notes
    assert second.report.builtin == first.report.builtin
    assert second.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert second.oid_str("demoPortPoePower") == "1.3.6.1.4.1.32473.1.1.2.1.3"


def test_a_moved_folder_keeps_the_snapshot_and_reports_its_new_place(
    warm: tuple[Path, MibTree], vendor: Path, tmp_path: Path
) -> None:
    state, _ = warm
    moved = vendor.rename(tmp_path / "moved")
    stamp = snapshot_path(state / "mibs", key_of(moved)).stat().st_mtime_ns
    tree = load_mibs(config(moved), state)
    assert snapshot_path(state / "mibs", key_of(moved)).stat().st_mtime_ns == stamp
    assert tree.report is not None
    assert [r.path for r in tree.report.results] == [moved / f"{DEMO}.mib"]
    assert tree.report.folders == (moved,)


def test_a_changed_source_makes_a_new_snapshot(warm: tuple[Path, MibTree], vendor: Path) -> None:
    state, _ = warm
    old = snapshot_path(state / "mibs", key_of(vendor))
    demo = vendor / f"{DEMO}.mib"
    demo.write_text(demo.read_text().replace("failed(4)", "failed(4), unknown(5)"))
    tree = load_mibs(config(vendor), state)
    assert verdicts(tree) == {DEMO: "compiled"}
    assert tree.enum_value(tree.node("demoSensorState"), "unknown") == 5
    assert not old.exists()  # one snapshot per cache: the old one is gone
    assert snapshot_path(state / "mibs", key_of(vendor)).is_file()


def test_a_fresh_cache_keeps_the_builtin_facts_only_once_the_inputs_change(
    vendor: Path, tmp_path: Path
) -> None:
    # A fresh state folder (every test's, a new install) needs the snapshot alone: the
    # built-in facts' JSON (5 MB, a fifth of a second to write) is for the next
    # compile, and there is one only when the inputs change.
    state = tmp_path / "fresh"
    load_mibs(config(vendor), state)
    assert snapshot_path(state / "mibs", key_of(vendor)).is_file()
    assert list((state / "mibs").glob("builtin-*.json")) == []
    demo = vendor / f"{DEMO}.mib"
    demo.write_text(demo.read_text().replace("failed(4)", "failed(4), unknown(5)"))
    tree = load_mibs(config(vendor), state)
    assert tree.enum_value(tree.node("demoSensorState"), "unknown") == 5
    assert len(list((state / "mibs").glob("builtin-*.json"))) == 1


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _other_format(data: bytes) -> bytes:
    return data.replace(b"netalert-mib-tree\n", b"netalert-mib-tree-2\n", 1)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "garbage": lambda data: os.urandom(4096),
    "truncated": _truncated,
    "a flipped bit": _flipped,
    "another format": _other_format,
    "a header only": lambda data: data[: data.index(b"\n", 20) + 1],
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_snapshot_is_rebuilt_never_used(
    warm: tuple[Path, MibTree], vendor: Path, damage: str
) -> None:
    state, first = warm
    path = snapshot_path(state / "mibs", key_of(vendor))
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    assert read_snapshot(state / "mibs", key_of(vendor)) is None
    tree = load_mibs(config(vendor), state)
    assert tree.state() == first.state()
    assert verdicts(tree) == {DEMO: "up to date"}  # from the per-module cache
    assert read_snapshot(state / "mibs", key_of(vendor)) is not None  # written again


def _tampered(state: Path, vendor: Path) -> Path:
    """The snapshot rewritten, checksum and all, with ifOperStatus renamed: what
    someone able to write the file could do."""
    key = key_of(vendor)
    body = read_snapshot(state / "mibs", key)
    assert body is not None
    stored_key, (modules, rows, *rest), *report = body
    rows = tuple(
        (row[0], "tampered", *row[2:]) if row[:2] == ("IF-MIB", "ifOperStatus") else row
        for row in rows
    )
    write_snapshot(state / "mibs", key, (stored_key, (modules, rows, *rest), *report))
    return snapshot_path(state / "mibs", key)


def test_a_snapshot_of_this_user_is_trusted(warm: tuple[Path, MibTree], vendor: Path) -> None:
    # The control for the two tests below: a well-formed file of ours is used as it is.
    state, _ = warm
    _tampered(state, vendor)
    assert load_mibs(config(vendor), state).name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::tampered.3"


def test_a_snapshot_others_could_write_is_rebuilt(
    warm: tuple[Path, MibTree], vendor: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, _ = warm
    path = _tampered(state, vendor)
    path.chmod(0o666)
    tree = load_mibs(config(vendor), state)
    assert tree.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert "event=mib_snapshot_untrusted" in caplog.text
    assert "writable by group or others" in caplog.text
    assert path.stat().st_mode & 0o777 == 0o644  # replaced by a fresh one of ours


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_a_snapshot_of_another_user_is_rebuilt(
    warm: tuple[Path, MibTree], vendor: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, _ = warm
    path = _tampered(state, vendor)
    os.chown(path, 65534, 65534)
    tree = load_mibs(config(vendor), state)
    assert tree.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert "owned by uid 65534" in caplog.text
    assert path.stat().st_uid == 0


def test_a_snapshot_of_another_shape_is_rebuilt(warm: tuple[Path, MibTree], vendor: Path) -> None:
    state, first = warm
    key = key_of(vendor)
    for body in ((key, ("not", "a", "tree"), (), 0, ()), {"key": key}):
        write_snapshot(state / "mibs", key, body)
        assert load_mibs(config(vendor), state).state() == first.state()
        assert read_snapshot(state / "mibs", key) != body


def test_an_unwritable_snapshot_is_no_error(warm: tuple[Path, MibTree], vendor: Path) -> None:
    # An up-to-date cache must load even where the snapshot cannot be written.
    state, first = warm
    path = snapshot_path(state / "mibs", key_of(vendor))
    path.unlink()
    path.mkdir()  # in the way of the rename, for root too
    assert load_mibs(config(vendor), state).state() == first.state()


def test_the_tree_pickles_as_its_state(warm: tuple[Path, MibTree]) -> None:
    _, tree = warm
    copy = pickle.loads(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy.state() == tree.state()
    assert copy.report == tree.report
    assert copy.nodes() == tree.nodes()
    assert copy.name("1.3.6.1.2.1.1.3.0") == "SNMPv2-MIB::sysUpTime.0"


# --- what a hostile local user or a failing machine leaves at the cache's names ---------


def _in_time(call: Callable[[], object], within: float = 10.0) -> object:
    """``call()``'s result; fails (and unblocks it) when it does not return ``within`` s."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(within)
    blocked = thread.is_alive()
    if blocked:  # a reader stuck on a FIFO: a writer that closes at once lets it go
        for fifo in _fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(within)
    assert not blocked, f"still blocked after {within} s"
    return result[0]


_fifos: list[Path] = []


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    _fifos.append(path)


def test_a_fifo_at_the_snapshot_name_never_blocks_a_start(
    warm: tuple[Path, MibTree], vendor: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, first = warm
    path = snapshot_path(state / "mibs", key_of(vendor))
    _fifo(path)
    tree = _in_time(lambda: load_mibs(config(vendor), state))
    assert isinstance(tree, MibTree) and tree.state() == first.state()
    assert "not a regular file" in caplog.text
    assert path.is_file()  # a fresh one took its place


def test_a_fifo_in_the_module_cache_never_blocks_a_compile(
    warm: tuple[Path, MibTree], vendor: Path
) -> None:
    state, first = warm
    snapshot_path(state / "mibs", key_of(vendor)).unlink()
    _fifo(state / "mibs" / "modules" / f"{DEMO}.json")
    tree = _in_time(lambda: load_mibs(config(vendor), state))
    assert isinstance(tree, MibTree) and tree.state() == first.state()
    assert verdicts(tree) == {DEMO: "compiled"}  # a cache miss: compiled again


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_a_link_at_the_snapshot_name_is_refused_and_replaced(
    warm: tuple[Path, MibTree],
    vendor: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    link: str,
) -> None:
    """A well-formed snapshot of ours, linked in from elsewhere: used, the link would let
    whoever controls the other name (or its folder) choose the tree."""
    state, _ = warm
    planted = tmp_path / "elsewhere" / "tree.bin"
    planted.parent.mkdir()
    os.replace(_tampered(state, vendor), planted)
    path = snapshot_path(state / "mibs", key_of(vendor))
    if link == "symlink":
        path.symlink_to(planted)
    else:
        os.link(planted, path)
    tree = load_mibs(config(vendor), state)
    assert tree.name("1.3.6.1.2.1.2.2.1.8.3") == "IF-MIB::ifOperStatus.3"
    assert "event=mib_snapshot_untrusted" in caplog.text
    assert not path.is_symlink() and path.stat().st_nlink == 1
    assert planted.stat().st_nlink == 1 and planted.read_bytes() != path.read_bytes()


def test_a_huge_snapshot_is_refused_unread(
    warm: tuple[Path, MibTree], vendor: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file past the bound (sparse: no disk used) is refused by its size, not read."""
    state, _ = warm
    key = key_of(vendor)
    path = snapshot_path(state / "mibs", key)
    bound = MibsConfig().cache_max_bytes
    with path.open("r+b") as fh:
        fh.truncate(bound + 1)
    tracemalloc.start()
    try:
        assert read_snapshot(state / "mibs", key, limit=bound) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert f"larger than {bound} bytes" in caplog.text


def test_the_bound_is_the_configs(
    warm: tuple[Path, MibTree], vendor: Path, caplog: pytest.LogCaptureFixture, all_builtin: None
) -> None:
    # The smallest bound the config takes is 1 MiB: the tree of every built-in module
    # (its snapshot: megabytes) is what goes past it.
    state, _ = warm
    snapshot_path(state / "mibs", key_of(vendor)).unlink()
    first = load_mibs(config(vendor), state)
    assert snapshot_path(state / "mibs", key_of(vendor)).stat().st_size > 1 << 20
    small = MibsConfig(paths=[vendor], system_paths=[], cache_max_bytes=1 << 20)
    tree = load_mibs(small, state)  # the snapshot (megabytes) is refused, the tree is built
    assert tree.state() == first.state()
    assert verdicts(tree) == {DEMO: "up to date"}
    assert f"larger than {1 << 20} bytes" in caplog.text


def test_a_temporary_file_left_by_a_killed_writer_is_removed_later(
    warm: tuple[Path, MibTree], vendor: Path
) -> None:
    """kill -9 during a write leaves ``.tree-*.bin.XXXX`` behind; the next write removes
    those older than an hour, never a younger one (another agent's write under way)."""
    state, _ = warm
    stale = state / "mibs" / ".tree-0123456789abcdef.bin.abcd1234"
    young = state / "mibs" / ".tree-0123456789abcdef.bin.efgh5678"
    for left in (stale, young):
        left.write_bytes(b"netalert-mib-tree\n" + os.urandom(1024))
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    demo = vendor / f"{DEMO}.mib"
    demo.write_text(demo.read_text().replace("failed(4)", "failed(4), unknown(5)"))
    load_mibs(config(vendor), state)  # another key: a new snapshot is written
    assert not stale.exists() and young.exists()


def test_a_reader_never_sees_a_half_written_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two agents sharing a state folder: one writes while the other reads. A read gives
    a whole body, one or the other, never a part (written aside, then renamed)."""
    root, key = tmp_path / "mibs", "k" * 64
    bodies = [(key, tuple(range(n, n + 200_000)), (), 0, ()) for n in (1, 2)]
    write_snapshot(root, key, bodies[0])
    done = threading.Event()

    def writer() -> None:
        for n in range(40):
            write_snapshot(root, key, bodies[n % 2])
        done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    reads = 0
    while not done.is_set() or reads < 10:
        assert read_snapshot(root, key) in bodies, caplog.text
        reads += 1
    thread.join(30)
    assert [p.name for p in root.iterdir()] == [snapshot_path(root, key).name]


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o666])
def test_a_module_cache_file_others_could_write_is_compiled_again(
    warm: tuple[Path, MibTree], vendor: Path, mode: int
) -> None:
    """The per-module JSON feeds the tree the snapshot then keeps: one others could have
    written (its key is no secret: the source's bytes) is not taken, as the snapshot is
    not. 0644 is the control: a file of ours, tampered with, is used as it is."""
    state, _ = warm
    snapshot_path(state / "mibs", key_of(vendor)).unlink()
    cached = state / "mibs" / "modules" / f"{DEMO}.json"
    cached.write_text(cached.read_text().replace('"demoPortPoePower"', '"tampered"'))
    cached.chmod(mode)
    tree = load_mibs(config(vendor), state)
    ours = mode == 0o644
    assert (tree.find("tampered") is not None) == ours
    assert (tree.find("demoPortPoePower") is None) == ours
    assert verdicts(tree) == {DEMO: "up to date" if ours else "compiled"}
