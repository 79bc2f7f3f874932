"""The text a person typed into a reply: its ``text/plain`` part, else its ``text/html`` one.

Many phone mail apps send HTML only. From such a part the text is taken as a
reader sees it: tags dropped, block elements (``p``, ``div``, ``br``, ...) as
line breaks, entities decoded; quoted blocks (``blockquote``) and what no reader
sees (``head``, ``style``, ``script``, comments) are left out, as ``>`` lines are
in plain text. The command is then read by :func:`netalert.ack.commands.parse_command`.
"""

from __future__ import annotations

from email.message import Message
from html.parser import HTMLParser

__all__ = ["html_text", "message_body"]

# Elements whose content is not what the sender typed into this reply.
_HIDDEN = frozenset({"blockquote", "head", "style", "script", "title", "template"})
# Elements that start a new line where a reader sees one.
_BREAKS = frozenset(
    {"br", "p", "div", "li", "tr", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table"}
)
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})
_DEPTH_MAX = 1000  # nesting kept track of; deeper hidden elements stay hidden


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden: list[str] = []  # open hidden elements, innermost last

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN and tag not in _VOID and len(self.hidden) < _DEPTH_MAX:
            self.hidden.append(tag)
        elif tag in _BREAKS and not self.hidden:
            self.out.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS and not self.hidden:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.hidden:
            while self.hidden and self.hidden.pop() != tag:
                pass
            self.out.append("\n")
        elif tag in _BREAKS and not self.hidden:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(data)


def html_text(html: str) -> str:
    """What a reader of ``html`` sees, quoted blocks left out, one block per line."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out).replace("\xa0", " ")
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def message_body(msg: Message) -> str:
    """The first ``text/plain`` part, decoded; else the text of the first ``text/html`` one."""
    html: Message | None = None
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _decoded(part)
        if kind == "text/html" and html is None:
            html = part
    return html_text(_decoded(html)) if html is not None else ""
