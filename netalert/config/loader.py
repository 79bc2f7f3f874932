"""Loading config.toml: TOML, ``${ENV}`` expansion, ``*_file`` secrets, validation.

Every problem becomes one line ``path.to.field: message`` (list indexes 0-based in
brackets), collected before raising, so a user fixes them all in one pass.
Secrets are never part of a message.

What the file holds may be hostile, so everything read is bounded: the file and
each ``*_file`` (a relative one from ``$CREDENTIALS_DIRECTORY`` first: systemd's
``LoadCredential=``) are read only when they are regular files, up to
:data:`MAX_FILE_BYTES` and :data:`MAX_SECRET_BYTES` (a FIFO or ``/dev/zero``
would block or never end), as UTF-8; values are refused when they contain NUL,
tables and lists when nested deeper than :data:`MAX_DEPTH`, and a key that is no
printable text is quoted and escaped in the message.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from netalert.config.models import Config, Route
from netalert.errors import ConfigError
from netalert.readfile import FileRefused, read_bounded, why

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_SECRET_BYTES",
    "SECRET_KEYS",
    "load_config",
    "load_config_text",
    "read_text",
    "read_toml",
    "validation_problems",
]

# Keys whose value is a secret: each may instead be given as KEY_file.
SECRET_KEYS = frozenset({"password", "auth_password", "priv_password", "community", "postgres"})
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_FILE_BYTES = 64 * 1024 * 1024  # config.toml, at most (100,000 devices take about 6 MiB)
MAX_SECRET_BYTES = 64 * 1024  # a *_file, at most
MAX_DEPTH = 64  # tables and lists inside each other, at most
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Reads and validates a config file.

    Relative paths in it (state_dir, MIB folders, ``*_file``, ca_file) are
    relative to the file's folder.

    Raises:
        ConfigError: With one ``path: message`` line per problem.
    """
    path = Path(path)
    return load_config_text(_read(path), source=path, env=env)


def read_toml(path: Path) -> tuple[dict[str, Any], Path]:
    """The file's TOML as a dict, and the folder its relative paths are relative to.

    Raises:
        ConfigError: The file cannot be read, or is not TOML (as :func:`load_config`).
    """
    return _parse(_read(path), path), path.resolve().parent


def _read(path: Path) -> str:
    try:
        return read_text(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file (give one with -c FILE or $NETALERT_CONFIG)"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it: {why(exc)}"]) from None


