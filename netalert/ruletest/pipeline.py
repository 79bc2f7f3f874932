"""The agent's rules → alerts → notify → mail-rendering path, driven by a virtual clock.

Rule tests and ``netalert replay`` use it. It wires the same objects the
service wires (the rules and the alert stage, :class:`~netalert.alerting.Alerting`,
with an in-memory :class:`~netalert.alerts.store.MemoryAlertStore`, a
:class:`~netalert.notify.dispatcher.Dispatcher` with its notification log,
the mail renderer) and hands them the same calls in the same order: each
input's transitions go to the dispatcher, then due groups are flushed; a
tick every second does what the service's ticker does. Nothing reads a
clock: every call takes ``now``. Nothing opens a socket; a notification is
rendered and handed to ``on_notification`` (replay ``--mail`` enqueues it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from netalert.alerting import Alerting
from netalert.alerts.model import Alert, Transition
from netalert.config.models import Maintenance
from netalert.mail.render import MailTemplates, render_notification
from netalert.mail.wiring import status_url
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.model import Notification
from netalert.notify.nflog import NotificationLog
from netalert.notify.silences import Silence
from netalert.poll.rows import PollResult
from netalert.prepare import Prepared
from netalert.snmp.types import TrapEvent
from netalert.state import open_database

__all__ = ["Pipeline", "Sent", "Step"]


@dataclass(frozen=True, slots=True)
class Step:
    """One alert transition and when it happened (virtual seconds since the epoch)."""

    time: float
    transition: Transition


@dataclass(frozen=True, slots=True)
class Sent:
    """One notification and the e-mail it renders to."""

    time: float
    notification: Notification
    message: EmailMessage

    @property
    def subject(self) -> str:
        """The rendered subject line."""
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(("plain",))
        return "" if part is None else str(part.get_content())


class Pipeline:
    """Rules, alerts, notify and mail rendering on a virtual clock."""

    def __init__(
        self,
        prepared: Prepared,
        *,
        templates: MailTemplates,
        silences: Sequence[Silence] = (),
        maintenance: Sequence[Maintenance] = (),
        on_notification: Callable[[Sent], None] | None = None,
        on_transition: Callable[[Step], None] | None = None,
        keep: bool = True,
    ) -> None:
        """Builds the stages of ``prepared`` with an empty alert state.

        ``keep`` False keeps only the counts (``transitions``, ``notifications``)
        instead of every step and notification: a long replay stays small.

        Raises:
            StateError: The in-memory notification log cannot be created.
        """
        config = prepared.config
        self.prepared = prepared
        self.engine = Alerting(config, prepared.tree, rules=prepared.rules)
        self.store = self.engine.table
        self.silences = list(silences)
        self._db = open_database(None)
        self.maintenance = [*config.maintenance, *maintenance]
        self.dispatcher = Dispatcher(
            config.routes,
            nflog=NotificationLog(self._db),
            maintenance=self.maintenance,
            inhibit=config.inhibit,
            silences=lambda now: [s for s in self.silences if s.ends_at > now],
        )
        self._templates = templates
        self._sender = config.smtp.from_
        self._status_url = status_url(config)
        self._on_notification = on_notification
        self._on_transition = on_transition
        self.steps: list[Step] = []
        self.sent: list[Sent] = []
        self.transitions = 0
        self.notifications = 0
        self._keep = keep

    def close(self) -> None:
        """Releases the in-memory database."""
        self._db.close()

    # --- inputs (each returns the transitions it caused) ----------------------------------

    def poll(self, result: PollResult, now: float) -> list[Transition]:
        """A device answered a poll."""
        return self._after(self.engine.on_poll(result, now), now)

    def unreachable(
        self, device: str, now: float, reason: str = "timeout", *, failures: int = 1
    ) -> list[Transition]:
        """A device did not answer a poll (after its retries), the ``failures``-th in a row."""
        return self._after(
            self.engine.device_unreachable(device, now, reason, failures=failures), now
        )

    def reachable(self, device: str, now: float) -> list[Transition]:
        """A device answered again after unanswered polls."""
        return self._after(self.engine.device_reachable(device, now), now)

    def trap(self, event: TrapEvent, now: float) -> list[Transition]:
        """The receiver accepted a trap."""
        return self._after(self.engine.on_trap(event, now), now)

    def tick(self, now: float) -> list[Transition]:
        """What the service's ticker does each second: ``for``, ``resolve_after``, group flushes.

        Confirm requests are taken (so their schedule advances) but not polled:
        in virtual time a trap alert's ``confirm`` is answered by the device's
        regular polls, which count too.
        """
        out = self._after(self.engine.tick(now), now)
        self.engine.confirm_requests(now)
        self._flush(now)
        return out

    def drain(self, now: float) -> None:
        """What a stop does: every group still waiting is told now."""
        self._flush(now, force=True)

    # --- state -------------------------------------------------------------------------

    def active(self) -> list[Alert]:
        """The pending and firing alerts."""
        return self.store.active()

    def muted(self, alert: Alert, now: float) -> str | None:
        """Why ``alert`` would not be mailed now (silence, maintenance...), None if it would."""
        return self.dispatcher.muted([alert], now).get(alert.fingerprint)

    # --- internals ---------------------------------------------------------------------

    def _after(self, transitions: list[Transition], now: float) -> list[Transition]:
        if not transitions:
            return transitions
        for transition in transitions:
            step = Step(now, transition)
            self.transitions += 1
            if self._keep:
                self.steps.append(step)
            if self._on_transition is not None:
                self._on_transition(step)
            self.dispatcher.update(transition.alert, now)
        self._flush(now)
        return transitions

    def _flush(self, now: float, *, force: bool = False) -> None:
        for notification in self.dispatcher.flush(now, force=force):
            message = render_notification(
                notification,
                templates=self._templates,
                sender=self._sender,
                status_url=self._status_url,
            )
            with self._db.transaction() as conn:
                self.dispatcher.sent(conn, notification)
            sent = Sent(now, notification, message)
            self.notifications += 1
            if self._keep:
                self.sent.append(sent)
            if self._on_notification is not None:
                self._on_notification(sent)
