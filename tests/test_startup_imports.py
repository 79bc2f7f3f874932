"""What a command imports at start: only what it uses.

Every `netalert` process pays for its imports: aiohttp alone is over 100 ms of CPU
(it loads the system's CA store when imported), and the test suite starts hundreds
of these processes. A command that serves no web page, reads no pcap file, compiles
no MIB and runs no agent must not import the packages that do; these guards keep
an innocent top-level import from bringing them back. Each runs one real command
and lists, when it exits, the modules it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.shared import sharing_env

pytestmark = pytest.mark.daemon  # one `netalert` command each

ROOT = Path(__file__).resolve().parents[1]

# Runs `netalert ARGS...` as the console script does; at exit prints the modules
# imported (of the packages watched) and the collector's state as one JSON line.
PROBE = """
import atexit, gc, json, sys
def report():
    names = sorted(m for m in sys.modules if m.split(".")[0] in WATCHED or m.startswith(OWN))
    state = {"modules": names, "gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
    sys.stderr.write("PROBE " + json.dumps(state) + "\\n")
WATCHED = {"aiohttp", "dpkt", "apscheduler", "prometheus_client", "pysmi", "lark", "jinja2"}
WATCHED |= {"pydantic"}
OWN = ("netalert.service", "netalert.web", "netalert.stages", "netalert.ack.stage")
atexit.register(report)
sys.argv = ["netalert", *sys.argv[1:]]
from netalert.cli import main
main()
"""

CONFIG = """
[agent]
state_dir = "state"
http = ""

[mibs]
paths = []
system_paths = []

[[devices]]
name = "sw1"
address = "192.0.2.10"
collect = ["interfaces"]

[collect.interfaces]
walk = ["IF-MIB::ifDescr", "IF-MIB::ifOperStatus"]

[[rules]]
name = "InterfaceDown"
expr = "ifOperStatus == 'down'"
summary = "{{ device }} {{ ifDescr }} is down"

[traps]
enabled = false

[[routes]]
to = ["noc@example.org"]
"""

TESTS = """
config = "config.toml"
interval = "30s"

[[tests]]
name = "a port down fires"

[tests.polls.sw1]
"IF-MIB::ifDescr.3" = "'Gi0/3'x3"
"IF-MIB::ifOperStatus.3" = "up down down"

[[tests.expect]]
at = "1m"
alerts = [{ rule = "InterfaceDown", state = "firing", labels = { ifIndex = "3" } }]
"""

# Never wanted before an agent runs: the web server and its metrics, pcap files, the poll
# scheduler.
AGENT_ONLY = {"aiohttp", "prometheus_client", "dpkt", "apscheduler"}
AGENT_MODULES = ("netalert.service", "netalert.web", "netalert.stages", "netalert.ack.stage")


def _python(
    folder: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """This Python with ``argv`` in ``folder``, the package and the shared caches on hand."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        **sharing_env(),
        "NETALERT_CONFIG": "",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
        env=env,
        check=False,
    )


