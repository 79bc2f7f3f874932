"""The ``[ack]`` and ``[ack.imap]`` config models (docs/configuration.md is made from them).

Here rather than in :mod:`netalert.ack` because config models are imported while
:mod:`netalert.config` itself loads; :mod:`netalert.ack.config` re-exports them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from netalert.config.types import Duration, mail_address

__all__ = ["TOKEN_FIELD", "AckConfig", "ImapConfig", "operator_pattern"]

Port = Annotated[int, Field(ge=1, le=65535)]
TOKEN_FIELD = "{token}"  # noqa: S105 - the placeholder, not a secret


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class ImapConfig(_Model):
    """``[ack.imap]``: the mailbox the replies arrive in."""

    host: Annotated[str, Field(min_length=1)] = Field(description="IMAP server")
    port: Port | None = Field(
        None,
        description="993 with `tls`, 143 with `starttls`",
        json_schema_extra={"doc_default": "by `security`"},
    )
    security: Literal["tls", "starttls"] = Field(
        "tls",
        description="`tls` (implicit TLS) or `starttls` (required); there is no plain mode",
    )
    username: Annotated[str, Field(min_length=1)] = Field(description="IMAP login")
    password: SecretStr = Field(SecretStr(""), description="IMAP password (secret)")
    ca_file: Path | None = Field(None, description="extra CA bundle to trust")
    verify: bool = Field(True, description="certificate verification")
    timeout: Duration = Field(timedelta(seconds=30), description="per IMAP command")

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def effective_port(self) -> int:
        """The configured port, or the one of ``security``."""
        if self.port is not None:
            return self.port
        return 993 if self.security == "tls" else 143


def operator_pattern(value: str) -> str:
    """Checks one ``operators`` entry: ``user@domain`` or ``*@domain``, lower-cased.

    Raises:
        ValueError: Not one of those forms.
    """
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or " " in text or "*" in domain:
        raise ValueError(f"invalid operator {value!r}: use user@domain or *@domain")
    if "*" in local and local != "*":
        raise ValueError(f"invalid operator {value!r}: only the whole local part may be *")
    return text


class AckConfig(_Model):
    """``[ack]``: acknowledging and silencing alerts by replying to their mail."""

    imap: ImapConfig = Field(description="the mailbox replies arrive in: `[ack.imap]`")
    reply_to: str = Field(
        description="the Reply-To of alert mails; `{token}` stands for the mail's signed token, "
        'e.g. `"netalert+{token}@example.org"` (plus-addressing into the `[ack.imap]` mailbox)',
    )
    operators: list[str] = Field(
        description="who may act: addresses (`oncall@example.org`) or whole domains "
        "(`*@ops.example.org`); replies from anyone else are refused",
    )
    authserv_id: str = Field(
        "",
        description="when set, only replies whose `Authentication-Results` header from this "
        "authentication service says `dkim=pass` or `dmarc=pass` are trusted (RFC 8601); "
        "such headers from other ids are ignored",
    )
    folder: str = Field("INBOX", description="the IMAP folder read")
    processed_folder: str = Field(
        "",
        description='where handled messages are moved; `""` leaves them in `folder`, flagged '
        "`\\Seen` and `$NetalertDone`",
    )
    secret_file: Path | None = Field(
        None,
        description="the HMAC key of the tokens; made (32 random bytes, mode 0600) when absent",
        json_schema_extra={"doc_default": "`ack.key` in `[agent].state_dir`"},
    )
    token_expiry: Duration = Field(
        timedelta(days=7), description="how long a mail's token is accepted"
    )
    poll_interval: Duration = Field(
        timedelta(seconds=60),
        description="how often the folder is searched when the server has no IDLE",
    )
    idle_refresh: Duration = Field(
        timedelta(minutes=4),
        description=(
            "IDLE is restarted this often; a session that does not answer the restart "
            "within imap.timeout is replaced. Below the 4-6 minutes after which cloud NAT "
            "gateways and load balancers forget a quiet connection (servers end IDLE "
            "after 30 minutes)"
        ),
    )
    reconnect_max: Duration = Field(
        timedelta(minutes=5), description="cap of the exponential reconnect backoff"
    )
    max_message_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = Field(
        65536, description="bytes of a reply read; a longer one is read up to this"
    )
    max_batch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        50, description="messages handled per search; the rest at the next one"
    )
    confirm_per_sender: Annotated[int, Field(ge=0, le=10_000)] = Field(
        10, description="confirmations mailed to one sender per `confirm_window`; 0: none"
    )
    confirm_senders_max: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10_000,
        description="senders the confirmation limit remembers; past it the least recent are "
        "forgotten",
    )
    confirm_window: Duration = Field(
        timedelta(hours=1), description="the window of `confirm_per_sender`"
    )
    max_silence: Duration = Field(
        timedelta(days=7), description="the longest `silence DURATION` a reply may ask for"
    )

    @field_validator("secret_file", mode="before")
    @classmethod
    def _empty_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str) -> str:
        if value.count(TOKEN_FIELD) != 1:
            raise ValueError(f"must hold {TOKEN_FIELD} exactly once, e.g. netalert+{{token}}@…")
        local, _, domain = value.partition("@")
        if TOKEN_FIELD not in local or not domain or "@" in domain or "<" in value:
            raise ValueError("must be a bare address with {token} in its local part")
        mail_address(value.replace(TOKEN_FIELD, "x"), "reply_to")
        return value

    @field_validator("operators")
    @classmethod
    def _operators(cls, values: list[str]) -> list[str]:
        return [operator_pattern(v) for v in values]

    @model_validator(mode="after")
    def _needs_operators(self) -> AckConfig:
        if not self.operators:
            raise ValueError("operators is empty: nobody could act on a reply")
        return self
