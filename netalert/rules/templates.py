"""Rule ``summary`` and ``description`` templates: Jinja2 in a sandbox.

Device data is untrusted (an ``ifAlias`` or a trap varbind can be written by
anyone who can send a packet), so templates run in Jinja2's immutable sandbox:
no access to private attributes, no calls to unsafe methods, no mutation. A
value containing ``{{`` is just text: templates are compiled from the config
only, never from data. What a ``{{ ... }}`` writes is escaped
(:func:`netalert.logtext.escape`: a CR, LF, ESC, NUL, bidi override or
zero-width character reads ``\\r``, ``\\n``, ``\\u001b``...), so device text can
neither forge a line of a description nor reach a reader raw; the template's
own line breaks stay. The output is capped in length, and a summary is kept
to one line (it may end up in a mail subject). The unit filters of
:mod:`netalert.units` (``bits``, ``bytes``, ``percent``, ``duration``,
``uptime``) are available.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.environment import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from netalert.logtext import escape
from netalert.present import clip
from netalert.units import FILTERS

__all__ = [
    "DEFAULT_RESOLVED",
    "DEFAULT_RESOLVED_SUMMARY",
    "EMPTY",
    "GLOBALS",
    "AnyTemplate",
    "BuiltinTemplate",
    "TemplateProblem",
    "compile_template",
    "render",
    "template_ast",
]


def _finalize(value: object) -> str:
    """What one ``{{ ... }}`` writes: its text, escaped (device data is untrusted)."""
    return escape(value if isinstance(value, str) else str(value))


_ENV = ImmutableSandboxedEnvironment(
    autoescape=False, keep_trailing_newline=False, finalize=_finalize
)
_ENV.filters.update(FILTERS)
GLOBALS = frozenset(_ENV.globals)  # range, dict, namespace...: names every template has
MAX_SUMMARY = 500
MAX_DESCRIPTION = 8000
MAX_TEMPLATE_CHARS = 16384  # a template's source, at most (compiling costs with its length)
# A resolved alert's summary when its rule has no resolved_summary: the firing claim is
# said as past ("was: ..."), never as present truth next to the value that cleared it.
DEFAULT_RESOLVED_SUMMARY = (
    "resolved after {{ fired_for | duration }}{% if firing_summary %}; was: {{ firing_summary }}"
    "{% endif %}"
)


class TemplateProblem(Exception):  # becomes a config error line
    """A template does not compile; the message names the line."""


def compile_template(text: str) -> Template:
    """Compiles one template.

    Raises:
        TemplateProblem: A Jinja2 syntax error, with its line number; a template
            longer than :data:`MAX_TEMPLATE_CHARS`, or nested past what Jinja2's
            recursive compiler takes.
    """
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error at line {exc.lineno}: {exc.message}") from None
    except RecursionError:
        raise TemplateProblem("template nests too deeply: split it") from None


class BuiltinTemplate:
    """A template of netalert's own text (the built-in alerts'), compiled when it first
    renders: most starts never render one, and compiling them all cost every start
    (``check-config`` too) a few milliseconds."""

    __slots__ = ("_template", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._template: Template | None = None

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Renders it as :meth:`jinja2.Template.render` does."""
        if self._template is None:
            self._template = compile_template(self.text)
        return self._template.render(*args, **kwargs)


AnyTemplate = Template | BuiltinTemplate

# What a rule that leaves its description or resolved_summary out renders: one for all.
EMPTY = BuiltinTemplate("")
DEFAULT_RESOLVED = BuiltinTemplate(DEFAULT_RESOLVED_SUMMARY)


def template_ast(text: str) -> nodes.Template:
    """The syntax tree of a template that compiles (to see which names it reads)."""
    return _ENV.parse(text)


def render(template: AnyTemplate, context: Mapping[str, Any], *, one_line: bool) -> str:
    """Renders a template; a failure renders as a short note rather than raising.

    A template that fails on some device's data (a filter on a missing value, a
    sandbox refusal) must not stop the alert from being recorded and mailed.
    """
    try:
        text = template.render(context)
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        text = escape(f"(template failed: {type(exc).__name__}: {exc})")
    if one_line:
        return clip(" ".join(text.split()), MAX_SUMMARY)
    return clip(text, MAX_DESCRIPTION)
