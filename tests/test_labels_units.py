"""Device text becoming alert labels and annotations: escaped once, bounded, stable."""

from __future__ import annotations

import unicodedata

import pytest

from netalert.alerts.model import MAX_LABEL, alert_labels, fingerprint
from netalert.rules.templates import MAX_SUMMARY, compile_template, render

pytestmark = pytest.mark.unit

HOSTILE = "up\x1b[2J\x07 link\r\nBcc: x@example.org\x00\u202etxt\u200b\x85\u2028\x7fend"


def dirty(text: str, allowed: str = "") -> list[str]:
    return [
        c for c in text if c not in allowed and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
    ]


def labels(value: str) -> dict[str, str]:
    return dict(alert_labels("R", "warning", "sw1", {"ifAlias": value}, {}, {}))


def test_label_from_device_text_is_escaped_visibly() -> None:
    got = labels(HOSTILE)["ifAlias"]
    assert not dirty(got), got
    assert got == (
        "up\\u001b[2J\\u0007 link\\r\\nBcc: x@example.org\\u0000\\u202etxt\\u200b\\u0085"
        "\\u2028\\u007fend"
    )


def test_label_is_bounded_and_stable() -> None:
    long = HOSTILE + "A" * 5000
    first, second = labels(long), labels(long)
    assert len(first["ifAlias"]) <= MAX_LABEL
    assert first == second and fingerprint(first) == fingerprint(second)
    # a different tail past the bound is the same alert: the cut is part of the label
    assert labels(HOSTILE + "A" * 5000 + "B")["ifAlias"] == first["ifAlias"]


@pytest.mark.parametrize("value", ["GigabitEthernet0/1", "uplink to milano", "Zürich 東京", ""])
def test_clean_labels_unchanged(value: str) -> None:
    """Fingerprints of alerts with ordinary labels do not move."""
    assert labels(value)["ifAlias"] == value


def test_summary_escapes_device_text() -> None:
    summary = render(
        compile_template("port {{ ifAlias }} is down"), {"ifAlias": HOSTILE}, one_line=True
    )
    assert not dirty(summary), summary
    assert summary.startswith("port up\\u001b[2J\\u0007 link\\r\\nBcc:"), summary


def test_summary_bounded() -> None:
    summary = render(compile_template("{{ x }}"), {"x": "\x1b" * 5000}, one_line=True)
    assert len(summary) <= MAX_SUMMARY
    assert not dirty(summary)


def test_description_keeps_template_lines_not_device_lines() -> None:
    template = compile_template("The link\n{{ ifAlias }}\nwent down.")
    text = render(template, {"ifAlias": HOSTILE}, one_line=False)
    assert not dirty(text, "\n"), text
    assert text.split("\n")[0] == "The link"
    assert text.split("\n")[-1] == "went down."
    assert len(text.split("\n")) == 3, text  # the device's CR LF forged no line


def test_template_failure_note_escaped() -> None:
    template = compile_template("{{ x | duration }}")
    text = render(template, {"x": "\x1b[31m"}, one_line=True)
    assert not dirty(text), text
