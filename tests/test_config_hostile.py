"""Hostile config.toml: values an operator gets wrong or an attacker plants.

Each is refused with one line naming the key (``path: message``), as a
:class:`ConfigError`: never another exception (a traceback at ``check-config``, a
failed SIGHUP), never a hang (a ``*_file`` that is a FIFO or ``/dev/zero``), never
unbounded memory (a huge file), never a regular expression that can take
exponential time on a label.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from netalert.config import load_config, load_config_text
from netalert.config.loader import MAX_DEPTH, MAX_FILE_BYTES, MAX_SECRET_BYTES
from netalert.config.types import MAX_DURATION, format_duration
from netalert.errors import ConfigError
from netalert.matchers import MAX_REGEX_CHARS, parse_matcher
from netalert.rules.templates import MAX_TEMPLATE_CHARS, TemplateProblem, compile_template

LONGEST = format_duration(MAX_DURATION)
BASE = """
[smtp]
host = "127.0.0.1"
from = "netalert <a@example.org>"

[[routes]]
to = ["x@example.org"]
"""


def problems(
    text: str, *, where: Path | None = None, env: dict[str, str] | None = None
) -> list[str]:
    """The lines a config with ``text`` after a valid base is refused with, within 10 s."""
    got: list[object] = []

    def load() -> None:
        try:
            load_config_text(
                BASE + text, source=(where or Path("/nonexistent")) / "c.toml", env=env or {}
            )
        except BaseException as exc:  # the test inspects whatever it is
            got.append(exc)
        else:
            got.append(None)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10.0)
    assert got, "the config load hangs"
    [exc] = got
    assert isinstance(exc, ConfigError), f"not a ConfigError: {exc!r}"
    return exc.problems


@pytest.fixture
def files(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "latin1").write_bytes(b"\xff\xfesecret\n")
    (tmp_path / "nul").write_bytes(b"sec\x00ret\n")
    (tmp_path / "big").write_bytes(b"a" * (MAX_SECRET_BYTES + 1))
    (tmp_path / "fits").write_bytes(b"a" * (MAX_SECRET_BYTES - 1) + b"\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fifo", "is not a regular file"),
        ("/dev/zero", "is not a regular file"),
        ("/dev/null", "is not a regular file"),
        ("folder", "is not a regular file"),
        ("latin1", "is not UTF-8 text"),
        ("nul", "contains a NUL character"),
        ("big", f"is larger than {MAX_SECRET_BYTES} bytes"),
        ("missing", "No such file or directory"),
    ],
)
def test_a_secret_file_that_is_no_secret_is_one_line(
    files: Path, target: str, message: str
) -> None:
    path = target if target.startswith("/") else str(files / target)
    assert problems(f'[snmp]\ncommunity_file = "{path}"\n', where=files) == [
        f"snmp.community_file: cannot read {path}: {message}"
    ]


def test_a_secret_file_at_the_bound_is_read(files: Path) -> None:
    config = load_config_text(
        BASE + f'[snmp]\ncommunity_file = "{files / "fits"}"\n', source=files / "c.toml", env={}
    )
    assert config.snmp.community.get_secret_value() == "a" * (MAX_SECRET_BYTES - 1)


def test_a_secret_file_named_through_the_environment_is_bounded_too(files: Path) -> None:
    env = {"WHERE": "/dev"}
    assert problems('[snmp]\ncommunity_file = "${WHERE}/zero"\n', where=files, env=env) == [
        "snmp.community_file: cannot read /dev/zero: is not a regular file"
    ]


def test_the_config_file_itself_is_bounded(files: Path) -> None:
    big = files / "big.toml"
    big.write_text(BASE + "#" * MAX_FILE_BYTES + "\n")
    for path, message in (
        (files / "fifo", "is not a regular file"),
        (Path("/dev/zero"), "is not a regular file"),
        (big, f"is larger than {MAX_FILE_BYTES} bytes"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        assert info.value.problems == [f"{path}: cannot read it: {message}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[devices]]\nname = "sw\\u0000 1"\naddress = "192.0.2.1"\n',
            ["devices[0].name: contains a NUL character"],
        ),
        (
            '[[devices]]\nname = "sw1"\naddress = "192.0.2.1\\u0000x"\n',
            ["devices[0].address: contains a NUL character"],
        ),
        (
            '[snmp]\ncommunity = "${NUL}"\n',
            ["snmp.community: contains a NUL character"],
        ),
        (
            '[snmp]\n"port\\u0000\\u001b[2J" = 1\n',
            ["snmp.\"port\\x00\\x1b[2J\": unknown key (did you mean 'port'?)"],
        ),
        (
            '[snmp]\ninterval = "' + "9" * 400 + 's"\n',
            [f"snmp.interval: invalid duration '{'9' * 400}s': longer than {LONGEST}"],
        ),
        (
            '[snmp]\ninterval = "99999999999999999d"\n',
            [f"snmp.interval: invalid duration '99999999999999999d': longer than {LONGEST}"],
        ),
        (
            '[limits]\nretention = "3651d"\n',
            [f"limits.retention: invalid duration '3651d': longer than {LONGEST}"],
        ),
        (
            "[snmp]\ninterval = -5\n",
            [
                'snmp.interval: invalid duration -5: a number needs a unit, e.g. "-5s"'
                " (or 500ms, 5m, 4h, 1d)"
            ],
        ),
        (
            "[snmp]\nretries = 99999999999999999999999999\n",
            ["snmp.retries: must be at most 10, got 99999999999999999999999999"],
        ),
        (
            "[agent]\nx = " + "[" * 5000 + "]" * 5000 + "\n",
            ["/nonexistent/c.toml: nested deeper than TOML can be read"],
        ),
        (
            "[agent]\nx = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
            [f"agent.x: nested deeper than {MAX_DEPTH} levels"],
        ),
        (
            "[agent]\nx = " + "{a=" * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1) + "\n",
            [f"agent.x: nested deeper than {MAX_DEPTH} levels"],
        ),
    ],
)
def test_hostile_values_are_one_line_each(text: str, expected: list[str]) -> None:
    assert problems(text, env={"NUL": "a\x00b"}) == expected


@pytest.mark.parametrize(
    "regex",
    ["(a+)+$", "(a*)*b", "(a|aa)+$", "(x+x+)+y", "((ab)*)+c", "(?:a{1,}){2,}", "(.*a){20}"],
)
def test_a_regex_that_may_backtrack_exponentially_is_refused(regex: str) -> None:
    text = f'[[routes]]\nmatch = ["device=~{regex}"]\nto = ["y@example.org"]\n'
    [line] = problems(text)
    assert line.startswith(f"routes[1].match: invalid matcher 'device=~{regex}': ")
    assert "exponential" in line
    with pytest.raises(ValueError, match="exponential"):
        parse_matcher(f"device=~{regex}")  # silences too


@pytest.mark.parametrize(
    "regex", ["sw[0-9]+", "(core|edge)-.*", "a{2,5}(b|c)+", "(ab)+", "[a-z]+-[0-9]+"]
)
def test_ordinary_regexes_still_compile(regex: str) -> None:
    parse_matcher(f"device=~{regex}")


def test_a_very_long_regex_is_refused() -> None:
    regex = "a" * (MAX_REGEX_CHARS + 1)
    with pytest.raises(ValueError, match=f"longer than {MAX_REGEX_CHARS} characters"):
        parse_matcher(f"device=~{regex}")


def test_a_long_string_is_refused_by_its_bound_not_stored() -> None:
    text = '[[devices]]\nname = "' + "a" * 5_000_000 + '"\naddress = "192.0.2.1"\n'
    assert problems(text) == ["devices[0].name: String should have at most 128 characters"]


def test_a_ca_file_that_is_a_fifo_is_an_error_not_a_hang(files: Path) -> None:
    """ca_file is read when the TLS context is made (check-config, start, SIGHUP)."""
    from netalert.mail.errors import MailTlsError
    from netalert.mail.transport import SmtpTarget, tls_context

    for path, message in ((files / "fifo", "is not a regular file"), (files / "latin1", "UTF-8")):
        target = SmtpTarget(host="127.0.0.1", port=25, security="starttls", ca_file=path)
        got: list[object] = []
        worker = threading.Thread(target=_catch, args=(got, tls_context, target), daemon=True)
        worker.start()
        worker.join(10.0)
        assert got, "tls_context hangs"
        assert isinstance(got[0], MailTlsError) and message in str(got[0]), got


def test_an_ack_secret_file_that_is_a_fifo_is_an_error_not_a_hang(files: Path) -> None:
    from netalert.ack.token import load_secret
    from netalert.errors import NetalertError

    got: list[object] = []
    worker = threading.Thread(target=_catch, args=(got, load_secret, files / "fifo"), daemon=True)
    worker.start()
    worker.join(10.0)
    assert got, "load_secret hangs"
    assert isinstance(got[0], NetalertError) and "is not a regular file" in str(got[0]), got


def _catch(into: list[object], call: object, *args: object) -> None:
    assert callable(call)
    try:
        into.append(call(*args))
    except Exception as exc:
        into.append(exc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{%if 1%}" * 900 + "x" + "{%endif%}" * 900, "template nests too deeply"),
        ("{{ device }}" * 2000, f"template longer than {MAX_TEMPLATE_CHARS} characters"),
    ],
)
def test_a_rule_template_past_its_bounds_is_a_problem_not_a_traceback(
    text: str, message: str
) -> None:
    with pytest.raises(TemplateProblem, match=message):
        compile_template(text)


def test_a_template_at_the_bound_compiles() -> None:
    compile_template("x" * MAX_TEMPLATE_CHARS)


def test_more_trap_listen_addresses_than_a_worker_can_be_passed_are_refused() -> None:
    # A trap worker gets one socket per listen address in one message (at most 253
    # descriptors, its channel's included): past that the workers could not start.
    listen = ", ".join(f'"127.0.0.1:{10000 + n}"' for n in range(253))
    refused = problems(f"[traps]\nlisten = [{listen}]\n")
    assert any("traps.listen" in line and "252" in line for line in refused), refused
    load_config_text(  # 252 are fine
        BASE + f"[traps]\nlisten = [{listen.rsplit(',', 1)[0]}]\n",
        source=Path("/nonexistent/c.toml"),
        env={},
    )
