"""Header safety and thread identifiers: pure functions, no I/O.

Device-supplied strings (a trap can be forged) reach the Subject and the
``X-Netalert-*`` headers only through :func:`header_text`, which removes every
character that could end a header line or fool a reader. Non-ASCII text stays:
``email.policy.SMTP`` writes it as RFC 2047 encoded words.

Threading: the first mail of a group's episode gets a Message-ID derived from
the group and the episode's start (:func:`episode_root`); every later mail of
the episode (repeat, change, resolved) gets its own id and replies to that root
through ``In-Reply-To`` and ``References``, which is what mail clients thread on.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parseaddr

from netalert.present import clip, octets_text

__all__ = [
    "ThreadIds",
    "body_text",
    "episode_root",
    "header_text",
    "message_domain",
    "thread_ids",
]

# Categories replaced by a space in headers: controls (CR, LF, TAB, ESC, C1),
# line and paragraph separators, lone surrogates.
_BREAKING = frozenset({"Cc", "Zl", "Zp", "Cs"})
_SPACES = re.compile(r"\s+")
_DOMAIN = re.compile(r"[^A-Za-z0-9.-]")
# In ASCII the only characters the rules above touch are the controls (category
# Cc): a translation table does for ASCII text what the loop does, much faster.
_ASCII_CONTROLS = (*range(0x20), 0x7F)
_HEADER_ASCII = str.maketrans(dict.fromkeys(_ASCII_CONTROLS, " "))
_BODY_ASCII = str.maketrans(dict.fromkeys((c for c in _ASCII_CONTROLS if c not in (9, 10)), " "))


def header_text(value: object, *, limit: int = 200) -> str:
    """Makes an untrusted value safe for a header: one line, no controls, bounded.

    CR, LF and other control or separator characters become spaces, format
    characters (bidi overrides, zero-width) are dropped, runs of white space
    collapse, and text longer than ``limit`` characters is cut with an ellipsis.
    """
    text = octets_text(value) if isinstance(value, bytes) else str(value)
    if text.isprintable() and "  " not in text:
        # nothing to replace, drop or collapse: the only white space printable text
        # holds is the space (the common case: a rule name, an address, a label)
        return clip(text.strip(), limit)
    if text.isascii():
        joined = text.translate(_HEADER_ASCII)
    else:
        out = []
        for char in text:
            category = unicodedata.category(char)
            if category in _BREAKING:
                out.append(" ")
            elif category != "Cf":
                out.append(char)
        joined = "".join(out)
    return clip(_SPACES.sub(" ", joined).strip(), limit)


def body_text(value: object) -> str:
    """Makes an untrusted value safe for a mail body: newlines kept, other controls gone.

    Line ends become ``\\n`` (the e-mail generator writes CRLF); escape
    sequences, NUL, bidi overrides and the like are removed so a forged value
    cannot repaint a terminal mail reader or reorder what the reader sees.
    """
    text = octets_text(value) if isinstance(value, bytes) else str(value)
    if text.isprintable():  # no line end, control, separator or format character
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        return text.translate(_BODY_ASCII)
    out = []
    for char in text:
        if char in "\n\t":
            out.append(char)
            continue
        category = unicodedata.category(char)
        if category in _BREAKING:
            out.append(" ")
        elif category != "Cf":
            out.append(char)
    return "".join(out)


@functools.lru_cache(maxsize=64)  # [smtp].from: one or two senders per agent
def message_domain(sender: str) -> str:
    """The domain for Message-IDs: the sender's, reduced to safe characters."""
    address = parseaddr(sender)[1]
    domain = _DOMAIN.sub("", address.rpartition("@")[2])
    return domain or "netalert.invalid"


@dataclass(frozen=True, slots=True)
class ThreadIds:
    """The identity headers of one mail."""

    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    root: str
    reply_to: str | None = None  # [ack] (issue 17): the signed reply address


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def episode_root(group_key: str, episode_start: float, domain: str) -> str:
    """The Message-ID of the first mail of a group's episode (stable: same inputs, same id)."""
    return f"<na.{_digest(group_key, f'{episode_start:.3f}')}@{domain}>"


def thread_ids(
    *,
    group_key: str,
    reason: str,
    episode_start: float,
    created: float,
    alert_keys: Iterable[str],
    domain: str,
    known_root: str | None = None,
) -> ThreadIds:
    """Computes Message-ID, In-Reply-To and References of one notification mail.

    Args:
        group_key: The notification's group (route + grouping labels).
        reason: ``new`` starts a thread; anything else replies to it.
        episode_start: When the episode began (earliest ``starts_at`` of its alerts).
        created: When the notification was made; distinguishes repeats.
        alert_keys: One string per alert (fingerprint and state); part of the id
            so two different notifications never share one.
        domain: The right-hand side of the ids (see :func:`message_domain`).
        known_root: The root recorded for this group's open episode, if any;
            it wins over the one derived from ``episode_start``, which moves
            when the episode's first alert leaves the group.
    """
    if reason == "new" or known_root is None:
        root = episode_root(group_key, episode_start, domain)
    else:
        root = known_root
    if reason == "new":
        return ThreadIds(message_id=root, in_reply_to=None, references=(), root=root)
    own = f"<na.{_digest(group_key, reason, f'{created:.6f}', *sorted(alert_keys))}@{domain}>"
    return ThreadIds(message_id=own, in_reply_to=root, references=(root,), root=root)
