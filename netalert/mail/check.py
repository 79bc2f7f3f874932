"""``netalert mail test``: one message through the configured server, now."""

from __future__ import annotations

import time
from collections.abc import Sequence

from netalert.config.models import SmtpConfig
from netalert.mail.errors import MailError
from netalert.mail.render import render_test_message
from netalert.mail.transport import SmtpTarget, send_direct

__all__ = ["mail_test"]


async def mail_test(smtp: SmtpConfig, to: Sequence[str]) -> tuple[bool, str]:
    """Sends a test message to ``to`` through ``[smtp]`` (not the fallback, not the outbox).

    Returns:
        ``(True, report)`` when every recipient was accepted, else
        ``(False, reason)`` with the server and its SMTP code and reply.
    """
    target = SmtpTarget.from_config(smtp)
    message = render_test_message(smtp.from_, list(to), now=time.time())
    try:
        report = await send_direct(target, message, to)
    except MailError as exc:
        code = f" (SMTP {exc.code})" if exc.code is not None else ""
        return False, f"mail test failed{code}: {exc}"
    via = f"{target.label} ({smtp.security})"
    if report.refused:
        lines = [f"mail test: refused by {via}:"]
        lines += [f"  {addr}: {code} {reply}" for addr, code, reply in report.refused]
        if report.accepted:
            lines.append(f"  accepted: {', '.join(report.accepted)}")
        return False, "\n".join(lines)
    return True, f"sent to {', '.join(report.accepted)} via {via}: {report.reply}"
