"""Whether a reply may be acted on: pure checks of its headers, each with its refusal.

Nothing here answers a refused message: a refusal is counted and logged, never
replied to, so an auto-responder or a bounce cannot start a mail loop and a
forger learns nothing. The checks, in order:

1. loops (RFC 3834): ``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: bulk/junk/list``, a null return path;
2. authentication (when ``authserv_id`` is set, RFC 8601 §7.1): an
   ``Authentication-Results`` header from that id must say ``dmarc=pass``, or
   ``dkim=pass`` for the From domain (or a parent of it); headers from other ids
   are ignored, whatever they say;
3. the sender: the one From address must match ``operators``.

The token is checked after these (:mod:`netalert.ack.handler`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from email.utils import getaddresses

__all__ = ["authenticated", "from_address", "is_operator", "loop_reason"]

_COMMENT = re.compile(r"\([^()]*\)")


def loop_reason(msg: Message) -> str | None:
    """Why ``msg`` looks automatic (a vacation reply, a bounce, a list), or None."""
    auto = str(msg.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get(name) is not None:
            return name
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    return_paths = msg.get_all("Return-Path") or []
    if any(_COMMENT.sub("", str(p)).strip() in ("<>", "") for p in return_paths):
        return "null return path"
    if str(msg.get("Content-Type", "")).lower().startswith("multipart/report"):
        return "delivery report"
    return None


def from_address(msg: Message) -> str | None:
    """The one From address, lower-cased; None when there is none or more than one."""
    values = msg.get_all("From") or []
    addresses = [a for _, a in getaddresses([str(v) for v in values]) if a]
    if len(values) != 1 or len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].strip().lower()


def is_operator(address: str, operators: Sequence[str]) -> bool:
    """True when ``address`` is one of ``operators`` or in one of their ``*@domain``."""
    address = address.lower()
    domain = address.rpartition("@")[2]
    for pattern in operators:
        if pattern.startswith("*@"):
            if domain == pattern[2:]:
                return True
        elif address == pattern:
            return True
    return False


def _results(header: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """An Authentication-Results value as (authserv-id, [(method, result, properties)])."""
    text = _COMMENT.sub(" ", header)
    parts = [p.strip() for p in text.split(";")]
    ident = parts[0].split()[0].lower() if parts and parts[0].split() else ""
    out = []
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        props = {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if eq:
                props[key.lower()] = value.strip('"').lower()
        out.append((method.split("/")[0].lower(), result.lower(), props))
    return ident, out


def authenticated(msg: Message, authserv_id: str, sender: str) -> bool:
    """True when a header of ``authserv_id`` says DMARC passed, or DKIM for the From domain."""
    wanted = authserv_id.lower()
    domain = sender.rpartition("@")[2].lower()
    for header in msg.get_all("Authentication-Results") or []:
        ident, results = _results(str(header))
        if ident != wanted:
            continue  # another service's verdict: anyone can write one (RFC 8601 §7.1)
        for method, result, props in results:
            if result != "pass":
                continue
            if method == "dmarc" and props.get("header.from", domain) == domain:
                return True
            if method == "dkim":
                signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
                if signer and (domain == signer or domain.endswith("." + signer)):
                    return True
    return False
