"""Turning a notification into an e-mail: Jinja2 text + HTML, MIME, threading headers.

Templates: ``subject.txt.j2``, ``body.txt.j2`` and ``body.html.j2`` ship in
``netalert/mail/templates``; a file of the same name in ``[smtp].templates_dir``
replaces the default one. A user template that fails to render is logged and
the default is used instead: a typo in a template must not cost an alert.

Every value a template prints passes :func:`~netalert.mail.headers.body_text`
(controls removed) and, in HTML, autoescaping; the rendered subject passes
:func:`~netalert.mail.headers.header_text` (one line, no CR/LF).
"""

from __future__ import annotations

import email.policy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from netalert.logs import event
from netalert.mail.errors import MailTemplateError
from netalert.mail.headers import (
    body_text,
    header_text,
    message_domain,
    thread_ids,
)
from netalert.mail.model import AlertLike, NotificationLike, VarBindLike

__all__ = [
    "TEMPLATE_NAMES",
    "AlertLike",
    "AlertView",
    "MailTemplates",
    "NotificationLike",
    "VarBindView",
    "format_varbind_value",
    "render_notification",
    "render_test_message",
]

log = logging.getLogger("netalert.mail")

TEMPLATE_NAMES = ("subject.txt.j2", "body.txt.j2", "body.html.j2")
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# labels every alert has; shown in their own lines, not among "Labels"
_OWN_LABELS = frozenset({"rule", "alertname", "severity", "device"})


@dataclass(frozen=True, slots=True)
class VarBindView:
    """A varbind as templates print it: ``IF-MIB::ifOperStatus.3`` = ``down(2)``."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert prepared for templates (times formatted, labels ordered)."""

    state: str
    rule: str
    severity: str
    device: str
    summary: str
    description: str
    value: str
    since: str
    duration: str
    ended: str
    count: int
    flapping: bool
    source: str
    labels: tuple[tuple[str, str], ...]
    varbinds: tuple[VarBindView, ...]
    alert: Any


def format_varbind_value(vb: VarBindLike) -> str:
    """A varbind's value for humans: enum label with its number, text, or hex."""
    value = vb.value
    if vb.label:
        return f"{vb.label}({value})" if isinstance(value, int) else vb.label
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex()
        # binary that happens to decode (MAC addresses, counters) reads better as hex
        if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            return "0x" + value.hex()
        return f'"{text}"'
    return str(value)


def _varbind_name(vb: VarBindLike) -> str:
    if vb.name:
        return f"{vb.name}.{vb.index}" if vb.index else vb.name
    return vb.oid


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts[:2])


def _line(value: object) -> str:
    # one-line fields stay one line in the body too: a forged "x\r\nBcc: y" must not
    # look like a line of its own to the reader
    return header_text(value, limit=1000)


def _view(alert: AlertLike, now: float) -> AlertView:
    ended = alert.ends_at
    extra = sorted((_line(k), _line(v)) for k, v in alert.labels.items() if k not in _OWN_LABELS)
    return AlertView(
        state="RESOLVED" if ended is not None else "FIRING",
        rule=_line(alert.rule),
        severity=_line(alert.severity),
        device=_line(alert.device),
        summary=_line(alert.annotations.get("summary", "")),
        description=body_text(alert.annotations.get("description", "")).strip(),
        value=_line(alert.value),
        since=_when(alert.starts_at),
        duration=_duration((ended if ended is not None else now) - alert.starts_at),
        ended=_when(ended) if ended is not None else "",
        count=alert.count,
        flapping=alert.flapping,
        source=alert.source,
        labels=tuple(extra),
        varbinds=tuple(
            VarBindView(_line(_varbind_name(vb)), _line(format_varbind_value(vb)))
            for vb in alert.varbinds
        ),
        alert=alert,
    )


def _one_or_more(values: Sequence[str]) -> str:
    distinct = list(dict.fromkeys(v for v in values if v))
    if not distinct:
        return ""
    return distinct[0] if len(distinct) == 1 else f"{distinct[0]} (+{len(distinct) - 1} more)"


