"""config.toml loading: exact error lines, secrets, durations, addresses."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netalert.config import load_config, load_config_text
from netalert.config.types import HostPort, format_duration, parse_duration, parse_hostport
from netalert.errors import ConfigError
from tests.support.cli import netalert_in_process
from tests.support.shared import sharing_env

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.toml", env=env or {})
    return info.value.problems


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netalert", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


DEVICE = '[[devices]]\nname = "sw1"\naddress = "192.0.2.1"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[agent]\nstat_dir = 'x'\n", ["agent.stat_dir: unknown key (did you mean 'state_dir'?)"]),
        ("[snmp]\nretries = 'two'\n", ["snmp.retries: expected an integer, got 'two'"]),
        (
            "[snmp]\ntimeout = '3 sec'\n",
            ["snmp.timeout: invalid duration '3 sec': use e.g. 500ms, 30s, 5m, 4h, 1d"],
        ),
        ("[snmp]\nport = 70000\n", ["snmp.port: must be at most 65535, got 70000"]),
        (
            '[[rules]]\nname = "R"\nexpr = "ifIndex > 0"\nfor = 30\n',
            [
                'rules[0].for: invalid duration 30: a number needs a unit, e.g. "30s" (or 500ms,'
                " 5m, 4h, 1d)"
            ],
        ),
        (
            "[snmp]\ntimeout = 1.5\n",
            [
                'snmp.timeout: invalid duration 1.5: a number needs a unit, e.g. "1.5s" (or 500ms,'
                " 5m, 4h, 1d)"
            ],
        ),
        (
            '[[devices]]\nname = "a"\naddress = "192.0.2.1:99999"\n',
            ["devices[0].address: port 99999 out of range 1-65535 in '192.0.2.1:99999'"],
        ),
        (
            DEVICE + 'credentials = "core-v4"\n',
            ["devices[0].credentials: unknown credentials 'core-v4'"],
        ),
        (DEVICE + DEVICE, ["devices[1].name: duplicate device name 'sw1' (first at devices[0])"]),
        (DEVICE + 'collect = ["sys"]\n', ["devices[0].collect[0]: unknown collect group 'sys'"]),
        (
            "[smtp]\nsecurity = 'ssl'\n",
            ["smtp.security: must be one of 'none', 'starttls' or 'tls', got 'ssl'"],
        ),
        ("[[routes]]\nto = []\n", ["routes[0].to: needs at least one recipient"]),
        ("[[routes]]\nto = ['noc']\n", ["routes[0].to: invalid recipient address 'noc'"]),
        (
            '[[rules]]\nname = "x"\n',
            ["rules[0]: a rule needs exactly one of 'expr' (poll rule) or 'trap' (trap rule)"],
        ),
        (
            '[[rules]]\nname = "DeviceUnreachable"\nexpr = "1"\n',
            ["rules[0].name: 'DeviceUnreachable' is a built-in rule name"],
        ),
        (
            "[traps]\nallow = ['10.0.0.0/33']\n",
            ["traps.allow: invalid network '10.0.0.0/33': use e.g. 192.0.2.0/24"],
        ),
        (
            "[snmp]\ncommunity = '${NOPE}'\n",
            ["snmp.community: environment variable NOPE is not set"],
        ),
        (
            "[credentials.c]\nuser = 'u'\nauth_protocol = 'SHA'\n",
            ["credentials.c: 'auth_protocol' is set but 'auth_password' is missing"],
        ),
        (
            "[limits]\nmax_mail_bytes = 1000\n",
            ["limits.max_mail_bytes: must be at least 16384, got 1000"],
        ),
        (
            "[limits]\nmax_alerts_per_mail = -1\n",
            ["limits.max_alerts_per_mail: must be at least 0, got -1"],
        ),
        ("[traps]\nstorm_max_keys = 0\n", ["traps.storm_max_keys: must be at least 1, got 0"]),
        (
            "[traps]\nworker_queue_bytes = 1000\n",
            ["traps.worker_queue_bytes: must be at least 65536, got 1000"],
        ),
        (
            "[traps]\nworker_restart_max = '100ms'\n",
            ["traps.worker_restart_max: must be from 0.2s (the first wait) to 1h"],
        ),
        (
            "[traps]\nworker_restart_max = '2h'\n",
            ["traps.worker_restart_max: must be from 0.2s (the first wait) to 1h"],
        ),
    ],
)
def test_error_lines(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_several_problems_reported_together() -> None:
    text = "[snmp]\nport = 0\nversion = '4'\n[agent]\nbogus = true\n"
    assert problems(text) == [
        "agent.bogus: unknown key",
        "snmp.version: must be one of '1', '2c' or '3', got '4'",
        "snmp.port: must be at least 1, got 0",
    ]


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[agent]\nlog_level = "info"\nstate_dir = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: line 3, column 13: TOML syntax error: Invalid value"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: no such file (give one with -c FILE or $NETALERT_CONFIG)"
    ]


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(DEVICE)
    config = load_config(path)
    assert config.agent.state_dir == tmp_path / "var"
    assert config.mibs.paths == [tmp_path / "mibs"]
    assert config.snmp.timeout == timedelta(seconds=2)
    assert (config.limits.max_alerts_per_mail, config.limits.max_mail_bytes) == (50, 262_144)
    assert (config.traps.storm_max_keys, config.traps.storm_fold_bytes) == (10_000, 1024)
    assert config.devices[0].address == HostPort("192.0.2.1")
    assert config.routes == []
    assert config.smtp.from_ == "netalert <netalert@localhost>"


def test_http_empty_disables() -> None:
    assert load_config_text("[agent]\nhttp = ''\n", env={}).agent.http is None


def test_secret_file_and_env(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-file-value\n")
    text = (
        "[smtp]\npassword_file = 'pw'\n"
        "[credentials.v3]\nuser = 'u'\nauth_protocol = 'SHA'\nauth_password = '${AUTH}'\n"
    )
    config = load_config_text(text, source=tmp_path / "c.toml", env={"AUTH": "env-secret-1"})
    assert config.smtp.password.get_secret_value() == "s3cret-file-value"
    auth = config.credentials["v3"].auth_password
    assert auth is not None and auth.get_secret_value() == "env-secret-1"
    assert "env-secret-1" not in repr(config) and "s3cret-file-value" not in repr(config)


def test_a_relative_secret_file_is_a_systemd_credential_when_one_of_that_name_exists(
    tmp_path: Path,
) -> None:
    """Under the unit's ``LoadCredential=smtp-password:...`` (DynamicUser cannot read
    /etc/netalert), systemd hands the file over in $CREDENTIALS_DIRECTORY: a relative
    ``*_file`` is looked up there first, then next to the config as before."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-credential\n")
    (tmp_path / "smtp-password").write_text("next-to-config\n")
    (tmp_path / "community").write_text("only-next-to-config\n")
    text = "[smtp]\npassword_file = 'smtp-password'\n[snmp]\ncommunity_file = 'community'\n"
    source = tmp_path / "c.toml"

    config = load_config_text(text, source=source, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.smtp.password.get_secret_value() == "from-credential"
    assert config.snmp.community.get_secret_value() == "only-next-to-config"

    without = load_config_text(text, source=source, env={})
    assert without.smtp.password.get_secret_value() == "next-to-config"

    # an absolute path is that file, credentials or not
    absolute = f"[smtp]\npassword_file = '{tmp_path / 'smtp-password'}'\n"
    config = load_config_text(absolute, source=source, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.smtp.password.get_secret_value() == "next-to-config"

    # neither there nor next to the config: the message names both places
    with pytest.raises(ConfigError) as info:
        load_config_text(
            "[smtp]\npassword_file = 'missing'\n",
            source=source,
            env={"CREDENTIALS_DIRECTORY": str(creds)},
        )
    [problem] = info.value.problems
    assert problem.startswith(f"smtp.password_file: cannot read {tmp_path / 'missing'}: "), problem
    assert problem.endswith(f" (nor {creds / 'missing'}, from $CREDENTIALS_DIRECTORY)"), problem


def test_secret_and_file_both_given(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    with pytest.raises(ConfigError) as info:
        load_config_text(
            "[smtp]\npassword = 'a'\npassword_file = 'pw'\n", source=tmp_path / "c.toml", env={}
        )
    assert info.value.problems == [
        "smtp.password_file: give either password or password_file, not both"
    ]


@pytest.mark.daemon
def test_secrets_never_printed(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "pw").write_text("file-secret-XYZ\n")
    (tmp_path / "c.toml").write_text(
        "[smtp]\npassword_file = 'pw'\n"
        "[snmp]\ncommunity = '${COMM}'\n"
        "[credentials.v3]\nuser = 'u'\nauth_protocol = 'SHA'\nauth_password = '${AUTH}'\n"
        "priv_protocol = 'AES-128'\npriv_password = 'priv-secret-QRS'\n"
        "[[devices]]\nname = 'd'\naddress = '192.0.2.1'\ncredentials = 'v3'\n"
    )
    env = {"COMM": "env-community-ABC", "AUTH": "env-auth-DEF"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secrets = ["file-secret-XYZ", "env-community-ABC", "env-auth-DEF", "priv-secret-QRS"]
    # in this process (tests/support/cli.py): what check-config prints, not a process start
    ok = netalert_in_process(capsys, "check-config", "-c", str(tmp_path / "c.toml"))
    assert ok.returncode == 0, ok.stderr
    # A broken config next to the secrets: the error output must not echo them either.
    (tmp_path / "bad.toml").write_text(
        "[snmp]\ncommunity = 12\n[smtp]\npassword = '${AUTH}'\nport = 'x'\n"
    )
    bad = netalert_in_process(capsys, "check-config", "-c", str(tmp_path / "bad.toml"))
    assert bad.returncode == 2
    with caplog.at_level(logging.DEBUG):
        config = load_config(tmp_path / "c.toml", env=env)
        logging.getLogger("netalert.test").info("config=%s dump=%s", config, config.model_dump())
    for secret in secrets:
        assert secret not in ok.stdout + ok.stderr
        assert secret not in bad.stdout + bad.stderr
        assert secret not in caplog.text


@pytest.mark.daemon
def test_check_config_refuses_hostile_values_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A planted config: a FIFO secret, a backtracking regex, a deep template, a NUL,
    a duration past the bound. One line each on stderr, exit 2, within the timeout."""
    os.mkfifo(tmp_path / "fifo")
    path = tmp_path / "c.toml"
    path.write_text(
        '[snmp]\ncommunity_file = "fifo"\ninterval = "99999999999d"\n'
        '[[routes]]\nmatch = ["device=~(a+)+$"]\nto = ["x@example.org"]\n'
        '[[devices]]\nname = "sw\\u0000"\naddress = "192.0.2.1"\n'
    )
    env = {"PATH": "/usr/bin:/bin"} | sharing_env()
    bad = run_cli("check-config", "-c", str(path), env=env)
    assert bad.returncode == 2, bad.stderr
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"snmp.community_file: cannot read {tmp_path / 'fifo'}: is not a regular file",
        "devices[0].name: contains a NUL character",
    ], bad.stderr  # the loader's lines first: the rest is checked once they are fixed
    path.write_text(
        '[snmp]\ninterval = "99999999999d"\n'
        '[[routes]]\nmatch = ["device=~(a+)+$"]\nto = ["x@example.org"]\n'
        '[[rules]]\nname = "R"\ntrap = "*"\nseverity = "info"\n'
        'summary = "' + "{%if 1%}" * 900 + "x" + "{%endif%}" * 900 + '"\n'
    )
    bad = netalert_in_process(capsys, "check-config", "-c", str(path))  # the process: above
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.splitlines()
    assert "Traceback" not in bad.stderr
    assert lines[0] == "snmp.interval: invalid duration '99999999999d': longer than 3650d", lines
    assert lines[1].startswith("routes[0].match: invalid matcher 'device=~(a+)+$': "), lines
    assert lines[2:] == ["rules[0].summary: template nests too deeply: split it"], lines


@pytest.mark.daemon
def test_check_config_cli(tmp_path: Path) -> None:
    good = run_cli("check-config", "-c", str(ROOT / "config.toml"))
    assert good.returncode == 0, good.stderr
    assert "devices: 1 (localhost)" in good.stdout
    path = tmp_path / "c.toml"
    path.write_text(DEVICE + 'credentials = "core-v4"\n' + DEVICE)
    bad = run_cli("check-config", "-c", str(path))
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "devices[0].credentials: unknown credentials 'core-v4'",
        "devices[1].name: duplicate device name 'sw1' (first at devices[0])",
    ]


@pytest.mark.daemon
def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert "check-config" in out.stdout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("4h", 14400),
        ("1d", 86400),
        ("1h30m", 5400),
        ("0", 0),
        (15, 15),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "-1s", "1.s", "1 h", "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", HostPort("192.0.2.1")),
        ("192.0.2.1:1161", HostPort("192.0.2.1", 1161)),
        ("sw1.example.org:161", HostPort("sw1.example.org", 161)),
        ("[2001:db8::1]:162", HostPort("2001:db8::1", 162)),
        ("[::1]", HostPort("::1")),
        ("::1", HostPort("::1")),
    ],
)
def test_addresses(text: str, expected: HostPort) -> None:
    assert parse_hostport(text) == expected
    assert parse_hostport(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:abc", "[::1", "[1.2.3.4]:1", "a b:1", ":::x"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hostport(text)


@given(
    st.dictionaries(
        st.sampled_from(["agent", "snmp", "smtp", "x"]),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)),
    )
)
def test_random_tables_never_crash(data: dict[str, dict[str, object]]) -> None:
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            lines.append(
                f"{key!r} = {value!r}".replace("'", '"')
                if False
                else f'"{_esc(key)}" = {_toml(value)}'
            )
    try:
        load_config_text("\n".join(lines), env={})
    except ConfigError as exc:
        assert exc.problems and all(": " in line for line in exc.problems)


def _esc(text: str) -> str:
    return text.encode("unicode_escape").decode().replace('"', '\\"')


def _toml(value: object) -> str:
    return str(value) if isinstance(value, int) else f'"{_esc(str(value))}"'