def probe(folder: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = _python(folder, "-c", PROBE, *args, env=env)
    lines = [line for line in done.stderr.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    found: dict[str, object] = json.loads(lines[-1].removeprefix("PROBE "))
    found["stdout"] = done.stdout
    return found


def packages(found: dict[str, object]) -> set[str]:
    modules = found["modules"]
    assert isinstance(modules, list)
    return {name.split(".")[0] for name in modules}


def agent_modules(found: dict[str, object]) -> list[str]:
    modules = found["modules"]
    assert isinstance(modules, list)
    return [name for name in modules if name.startswith(AGENT_MODULES)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG)
    (tmp_path / "rules_test.toml").write_text(TESTS)
    return tmp_path


def test_version_imports_neither_pydantic_nor_jinja2(folder: Path) -> None:
    found = probe(folder, "--version")
    assert str(found["stdout"]).startswith("netalert ")
    assert packages(found).isdisjoint({"pydantic", "jinja2", *AGENT_ONLY}), found["modules"]


def test_check_config_imports_nothing_of_the_agent(folder: Path) -> None:
    cold = probe(folder, "check-config", "-c", "config.toml")
    assert str(cold["stdout"]).startswith("config.toml: ok")
    assert packages(cold).isdisjoint(AGENT_ONLY), cold["modules"]
    assert agent_modules(cold) == []
    # Once the MIB tree is loaded the collector is back on, start-up's objects frozen.
    assert cold["gc_enabled"] is True and int(str(cold["frozen"])) > 0
    # The second start loads the tree's snapshot: no MIB compiler either.
    warm = probe(folder, "check-config", "-c", "config.toml")
    assert packages(warm).isdisjoint({"pysmi", "lark", *AGENT_ONLY}), warm["modules"]
    assert agent_modules(warm) == []


def test_a_new_state_folder_takes_the_shared_tree_and_no_mib_compiler(
    folder: Path, tmp_path: Path
) -> None:
    # A first start in a new state folder whose MIB files another state folder of this
    # user loaded before: the tree comes from the shared cache, nothing is compiled.
    env = {"NETALERT_MIB_SHARED_CACHE": str(tmp_path / "trees")}
    # A MIB source to compile (the demo device's), so that a compile would import pysmi.
    text = CONFIG.replace("paths = []", f'paths = ["{ROOT / "mibs"}"]', 1)
    (folder / "config.toml").write_text(text)
    first = probe(folder, "check-config", "-c", "config.toml", env=env)
    assert "pysmi" in packages(first)  # the control: it compiled
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text(text.replace('"state"', '"other-state"'))
    found = probe(other, "check-config", "-c", "config.toml", env=env)
    assert str(found["stdout"]).startswith("config.toml: ok")
    assert packages(found).isdisjoint({"pysmi", "lark"}), found["modules"]
    assert list((other / "other-state" / "mibs").glob("tree-*.bin"))  # its own copy now


def test_rule_tests_import_nothing_of_the_agent(folder: Path) -> None:
    found = probe(folder, "test", "rules", "rules_test.toml")
    assert "rule tests: 1 passed, 0 failed" in str(found["stdout"])
    assert packages(found).isdisjoint(AGENT_ONLY), found["modules"]
    assert agent_modules(found) == []


def test_the_trap_receiver_imports_neither_pysnmp_nor_cryptography() -> None:
    # Only an SNMPv3 user needs pysnmp's engine and the fast path's ciphers (tens of ms
    # of imports): the receiver, and every trap worker, import them when they build one.
    code = (
        "import json, sys\n"
        "import netalert.traps.receiver, netalert.traps.v3\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('pysnmp', 'pyasn1', 'cryptography', 'pysmi'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), **sharing_env()}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


# PROBE, with the Jinja2 templates each start compiles listed as well (by name; a
# template of the config's text is "<string>").
JINJA_PROBE = (
    """
import atexit, json, sys
import jinja2
compiled = []
real_compile = jinja2.Environment.compile
def compile(self, source, name=None, *args, **kwargs):
    compiled.append(name or "<string>")
    return real_compile(self, source, name, *args, **kwargs)
jinja2.Environment.compile = compile
atexit.register(lambda: sys.stderr.write("JINJA " + json.dumps(compiled) + "\\n"))
"""
    + PROBE
)


def test_check_config_compiles_the_configs_templates_only(folder: Path) -> None:
    # The config's templates are checked at every start (a syntax error stops it); the
    # package's own (the default mails', the built-in alerts') compile when first used.
    done = _python(folder, "-c", JINJA_PROBE, "check-config", "-c", "config.toml")
    assert done.returncode == 0 and done.stdout.startswith("config.toml: ok"), done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("JINJA ")]
    assert json.loads(lines[-1].removeprefix("JINJA ")) == ["<string>"]  # the rule's summary
    # and a template of the config that does not compile still stops it
    broken = CONFIG.replace("{{ device }} {{ ifDescr }} is down", "{{ device }", 1)
    (folder / "config.toml").write_text(broken)
    done = _python(folder, "-m", "netalert", "check-config", "-c", "config.toml")
    assert done.returncode != 0 and "summary" in done.stdout + done.stderr, done.stdout
