"""The outgoing half: a token for each alert mail, its headers, and its row.

:meth:`TokenIssuer.issue` is called by the mailer (``mail/mailer.py``) for a
notification with firing alerts when ``[ack]`` is configured. The mail then
gets ``Reply-To: <reply_to with the token>`` and ``<ack.TOKEN@domain>`` in its
``References`` (so a reply sent to the plain address still carries it), and the
token's row is written in the same transaction as the mail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from netalert.ack.config import TOKEN_FIELD, AckConfig
from netalert.ack.stats import AckStats
from netalert.ack.store import AckStore, AckTables, TokenAlert, ack_text, is_acked
from netalert.ack.token import make_token
from netalert.alerts.model import Alert

__all__ = ["ReplyHeaders", "TokenIssuer"]


@dataclass(frozen=True, slots=True)
class ReplyHeaders:
    """What one mail carries: its Reply-To, the token's reference, and the token's row."""

    reply_to: str
    reference: str
    nid: str
    alerts: tuple[TokenAlert, ...]
    expires: float

    recorder: Callable[..., None] = AckStore.record_token

    def record(self, conn: Any, message_id: str, subject: str, now: float) -> None:
        """Writes the token's row inside the mail's transaction."""
        self.recorder(
            conn,
            nid=self.nid,
            message_id=message_id,
            subject=subject,
            alerts=self.alerts,
            expires=self.expires,
            now=now,
        )


class TokenIssuer:
    """Makes the reply headers of alert mails under one key."""

    def __init__(
        self,
        config: AckConfig,
        key: bytes,
        *,
        stats: AckStats | None = None,
        store: AckTables | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.key = key
        self.stats = stats
        self.store = store
        self.clock = clock

    def ack_lines(self, firing: Sequence[Alert]) -> dict[str, str]:
        """Who acknowledged which of ``firing``, by fingerprint (for the mail's templates)."""
        if self.store is None or not firing:
            return {}
        acks = self.store.acks()
        return {a.fingerprint: ack_text(acks[a.fingerprint]) for a in firing if is_acked(a, acks)}

    def issue(self, firing: tuple[Alert, ...], domain: str) -> ReplyHeaders | None:
        """The headers for a mail listing ``firing``; None when nothing fires."""
        if not firing:
            return None
        expires = int(self.clock() + self.config.token_expiry.total_seconds())
        alerts = tuple(TokenAlert(a.fingerprint, dict(a.labels)) for a in firing)
        nid, token = make_token(self.key, (a.fingerprint for a in alerts), expires)
        if self.stats is not None:
            self.stats.tokens_issued += 1
        return ReplyHeaders(
            reply_to=self.config.reply_to.replace(TOKEN_FIELD, token),
            reference=f"<ack.{token}@{domain}>",
            nid=nid,
            alerts=alerts,
            expires=float(expires),
            recorder=self.store.record_token if self.store is not None else AckStore.record_token,
        )
