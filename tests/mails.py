"""E-mails for the mail tests, written with the standard library's `email` package as a mail
client writes them: plain and HTML alternatives, attachments of several types, an attached mail."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from broken_files import text_pdf


def message(subject: str, body: str, html: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, "Ines Duarte <ines@harborview.example>", "volunteers@harborview.example"
    mail["Date"] = "Tue, 03 Sep 2024 09:15:00 +0200"
    mail.set_content(body)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


def mail_with_attachments(path: Path, scratch: Path) -> Path:
    """A mail whose body names the meeting room, with a PDF of the rota, a CSV of deposits, a
    picture (not a readable type), a second PDF under the same name, and an attached mail that
    carries an attachment of its own."""
    mail = message(
        "Volunteer meeting",
        "Hello all,\n\nThe volunteer meeting is in the back room of the community centre.\n\nInes",
        "<p>Hello all,</p><p>The volunteer meeting is in the <b>back room</b> of the community centre.</p><p>Ines</p>",
    )
    rota = text_pdf(scratch / "rota.pdf", "The Saturday desk shift is covered by Tomasz in September.")
    mail.add_attachment(rota.read_bytes(), maintype="application", subtype="pdf", filename="rota.pdf")
    mail.add_attachment(b"Tool,Deposit\nDrill,30\nKayak,80\n", maintype="text", subtype="csv", filename="../../deposits.csv")
    mail.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), maintype="image", subtype="png", filename="logo.png")
    second = text_pdf(scratch / "rota2.pdf", "The October rota follows next month.")
    mail.add_attachment(second.read_bytes(), maintype="application", subtype="pdf", filename="rota.pdf")
    forwarded = message("Fwd: kayak trip", "The kayak trip leaves from the north pier at eight.")
    forwarded.add_attachment(b"Nested attachments are not read.", maintype="text", subtype="plain", filename="inner.txt")
    mail.add_attachment(forwarded)
    path.write_bytes(bytes(mail))
    return path
