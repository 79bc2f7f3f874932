"""A mail's bytes without the cost of the email package, byte for byte as it writes them.

Building an :class:`~email.message.EmailMessage` and flattening it costs about
1.3 ms for a one-alert mail, 90 % of rendering it: every header is parsed into
a tree on assignment and folded back from that tree on output. A
:class:`Draft` takes the same calls render.py makes (``draft[name] = value``,
``set_content(text)``, ``add_alternative(html, subtype="html")``) and writes
what ``EmailMessage(policy=email.policy.SMTP)`` would write for them:

* a header line is copied as is when the email package would copy it as is:
  printable ASCII, one line of at most 78 characters, no encoded-word look-alike,
  of a kind whose text the package keeps (see :data:`_VERBATIM`); any other
  header (non-ASCII, long, an address list) is folded by the package itself;
* the bodies are encoded by the package's own text encoder (7bit, 8bit,
  quoted-printable or base64, by its heuristics);
* the multipart frame is the one the package writes for a text part with an
  alternative, with a boundary made the package's way.

Anything else (a single part, a boundary found in a body) goes through the
email package itself. :meth:`Draft.message` builds the EmailMessage for
callers that need one, with the same boundary, so its bytes are the same;
the tests compare the two.
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import re
from collections.abc import Callable, Iterator
from email import quoprimime
from email.contentmanager import (  # type: ignore[attr-defined]  # private, the package's own
    _encode_text,
)
from email.generator import Generator
from email.message import EmailMessage
from typing import Any

__all__ = ["Draft"]

_POLICY = email.policy.SMTP
_WIDTH = _POLICY.max_line_length or 78
_NL = "\r\n"
# The package's body encoder (its heuristics pick 7bit, 8bit, quoted-printable or base64)
# and its boundary maker: used as they are, so the bytes are the package's.
_encode: Callable[[str, str, str | None, object], tuple[str, str]] = _encode_text
_make_boundary: Callable[[], str] = Generator._make_boundary  # type: ignore[attr-defined]
# Headers whose text the email package writes back unchanged when it is printable
# ASCII on one short line: the unstructured ones. Address lists and dates are
# normalized by the package (a wrong weekday is corrected): always folded by it.
_VERBATIM = frozenset(
    {
        "subject",
        "in-reply-to",
        "references",
        "auto-submitted",
        "x-netalert-state",
        "x-netalert-severity",
        "x-netalert-rule",
        "x-netalert-device",
    }
)

# One <local@domain> of plain characters: the package writes such a Message-ID as it is
# (of two ids it keeps the first; odd characters it may quote).
_ONE_ID = re.compile(r"<[A-Za-z0-9._-]+@[A-Za-z0-9.-]+>")


@functools.lru_cache(maxsize=64)
def _header_class(name: str) -> Any:
    # what header_factory(name, value) calls; the factory makes a new class on every call
    # (cyclic garbage for the collector: ~20 classes per mail), so one per header name
    registry: Any = _POLICY.header_factory
    return registry[name]


@functools.lru_cache(maxsize=512)  # From (the envelope sender is read from it), To
def _parsed(name: str, value: str) -> str:
    """The header as the email package parses it (``header_factory(name, value)``)."""
    parsed: str = _header_class(name.lower())(name, value)
    return parsed


@functools.lru_cache(maxsize=512)  # From, To, and the Date of a second repeat
def _folded(name: str, value: str) -> bytes:
    """The header as the email package writes it (parsed, then folded)."""
    folded: bytes = _POLICY.fold_binary(name, _parsed(name, value))
    return folded


@functools.lru_cache(maxsize=1)
def _multipart_head() -> tuple[bytes, bytes]:
    # Content-Type: multipart/alternative with a boundary, folded by the package once:
    # every boundary _make_boundary makes has the same length and characters, so the
    # same fold; the real one goes where the stand-in was
    stand_in = "=" * 15 + "0" * 19 + "=="
    head, _, tail = _folded(
        "Content-Type", f'multipart/alternative; boundary="{stand_in}"'
    ).partition(stand_in.encode("ascii"))
    return head, tail


def _multipart(boundary: str) -> bytes:
    head, tail = _multipart_head()
    if len(boundary) != 36:
        return _folded("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    return head + boundary.encode("ascii") + tail


def _header(name: str, value: str) -> bytes:
    lower = name.lower()
    if (
        (lower in _VERBATIM or (lower == "message-id" and _ONE_ID.fullmatch(value)))
        and len(name) + 2 + len(value) <= _WIDTH
        and value  # an empty one is written without the space
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
        and "  " not in value
        and "=?" not in value
    ):
        return f"{name}: {value}{_NL}".encode("ascii")
    return _folded(name, value)


# The package's text encoder looks at the first lines of a body that needs
# quoted-printable and encodes them once to choose, then the whole body again.
_SNIFF_LINES = 10  # the lines it looks at
_CACHED_LINE = 400  # bytes: longer lines are encoded each time (the cache stays small)


def _qp_line(line: bytes) -> str:
    """One line as the package's quoted-printable encoder writes it, soft breaks included."""
    text = line.decode("latin-1")
    if text.isascii() and text.isprintable():
        # of printable ASCII the encoder escapes "=" only; a line that is then at most the
        # width long and does not end in white space is written as it is, unbroken
        escaped = text.replace("=", "=3D")
        if len(escaped) <= _WIDTH and not escaped.endswith(" "):
            return escaped
    return _qp_package(line) if len(line) <= _CACHED_LINE else _qp_package.__wrapped__(line)


@functools.lru_cache(maxsize=2048)  # a template's fixed long lines come back in every mail
def _qp_package(line: bytes) -> str:
    encoded: str = quoprimime.body_encode(line.decode("latin-1"), _WIDTH)
    return encoded


