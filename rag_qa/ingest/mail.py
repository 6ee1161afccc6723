"""E-mail files read in the guarded worker like every parser: .eml (RFC 5322 with MIME parts) with
the standard library's `email` package, the maintained parser of that format (modern policy:
decoded headers, `get_body`, `iter_attachments`); Outlook's .msg with python-oxmsg.

A mail's text is its headers (subject, from, to, date) and its body: the plain-text part when
there is one, else the HTML part as visible text. Its attachments come back as bytes; the loader
indexes those of a supported type as documents of their own, named `mail.eml#attachment-name`.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.html import html_to_text
from rag_qa.naming import plain_file_name

HEADERS = ("Subject", "From", "To", "Cc", "Date")
MAX_ATTACHMENTS = 100  # a mail with more is refused: no real message carries that many files
DISPLAY_TO, ATTACH_METHOD, BY_VALUE = 0x0E04, 0x3705, 1  # MAPI: an Outlook message's recipients as shown; how an attachment is kept
ATTACHMENT_MARK = "#"  # between a mail's name and its attachment's in the attachment's document name


@dataclass(frozen=True)
class Mail:
    text: str
    attachments: tuple[tuple[str, bytes], ...]  # (file name, bytes)
    unread: tuple[str, ...] = ()  # attachments without bytes to read, with the reason


def read_mail(path: str) -> Mail:
    """The mail's headers and body as text, and its attachments. Runs in the guarded worker."""
    with open(path, "rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    if not any(message[h] for h in HEADERS):
        raise ParseError("not an e-mail message (no headers such as Subject, From or Date)")
    headers = {h: _header(message, h) for h in HEADERS if message[h]}
    return Mail(_text(headers, _body(message)), tuple(_attachments(message)))


def read_outlook_msg(path: str) -> Mail:
    """An Outlook .msg file as a mail: the same header lines and body, and its attachments stored
    by value (an attached Outlook item or linked file has no bytes to read). Runs in the guarded worker.

    Why python-oxmsg: it reads the .msg format (a compound file of MAPI properties) by the
    published specification, under the MIT licence, by the author of python-docx and python-pptx;
    extract-msg, the older reader, is GPL-licensed."""
    import olefile
    from oxmsg import Message

    if not olefile.isOleFile(path):
        raise ParseError("not an Outlook message (a .msg is a compound file; this is not one)")
    try:
        message = Message.load(path)
        kind = message.message_class
        if kind.upper().startswith(("IPM.NOTE.SMIME", "IPM.NOTE.RPMSG")):
            raise ParseError(f"encrypted or rights-protected Outlook message ({kind}); open it in Outlook and save a copy without protection")
        sent = message.sent_date
        headers = {"Subject": message.subject, "From": message.sender, "To": message.properties.str_prop_value(DISPLAY_TO), "Date": sent and sent.isoformat(" ")}
        body = message.body or (html_to_text(message.html_body, with_title=False) if message.html_body else "")
        named = [(safe_name(a.file_name or "", n, a.mime_type or ""), a) for n, a in enumerate(message.attachments, 1)]
        attachments = [(name, a.file_bytes) for name, a in named if _has_bytes(a)]
        unread = tuple(f"attachment {name} not indexed: an attached Outlook item or a link, not a file" for name, a in named if not _has_bytes(a))
    except ParseError:
        raise
    except Exception as exc:  # a damaged compound file or property stream: the reader has no error type of its own
        raise ParseError(f"malformed Outlook message ({type(exc).__name__}: {exc})") from None
    if len(attachments) > MAX_ATTACHMENTS:
        raise ParseError(f"more than {MAX_ATTACHMENTS} attachments (hostile or broken mail?)")
    return Mail(_text(headers, body), tuple(attachments), unread)


def _text(headers: dict[str, str | None], body: str) -> str:
    """A mail as text: a line per header that has a value ("Subject: ..."), a blank line, the body."""
    lines = [f"{name}: {value.strip()}" for name, value in headers.items() if value and value.strip()]
    return "\n".join(lines) + ("\n\n" + body if body.strip() else "")


def _has_bytes(attachment: Any) -> bool:
    """Whether an Outlook attachment is a file stored by value (attach method 1). Not the reader's
    `attached_by_value`: it tests a bit that an attached Outlook item (method 5) has set too."""
    return attachment.properties.int_prop_value(ATTACH_METHOD) == BY_VALUE and attachment.file_bytes is not None


def _header(message: email.message.EmailMessage, name: str) -> str:
    try:
        return str(message[name]).strip()
    except (ValueError, TypeError, IndexError):  # a malformed header: keep its raw text
        return str(message.get(name, "", failobj="")).strip()


def _body(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or wrong charset
        content = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
    return html_to_text(content, with_title=False) if part.get_content_type() == "text/html" else content


def _attachments(message: email.message.EmailMessage) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for number, part in enumerate(message.iter_attachments(), 1):
        if number > MAX_ATTACHMENTS:
            raise ParseError(f"more than {MAX_ATTACHMENTS} attachments (hostile or broken mail?)")
        name = safe_name(part.get_filename() or "", number, part.get_content_type())
        if part.get_content_type() == "message/rfc822":  # an attached mail: its bytes, read as a mail of its own
            inner = part.get_payload()
            data = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        else:
            data = part.get_payload(decode=True) or b""
        found.append((name, data))
    return found


def safe_name(name: str, number: int, content_type: str) -> str:
    """An attachment's file name made safe as an uploaded file's is (`naming.plain_file_name`: no
    folders, no `#`, its suffix kept), or "attachment-2.eml" for an attached mail without a usable
    name, "attachment-3" for another part."""
    return plain_file_name(name) or f"attachment-{number}" + (".eml" if content_type == "message/rfc822" else "")


def attachment_source(mail: str, name: str) -> str:
    return f"{mail}{ATTACHMENT_MARK}{name}"


def file_of(source: str) -> str:
    """The file on disk a stored document comes from: the mail, for one of its attachments."""
    found = re.match(rf"(.*?\.(?:eml|msg)){ATTACHMENT_MARK}", source, re.IGNORECASE)
    return found.group(1) if found else source


def is_attachment(source: str) -> bool:
    """Whether a stored document is a mail's attachment (not a file on disk of its own)."""
    return file_of(source) != source


def attachments_of(mail: str, sources: Iterable[str]) -> list[str]:
    """The stored documents among `sources` that are attachments of the mail stored as `mail`."""
    return [source for source in sources if source != mail and file_of(source) == mail]
