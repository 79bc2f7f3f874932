"""A name a mail template of ``[smtp] templates_dir`` uses that no mail provides is a
warning of ``check-config`` (and of ``run`` and a reload), with a close match, as the
rules' templates get (issue 19): ``{{ devce }}`` writes nothing in every mail.

No false alarms: the shipped templates, copied into a folder, give none.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netalert.config import load_config_text
from netalert.prepare import prepare, prepared_warnings
from tests.test_rules_expr import BASE, TREE

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "netalert" / "mail" / "templates"


def warnings_of(tmp_path: Path, templates: Path) -> list[str]:
    text = (
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\nhttp = ""\n\n'
        f'[smtp]\nhost = "127.0.0.1"\ntemplates_dir = "{templates}"\n' + BASE
    )
    prepared = prepare(load_config_text(text), tree=TREE)
    return [str(w) for w in prepared_warnings(prepared) if "templates_dir" in str(w)]


def test_a_name_no_mail_provides_is_a_warning_with_a_close_match(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "subject.txt.j2").write_text("[{{ state }}] {{ rule }} on {{ devce }}\n")
    (folder / "body.txt.j2").write_text(
        "{% for a in alerts %}{{ a.summary }}{% endfor %}\n"
        "{{ firing_cnt }} firing\n"
        "{{ nothing_like_it | default('') }}{% if ack is defined %}{{ ack }}{% endif %}\n"
        "{% set total = alert_count %}{{ total }} {{ range(2) | list }}\n"
    )
    assert warnings_of(tmp_path, folder) == [
        f"smtp.templates_dir: {folder / 'subject.txt.j2'}: {{{{ devce }}}} names nothing"
        " a mail provides; it writes nothing (did you mean device?)",
        f"smtp.templates_dir: {folder / 'body.txt.j2'}: {{{{ firing_cnt }}}} names nothing"
        " a mail provides; it writes nothing (did you mean firing_count?)",
    ]


def test_the_shipped_templates_name_only_what_a_mail_provides(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED, folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "body.html.j2",
        "body.txt.j2",
        "subject.txt.j2",
    ]
    assert warnings_of(tmp_path, folder) == []
