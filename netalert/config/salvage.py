"""The part of an invalid config that is valid, so check-config can check the next stages.

``check-config`` reports every problem of a file in one run. When the config's
own validation fails, the entries it complained about are set aside (a bad key
falls back to its default; a list entry or table that cannot stand without it
is left out) until the rest validates. The MIB and rule checks then run on what
is left, and their paths are mapped back to the file's positions: with
``rules[0]`` left out, the second rule is still reported as ``rules[1]``.
Problems that only follow from something left out (a device naming a collect
group that failed) are dropped: the first stage already reported the cause.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netalert.config.loader import _anchor, _expand, _format_errors, cross_check, read_toml
from netalert.config.models import Config
from netalert.errors import ConfigError

__all__ = ["Salvaged", "salvage_config"]

# Top-level lists whose entries later stages name by position (rules[2]).
_LISTS = ("devices", "rules", "routes", "maintenance")
# Named tables whose entries other sections refer to by name.
_TABLES = ("collect", "credentials")
_PATH = re.compile(r"\b(devices|rules|routes|maintenance)\[(\d+)\]")
_MAX_ROUNDS = 20  # each round sets aside at least one entry; configs have few nested levels


@dataclass(frozen=True, slots=True)
class Salvaged:
    """What :func:`salvage_config` found.

    ``config`` is the valid part (None when the file could not be read or
    parsed at all); ``problems`` the config stage's own lines, as
    ``load_config`` words them.
    """

    config: Config | None
    problems: list[str]
    positions: Mapping[str, list[int]] = field(default_factory=dict)
    dropped: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def later(self, lines: list[str]) -> list[str]:
        """A later stage's problems on :attr:`config`, with the file's positions.

        Lines caused only by an entry set aside are left out.
        """
        out = []
        for line in lines:
            if self._follows_from_dropped(line):
                continue
            out.append(_PATH.sub(self._position, line))
        return out

    def _position(self, match: re.Match[str]) -> str:
        section, index = match.group(1), int(match.group(2))
        kept = self.positions.get(section)
        if kept is None or index >= len(kept):
            return match.group(0)
        return f"{section}[{kept[index]}]"

    def _follows_from_dropped(self, line: str) -> bool:
        for kind, word in (
            ("credentials", "unknown credentials"),
            ("collect", "unknown collect group"),
            ("devices", "unknown device"),
        ):
            for name in self.dropped.get(kind, ()):
                if line.endswith(f"{word} {name!r}"):
                    return True
        # a rule's name is "not collected" when the group collecting it failed the schema
        return bool(self.dropped.get("collect_keys")) and "is not collected by" in line


def salvage_config(path: Path, env: Mapping[str, str] | None = None) -> Salvaged:
    """Validates ``path`` like ``load_config`` and salvages the valid part.

    Never raises for a problem of the file: a file that cannot be read or parsed
    gives ``config=None`` with that problem.
    """
    try:
        raw, base = read_toml(path)
    except ConfigError as exc:
        return Salvaged(None, exc.problems)
    problems: list[str] = []
    data = _expand(raw, (), os.environ if env is None else env, base, problems)
    if problems:
        return Salvaged(None, problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = _format_errors(exc, data)
        return _salvage(data, exc, problems, base)
    problems = cross_check(config)
    return Salvaged(_anchor(config, base), problems)


def _salvage(data: Any, error: ValidationError, problems: list[str], base: Path) -> Salvaged:
    data = copy.deepcopy(data)
    positions = {s: list(range(len(data[s]))) for s in _LISTS if isinstance(data.get(s), list)}
    dropped: dict[str, set[str]] = {}
    for _ in range(_MAX_ROUNDS):
        targets = {_target(data, tuple(e["loc"]), e["type"]) for e in error.errors()}
        targets.discard(())
        if not targets:
            break
        # deepest and last first, so earlier list positions stay valid while deleting
        for target in sorted(targets, key=lambda t: (len(t), t), reverse=True):
            _drop(data, target, positions, dropped)
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            error = exc
            continue
        aside = {k: frozenset(v) for k, v in dropped.items()}
        found = Salvaged(_anchor(config, base), problems, positions, aside)
        # cross-references between what is left, reported where the file has them
        return replace(found, problems=problems + found.later(cross_check(config)))
    return Salvaged(None, problems)


def _target(data: Any, loc: tuple[int | str, ...], kind: str) -> tuple[int | str, ...]:
    """What to set aside for one error: the bad key, or the entry that cannot do without it."""
    if kind == "missing":
        loc = loc[:-1]  # a required key: the entry holding it goes
    # A model's own check is reported at the model's position (the whole entry goes);
    # pydantic may add a union member's name after the data's own path: cut it off.
    while loc and _resolve(data, loc) is _MISSING:
        loc = loc[:-1]
    return loc


_MISSING = object()


def _resolve(data: Any, loc: tuple[int | str, ...]) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


def _drop(
    data: Any,
    target: tuple[int | str, ...],
    positions: dict[str, list[int]],
    dropped: dict[str, set[str]],
) -> None:
    parent = _resolve(data, target[:-1])
    key = target[-1]
    if parent is _MISSING:
        return
    if isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
        entry = parent.pop(key)
        if len(target) == 2 and target[0] in positions:
            positions[str(target[0])].pop(key)
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                dropped.setdefault(str(target[0]), set()).add(entry["name"])
    elif isinstance(parent, dict) and key in parent:
        del parent[key]
        if len(target) == 2 and target[0] in _TABLES:
            dropped.setdefault(str(target[0]), set()).add(str(key))
        if len(target) >= 2 and target[0] == "collect":
            dropped.setdefault("collect_keys", set()).add(".".join(map(str, target)))
