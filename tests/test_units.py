"""Human units: the filters of rule and mail templates, and how TimeTicks values show."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netalert.mail.render import MailTemplates
from netalert.rules.templates import compile_template, render
from netalert.rules.values import Ticks, converter_for, render_value
from netalert.units import FILTERS, bits, bytes_iec, duration, number, percent, uptime


@pytest.mark.parametrize(
    ("fn", "value", "text"),
    [
        (bits, 1_200_000_000, "1.2 Gbit/s"),
        (bits, "1200000000", "1.2 Gbit/s"),
        (bits, 950_000_000.4, "950 Mbit/s"),
        (bits, 999_700, "1 Mbit/s"),  # rounds up into the next unit, never "1000 kbit/s"
        (bits, 1e9, "1 Gbit/s"),
        (bits, 512, "512 bit/s"),
        (bits, 0, "0 bit/s"),
        (bits, -2500, "-2.5 kbit/s"),
        (bits, 10**22, "10000 Ebit/s"),  # past the last prefix: stays in it
        (bytes_iec, 3_650_722_201, "3.4 GiB"),
        (bytes_iec, 1024, "1 KiB"),
        (bytes_iec, 1000, "1000 B"),
        (bytes_iec, 7_782_400_000, "7.25 GiB"),
        (percent, 97.3147, "97.3%"),
        (percent, "92.0", "92%"),
        (percent, 100, "100%"),
        (percent, -0.01, "0%"),
        (percent, 0.5, "0.5%"),
        (duration, 3725, "1h 2m"),
        (duration, 86400, "1d"),
        (duration, 86400 + 3 * 3600 + 59, "1d 3h"),
        (duration, 45.9, "45s"),
        (duration, 60, "1m"),
        (duration, 0, "0s"),
        (duration, -5, "0s"),
        (uptime, 31_536_000, "3d 15h"),
        (uptime, 4312, "43s"),
        (uptime, "9000", "1m 30s"),
    ],
)
def test_filters(fn: Any, value: Any, text: str) -> None:
    assert fn(value) == text


def test_percent_decimals() -> None:
    assert percent(97.3147, 2) == "97.31%"
    assert percent(97.3147, 0) == "97%"
    assert percent(97.3147, 99) == "97.3147%"  # capped at 6 places


@pytest.mark.parametrize(
    "value",
    ["down", "", None, True, "nan", "inf", "1" * 65, "12 Mbit/s", 10**400, [1]],
)
def test_what_is_not_a_number_passes_through_as_text(value: Any) -> None:
    expected = "" if value is None else str(value)
    for fn in FILTERS.values():
        assert fn(value) == expected


def test_octets_pass_through_as_their_text_or_hex() -> None:
    for fn in FILTERS.values():
        assert (fn(b"100 ms"), fn(b"\x00\xff")) == ("100 ms", "00:ff")


def test_an_int_too_long_to_print_gives_empty_text() -> None:
    for fn in FILTERS.values():
        assert fn(10**5000) == ""  # more digits than Python converts to text


@given(st.one_of(st.text(max_size=200), st.floats(), st.integers()))
def test_filters_never_raise(value: Any) -> None:
    for fn in FILTERS.values():
        assert isinstance(fn(value), str)


def test_number() -> None:
    assert number(" 12.5 ") == 12.5
    assert number(3) == 3.0
    assert number(False) is None
    assert number(float("nan")) is None


def test_filters_work_in_rule_and_mail_templates() -> None:
    template = compile_template(
        "{{ device }} {{ value | percent }} {{ (speed * 1000000) | bits }}"
        " {{ used | bytes }} {{ sysUpTime | uptime }} {{ 90 | duration }}"
    )
    names = {"device": "sw1", "value": "97.31", "speed": 1000, "used": 3_650_722_201}
    out = render(template, {**names, "sysUpTime": Ticks(4312)}, one_line=True)
    assert out == "sw1 97.3% 1 Gbit/s 3.4 GiB 43s 1m 30s"
    mail = MailTemplates()._default.from_string("{{ x | bits }} {{ y | duration }}")
    assert mail.render(x=1.2e9, y=3725) == "1.2 Gbit/s 1h 2m"


def test_timeticks_are_numbers_but_show_as_durations() -> None:
    convert = converter_for("sysUpTime", "TimeTicks", {}, False)
    ticks = convert(4312, "")
    assert isinstance(ticks, Ticks) and ticks < 90000 and ticks == 4312
    assert str(ticks) == "4312" and f"{ticks}" == "4312"
    assert render_value(ticks) == "43s"
    assert render_value(ticks // 100) == "43"  # arithmetic gives plain numbers
    assert render(compile_template("{{ t }}"), {"t": ticks}, one_line=True) == "4312"
