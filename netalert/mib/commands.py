"""What ``netalert mib translate`` and ``netalert mib compile`` do, minus typer.

The CLI stays thin: it resolves options and prints the lines these return.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netalert.config.models import MibsConfig
from netalert.errors import MibError
from netalert.mib.node import MibNode
from netalert.mib.tree import MibTree
from netalert.present import hex_text, value_text

__all__ = ["default_state_dir", "mib_settings", "translate"]

_NUMERIC = re.compile(r"^\.?\d+(?:\.\d+)*$")
_INTEGERS = frozenset(
    {"INTEGER", "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks"}
)


def default_state_dir() -> Path:
    """Where the MIB cache goes when no config file is in use."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "netalert"


def mib_settings(
    config_file: Path, required: bool, mibs: list[Path] | None
) -> tuple[MibsConfig, Path]:
    """The ``[mibs]`` section and state folder a ``mib`` command uses.

    With a config file (given, or found at the default place) its ``[mibs]``
    and ``state_dir`` apply; without one, the defaults and a per-user cache.
    ``--mibs`` folders replace ``[mibs].paths`` (system folders still count).

    Raises:
        ConfigError: The config file is invalid, or ``required`` and missing.
    """
    from netalert.config import load_config

    if required or config_file.exists():
        config = load_config(config_file)
        mibs_config, state_dir = config.mibs, config.agent.state_dir
    else:
        mibs_config, state_dir = MibsConfig(), default_state_dir()
    if mibs:
        mibs_config = mibs_config.model_copy(update={"paths": list(mibs)})
    return mibs_config, state_dir


def translate(tree: MibTree, text: str, value: str | None) -> list[str]:
    """``IF-MIB::ifOperStatus.3`` ⇄ ``1.3.6.1.2.1.2.2.1.8.3``, then VALUE's meaning.

    Returns the lines to print: the translation, then (with a value) its enum
    label, its number (for a label) or its DISPLAY-HINT rendering, then the
    decoded row index when there is one.

    Raises:
        MibError: Unknown name, OID no module covers, or a value that means nothing.
    """
    if _NUMERIC.match(text.strip()):
        node, suffix = tree.lookup(text.strip())
        if node is None:
            raise MibError(f"no loaded MIB module covers OID {text.strip().lstrip('.')}")
        lines = [tree.name(text.strip())]
    else:
        oid = tree.oid(text)
        node, suffix = tree.lookup(oid)
        lines = [".".join(map(str, oid))]
    if node is None:  # pragma: no cover - a name always has a node
        raise MibError(f"unknown MIB name '{text}'")
    if value is not None:
        lines.append(_value_line(tree, node, value))
    if suffix and node.kind in ("column", "row"):
        try:
            decoded = tree.decode_index(node, suffix)
        except MibError:
            decoded = {}
        if decoded:
            index_nodes = {n.name: n for n in tree.index_nodes(node)}
            lines.append(
                "index: "
                + ", ".join(f"{k}={_show(tree, index_nodes[k], v)}" for k, v in decoded.items())
            )
    return lines


def _value_line(tree: MibTree, node: MibNode, value: str) -> str:
    text = value.strip()
    if node.enums:
        if re.fullmatch(r"-?\d+", text):
            label = tree.label(node, int(text))
            if not label:
                raise MibError(f"{text} is not a value of {node.full_name} ({_choices(node)})")
            return label
        number = tree.enum_value(node, text)
        if number is None:
            raise MibError(f"'{text}' is not a label of {node.full_name} ({_choices(node)})")
        return str(number)
    if node.syntax in _INTEGERS and re.fullmatch(r"-?\d+", text):
        return tree.label(node, int(text)) or text
    if node.syntax in ("OCTET STRING", "Opaque", "BITS"):
        raw = _hex(text)
        if raw is None:
            raise MibError(
                f"give {node.full_name}'s value as hex octets, e.g. 0x001a2b or 00:1a:2b"
            )
        return tree.label(node, raw) or hex_text(raw)
    raise MibError(
        f"{node.full_name} ({node.syntax or node.kind}) has no labels or hint for '{text}'"
    )


def _hex(text: str) -> bytes | None:
    clean = text.lower().removeprefix("0x").replace(":", "").replace(" ", "").replace("-", "")
    try:
        return bytes.fromhex(clean)
    except ValueError:
        return None


def _choices(node: MibNode) -> str:
    items = ", ".join(f"{label}({number})" for number, label in sorted(node.enums.items()))
    return items if len(items) < 200 else items[:200] + ", ..."


def _show(tree: MibTree, index_node: MibNode, value: int | str | bytes) -> str:
    if value == b"":
        return '""'
    label = "" if isinstance(value, str) else tree.label(index_node, value)
    return value_text(None, value, label)