def read_text(path: Path, limit: int) -> str:
    """The UTF-8 text of ``path`` (:func:`~netalert.readfile.read_bounded`).

    Raises:
        OSError: As :func:`~netalert.readfile.read_bounded`; ``FileRefused`` when
            it is not UTF-8 text.
    """
    try:
        return read_bounded(path, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused("is not UTF-8 text") from None


def _parse(text: str, source: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except RecursionError:  # tomllib reads nested arrays and tables recursively
        raise ConfigError([f"{source}: nested deeper than TOML can be read"]) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        pos = _TOML_POS.search(message)
        if pos:
            message = message[: pos.start()]
            where = f"{source}: line {pos.group(1)}, column {pos.group(2)}"
        else:
            where = str(source)
        raise ConfigError([f"{where}: TOML syntax error: {message}"]) from None


def load_config_text(
    text: str, *, source: Path | str = "config.toml", env: Mapping[str, str] | None = None
) -> Config:
    """Validates config text; ``source`` names it in messages and anchors relative paths."""
    source = Path(source)
    raw = _parse(text, source)
    base = source.resolve().parent
    problems: list[str] = []
    data = _expand(raw, (), os.environ if env is None else env, base, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data)) from None
    problems = cross_check(config)
    if problems:
        raise ConfigError(problems)
    return _anchor(config, base)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            if not part.isprintable():  # a key with control characters, quoted and escaped
                part = '"' + part.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
            out += f".{part}" if out else part
    return out or "(top level)"


def _expand(
    value: Any,
    loc: tuple[int | str, ...],
    env: Mapping[str, str],
    base: Path,
    problems: list[str],
) -> Any:
    if isinstance(value, dict | list) and len(loc) > MAX_DEPTH:
        line = f"{_path(loc[:2])}: nested deeper than {MAX_DEPTH} levels"
        if line not in problems:
            problems.append(line)
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.endswith("_file") and key[: -len("_file")] in SECRET_KEYS:
                target = key[: -len("_file")]
                if target in value:
                    problems.append(
                        f"{_path((*loc, key))}: give either {target} or {key}, not both"
                    )
                    continue
                secret = _read_secret(item, (*loc, key), env, base, problems)
                if secret is not None:
                    out[target] = secret
                continue
            out[key] = _expand(item, (*loc, key), env, base, problems)
        return out
    if isinstance(value, list):
        return [_expand(item, (*loc, i), env, base, problems) for i, item in enumerate(value)]
    if isinstance(value, str):
        text = _substitute(value, loc, env, problems)
        if "\x00" in text:
            problems.append(f"{_path(loc)}: contains a NUL character")
        return text
    return value


def _substitute(
    value: str, loc: tuple[int | str, ...], env: Mapping[str, str], problems: list[str]
) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            problems.append(f"{_path(loc)}: environment variable {name} is not set")
            return ""
        return env[name]

    return _ENV.sub(repl, value)


def _read_secret(
    item: Any,
    loc: tuple[int | str, ...],
    env: Mapping[str, str],
    base: Path,
    problems: list[str],
) -> str | None:
    if not isinstance(item, str) or not item:
        problems.append(f"{_path(loc)}: expected a file path")
        return None
    given = Path(_substitute(item, loc, env, problems))
    credential = secret_credential(given, env)
    file = credential if credential is not None and credential.is_file() else base / given
    try:
        content = read_text(file, MAX_SECRET_BYTES)
    except OSError as exc:
        where = f" (nor {credential}, from $CREDENTIALS_DIRECTORY)" if credential else ""
        problems.append(f"{_path(loc)}: cannot read {file}: {why(exc)}{where}")
        return None
    if "\x00" in content:
        problems.append(f"{_path(loc)}: cannot read {file}: contains a NUL character")
        return None
    # Files written by editors and `echo` end with a newline that is not part of the secret.
    return content.rstrip("\r\n")


def secret_credential(given: Path, env: Mapping[str, str]) -> Path | None:
    """Where systemd put a relative ``*_file`` as a credential: ``$CREDENTIALS_DIRECTORY``
    (set for a unit with ``LoadCredential=``) joined with it; None when that is not set
    or the path is absolute (the file itself). The caller reads it when it exists, else
    the file next to the config."""
    folder = env.get("CREDENTIALS_DIRECTORY", "")
    return None if not folder or given.is_absolute() else Path(folder) / given


def validation_problems(
    exc: ValidationError, data: Any, root: type[BaseModel] = Config
) -> list[str]:
    """One ``path.to.field: message`` line per error of a model validated from ``data``.

    ``root`` is the model ``data`` was validated as (config.toml's :class:`Config`,
    or another file's model such as a rule test file's), for "did you mean" hints.
    """
    return _format_errors(exc, data, root)


def _format_errors(exc: ValidationError, data: Any, root: type[BaseModel] = Config) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
            parent = _lookup_model(loc[:-1], root)
            if parent is not None and isinstance(loc[-1], str):
                names = [f.alias or n for n, f in parent.model_fields.items()]
                close = difflib.get_close_matches(loc[-1], names, n=1)
                if close:
                    message += f" (did you mean '{close[0]}'?)"
        elif kind == "missing":
            message = "required key is missing"
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            message = f"expected an integer, got {_shown(data, loc)}"
        elif kind in ("string_type",):
            message = f"expected a string, got {_shown(data, loc)}"
        elif kind in ("bool_type", "bool_parsing"):
            message = f"expected true or false, got {_shown(data, loc)}"
        elif kind in ("list_type",):
            message = f"expected a list, got {_shown(data, loc)}"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            message = f"expected a table, got {_shown(data, loc)}"
        elif kind in ("float_type", "float_parsing"):
            message = f"expected a number, got {_shown(data, loc)}"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}, got {_shown(data, loc)}"
        elif kind in _BOUNDS:
            limit = next(iter(error.get("ctx", {}).values()), "")
            message = f"must be {_BOUNDS[kind]} {limit}, got {_shown(data, loc)}"
        elif kind in ("too_short",) and loc and loc[-1] == "to":
            message = "needs at least one recipient"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            message = str(error["msg"])
        # Pydantic appends the model-validator location as the model itself; drop it.
        lines.append(f"{_path(loc)}: {message}")
    return lines


_BOUNDS = {
    "greater_than_equal": "at least",
    "less_than_equal": "at most",
    "greater_than": "greater than",
    "less_than": "less than",
}


