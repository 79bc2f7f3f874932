"""Turning a notification into an e-mail: Jinja2 text + HTML, MIME, threading headers.

Templates: ``subject.txt.j2``, ``body.txt.j2`` and ``body.html.j2`` ship in
``netalert/mail/templates``; a file of the same name in ``[smtp].templates_dir``
replaces the default one. A user template that fails to render is logged and
the default is used instead: a typo in a template must not cost an alert.

Every value a template prints passes :func:`~netalert.mail.headers.body_text`
(controls removed) and, in HTML, autoescaping; the rendered subject passes
:func:`~netalert.mail.headers.header_text` (one line, no CR/LF).

A mail is bounded (:class:`~netalert.mail.bounds.MailLimits`, ``[limits]``): it
lists at most ``max_alerts`` alerts of the group in full and counts the rest,
and it is at most ``max_bytes`` long; values are cut to fit, marked
``[truncated]`` (:func:`render_mail`). The work is bounded too: only the
listed alerts are formatted, each within its budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from netalert.logs import event
from netalert.mail.bounds import MailLimits, Selection, importance, select_alerts, severity_rank
from netalert.mail.errors import MailTemplateError
from netalert.mail.headers import (
    ThreadIds,
    body_text,
    header_text,
    message_domain,
    thread_ids,
)
from netalert.mail.mime import Draft
from netalert.mail.model import AlertLike, NotificationLike
from netalert.mail.views import AlertView, VarBindView, alert_view, format_varbind_value, line, when
from netalert.units import FILTERS

__all__ = [
    "MAIL_NAMES",
    "TEMPLATE_NAMES",
    "AlertLike",
    "AlertView",
    "MailTemplates",
    "NotificationLike",
    "RenderedMail",
    "VarBindView",
    "format_varbind_value",
    "render_mail",
    "render_notification",
    "render_test_message",
]

log = logging.getLogger("netalert.mail")

TEMPLATE_NAMES = ("subject.txt.j2", "body.txt.j2", "body.html.j2")
# What every mail's templates see (_group_context, then _compose): a name of a user's
# template outside these writes nothing (a check-config warning).
MAIL_NAMES = frozenset(
    {
        *("state", "severity", "rule", "device", "alert_count", "firing_count"),
        *("resolved_count", "route", "group_labels", "reason", "status_url", "created"),
        *("notification", "acks", "alerts", "firing", "resolved", "more", "more_firing"),
        *("more_resolved", "more_line", "subject"),
    }
)
# A mail is rendered at most this many times to fit max_bytes, each time with a
# smaller budget per alert; the last try lists no alert in full.
_TRIES = 4
_MIN_BUDGET = 200  # characters of device data per listed alert; fewer alerts are listed below it


def _one_or_more(values: Iterable[str]) -> str:
    # distinct raw values first: a group of thousands has few rules and devices
    distinct = list(dict.fromkeys(line(v) for v in dict.fromkeys(values) if v))
    distinct = [v for v in distinct if v]
    if not distinct:
        return ""
    return distinct[0] if len(distinct) == 1 else f"{distinct[0]} (+{len(distinct) - 1} more)"


def _finalize(value: Any) -> Any:
    # Markup is already safe HTML (the output of a filter like |safe); strings pass body_text
    if type(value) is str and value.isprintable():  # what body_text returns unchanged
        return value
    if value is None or isinstance(value, Markup | int | float):
        return "" if value is None else value
    return body_text(value)


def _environment(loader: jinja2.BaseLoader, *, auto_reload: bool = True) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        auto_reload=auto_reload,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False
        ),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


class MailTemplates:
    """The default templates, and the user's overrides when a folder is given."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        """Loads and compiles the templates.

        Raises:
            MailTemplateError: ``templates_dir`` is not a folder, or a template in
                it does not compile (the message names the file and line).
        """
        self.templates_dir = templates_dir
        # the package's own templates do not change while the agent runs: compiled once,
        # when first rendered (not at every start: a hundredth of a second, and most
        # starts, check-config's, send no mail), then rendered without a look at the
        # files (a stat each) or the environment's cache
        self._default = _environment(
            jinja2.PackageLoader("netalert.mail", "templates"), auto_reload=False
        )
        self._compiled: dict[str, jinja2.Template] = {}
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
                except RecursionError:  # Jinja2 compiles recursively
                    raise MailTemplateError(
                        f"{templates_dir / name}: the template nests too deeply"
                    ) from None

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
        return self._builtin(name).render(context)

    def _builtin(self, name: str) -> jinja2.Template:
        template = self._compiled.get(name)
        if template is None:
            if name not in TEMPLATE_NAMES:
                raise KeyError(name)
            template = self._default.get_template(name)
            # A template's globals are a chain of its own and the environment's, walked
            # twice per render; this environment is private and its globals never change,
            # so one flat copy says the same at a fraction of the cost.
            template.globals = dict(template.globals)
            self._compiled[name] = template
        return template


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A rendered mail and what its bounds left out.

    Attributes:
        draft: The mail as composed (its headers: ``draft.get(name)``).
        omitted: Alerts of the group not listed in full (counted in the mail).
        clipped: Values, varbinds or whole alerts were cut to fit ``max_bytes``.
        data: The mail serialized for SMTP (CRLF), at most ``max_bytes`` long;
            the outbox stores these bytes.
    """

    draft: Draft
    omitted: int
    clipped: bool
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The mail as an ``EmailMessage``, built when asked for (its bytes are :attr:`data`)."""
        return self.draft.message()


def render_notification(
    notification: NotificationLike,
    *,
    templates: MailTemplates,
    sender: str,
    status_url: str,
    known_root: str | None = None,
    limits: MailLimits | None = None,
) -> EmailMessage:
    """Builds the multipart/alternative mail for one notification (see :func:`render_mail`)."""
    return render_mail(
        notification,
        templates=templates,
        sender=sender,
        status_url=status_url,
        known_root=known_root,
        limits=limits,
    ).message


def render_mail(
    notification: NotificationLike,
    *,
    templates: MailTemplates,
    sender: str,
    status_url: str,
    known_root: str | None = None,
    limits: MailLimits | None = None,
    reply: tuple[str, str] | None = None,
    acks: Mapping[str, str] | None = None,
) -> RenderedMail:
    """Builds the multipart/alternative mail for one notification, within ``limits``.

    The mail lists at most ``limits.max_alerts`` alerts (most important first)
    and counts the rest. If it is longer than ``limits.max_bytes``, it is
    rendered again with less device data per alert (a few times at most), then
    with no alert listed in full, and as a last resort as a short text saying
    how many alerts the group holds; so the result always fits.

    Args:
        notification: The group to mail.
        templates: The loaded templates.
        sender: The From address (``[smtp].from``).
        status_url: Link to the status page ("" for none).
        known_root: The Message-ID this group's episode started with, when
            recorded (see :func:`~netalert.mail.headers.thread_ids`).
        limits: The bounds; default :class:`~netalert.mail.bounds.MailLimits`.
        reply: ``[ack]`` (issue 17): the ``Reply-To`` address and the token's
            reference added to ``References`` (see :mod:`netalert.ack.issuer`).
        acks: ``[ack]``: who acknowledged which alert, by fingerprint (the
            templates' ``acks``).
    """
    limits = limits if limits is not None else MailLimits()
    now = notification.created
    alerts = notification.alerts
    chosen = select_alerts(alerts, limits.max_alerts)
    group = _group_context(notification, status_url)
    group["acks"] = dict(acks or {})  # [ack] (issue 17)
    ids = thread_ids(
        group_key=notification.group_key,
        reason=str(notification.reason),
        episode_start=min((a.starts_at for a in alerts), default=now),
        created=now,
        alert_keys=[f"{a.fingerprint}:{a.starts_at}:{a.ends_at}" for a in alerts],
        domain=message_domain(sender),
        known_root=known_root,
    )
    if reply is not None:  # [ack] (issue 17)
        ids = replace(ids, reply_to=reply[0], references=(*ids.references, reply[1]))
    # A first guess that fits most groups at once: the text and HTML parts both
    # print each value, HTML adds markup and escapes, the transfer encoding a third.
    listed = len(chosen.shown)
    budget = limits.max_bytes // (5 * max(1, listed))
    clipped = False
    for attempt in range(_TRIES):
        if attempt == _TRIES - 1:
            listed = 0
        elif budget < _MIN_BUDGET:
            # too many alerts for the bytes: list fewer, each with a useful budget
            listed = listed * budget // _MIN_BUDGET
            budget = _MIN_BUDGET
        shown = chosen.first(listed)
        clipped |= len(shown.shown) < len(chosen.shown)
        views: list[AlertView] = []
        for alert in shown.shown:
            view, cut = alert_view(alert, now, budget)
            views.append(view)
            clipped |= cut
        message = _compose(
            notification, templates, group, shown, views, sender=sender, ids=ids, now=now
        )
        data = message.as_bytes()  # as email.policy.SMTP writes it: what the outbox stores
        size = len(data)
        if size <= limits.max_bytes:
            return RenderedMail(message, shown.more, clipped, data)
        if not listed:
            break
        clipped = True
        # shrink by more than the overshoot: part of each alert's size is markup
        budget = int(budget * limits.max_bytes / size / 2)
    chosen = chosen.first(0)
    log.warning(
        event(
            "mail_too_big",
            group=notification.group_key,
            alerts=len(alerts),
            max_mail_bytes=limits.max_bytes,
        )
    )
    message = _counts_only(notification, group, chosen, limits, sender=sender, ids=ids, now=now)
    return RenderedMail(message, chosen.more, True, message.as_bytes())


def _group_context(notification: NotificationLike, status_url: str) -> dict[str, Any]:
    """What the templates see of the whole group, whichever alerts are listed."""
    alerts = notification.alerts
    firing = [a for a in alerts if a.ends_at is None]
    headline = firing or list(alerts)
    severities = {line(s) for s in {a.severity for a in headline}}
    severity = min(severities, key=severity_rank, default="")
    # the most important alert names the group; the others are counted
    top = [min(headline, key=importance)] if headline else []
    return {
        "state": "FIRING" if firing else "RESOLVED",
        "severity": severity,
        "rule": _one_or_more(a.rule for a in (*top, *headline)),
        "device": _one_or_more(a.device for a in (*top, *headline)),
        "alert_count": len(alerts),
        "firing_count": len(firing),
        "resolved_count": len(alerts) - len(firing),
        "route": notification.route,
        "group_labels": sorted((line(k), line(v)) for k, v in notification.group_labels.items()),
        "reason": str(notification.reason),
        "status_url": status_url,
        "created": when(notification.created),
        "notification": notification,
    }


def _compose(
    notification: NotificationLike,
    templates: MailTemplates,
    group: Mapping[str, Any],
    chosen: Selection[AlertLike],
    views: Sequence[AlertView],
    *,
    sender: str,
    ids: ThreadIds,
    now: float,
) -> Draft:
    context: dict[str, Any] = {
        **group,
        "alerts": list(views),
        "firing": [v for v in views if v.state == "FIRING"],
        "resolved": [v for v in views if v.state == "RESOLVED"],
        "more": chosen.more,
        "more_firing": chosen.more_firing,
        "more_resolved": chosen.more_resolved,
        "more_line": chosen.more_line(),
    }
    subject = header_text(templates.render("subject.txt.j2", context)) or "netalert"
    context["subject"] = subject
    text = templates.render("body.txt.j2", context)
    html = templates.render("body.html.j2", context)
    msg = _headed(notification, group, subject, sender=sender, ids=ids, now=now)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def _counts_only(
    notification: NotificationLike,
    group: Mapping[str, Any],
    chosen: Selection[AlertLike],
    limits: MailLimits,
    *,
    sender: str,
    ids: ThreadIds,
    now: float,
) -> Draft:
    """The last resort: a short text mail with the group's counts and no device data."""
    count = group["firing_count"] if group["state"] == "FIRING" else group["resolved_count"]
    subject = header_text(
        f"[{group['state']}:{count}] {group['severity']} {group['rule']}", limit=200
    )
    msg = _headed(notification, group, subject, sender=sender, ids=ids, now=now)
    body = (
        f"{group['state']}: {group['firing_count']:,} firing, "
        f"{group['resolved_count']:,} resolved - {group['rule']}\n\n"
        f"{chosen.more_line()}\n\n"
        f"The alerts of this group do not fit in [limits].max_mail_bytes "
        f"({limits.max_bytes:,} bytes).\n"
    )
    if group["status_url"]:
        body += f"Status page: {group['status_url']}\n"
    msg.set_content(body_text(body))
    return msg


def _headed(
    notification: NotificationLike,
    group: Mapping[str, Any],
    subject: str,
    *,
    sender: str,
    ids: ThreadIds,
    now: float,
) -> Draft:
    msg = _message(sender, notification.recipients, subject, now, ids.message_id)
    if ids.in_reply_to is not None:
        msg["In-Reply-To"] = ids.in_reply_to
    if ids.references:
        msg["References"] = " ".join(ids.references)
    if ids.reply_to is not None:  # [ack] (issue 17)
        msg["Reply-To"] = ids.reply_to
    msg["X-Netalert-State"] = group["state"].lower()
    if group["severity"]:
        msg["X-Netalert-Severity"] = header_text(group["severity"], limit=20)
    # One header per rule, each the exact name, so filters match any rule of the mail
    # (rule names come from the config: at most one per configured rule).
    for rule in dict.fromkeys(
        a.rule for a in sorted(notification.alerts, key=importance) if a.rule
    ):
        msg["X-Netalert-Rule"] = header_text(rule, limit=200)
    if group["device"]:
        msg["X-Netalert-Device"] = header_text(group["device"], limit=120)
    return msg


def _message(
    sender: str, recipients: Sequence[str], subject: str, now: float, message_id: str
) -> Draft:
    # a Draft writes what EmailMessage(policy=email.policy.SMTP) would, at a tenth of the cost
    msg = Draft()
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
        f"Sent {when(now)} to {', '.join(recipients)}.\n"
        "If you read this, alert mail reaches this mailbox.\n"
    )
    if note:
        body += f"\n{body_text(note)}\n"
    msg.set_content(body)
    return msg.message()
