"""A rule's templates as the alert stage asks for them (a :class:`~netalert.alerts.Describer`).

The rules own the templates (compiled once per config, run in the sandbox of
:mod:`netalert.rules.templates`); the alert stage decides when an alert's
annotations change and asks its rule's :class:`TemplateDescriber` to render
them. The built-in alerts' templates (DeviceUnreachable, the caps' summary
alerts) are here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netalert.alerts import Alert
from netalert.rules.mibview import short_name
from netalert.rules.scope import NodeCache
from netalert.rules.templates import DEFAULT_RESOLVED, AnyTemplate, BuiltinTemplate, render

__all__ = ["SUMMARY", "UNREACHABLE", "TemplateDescriber"]


class TemplateDescriber:
    """Renders a rule's ``summary``, ``description`` and ``resolved_summary``.

    Args:
        summary: The summary template (None: the rule has none).
        description: The description template.
        resolved_summary: None: the default ("resolved after ...; was: ...").
        cache: The MIB names of a trap rule, to recall a stored alert's varbinds.
    """

    __slots__ = ("_cache", "_description", "_resolved", "_summary")

    def __init__(
        self,
        summary: AnyTemplate | None = None,
        description: AnyTemplate | None = None,
        resolved_summary: AnyTemplate | None = None,
        cache: NodeCache | None = None,
    ) -> None:
        self._summary = summary
        self._description = description
        self._resolved = resolved_summary or DEFAULT_RESOLVED
        self._cache = cache

    def firing(self, alert: Alert, value: str, context: Mapping[str, Any]) -> dict[str, str] | None:
        """The annotations of a pending or firing alert; None when the rule has no templates."""
        if self._summary is None and self._description is None:
            return None
        names = {
            **context,
            "device": alert.device,
            "labels": alert.labels,
            "value": value,
            "alert": alert,
        }
        out: dict[str, str] = {}
        if self._summary is not None:
            out["summary"] = render(self._summary, names, one_line=True)
        if self._description is not None:
            out["description"] = render(self._description, names, one_line=False)
        origin = context.get("trap_source")
        if origin:
            # where the trap came from, whichever device it was credited to (kept when resolved)
            out["trap_source"] = str(origin)
        return out

    def resolved(self, names: Mapping[str, Any]) -> str:
        """A resolved alert's summary."""
        return render(self._resolved, names, one_line=True)

    def recall(self, alert: Alert, extra: Mapping[str, Any]) -> dict[str, Any]:
        """The names of a stored trap alert: its varbinds by short name and the trap's source."""
        names: dict[str, Any] = {}
        if self._cache is not None:
            conv = self._cache.converter
            names = {
                short_name(vb.name): conv(short_name(vb.name))(vb.value, vb.label)
                for vb in alert.varbinds
                if vb.name and vb.value is not None
            }
        names.update(extra.get("trap", {}))
        names.update(device=alert.device, varbinds=alert.varbinds)
        return names


UNREACHABLE = TemplateDescriber(
    BuiltinTemplate(
        "{{ device }} did not answer {{ failures }} SNMP poll{{ 's' if failures != 1 else '' }}"
        "{{ ' in a row' if failures != 1 else '' }} ({{ value }})"
    ),
    BuiltinTemplate(
        "netalert got no answer from {{ device }}: {{ value }}. Its other poll alerts are held"
        " until it answers again."
    ),
    # Said of the past, and never with the value that cleared it ("answering").
    BuiltinTemplate("{{ device }} answers SNMP again (no answer for {{ fired_for | duration }})"),
)

SUMMARY = TemplateDescriber(
    BuiltinTemplate(
        "{{ suppressed }} more alert{{ '' if suppressed == 1 else 's' }} of rule"
        " {{ labels.rule }} suppressed: {{ cap }}"
    ),
    BuiltinTemplate(
        "New {{ labels.rule }} alerts are not made, nor mailed, while {{ cap }}:"
        " {{ suppressed }} so far, counted in netalert_alerts_suppressed_total. This alert"
        " resolves once the rule is under its caps and nothing more was suppressed for"
        " [limits].suppressed_resolve_after."
    ),
)
