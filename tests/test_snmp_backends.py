"""The SNMP client's modules: no import circle, only gufo-snmp's public API, one chooser."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from netalert.poll.backends import make_client
from tests.support.trees import builtin_tree

PACKAGE = Path(__file__).resolve().parents[1] / "netalert"
ADAPTERS = {
    "netalert.poll.client_gufo",
    "netalert.poll.client_native",
    "netalert.poll.client_pysnmp",
}


def imports(module: str) -> set[str]:
    """Every module ``module`` imports, at the top or inside a function."""
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_client_contract_imports_no_adapter() -> None:
    assert not imports("netalert.poll.client") & (ADAPTERS | {"netalert.poll.backends"})


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_adapters_do_not_import_the_chooser(adapter: str) -> None:
    assert "netalert.poll.backends" not in imports(adapter)


def test_only_gufo_snmps_public_modules_are_imported() -> None:
    private = {
        (path.name, name)
        for path in PACKAGE.rglob("*.py")
        for name in imports(
            ".".join(("netalert", *path.relative_to(PACKAGE).with_suffix("").parts))
        )
        if name.startswith("gufo.") and any(part.startswith("_") for part in name.split("."))
    }
    assert private == set()


@pytest.mark.parametrize("backend", ["gufo", "native", "pysnmp"])
def test_make_client_chooses_by_name(backend: str) -> None:
    client = make_client(backend)  # type: ignore[arg-type]
    try:
        assert client.backend == backend
    finally:
        asyncio.run(client.close())


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SNMP backend 'net-snmp'"):
        make_client("net-snmp")  # type: ignore[arg-type]


def test_the_default_backend_is_native_and_the_others_stay_selectable() -> None:
    """native is the default (config, a device's plan, `netalert poll` without a config);
    gufo and pysnmp stay selectable, globally and per device."""
    from netalert.cli.poll import PollOptions, _address_plan
    from netalert.config.models import Device, SnmpDefaults
    from netalert.poll.client import Target
    from netalert.poll.plan import DevicePlan

    assert SnmpDefaults().backend == "native"
    assert DevicePlan("d", Target("192.0.2.1")).backend == "native"
    assert _address_plan(PollOptions("192.0.2.1"), builtin_tree()).backend == "native"
    for backend in ("gufo", "pysnmp", "native"):
        assert SnmpDefaults(backend=backend).backend == backend
        device = Device(name="d", address="192.0.2.1", backend=backend)
        assert device.backend == backend
