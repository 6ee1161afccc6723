"""E-mail files (.eml: RFC 5322 with MIME parts) read with the standard library's `email` package:
it is the maintained parser of that format (modern policy: decoded headers, `get_body`,
`iter_attachments`), so no third-party code is needed. Runs in the guarded worker like every parser.

A mail's text is its headers (subject, from, to, date) and its body: the plain-text part when
there is one, else the HTML part as visible text. Its attachments come back as bytes; the loader
indexes those of a supported type as documents of their own, named `mail.eml#attachment-name`.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.html import html_to_text

HEADERS = ("Subject", "From", "To", "Cc", "Date")
MAX_ATTACHMENTS = 100  # a mail with more is refused: no real message carries that many files
ATTACHMENT_MARK = "#"  # between a mail's name and its attachment's in the attachment's document name


@dataclass(frozen=True)
class Mail:
    text: str
    attachments: tuple[tuple[str, bytes], ...]  # (file name, bytes)


def read_mail(path: str) -> Mail:
    """The mail's headers and body as text, and its attachments. Runs in the guarded worker."""
    with open(path, "rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    if not any(message[h] for h in HEADERS):
        raise ParseError("not an e-mail message (no headers such as Subject, From or Date)")
    lines = [f"{h}: {_header(message, h)}" for h in HEADERS if message[h]]
    body = _body(message)
    attachments = tuple(_attachments(message))
    return Mail("\n".join(lines) + ("\n\n" + body if body.strip() else ""), attachments)


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
    """An attachment's file name without folders or odd characters ("attachment-2.eml" for an
    attached mail without a name; "attachment-3" for another unnamed part)."""
    base = PureWindowsPath(PurePosixPath(name).name).name  # no folders of either kind
    base = re.sub(r"[\x00-\x1f#]", "_", base).strip(" .")
    if base:
        return base[:200]
    return f"attachment-{number}" + (".eml" if content_type == "message/rfc822" else "")


def attachment_source(mail: str, name: str) -> str:
    return f"{mail}{ATTACHMENT_MARK}{name}"


def file_of(source: str) -> str:
    """The file on disk a stored document comes from: the mail, for one of its attachments."""
    found = re.match(rf"(.*?\.eml){ATTACHMENT_MARK}", source, re.IGNORECASE)
    return found.group(1) if found else source
