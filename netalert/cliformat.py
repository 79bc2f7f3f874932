"""How the ``netalert`` commands present themselves in ``--help``.

Typer derives a type column from each annotation (``<bool>``, ``<str>``) and
writes required arguments as ``{device}`` in the usage line. People read
``--json`` as a flag and ``DEVICE`` as the thing to type, so these classes
(passed as ``cls=`` to ``typer.Typer`` and ``app.command``) show a flag with
no type, an option with its metavar, and the usage line the way Unix tools
write it: ``netalert poll [OPTIONS] DEVICE``, optional arguments in brackets.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup

__all__ = ["Command", "Group"]


def _flags_untyped(params: list[Any]) -> list[Any]:
    # A flag takes no value: an empty metavar leaves its type column blank.
    for param in params:
        flag = param.param_type_name == "option" and getattr(param, "is_flag", False)
        if flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose help shows flags as flags and arguments in capitals."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, flags (``--help`` included) marked as taking no value."""
        return _flags_untyped(list(super().get_params(ctx)))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] DEVICE [VALUE]``: required arguments bare, optional ones bracketed."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or str(param.name or "").upper()
            if param.nargs != 1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces


class Group(TyperGroup):
    """A command group whose own flags (``--version``, ``--help``) show as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, flags marked as taking no value."""
        return _flags_untyped(list(super().get_params(ctx)))