def _shown(data: Any, loc: tuple[int | str, ...]) -> str:
    """The offending value as the user wrote it, never for a secret key."""
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return "nothing"
    if loc and isinstance(loc[-1], str) and loc[-1] in SECRET_KEYS:
        return "a secret"
    if isinstance(node, str):
        return repr(node)
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, dict):
        return "a table"
    if isinstance(node, list):
        return "a list"
    return repr(node)


def _lookup_model(
    loc: tuple[int | str, ...], root: type[BaseModel] = Config
) -> type[BaseModel] | None:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        field = fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        model = _inner_model(annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def cross_check(config: Config) -> list[str]:
    """Checks references between sections; returns ``path: message`` lines."""
    problems: list[str] = []
    if config.cluster is not None and config.traps.engine_id:
        # One engine ID on several nodes would run several clocks under it (docs/cluster.md).
        problems.append(
            "traps.engine_id: leave it empty with [cluster]: each node keeps its own engine ID "
            "(informs go to one node, see docs/cluster.md)"
        )
    seen: dict[str, int] = {}
    for i, device in enumerate(config.devices):
        if device.name in seen:
            problems.append(
                f"devices[{i}].name: duplicate device name {device.name!r}"
                f" (first at devices[{seen[device.name]}])"
            )
        else:
            seen[device.name] = i
        if device.credentials is not None and device.credentials not in config.credentials:
            problems.append(f"devices[{i}].credentials: unknown credentials {device.credentials!r}")
        for j, group in enumerate(device.collect):
            if group not in config.collect:
                problems.append(f"devices[{i}].collect[{j}]: unknown collect group {group!r}")
    rule_names: dict[str, int] = {}
    for i, rule in enumerate(config.rules):
        if rule.name == "DeviceUnreachable":
            problems.append(f"rules[{i}].name: 'DeviceUnreachable' is a built-in rule name")
        if rule.name in rule_names:
            problems.append(
                f"rules[{i}].name: duplicate rule name {rule.name!r}"
                f" (first at rules[{rule_names[rule.name]}])"
            )
        else:
            rule_names[rule.name] = i
        for j, name in enumerate(rule.devices):
            if name not in seen:
                problems.append(f"rules[{i}].devices[{j}]: unknown device {name!r}")
    for i, route in enumerate(config.routes):
        _route_recipients(route, f"routes[{i}]", False, problems)
    return problems


def _route_recipients(route: Route, path: str, inherited: bool, problems: list[str]) -> None:
    """Every route of the tree has recipients: its own ``to`` or a parent's."""
    if not route.to and not inherited:
        where = " (set it here or on a parent route)" if "." in path else ""
        problems.append(f"{path}.to: needs at least one recipient{where}")
    for j, child in enumerate(route.routes):
        _route_recipients(child, f"{path}.routes[{j}]", inherited or bool(route.to), problems)


def _anchor(config: Config, base: Path) -> Config:
    def at(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    agent = config.agent.model_copy(update={"state_dir": at(config.agent.state_dir)})
    shared = config.mibs.shared_cache
    mibs = config.mibs.model_copy(
        update={
            "paths": [at(p) for p in config.mibs.paths],
            "shared_cache": at(shared) if shared is not None else None,
        }
    )
    smtp = config.smtp
    update: dict[str, Any] = {}
    if smtp.ca_file is not None:
        update["ca_file"] = at(smtp.ca_file)
    if smtp.templates_dir is not None:
        update["templates_dir"] = at(smtp.templates_dir)
    if smtp.fallback is not None and smtp.fallback.ca_file is not None:
        update["fallback"] = smtp.fallback.model_copy(update={"ca_file": at(smtp.fallback.ca_file)})
    if update:
        smtp = smtp.model_copy(update=update)
    traps = config.traps
    if traps.record is not None:
        traps = traps.model_copy(update={"record": at(traps.record)})
    ack = config.ack  # [ack] (issue 17): its key file and CA bundle
    if ack is not None:
        imap = ack.imap
        if imap.ca_file is not None:
            imap = imap.model_copy(update={"ca_file": at(imap.ca_file)})
        secret = at(ack.secret_file) if ack.secret_file is not None else None
        ack = ack.model_copy(update={"imap": imap, "secret_file": secret})
    return config.model_copy(
        update={"agent": agent, "mibs": mibs, "smtp": smtp, "traps": traps, "ack": ack}
    )
