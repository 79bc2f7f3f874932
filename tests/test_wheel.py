"""The wheel as a user installs it: built like ``python -m build``, installed into a fresh
virtual environment, run from an empty folder far from the checkout.

Building needs setuptools from the package index (``build`` makes an isolated
environment) and installing needs netalert's dependencies: pip's cache makes both
quick after the first run. About a minute in all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support.faults import ROOT

PIP_TIMEOUT = 600  # a cold pip cache downloads every dependency

pytestmark = [
    pytest.mark.e2e,  # builds and installs a wheel, runs `netalert demo` from it
    # pip's own bound, not pytest's 120 s: next to 3 other xdist workers, installing
    # the dependencies alone can take two minutes
    pytest.mark.timeout(2 * PIP_TIMEOUT),
]


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{args}:\n{proc.stdout}\n{proc.stderr}"
    return proc  # type: ignore[no-any-return]


def _clean_env(**extra: str) -> dict[str, str]:
    # Nothing of the checkout or the test's own environment may leak into the wheel's run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("NETALERT_CONFIG", None)
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


# Left out of the copy the wheel is built from: setuptools' build/ would carry stale
# modules into the wheel, and the build would write into the checkout.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache",
    ".hypothesis", "var",
)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "netalert"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        timeout=PIP_TIMEOUT,
        env=_clean_env(),
    )
    (built,) = out.glob("netalert-*.whl")
    return built


def test_the_wheel_holds_every_file_the_package_reads(wheel: Path) -> None:
    package = ROOT / "netalert"
    needed = {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    assert needed - shipped == set()
    assert "netalert/mibs/NETALERT-DEMO-MIB.mib" in shipped
    assert not [name for name in shipped if name.startswith("tests/")]


def test_installed_wheel_runs_the_demo_from_an_empty_folder_and_agrees_on_its_version(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    # The venv gets no pip of its own: this pip installs into it (``--python``), and
    # without byte-compiling every dependency (pysnmp-mibs alone is hundreds of modules);
    # the demo compiles what it imports. Tens of seconds of CPU less, the same install.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=_clean_env())
    _run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--disable-pip-version-check", "--no-compile", str(wheel)],
        timeout=PIP_TIMEOUT,
        env=_clean_env(),
    )  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    netalert = str(venv / "bin" / "netalert")
    env = _clean_env(PYTHONUNBUFFERED="1")

    version_line = _run([netalert, "--version"], cwd=empty, env=env).stdout.strip()
    match = re.fullmatch(r"netalert (\S+)", version_line)
    assert match is not None, version_line
    version = match[1]
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"netalert-{version}.dist-info/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert wheel.name.startswith(f"netalert-{version}-")
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import netalert; print(netalert.__file__)"],
        cwd=empty,
        env=env,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's copy, not the checkout

    proc = subprocess.Popen(
        [netalert, "demo", "--duration", "20"],
        cwd=empty,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        # the demo's agent extracts the built-in MIB facts itself (a fresh venv shares
        # nothing with the test run): seconds of CPU, minutes next to busy xdist workers
        deadline = time.monotonic() + 300
        while not lines or not lines[-1].startswith("status page: "):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines) + proc.stderr.read()
            lines.append(line)
        url = lines[-1].split("status page: ", 1)[1].strip()
        with urllib.request.urlopen(url + "api/status", timeout=10) as response:
            status = json.load(response)
        with urllib.request.urlopen(url + "metrics", timeout=10) as response:
            metrics = response.read().decode()
        rest, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # a failure here must not leave its pipes to the next test's GC
        assert proc.stderr is not None
        proc.stderr.close()
    out = "".join(lines) + rest
    assert proc.returncode == 0, f"{out}\n{err}"
    assert status["version"] == version
    assert 'netalert_build_info{python="' in metrics and f'version="{version}"' in metrics
    assert re.search(r"^\[t\+ *\d+s\] e-mail arrived: \[FIRING\] ", out, re.MULTILINE), out
    assert re.search(r"^summary: \d+ e-mails received", out, re.MULTILINE), out
    assert "Traceback" not in err
    assert os.listdir(empty) == []  # the demo wrote nothing where it was started
