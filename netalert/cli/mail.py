"""``netalert mail test``: the SMTP path, checked end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from netalert.cli.app import ConfigOption, app, config_path, config_problems, fail, run_loop
from netalert.cliformat import Command, Group
from netalert.errors import ConfigError

if TYPE_CHECKING:
    pass


mail_app = typer.Typer(help="E-mail: check the SMTP path.", no_args_is_help=True, cls=Group)
app.add_typer(mail_app, name="mail")


@mail_app.command(cls=Command, name="test")
def mail_test(
    to: Annotated[
        list[str], typer.Option("--to", help="recipient (repeat for more)", metavar="ADDR")
    ],
    config: ConfigOption = None,
) -> None:
    """Send a test message through the configured SMTP server (exit 0 sent, 1 failed)."""

    from netalert.config import load_config
    from netalert.config.types import mail_address
    from netalert.mail.check import mail_test as run_mail_test

    for address in to:
        try:
            mail_address(address, "recipient")
        except ValueError as exc:
            raise fail(f"--to: {exc}", 2) from None
    try:
        cfg = load_config(config_path(config))
    except ConfigError as exc:
        raise config_problems(exc) from None
    ok, report = run_loop(run_mail_test(cfg.smtp, to))
    if not ok:
        raise fail(report, 1)
    print(report)


# --- commands: silence (notify) ---
