"""Building the mail stage from the config: one call for ``service.py``.

``build_mail_stage(config, db)`` returns the outbox, the sender (run it as a
task), the mailer (``notify/`` calls ``mailer.submit``), the optional canary
and the stats object ``web/`` reads. Template and TLS problems surface here,
at startup, as :class:`MailError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netalert.config.models import Config
from netalert.mail.bounds import MailLimits
from netalert.mail.canary import Canary
from netalert.mail.mailer import Mailer
from netalert.mail.outbox import Outbox
from netalert.mail.queue import MailQueue
from netalert.mail.render import MailTemplates
from netalert.mail.sender import Sender
from netalert.mail.stats import MailStats
from netalert.mail.transport import SmtpTarget
from netalert.state.db import Database

__all__ = ["MailStage", "build_mail_stage", "mail_limits", "status_url"]


@dataclass(frozen=True, slots=True)
class MailStage:
    """The mail stage's parts, wired to each other."""

    outbox: MailQueue
    sender: Sender
    mailer: Mailer
    canary: Canary | None
    stats: MailStats


def status_url(config: Config) -> str:
    """The link put in mails: ``[smtp].status_url``, else the ``[agent].http`` address."""
    if config.smtp.status_url:
        return config.smtp.status_url
    http = config.agent.http
    if http is None:
        return ""
    host = "localhost" if http.host in ("0.0.0.0", "::") else http.host
    address = f"[{host}]" if ":" in host else host
    return f"http://{address}:{http.port}/" if http.port else f"http://{address}/"


def mail_limits(config: Config) -> MailLimits:
    """The ``[limits]`` that bound each mail."""
    return MailLimits(config.limits.max_alerts_per_mail, config.limits.max_mail_bytes)


def build_mail_stage(
    config: Config,
    db: Database,
    *,
    base_dir: Path | None = None,
    outbox: MailQueue | None = None,
    templates: MailTemplates | None = None,
    tls: Sequence[ssl.SSLContext | None] | None = None,
) -> MailStage:
    """Creates the outbox, sender, mailer and canary of ``config``.

    Args:
        config: The loaded config.
        db: The state database.
        base_dir: The config file's folder, to anchor a relative ``templates_dir``.
        outbox: The outbox to keep (a reload): it knows the writes still held
            in memory, which a new one would not.
        templates: The compiled templates (from :func:`netalert.prepare.prepare`);
            loaded here when None.
        tls: The TLS contexts of ``[smtp]`` and its fallback (the same); built
            by the sender when None.

    Raises:
        MailTemplateError: A user template does not compile (only without ``templates``).
        MailTlsError: A ``ca_file`` cannot be loaded (only without ``tls``).
        StateError: The outbox tables cannot be created.
    """
    smtp = config.smtp
    if templates is None:
        templates_dir = smtp.templates_dir
        if templates_dir is not None and not templates_dir.is_absolute() and base_dir is not None:
            templates_dir = base_dir / templates_dir
        templates = MailTemplates(templates_dir)
    stats = MailStats()
    if outbox is None:
        outbox = Outbox(db)  # a cluster node passes its PostgreSQL queue
    fallback = SmtpTarget.from_config(smtp.fallback) if smtp.fallback is not None else None
    sender = Sender(
        outbox,
        SmtpTarget.from_config(smtp),
        fallback=fallback,
        stats=stats,
        retry_max=smtp.retry_max.total_seconds(),
        max_age=smtp.max_age.total_seconds(),
        batch_size=smtp.batch_size,
        tls=tls,
    )
    mailer = Mailer(
        outbox,
        templates,
        sender=smtp.from_,
        status_url=status_url(config),
        on_enqueue=sender.wake,
        limits=mail_limits(config),
        stats=stats,
    )
    mailer.on_loop_max_alerts = config.agent.mail_render_on_loop_max_alerts
    canary = None
    if smtp.canary_to:
        canary = Canary(
            outbox,
            stats,
            sender=smtp.from_,
            to=smtp.canary_to,
            interval=smtp.canary_interval.total_seconds(),
            threshold=smtp.canary_threshold.total_seconds(),
            fallback=fallback,
            on_enqueue=sender.wake,
        )
    return MailStage(outbox=outbox, sender=sender, mailer=mailer, canary=canary, stats=stats)
