"""The documentation: a short README, docs/ behind it, generated pages up to date, no dead links.

docs/configuration.md is generated from the config models and docs/performance.md
from bench/results/; both are regenerated in memory here and compared with the
files, so a model change without `make docs` fails. Every relative link and
``#anchor`` in README.md, SECURITY.md and docs/*.md must resolve as GitHub
resolves it. The README's first config is run for real: check-config accepts it,
and against net-snmp's snmpd and an aiosmtpd server it mails an interface down.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.support.faults import ROOT, AgentProcess
from tests.support.markdown import anchors, links, section
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import SnmpdFactory
from tests.support.tables import Values, served_by

DOCS = ROOT / "docs"
CHECKED = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted(DOCS.glob("*.md"))]
MAKE_DOCS = "run `make docs`"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- the door ------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    lines = read(ROOT / "README.md").splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines; move the detail to docs/"


def test_readme_quick_start_is_two_make_targets() -> None:
    quick = section(read(ROOT / "README.md"), "Quick start")
    first = re.search(r"```sh\n(.*?)```", quick, re.DOTALL)
    assert first is not None, quick
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = read(ROOT / "Makefile")
    for target in ("demo", "test", "docs"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_every_docs_page_is_linked_from_the_readme() -> None:
    targets = {link.target.split("#")[0] for link in links(read(ROOT / "README.md"))}
    pages = {f"docs/{page.name}" for page in DOCS.glob("*.md")}
    assert len(pages) >= 12, pages
    assert pages <= targets, f"not linked from README.md: {sorted(pages - targets)}"
    assert "SECURITY.md" in targets


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of ``page`` whose file or ``#anchor`` does not exist, one line each."""
    problems = []
    for link in links(read(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", link.target):  # https:, mailto:
            continue
        path, _, anchor = link.target.partition("#")
        target = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}:{link.line}: {link.target}"
        if not target.is_relative_to(root):
            problems.append(f"{where}: outside the repository")
        elif not target.exists():
            problems.append(f"{where}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(read(target)):
            problems.append(f"{where}: no heading with that anchor in {target.name}")
    return problems


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


def test_link_check_finds_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Port 162\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# R\n[ok](docs/a.md#port-162) [self](#r) `[code](docs/none.md)`\n"
        "[gone](docs/b.md) [anchor](docs/a.md#port-161) [here](#nowhere)\n"
        "[up](../x.md) [web](https://example.org/#x)\n```\n[block](docs/none.md)\n```\n"
    )
    (tmp_path.parent / "x.md").write_text("# X\n")
    assert link_problems(readme, tmp_path) == [
        "README.md:3: docs/b.md: no such file",
        "README.md:3: docs/a.md#port-161: no heading with that anchor in a.md",
        "README.md:3: #nowhere: no heading with that anchor in README.md",
        "README.md:4: ../x.md: outside the repository",
    ]


def test_anchors_follow_github() -> None:
    text = (
        "# A\n## `[[maintenance]]` — recurring windows\n## /metrics\n```\n## not a heading\n```\n"
        "## Which route? `netalert routes test`\n## Templates\n## Templates\n"
    )
    assert anchors(text) == {
        "a",
        "maintenance--recurring-windows",
        "metrics",
        "which-route-netalert-routes-test",
        "templates",
        "templates-1",
    }


# --- generated pages -----------------------------------------------------------------------


def test_configuration_page_is_the_models_rendered() -> None:
    from netalert.config.docs import PAGE, TEMPLATE, render

    expected = render(read(ROOT / TEMPLATE))
    assert read(ROOT / PAGE) == expected, f"{PAGE} differs from the config models: {MAKE_DOCS}"


def test_configuration_page_has_a_row_per_key_with_its_default() -> None:
    from netalert.config.models import AgentConfig, Rule, SmtpConfig, TrapsConfig

    page = read(DOCS / "configuration.md")
    agent = section(page, "`[agent]`")
    for key in AgentConfig.model_fields:
        assert f"\n| `{key}` |" in agent, key
    assert '| `state_dir` | path | `"var"` |' in agent
    assert "| `log_line_max` | integer, 1024 to 1048576 | `16384` |" in agent
    assert '| `drain_timeout` | duration | `"5s"` |' in agent
    assert '| `for` | duration | `"0s"` |' in page  # the alias, not for_
    assert '| `from` | string | `"netalert <netalert@localhost>"` |' in page
    assert '| `allow` | list of networks | `["0.0.0.0/0", "::/0"]` |' in page
    assert '| `severity` | `"critical"`, `"warning"` or `"info"` | `"warning"` |' in page
    for model in (TrapsConfig, Rule, SmtpConfig):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in page, name


def test_every_config_key_is_described() -> None:
    from netalert.config.docs import sections, table

    found = sections()
    assert [s.header for s in found][:6] == [
        "[agent]",
        "[mibs]",
        "[snmp]",
        "[credentials.NAME]",
        "[[devices]]",
        "[collect.NAME]",
    ]
    assert {"[[traps.users]]", "[smtp.fallback]", "[[maintenance]]", "[limits]"} <= {
        s.header for s in found
    }
    for one in found:
        rows = table(one).splitlines()[2:]  # raises DocsError for a key without description
        assert len(rows) == len(one.model.model_fields), one.header


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    size: Annotated[int, Field(ge=1, le=10)] = Field(3, description="how many")


class _Root(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    inner: _Inner = Field(_Inner(), description="the inner table")
    items: list[_Inner] = Field([], description="repeated")


def test_configuration_generator_places_each_section_once() -> None:
    from netalert.config.docs import DocsError, render

    page = render("# T\n\n<!-- table [inner] -->\n\n<!-- table [[items]] -->\n", root=_Root)
    assert "| `size` | integer, 1 to 10 | `3` | how many |" in page
    assert page.count("| `size` |") == 2
    with pytest.raises(DocsError, match=r"no place for \[\[items\]\]"):
        render("<!-- table [inner] -->\n", root=_Root)
    with pytest.raises(DocsError, match=r"unknown section \[gone\]"):
        render("<!-- table [inner] -->\n<!-- table [[items]] -->\n<!-- table [gone] -->\n", _Root)


def test_configuration_generator_refuses_a_key_without_description() -> None:
    from netalert.config.docs import DocsError, render

    class Bare(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        wait: timedelta = Field(timedelta(seconds=5))

    class Top(BaseModel):
        bare: Bare = Field(Bare(), description="x")

    with pytest.raises(DocsError, match=r"\[bare\] wait: no description"):
        render("<!-- table [bare] -->\n", root=Top)


def test_performance_page_is_the_bench_results_rendered() -> None:
    from bench.docs import PAGE, TEMPLATE, read_instructions, render

    results = ROOT / "bench" / "results"
    expected = render(
        read(ROOT / TEMPLATE),
        read(results / "latest.md"),
        json.loads(read(results / "latest.json")),
        read_instructions(results),
    )
    assert read(ROOT / PAGE) == expected, f"{PAGE} differs from bench/results/: {MAKE_DOCS}"
    assert read(results / "latest.md").strip() in expected


def test_every_metric_is_documented() -> None:
    from netalert.metrics import FAMILIES

    page = read(DOCS / "metrics.md")
    missing = [name for name in FAMILIES if f"| `{name}` |" not in page]
    assert not missing, f"docs/metrics.md has no row for {missing}"


# --- the README's first config, for real ---------------------------------------------------


def first_config() -> str:
    first = section(read(ROOT / "README.md"), "A first config")
    block = re.search(r"```toml\n(.*?)```", first, re.DOTALL)
    assert block is not None, first
    return block.group(1)


def test_readme_first_config_is_short_and_valid(tmp_path: Path, mib_cache: Path) -> None:
    text = first_config()
    assert len([line for line in text.splitlines() if line.strip()]) <= 16, text
    (tmp_path / "config.toml").write_text(text)
    shutil.copytree(mib_cache, tmp_path / "var" / "mibs")
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "check-config", "-c", "config.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert "config.toml: ok" in done.stdout


IF_ENTRY = "1.3.6.1.2.1.2.2.1"


def test_readme_first_config_mails_an_interface_down(
    snmpd_factory: SnmpdFactory, smtp_server: SmtpServer, mib_cache: Path, tmp_path: Path
) -> None:
    ports = {
        f"{IF_ENTRY}.2.1": ("string", "uplink0/1"),
        f"{IF_ENTRY}.2.3": ("string", "GigabitEthernet0/3"),
        f"{IF_ENTRY}.7.1": ("integer", 1),
        f"{IF_ENTRY}.7.3": ("integer", 1),
        f"{IF_ENTRY}.8.1": ("integer", 1),
    }
    values = Values(tmp_path / "values.json")
    values.write({**ports, f"{IF_ENTRY}.8.3": ("integer", 2)})  # enabled, and down
    snmpd = snmpd_factory(passes=served_by(values, [IF_ENTRY]))
    snmpd.snmpget(IF_ENTRY, tool="snmpbulkwalk")  # starts the pass_persist script
    http = free_tcp_port()
    text = first_config()
    # The switch is snmpd, the relay the aiosmtpd server; polls every second, mail at once.
    text, found = re.subn(r'^address = "[^"]*"', f'address = "{snmpd.address}"', text, flags=re.M)
    assert found == 1, text
    text, found = re.subn(r'^host = "[^"]*"', 'host = "127.0.0.1"', text, flags=re.M)
    assert found == 1, text
    text = text.replace("[smtp]\n", f"[smtp]\nport = {smtp_server.port}\n")
    assert text.rstrip().splitlines()[-1].startswith("to = "), "[[routes]] comes last"
    agent_part = f'[agent]\nstate_dir = "state"\nhttp = "127.0.0.1:{http}"\n'
    snmp_part = '[snmp]\ninterval = "1s"\ntimeout = "1s"\n'
    text = f'{agent_part}\n{snmp_part}\n{text}group_wait = "0s"\ngroup_interval = "1s"\n'
    agent = AgentProcess(tmp_path / "agent", text, http, mib_cache)
    agent.directory.mkdir()
    agent.start()

    def mails(count: int) -> list[EmailMessage]:
        deadline = time.monotonic() + 30
        while len(smtp_server.received()) < count:
            assert time.monotonic() < deadline, f"{count} mails not there within 30 s"
            time.sleep(0.05)
        return [m.parsed() for m in smtp_server.received()]

    def plain(mail: EmailMessage) -> str:
        body = mail.get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    try:
        (firing,) = mails(1)
        assert str(firing["Subject"]) == "[FIRING] warning InterfaceDown on core-sw1"
        assert str(firing["To"]) == "you@example.org"
        assert "core-sw1 GigabitEthernet0/3 is down" in plain(firing)
        values.write({**ports, f"{IF_ENTRY}.8.3": ("integer", 1)})  # the port comes back
        firing, resolved = mails(2)
        assert str(resolved["Subject"]) == "[RESOLVED] warning InterfaceDown on core-sw1"
        assert resolved["In-Reply-To"] == firing["Message-ID"]
    finally:
        agent.cleanup()


def test_the_code_cites_only_documents_of_the_repository() -> None:
    # a docstring naming a design note that is not shipped sends the reader nowhere
    known = {p.name for p in ROOT.glob("*.md")} | {p.name for p in (ROOT / "docs").glob("*.md")}
    cited = re.compile(r"(?<![\w/.-])([A-Za-z][\w-]*\.md)\b")
    problems = [
        f"{path.relative_to(ROOT)}:{number}: {name}"
        for path in sorted((ROOT / "netalert").rglob("*.py"))
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        for name in cited.findall(line)
        if name not in known
    ]
    assert problems == []
