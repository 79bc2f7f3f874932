"""What the rule engine asks the poller for: a trap rule's confirm poll.

The engine reads the poller's own :class:`~netalert.snmp.rows.PollResult`
(scalars and table rows joined by index, counter rates computed). A trap rule
with ``confirm`` makes it emit :class:`ConfirmRequest` values (see
:meth:`netalert.alerting.Alerting.confirm_requests`): the poller GETs ``oids``
from ``device`` at once and hands the answer back as a PollResult to
:meth:`~netalert.alerting.Alerting.on_confirm`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfirmRequest"]


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Please GET these instances from this device now (a trap rule's ``confirm``).

    ``names`` are full instance names (``IF-MIB::ifOperStatus.3``), ``oids`` the
    same as dotted numbers. ``fingerprint`` identifies the alert to confirm;
    hand the answer, as a PollResult whose rows carry ``index``, to
    ``Alerting.on_confirm(request, result, now)``.
    """

    rule: str
    fingerprint: str
    device: str
    index: str
    names: tuple[str, ...]
    oids: tuple[str, ...]
    requested: float
