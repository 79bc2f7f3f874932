"""The text a person typed into a reply: its ``text/plain`` part, else its ``text/html`` one.

Many phone mail apps send HTML only. From such a part the text is taken as a
reader sees it: tags dropped, block elements (``p``, ``div``, ``br``, ...) as
line breaks, entities decoded; quoted blocks (``blockquote``) and what no reader
sees (``head``, ``style``, ``script``, comments, declarations) are left out, as
``>`` lines are in plain text. The command is then read by
:func:`netalert.ack.commands.parse_command`.
"""

from __future__ import annotations

import re
from collections import Counter
from email.message import Message
from html import unescape

__all__ = ["html_text", "message_body"]

# Elements whose content is not what the sender typed into this reply.
_HIDDEN = frozenset({"blockquote", "head", "template"})
# Elements whose content is raw text up to their end tag, and not shown.
_RAW = frozenset({"script", "style", "title"})
# Elements that start a new line where a reader sees one.
_BREAKS = frozenset(
    {"br", "p", "div", "li", "tr", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table"}
)
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9:-]*)")
_RAW_END = {name: re.compile(f"</{name}", re.IGNORECASE) for name in _RAW}


def html_text(html: str) -> str:
    """What a reader of ``html`` sees, quoted blocks left out, one block per line.

    One pass with ``str.find`` (linear in the length, whatever the markup: a reply
    is read on the agent's loop, and ``html.parser`` is quadratic on some
    malformed input). An unclosed tag or comment ends the text.
    """
    out: list[str] = []
    hidden: list[str] = []  # open hidden elements, innermost last
    open_hidden: Counter[str] = Counter()
    i, size = 0, len(html)
    while i < size:
        lt = html.find("<", i)
        if lt < 0:
            lt = size
        if not hidden:
            out.append(unescape(html[i:lt]))
        if lt >= size:
            break
        tag = _TAG.match(html, lt)
        if tag is None:
            if html.startswith("<!--", lt):  # a comment (Outlook's <!--[if mso]> too)
                end = html.find("-->", lt + 4)
                i = end + 3 if end >= 0 else size
            elif html.startswith(("<!", "<?", "</"), lt):  # <!DOCTYPE>, <?xml?>, </ >
                end = html.find(">", lt)
                i = end + 1 if end >= 0 else size
            else:  # "a < b": text
                if not hidden:
                    out.append("<")
                i = lt + 1
            continue
        name = tag.group(1).lower()
        gt = html.find(">", tag.end())
        if gt < 0:
            break
        i = gt + 1
        if html[lt + 1] == "/":
            if open_hidden[name]:
                while hidden:
                    inner = hidden.pop()
                    open_hidden[inner] -= 1
                    if inner == name:
                        break
                out.append("\n")
            elif name in _BREAKS and not hidden:
                out.append("\n")
        elif name in _RAW:
            raw_end = _RAW_END[name].search(html, i)
            close = html.find(">", raw_end.end()) if raw_end is not None else -1
            i = close + 1 if close >= 0 else size
        elif name in _HIDDEN and html[gt - 1] != "/":
            hidden.append(name)
            open_hidden[name] += 1
        elif name in _BREAKS and not hidden:
            out.append("\n")
    text = "".join(out).replace("\xa0", " ")
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
