"""Expected against got: the pure comparison of a rule test, as diff lines.

A line starting ``"  "`` matched, ``"- "`` was expected and not found,
``"+ "`` was found and not expected. Every value that came from the rules or
the test (labels, subjects) is shown quoted, so a control character or a
space in it cannot blur the diff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from netalert.alerts.model import Alert
from netalert.config.types import format_duration
from netalert.logtext import escape
from netalert.ruletest.pipeline import Sent
from netalert.ruletest.spec import ExpectedAlert, ExpectedNotification

__all__ = ["alert_diff", "notification_diff", "subject_matches"]

_OWN = frozenset({"rule"})


def _labels(labels: Mapping[str, str]) -> str:
    shown = ", ".join(
        f'{k}="{escape(v, quoted=True)}"' for k, v in sorted(labels.items()) if k not in _OWN
    )
    return "{" + shown + "}"


def _expected_alert(e: ExpectedAlert) -> str:
    return f"{e.state:7} {e.rule}{_labels(e.labels)}"


def _got_alert(a: Alert) -> str:
    return f"{a.state.value:7} {a.rule}{_labels(a.labels)}"


def _matches(e: ExpectedAlert, a: Alert) -> bool:
    return (
        e.rule == a.rule
        and e.state == a.state.value
        and all(a.labels.get(k) == v for k, v in e.labels.items())
    )


def alert_diff(expected: Sequence[ExpectedAlert], got: Sequence[Alert]) -> list[str] | None:
    """Diff lines when the active alerts differ from ``expected``, None when they match.

    Each expected alert takes the first unmatched alert with its rule, state
    and every label it lists (labels it leaves out are not compared).
    """
    free = list(got)
    matched: list[str] = []
    missing: list[tuple[str, str]] = []
    for e in expected:
        hit = next((a for a in free if _matches(e, a)), None)
        if hit is None:
            missing.append((e.rule, "- " + _expected_alert(e)))
        else:
            free.remove(hit)
            matched.append("  " + _expected_alert(e))
    if not missing and not free:
        return None
    extra = [(a.rule, "+ " + _got_alert(a)) for a in free]
    # Same rule together, "-" before "+": a wrong state reads as one change.
    changed = [line for _, line in sorted(missing + extra, key=lambda x: (x[0], x[1][0] == "+"))]
    return matched + changed


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` is ``pattern``, each ``*`` in it standing for any text."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, subject, re.DOTALL) is not None


def _notification_ok(e: ExpectedNotification, s: Sent) -> bool:
    n = s.notification
    return (
        (e.route is None or e.route == n.route)
        and (e.to is None or sorted(e.to) == sorted(n.recipients))
        and (e.reason is None or e.reason == str(n.reason))
        and (e.subject is None or subject_matches(e.subject, s.subject))
        and (e.body is None or e.body in s.text)
    )


def _q(text: str) -> str:
    return '"' + escape(text, quoted=True) + '"'


def _expected_note(e: ExpectedNotification) -> str:
    parts = []
    if e.route is not None:
        parts.append(f"route={_q(e.route)}")
    if e.to is not None:
        parts.append(f"to={_q(','.join(e.to))}")
    if e.reason is not None:
        parts.append(f"reason={e.reason}")
    if e.subject is not None:
        parts.append(f"subject={_q(e.subject)}")
    if e.body is not None:
        parts.append(f"body~{_q(e.body)}")
    return " ".join(parts)


def _got_note(s: Sent, start: float, e: ExpectedNotification | None) -> str:
    n = s.notification
    parts = [
        f"at={format_duration_s(s.time - start)}",
        f"route={_q(n.route)}",
        f"to={_q(','.join(n.recipients))}",
        f"reason={n.reason}",
        f"subject={_q(s.subject)}",
    ]
    if e is not None and e.body is not None and e.body not in s.text:
        parts.append(f"body lacks {_q(e.body)}")
    return " ".join(parts)


def format_duration_s(seconds: float) -> str:
    """``90.0`` → ``1m30s``."""
    from datetime import timedelta

    return format_duration(timedelta(seconds=max(0.0, seconds)))


def notification_diff(
    expected: Sequence[ExpectedNotification], got: Sequence[Sent], start: float
) -> list[str] | None:
    """Diff lines when the notifications sent differ from ``expected`` (in order), else None."""
    lines: list[str] = []
    bad = len(expected) != len(got)
    for i in range(max(len(expected), len(got))):
        e = expected[i] if i < len(expected) else None
        s = got[i] if i < len(got) else None
        if e is not None and s is not None and _notification_ok(e, s):
            lines.append("  " + _got_note(s, start, None))
            continue
        bad = True
        if e is not None:
            lines.append("- " + _expected_note(e))
        if s is not None:
            lines.append("+ " + _got_note(s, start, e))
    return lines if bad else None
