"""The documentation tooling: GitHub anchors, the link check, the config reference generator.

docs/configuration.md is generated from the config models (netalert.config.docs):
every key must carry a description, and every section must have its place in
the page's template.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.support.faults import ROOT
from tests.support.markdown import anchors, links


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


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