def _finalize(value: Any) -> Any:
    # Markup is already safe HTML (the output of a filter like |safe); strings pass body_text
    if value is None or isinstance(value, Markup | int | float):
        return "" if value is None else value
    return body_text(value)


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    return jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False
        ),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class MailTemplates:
    """The default templates, and the user's overrides when a folder is given."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        """Loads and compiles the templates.

        Raises:
            MailTemplateError: ``templates_dir`` is not a folder, or a template in
                it does not compile (the message names the file and line).
        """
        self.templates_dir = templates_dir
        self._default = _environment(jinja2.PackageLoader("netalert.mail", "templates"))
        self._user: jinja2.Environment | None = None
        if templates_dir is None:
            return
        if not templates_dir.is_dir():
            raise MailTemplateError(f"smtp.templates_dir: {templates_dir} is not a folder")
        self._user = _environment(jinja2.FileSystemLoader(str(templates_dir)))
        for name in TEMPLATE_NAMES:
            if (templates_dir / name).is_file():
                try:
                    self._user.get_template(name)
                except jinja2.TemplateSyntaxError as exc:
                    raise MailTemplateError(
                        f"{templates_dir / name}:{exc.lineno}: {exc.message}"
                    ) from exc

    def overridden(self, name: str) -> bool:
        """Whether the user supplies ``name``."""
        return self.templates_dir is not None and (self.templates_dir / name).is_file()

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Renders ``name``; a failing user template falls back to the default."""
        if self._user is not None and self.overridden(name):
            try:
                return self._user.get_template(name).render(context)
            except Exception as exc:  # any error of a user's template: keep the alert
                log.error(
                    event(
                        "mail_template_failed",
                        template=name,
                        error=str(exc),
                        note="using the default",
                    )
                )
        return self._default.get_template(name).render(context)


def render_notification(
    notification: NotificationLike,
    *,
    templates: MailTemplates,
    sender: str,
    status_url: str,
    known_root: str | None = None,
) -> EmailMessage:
    """Builds the multipart/alternative mail for one notification.

    Args:
        notification: The group to mail.
        templates: The loaded templates.
        sender: The From address (``[smtp].from``).
        status_url: Link to the status page ("" for none).
        known_root: The Message-ID this group's episode started with, when
            recorded (see :func:`~netalert.mail.headers.thread_ids`).
    """
    now = notification.created
    views = sorted(
        (_view(a, now) for a in notification.alerts),
        key=lambda v: (v.state == "RESOLVED", _SEVERITY_ORDER.get(v.severity, 9), v.since),
    )
    firing = [v for v in views if v.state == "FIRING"]
    resolved = [v for v in views if v.state == "RESOLVED"]
    headline = firing or resolved
    severity = min(
        (v.severity for v in headline), key=lambda s: _SEVERITY_ORDER.get(s, 9), default=""
    )
    context: dict[str, Any] = {
        "state": "FIRING" if firing else "RESOLVED",
        "severity": severity,
        "rule": _one_or_more([v.rule for v in headline]),
        "device": _one_or_more([v.device for v in headline]),
        "alerts": views,
        "firing": firing,
        "resolved": resolved,
        "route": notification.route,
        "group_labels": sorted((_line(k), _line(v)) for k, v in notification.group_labels.items()),
        "reason": str(notification.reason),
        "status_url": status_url,
        "created": _when(now),
        "notification": notification,
    }
    subject = header_text(templates.render("subject.txt.j2", context)) or "netalert"
    context["subject"] = subject
    text = templates.render("body.txt.j2", context)
    html = templates.render("body.html.j2", context)
    starts = [a.starts_at for a in notification.alerts]
    ids = thread_ids(
        group_key=notification.group_key,
        reason=str(notification.reason),
        episode_start=min(starts, default=now),
        created=now,
        alert_keys=[f"{a.fingerprint}:{a.starts_at}:{a.ends_at}" for a in notification.alerts],
        domain=message_domain(sender),
        known_root=known_root,
    )
    msg = _message(sender, notification.recipients, subject, now, ids.message_id)
    if ids.in_reply_to is not None:
        msg["In-Reply-To"] = ids.in_reply_to
        msg["References"] = " ".join(ids.references)
    msg["X-Netalert-State"] = context["state"].lower()
    if severity:
        msg["X-Netalert-Severity"] = header_text(severity, limit=20)
    # One header per rule, each the exact name, so filters match any rule of the mail
    # (rule names come from the config: at most one per configured rule).
    for rule in dict.fromkeys(v.rule for v in views if v.rule):
        msg["X-Netalert-Rule"] = header_text(rule, limit=200)
    if context["device"]:
        msg["X-Netalert-Device"] = header_text(context["device"], limit=120)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _message(
    sender: str, recipients: Sequence[str], subject: str, now: float, message_id: str
) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    msg["Message-ID"] = message_id
    # RFC 3834: tells vacation responders and ticket systems not to answer
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def render_test_message(
    sender: str, recipients: Sequence[str], *, now: float, note: str = ""
) -> EmailMessage:
    """A short test mail (``netalert mail test`` and the mail-path canary)."""
    ids = thread_ids(
        group_key="netalert-test",
        reason="new",
        episode_start=now,
        created=now,
        alert_keys=(),
        domain=message_domain(sender),
    )
    msg = _message(sender, recipients, "[TEST] netalert mail test", now, ids.message_id)
    msg["X-Netalert-State"] = "test"
    body = (
        "This is a test message from netalert.\n\n"
        f"Sent {_when(now)} to {', '.join(recipients)}.\n"
        "If you read this, alert mail reaches this mailbox.\n"
    )
    if note:
        body += f"\n{body_text(note)}\n"
    msg.set_content(body)
    return msg