def _encode_body(text: str) -> tuple[str, str]:
    """``_encode(text, "utf-8", None, _POLICY)``, encoding each line of a
    quoted-printable body once.

    The package's quoted-printable encoder escapes each byte on its own and then
    works line by line (a line's soft breaks depend on that line only), so the
    body is its lines, each encoded alone, each followed by a line end. That is
    all this relies on; the choice of the encoding is the package's own: a
    body it would send as 7bit or 8bit (no line over the width) or as base64
    (larger as quoted-printable) goes to the package itself.
    """
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= _WIDTH:
        return _encode(text, "utf-8", None, _POLICY)
    encoded = [_qp_line(line) for line in lines]
    sniff = b"\r\n".join(lines[:_SNIFF_LINES]) + b"\r\n"
    sniff_qp = "\n".join(encoded[:_SNIFF_LINES]) + "\n"
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return _encode(text, "utf-8", None, _POLICY)
    if len(lines) <= _SNIFF_LINES:
        return "quoted-printable", sniff_qp
    return "quoted-printable", "\n".join(encoded) + "\n"


def _part(subtype: str, text: str, *, mime_version: bool) -> bytes:
    cte, payload = _encode_body(text)
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"{_NL}Content-Transfer-Encoding: {cte}{_NL}'
    )
    if mime_version:  # the package adds it to the part add_alternative creates
        head += f"MIME-Version: 1.0{_NL}"
    # the payload's line ends are "\n"; 8bit text carries its bytes as surrogates
    body = payload.replace("\n", _NL).encode("ascii", "surrogateescape")
    return head.encode("ascii") + _NL.encode("ascii") + body


class Draft:
    """A mail being composed: headers in order, a text part and an optional alternative."""

    __slots__ = ("_alternative", "_boundary", "_counts", "_got", "_headers", "_message", "_text")

    def __init__(self) -> None:
        self._headers: list[tuple[str, str]] = []
        self._counts: dict[str, int] = {}  # headers set, by lowercase name
        self._got: dict[str, str] = {}  # what get() answered (the mailer asks again)
        self._text: str | None = None
        self._alternative: tuple[str, str] | None = None
        self._boundary: str | None = None
        self._message: EmailMessage | None = None

    def __setitem__(self, name: str, value: str) -> None:
        """Adds a header (after those already set), as ``EmailMessage`` does.

        Raises:
            ValueError: The value holds a line break, or a header that may occur
                once is set twice (as ``EmailMessage`` raises).
        """
        # stricter than the package, which takes a lone trailing line break ("x\n") and so
        # writes a line that ends the header block early
        if "\r" in value or "\n" in value or len(value.splitlines()) > 1:
            raise ValueError("Header values may not contain linefeed or carriage return characters")
        lower = name.lower()
        most = _header_class(lower).max_count  # what header_max_count(name) reads
        if most and self._counts.get(lower, 0) >= most:
            raise ValueError(f"There may be at most {most} {name} headers in a message")
        self._headers.append((name, value))
        self._counts[lower] = self._counts.get(lower, 0) + 1
        self._got.clear()
        self._message = None

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._headers)

    def get(self, name: str, default: str = "") -> str:
        """The first header ``name`` (any case) as the email package reads it, or ``default``."""
        wanted = name.lower()
        if wanted not in self._counts:
            return default
        found = self._got.get(wanted)
        if found is None:
            key, value = next((k, v) for k, v in self._headers if k.lower() == wanted)
            if wanted == "message-id" and _ONE_ID.fullmatch(value):
                found = value  # as the package reads it (a new id each mail: no parse)
            else:
                found = str(_parsed(key, value))
            self._got[wanted] = found
        return found

    def set_content(self, text: str) -> None:
        """The text/plain body (utf-8)."""
        self._text = text
        self._message = None

    def add_alternative(self, content: str, subtype: str = "html") -> None:
        """A text/``subtype`` alternative of the body (utf-8)."""
        self._alternative = (subtype, content)
        self._message = None

    def as_bytes(self) -> bytes:
        """The mail as ``EmailMessage.as_bytes()`` with ``email.policy.SMTP`` gives it."""
        if self._text is None or self._alternative is None:
            return self.message().as_bytes()
        subtype, content = self._alternative
        first = _part("plain", self._text, mime_version=False)
        second = _part(subtype, content, mime_version=True)
        boundary = _make_boundary()
        if boundary.encode("ascii") in first or boundary.encode("ascii") in second:
            self._boundary = None  # the package picks another one (never seen: 10^19 tokens)
            return self.message().as_bytes()
        self._boundary = boundary
        self._message = None
        out = [_header(name, value) for name, value in self._headers]
        out.append(f"MIME-Version: 1.0{_NL}".encode("ascii"))
        out.append(_multipart(boundary))
        dash = f"--{boundary}".encode("ascii")
        nl = _NL.encode("ascii")
        out += [nl, dash, nl, first, nl, dash, nl, second, nl, dash, b"--", nl]
        return b"".join(out)

    def message(self) -> EmailMessage:
        """The same mail as an ``EmailMessage`` (the slow way; same bytes as :meth:`as_bytes`)."""
        if self._message is not None:
            return self._message
        msg = EmailMessage(policy=_POLICY)
        for name, value in self._headers:
            msg[name] = value
        if self._text is not None:
            msg.set_content(self._text)
        if self._alternative is not None:
            subtype, content = self._alternative
            msg.add_alternative(content, subtype=subtype)
            if self._boundary is not None:
                msg.set_boundary(self._boundary)
        self._message = msg
        return msg
