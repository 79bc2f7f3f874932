"""``check-config`` and ``run`` (and so a SIGHUP reload) agree: one validator, ``prepare``.

Each config below is refused by both or accepted by both: ``check_config_file``
is what ``netalert check-config`` runs, ``prepare(load_config(path))`` what
``netalert run`` runs at start and the agent runs on SIGHUP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from netalert.config import load_config
from netalert.configcheck import check_config_file
from netalert.errors import ConfigError
from netalert.service import prepare

GOOD = """
[agent]
state_dir = "{state}"
http = "127.0.0.1:9"

[traps]
listen = ["127.0.0.1:10162"]
allow = ["127.0.0.0/8"]

[[rules]]
name = "LinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
summary = "{{{{ device }}}} ifIndex {{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
from = "netalert@example.org"

[[routes]]
to = ["noc@example.org"]
"""


def _smtp(option: str) -> Callable[[str, Path], str]:
    return lambda text, _dir: text.replace("[smtp]\n", f"[smtp]\n{option}\n", 1)


def _broken_template(text: str, directory: Path) -> str:
    folder = directory / "templates"
    folder.mkdir()
    (folder / "subject.txt.j2").write_text("{% if %}\n")
    return text.replace("[smtp]\n", '[smtp]\ntemplates_dir = "templates"\n', 1)


def _not_a_certificate(text: str, directory: Path) -> str:
    (directory / "ca.pem").write_text("not a certificate\n")
    return text.replace("[smtp]\n", '[smtp]\nsecurity = "tls"\nca_file = "ca.pem"\n', 1)


CASES: dict[str, tuple[Callable[[str, Path], str], str | None]] = {
    # change, a word of the problem both report (None: accepted)
    "good": (lambda text, _dir: text, None),
    "missing_ca_file": (_smtp('security = "starttls"\nca_file = "missing.pem"'), "missing.pem"),
    "ca_file_not_a_certificate": (_not_a_certificate, "ca.pem"),
    "missing_templates_dir": (_smtp('templates_dir = "missing"'), "missing"),
    "template_syntax_error": (_broken_template, "subject.txt.j2"),
    "unknown_mib_name": (
        lambda text, _dir: text.replace("IF-MIB::linkDown", "IF-MIB::linkDownn"),
        "linkDownn",
    ),
    "toml_error": (lambda text, _dir: text + "[[rules]\n", "config.toml"),
    "listen_address_not_here": (
        lambda text, _dir: text.replace("127.0.0.1:10162", "192.0.2.1:10162"),
        "192.0.2.1",
    ),
}


def _refused_by_run(path: Path) -> list[str]:
    try:
        prepare(load_config(path))
    except ConfigError as exc:
        return exc.problems
    return []


def test_check_config_and_run_refuse_the_same_configs(tmp_path: Path) -> None:
    # one test, not one per case: the MIBs compile once, in one state directory
    state = tmp_path / "state"
    disagree = {}
    for case, (change, named) in sorted(CASES.items()):
        folder = tmp_path / case
        folder.mkdir()
        path = folder / "config.toml"
        path.write_text(change(GOOD.format(state=state), folder))
        checked = check_config_file(path).problems
        refused = _refused_by_run(path)
        if named is None:
            ok = checked == [] and refused == []
        else:
            ok = any(named in line for line in checked) and any(named in line for line in refused)
        if not ok:
            disagree[case] = (checked, refused)
    assert disagree == {}
